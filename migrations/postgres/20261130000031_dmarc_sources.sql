-- DMARC report retention (dmarc_retention) deletes reports and rejected reports by the time
-- they were received.
CREATE INDEX dmarc_reports_by_received_at ON dmarc_reports (received_at);

-- The reverse DNS (PTR) name of each source address named in an aggregate report, and that
-- name's organizational domain, looked up once after the report is stored and kept here for
-- every later report and page. No row: not looked up yet; a row without a name: the address
-- has no PTR record (or the lookup failed). Times are seconds since the Unix epoch (UTC).
CREATE TABLE dmarc_sources (
    ip           TEXT    NOT NULL PRIMARY KEY,
    ptr          TEXT,
    org_domain   TEXT,
    looked_up_at BIGINT NOT NULL
);
CREATE INDEX dmarc_sources_by_looked_up_at ON dmarc_sources (looked_up_at);
