-- DMARC reports received at rua@/ruf@ or imported with `authcheck dmarc import`.
-- One row per report; the same report again (reporter + report id) is a duplicate, refused by
-- the unique key. Times are seconds since the Unix epoch (UTC).
CREATE TABLE dmarc_reports (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT    NOT NULL UNIQUE,
    kind        TEXT    NOT NULL CHECK (kind IN ('aggregate', 'failure')),
    reporter    TEXT    NOT NULL,
    report_id   TEXT    NOT NULL,
    domain      TEXT    NOT NULL,
    date_begin  INTEGER NOT NULL,
    date_end    INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    -- The parsed report as JSON, and the message or file exactly as received.
    report      TEXT    NOT NULL,
    raw         BLOB    NOT NULL,
    UNIQUE (reporter, report_id)
);
CREATE INDEX dmarc_reports_by_domain ON dmarc_reports (domain, date_begin);

-- The rows of aggregate reports, for the per-domain figures.
CREATE TABLE dmarc_records (
    report      TEXT    NOT NULL REFERENCES dmarc_reports (id) ON DELETE CASCADE,
    source_ip   TEXT    NOT NULL,
    count       INTEGER NOT NULL,
    disposition TEXT,
    dkim        TEXT,
    spf         TEXT,
    header_from TEXT    NOT NULL
);
CREATE INDEX dmarc_records_by_report ON dmarc_records (report);
CREATE INDEX dmarc_records_by_source ON dmarc_records (source_ip);

-- What could not be parsed, with the reason: nothing is dropped silently.
CREATE TABLE dmarc_rejected (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT    NOT NULL UNIQUE,
    received_at INTEGER NOT NULL,
    source      TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    raw         BLOB    NOT NULL
);
CREATE INDEX dmarc_rejected_by_received_at ON dmarc_rejected (received_at);
