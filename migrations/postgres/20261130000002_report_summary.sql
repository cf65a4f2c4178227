-- Each result's report summary (the SPF, DKIM, DMARC and ARC results, bounded), which
-- listings read instead of the whole report. Results stored before have none: listings
-- derive theirs from the report.
ALTER TABLE results ADD COLUMN report_summary JSONB;
