-- DMARC report domains as the pages look them up (lowercase ASCII, no surrounding spaces, no
-- final dot), for reports stored before they were stored so: `Example.ORG.` was listed apart
-- from `example.org` and its page could not be found. Rows of the rollups that now name the
-- same domain are merged into one.
UPDATE dmarc_reports SET domain = lower(rtrim(trim(domain), '.'))
WHERE domain <> lower(rtrim(trim(domain), '.'));

INSERT INTO dmarc_daily (domain, day, source_ip, reporter, dmarc_pass, dkim_aligned,
                         spf_aligned, dkim_pass, spf_pass, disposition, reasons, messages)
SELECT lower(rtrim(trim(domain), '.')), day, source_ip, reporter, dmarc_pass, dkim_aligned,
       spf_aligned, dkim_pass, spf_pass, disposition, reasons, SUM(messages)
FROM dmarc_daily
WHERE domain <> lower(rtrim(trim(domain), '.'))
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11
ON CONFLICT (domain, day, source_ip, reporter, dmarc_pass, dkim_aligned, spf_aligned,
             dkim_pass, spf_pass, disposition, reasons)
DO UPDATE SET messages = dmarc_daily.messages + excluded.messages;
DELETE FROM dmarc_daily WHERE domain <> lower(rtrim(trim(domain), '.'));

INSERT INTO dmarc_daily_policies (domain, day, reporter, policy, reports)
SELECT lower(rtrim(trim(domain), '.')), day, reporter, policy, SUM(reports)
FROM dmarc_daily_policies
WHERE domain <> lower(rtrim(trim(domain), '.'))
GROUP BY 1, 2, 3, 4
ON CONFLICT (domain, day, reporter, policy)
DO UPDATE SET reports = dmarc_daily_policies.reports + excluded.reports;
DELETE FROM dmarc_daily_policies WHERE domain <> lower(rtrim(trim(domain), '.'));

INSERT INTO dmarc_domains (domain, first_day, last_day, messages, reports, failure_reports)
SELECT lower(rtrim(trim(domain), '.')), MIN(first_day), MAX(last_day), SUM(messages),
       SUM(reports), SUM(failure_reports)
FROM dmarc_domains
WHERE domain <> lower(rtrim(trim(domain), '.'))
GROUP BY 1
ON CONFLICT (domain) DO UPDATE SET
    first_day = CASE WHEN excluded.first_day < dmarc_domains.first_day
                     THEN excluded.first_day ELSE dmarc_domains.first_day END,
    last_day = CASE WHEN excluded.last_day > dmarc_domains.last_day
                    THEN excluded.last_day ELSE dmarc_domains.last_day END,
    messages = dmarc_domains.messages + excluded.messages,
    reports = dmarc_domains.reports + excluded.reports,
    failure_reports = dmarc_domains.failure_reports + excluded.failure_reports;
DELETE FROM dmarc_domains WHERE domain <> lower(rtrim(trim(domain), '.'));
