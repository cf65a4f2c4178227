-- Test results, one row per tester mailbox a message was sent to.
CREATE TABLE results (
    seq                  BIGSERIAL   PRIMARY KEY,
    id                   TEXT        NOT NULL UNIQUE,
    mailbox              TEXT        NOT NULL CHECK (mailbox IN ('spf', 'dkim')),
    received_at          TIMESTAMPTZ NOT NULL,
    client_ip            TEXT        NOT NULL,
    client_port          INTEGER     NOT NULL,
    client_ptr           TEXT,
    client_ptr_confirmed BOOLEAN     NOT NULL,
    helo                 TEXT        NOT NULL,
    tls_version          TEXT,
    tls_cipher           TEXT,
    mail_from            TEXT        NOT NULL,
    mail_from_lower      TEXT        NOT NULL,
    mail_from_domain     TEXT,
    recipient            TEXT        NOT NULL,
    size                 BIGINT      NOT NULL,
    header_from          TEXT,
    header_from_lower    TEXT,
    header_from_domain   TEXT,
    subject              TEXT,
    verdict              TEXT        NOT NULL,
    prefixed_subject     TEXT        NOT NULL,
    report               JSONB       NOT NULL
);

CREATE INDEX results_by_mailbox ON results (mailbox, seq);
CREATE INDEX results_by_received_at ON results (received_at);
CREATE INDEX results_by_mail_from ON results (mail_from_lower);
CREATE INDEX results_by_mail_from_domain ON results (mail_from_domain);
CREATE INDEX results_by_header_from ON results (header_from_lower);
CREATE INDEX results_by_header_from_domain ON results (header_from_domain);

-- The message exactly as received, kept apart so that listing results never reads it.
CREATE TABLE raw_messages (
    result_id TEXT  PRIMARY KEY REFERENCES results (id) ON DELETE CASCADE,
    message   BYTEA NOT NULL
);
