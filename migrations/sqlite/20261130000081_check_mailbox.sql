-- The full-check mailbox `check@` (both verdicts on one result), and the private test a
-- result belongs to (`test-<token>@`; NULL for the public results that lists show).
-- SQLite cannot change a CHECK constraint in place, so the results table is rebuilt with
-- the same columns, rows, seq values and indexes; nothing references it by foreign key.
CREATE TABLE results_new (
    seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
    id                   TEXT    NOT NULL UNIQUE,
    mailbox              TEXT    NOT NULL CHECK (mailbox IN ('spf', 'dkim', 'check')),
    received_at          TEXT    NOT NULL,
    client_ip            TEXT    NOT NULL,
    client_port          INTEGER NOT NULL,
    client_ptr           TEXT,
    client_ptr_confirmed INTEGER NOT NULL,
    helo                 TEXT    NOT NULL,
    tls_version          TEXT,
    tls_cipher           TEXT,
    mail_from            TEXT    NOT NULL,
    mail_from_lower      TEXT    NOT NULL,
    mail_from_domain     TEXT,
    recipient            TEXT    NOT NULL,
    size                 INTEGER NOT NULL,
    header_from          TEXT,
    header_from_lower    TEXT,
    header_from_domain   TEXT,
    subject              TEXT,
    verdict              TEXT    NOT NULL,
    prefixed_subject     TEXT    NOT NULL,
    report               TEXT    NOT NULL,
    message_id           TEXT REFERENCES messages (id),
    report_summary       TEXT,
    private_test         TEXT
);

INSERT INTO results_new (
    seq, id, mailbox, received_at, client_ip, client_port, client_ptr, client_ptr_confirmed,
    helo, tls_version, tls_cipher, mail_from, mail_from_lower, mail_from_domain, recipient,
    size, header_from, header_from_lower, header_from_domain, subject, verdict,
    prefixed_subject, report, message_id, report_summary)
SELECT
    seq, id, mailbox, received_at, client_ip, client_port, client_ptr, client_ptr_confirmed,
    helo, tls_version, tls_cipher, mail_from, mail_from_lower, mail_from_domain, recipient,
    size, header_from, header_from_lower, header_from_domain, subject, verdict,
    prefixed_subject, report, message_id, report_summary
FROM results;

DROP TABLE results;
ALTER TABLE results_new RENAME TO results;

CREATE INDEX results_by_mailbox ON results (mailbox, seq);
CREATE INDEX results_by_received_at ON results (received_at);
CREATE INDEX results_by_mail_from ON results (mail_from_lower);
CREATE INDEX results_by_mail_from_domain ON results (mail_from_domain);
CREATE INDEX results_by_header_from ON results (header_from_lower);
CREATE INDEX results_by_header_from_domain ON results (header_from_domain);
CREATE INDEX results_by_message ON results (message_id);
CREATE INDEX results_by_private_test ON results (private_test, seq) WHERE private_test IS NOT NULL;
