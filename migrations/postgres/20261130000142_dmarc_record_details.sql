-- Each aggregate record as parsed (its JSON) and its place in the report, so that the report
-- page reads the one page of records it shows rather than the whole report. Reports stored from
-- now on keep their records here and only the rest of the report (its records left empty) in
-- dmarc_reports.report; reports stored before keep their records there, and NULL here.
ALTER TABLE dmarc_records ADD COLUMN position BIGINT;
ALTER TABLE dmarc_records ADD COLUMN detail TEXT;
-- The page's index; it serves the lookups by report that the old index served.
CREATE INDEX dmarc_records_by_position ON dmarc_records (report, position);
DROP INDEX dmarc_records_by_report;
