-- Every SMTP session, whatever it stored: who connected, what it said and was answered, the
-- results it produced and why it ended. Times are milliseconds since the Unix epoch (UTC).
-- `codes` holds every reply code of the session between spaces (" 220 250 550 221 ") for the
-- reply-code filter; `events` is the bounded transcript as JSON.
CREATE TABLE smtp_sessions (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT    NOT NULL UNIQUE,
    started_ms      INTEGER NOT NULL,
    ended_ms        INTEGER NOT NULL,
    client_ip       TEXT    NOT NULL,
    client_port     INTEGER NOT NULL,
    client_ptr      TEXT,
    helo            TEXT,
    tls_version     TEXT,
    tls_cipher      TEXT,
    mail_from       TEXT,
    mail_from_lower TEXT,
    mail_from_domain TEXT,
    ending          TEXT    NOT NULL,
    codes           TEXT    NOT NULL,
    result_ids      TEXT    NOT NULL,
    events          TEXT    NOT NULL,
    events_left_out INTEGER NOT NULL,
    left_out_at     INTEGER NOT NULL
);
CREATE INDEX smtp_sessions_by_started ON smtp_sessions (started_ms);
CREATE INDEX smtp_sessions_by_client ON smtp_sessions (client_ip, seq);
CREATE INDEX smtp_sessions_by_mail_from ON smtp_sessions (mail_from_lower);
CREATE INDEX smtp_sessions_by_mail_from_domain ON smtp_sessions (mail_from_domain);
