-- The daily rollup the DMARC dashboard reads instead of the records: message counts per
-- domain, UTC day, source IP, reporter and result class, kept up to date by the transaction
-- that stores each report. A report covering several days is shared among them (see the
-- store's `rollup` module). Days are counted from 1970-01-01 (UTC).
CREATE TABLE dmarc_daily (
    domain       TEXT    NOT NULL,
    day          INTEGER NOT NULL,
    source_ip    TEXT    NOT NULL,
    reporter     TEXT    NOT NULL,
    -- The result class. Flags are 1 or 0: DMARC passed; DKIM, SPF passed aligned (the
    -- report's policy_evaluated); any DKIM signature, the SPF check passed (auth_results).
    dmarc_pass   INTEGER NOT NULL,
    dkim_aligned INTEGER NOT NULL,
    spf_aligned  INTEGER NOT NULL,
    dkim_pass    INTEGER NOT NULL,
    spf_pass     INTEGER NOT NULL,
    -- '' when the reporter gave none; reasons are the override types, comma-separated.
    disposition  TEXT    NOT NULL,
    reasons      TEXT    NOT NULL,
    messages     INTEGER NOT NULL,
    PRIMARY KEY (domain, day, source_ip, reporter, dmarc_pass, dkim_aligned, spf_aligned,
                 dkim_pass, spf_pass, disposition, reasons)
) WITHOUT ROWID;
CREATE INDEX dmarc_daily_by_source ON dmarc_daily (source_ip, day);

-- The policy each reporter saw published, per domain and day (the report's first day).
CREATE TABLE dmarc_daily_policies (
    domain   TEXT    NOT NULL,
    day      INTEGER NOT NULL,
    reporter TEXT    NOT NULL,
    policy   TEXT    NOT NULL,
    reports  INTEGER NOT NULL,
    PRIMARY KEY (domain, day, reporter, policy)
) WITHOUT ROWID;

-- One row per domain with reports, so the list of domains reads no rollup.
CREATE TABLE dmarc_domains (
    domain          TEXT    NOT NULL PRIMARY KEY,
    first_day       INTEGER NOT NULL,
    last_day        INTEGER NOT NULL,
    messages        INTEGER NOT NULL,
    reports         INTEGER NOT NULL,
    failure_reports INTEGER NOT NULL
) WITHOUT ROWID;

-- Reports stored before the rollup: counted on their first day, with the aligned results
-- standing in for the unaligned ones (which the records table does not keep), and no policy.
INSERT INTO dmarc_daily (domain, day, source_ip, reporter, dmarc_pass, dkim_aligned,
                         spf_aligned, dkim_pass, spf_pass, disposition, reasons, messages)
SELECT reports.domain, reports.date_begin / 86400, records.source_ip, reports.reporter,
       CASE WHEN records.dkim = 'pass' OR records.spf = 'pass' THEN 1 ELSE 0 END,
       CASE WHEN records.dkim = 'pass' THEN 1 ELSE 0 END,
       CASE WHEN records.spf = 'pass' THEN 1 ELSE 0 END,
       CASE WHEN records.dkim = 'pass' THEN 1 ELSE 0 END,
       CASE WHEN records.spf = 'pass' THEN 1 ELSE 0 END,
       COALESCE(records.disposition, ''), '', SUM(records.count)
FROM dmarc_records AS records JOIN dmarc_reports AS reports ON reports.id = records.report
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11;

INSERT INTO dmarc_domains (domain, first_day, last_day, messages, reports, failure_reports)
SELECT domain, MIN(date_begin / 86400), MAX(date_begin / 86400),
       COALESCE((SELECT SUM(messages) FROM dmarc_daily WHERE dmarc_daily.domain = dmarc_reports.domain), 0),
       SUM(CASE WHEN kind = 'aggregate' THEN 1 ELSE 0 END),
       SUM(CASE WHEN kind = 'failure' THEN 1 ELSE 0 END)
FROM dmarc_reports GROUP BY domain;
