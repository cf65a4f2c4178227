//! The daily rollup of DMARC aggregate reports, which the dashboard reads instead of the
//! records: message counts per domain, UTC day, source IP, reporter and result class
//! (`dmarc_daily`), the policy each reporter saw (`dmarc_daily_policies`) and one row per
//! domain (`dmarc_domains`).
//!
//! [`RollupRows::for_report`] turns a new report into those rows; the store writes them in the
//! report's own transaction, so the rollup always matches the reports stored. A report covering
//! several days is shared among its UTC days the way the `dmarc-reports` crate's
//! [`day_shares`] and [`split_count`] do it; the report keeps its original range.
//!
//! [`purge_days`] deletes the days older than `dmarc_retention` once no stored report covers
//! them, and keeps the domains' totals right.
//!
//! The reads ([`DmarcFilter`] and the types below) sum rollup rows in SQL, bounded by the
//! limits here whatever the data.

use std::collections::BTreeMap;

use crate::StoreResult;
use crate::reports::{NewReport, ReportKind};
use crate::sql_store::Backend;
use crate::statement::Statement;
use authcheck_dmarc_reports::{DateRange, day_shares, split_count};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Most rollup rows one report may add: a report whose result classes times days would make
/// more is counted on its first day alone (a stranger's report of 500,000 sources over a year
/// would otherwise cost millions of rows).
pub const MAX_ROLLUP_ROWS_PER_REPORT: usize = 100_000;

/// Most rows a dashboard listing (sources, reporters, policies, domains, reports) returns.
pub const MAX_DASHBOARD_ROWS: u32 = 500;

/// Rows per multi-row INSERT (12 values each, well inside both databases' limits).
const ROWS_PER_INSERT: usize = 500;

/// Days since 1970-01-01 of `day`.
pub(crate) fn day_number(day: NaiveDate) -> i64 {
    (day - NaiveDate::default()).num_days()
}

/// The date of day number `number`; far-off numbers are clamped rather than failing.
pub(crate) fn day_of(number: i64) -> NaiveDate {
    NaiveDate::default()
        .checked_add_signed(chrono::Duration::days(number.clamp(-1_000_000, 1_000_000)))
        .unwrap_or_default()
}

/// What the rollup counts messages by, beside domain, day and reporter.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ClassKey {
    source_ip: String,
    dmarc_pass: bool,
    dkim_aligned: bool,
    spf_aligned: bool,
    dkim_pass: bool,
    spf_pass: bool,
    disposition: String,
    reasons: String,
}

/// The rollup rows of one report, keyed and summed so that each key appears once (sorted, so
/// concurrent writers upsert in the same order).
pub(crate) struct RollupRows {
    domain: String,
    reporter: String,
    daily: BTreeMap<(i64, ClassKey), i64>,
    policy: Option<(i64, String)>,
    first_day: i64,
    last_day: i64,
    messages: i64,
    kind: ReportKind,
}

impl RollupRows {
    /// The rows `report` adds, its domain and reporter as stored (`domain`, `reporter`).
    pub(crate) fn for_report(report: &NewReport, domain: &str, reporter: &str) -> RollupRows {
        let range = DateRange {
            begin: report.date_begin,
            end: report.date_end,
        };
        let mut classes: BTreeMap<ClassKey, i64> = BTreeMap::new();
        for record in &report.records {
            let dkim_aligned = record.dkim.as_deref() == Some("pass");
            let spf_aligned = record.spf.as_deref() == Some("pass");
            let mut reasons = record.reasons.clone();
            reasons.sort();
            reasons.dedup();
            let key = ClassKey {
                source_ip: record.source_ip.clone(),
                dmarc_pass: dkim_aligned || spf_aligned,
                dkim_aligned,
                spf_aligned,
                // An aligned pass is a pass, whatever auth_results said.
                dkim_pass: record.dkim_pass || dkim_aligned,
                spf_pass: record.spf_pass || spf_aligned,
                disposition: record.disposition.clone().unwrap_or_default(),
                reasons: reasons.join(","),
            };
            let total = classes.entry(key).or_default();
            *total = total.saturating_add(record.count.max(0));
        }
        let mut shares = day_shares(range);
        if shares.len() * classes.len() > MAX_ROLLUP_ROWS_PER_REPORT {
            shares.truncate(1);
            shares[0].seconds = 1;
        }
        let mut daily = BTreeMap::new();
        let mut messages: i64 = 0;
        for (key, count) in classes {
            messages = messages.saturating_add(count);
            for (day, part) in split_count(count as u64, &shares) {
                if part > 0 {
                    daily.insert((day_number(day), key.clone()), part as i64);
                }
            }
        }
        let first_day = shares.first().map_or(0, |share| day_number(share.day));
        let last_day = shares
            .last()
            .map_or(first_day, |share| day_number(share.day));
        RollupRows {
            domain: domain.to_owned(),
            reporter: reporter.to_owned(),
            daily,
            policy: report
                .policy
                .as_ref()
                .filter(|_| report.kind == ReportKind::Aggregate)
                .map(|policy| (first_day, crate::record::without_nul(policy).into_owned())),
            first_day,
            last_day,
            messages,
            kind: report.kind,
        }
    }

    /// The statements that add these rows to the rollup, to run in the report's transaction.
    pub(crate) fn inserts(&self) -> Vec<Statement<'_>> {
        let mut statements = Vec::new();
        let rows: Vec<_> = self.daily.iter().collect();
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let mut insert = Statement::new(
                "INSERT INTO dmarc_daily (domain, day, source_ip, reporter, dmarc_pass, \
                 dkim_aligned, spf_aligned, dkim_pass, spf_pass, disposition, reasons, messages) \
                 VALUES ",
            );
            for (n, ((day, key), messages)) in chunk.iter().enumerate() {
                insert.push(if n == 0 { "(" } else { ", (" });
                insert
                    .bind(self.domain.as_str())
                    .push(", ")
                    .bind(*day)
                    .push(", ")
                    .bind(key.source_ip.as_str())
                    .push(", ")
                    .bind(self.reporter.as_str())
                    .push(", ")
                    // Counted in SQL (`SUM(dmarc_pass * messages)`), so stored as numbers.
                    .bind_list(
                        [
                            key.dmarc_pass,
                            key.dkim_aligned,
                            key.spf_aligned,
                            key.dkim_pass,
                            key.spf_pass,
                        ]
                        .map(i64::from),
                    )
                    .push(", ")
                    .bind(key.disposition.as_str())
                    .push(", ")
                    .bind(key.reasons.as_str())
                    .push(", ")
                    .bind(**messages)
                    .push(")");
            }
            insert.push(
                " ON CONFLICT (domain, day, source_ip, reporter, dmarc_pass, dkim_aligned, \
                 spf_aligned, dkim_pass, spf_pass, disposition, reasons) \
                 DO UPDATE SET messages = dmarc_daily.messages + excluded.messages",
            );
            statements.push(insert);
        }
        if let Some((day, policy)) = &self.policy {
            let mut insert = Statement::new(
                "INSERT INTO dmarc_daily_policies (domain, day, reporter, policy, reports) VALUES (",
            );
            insert
                .bind(self.domain.as_str())
                .push(", ")
                .bind(*day)
                .push(", ")
                .bind(self.reporter.as_str())
                .push(", ")
                .bind(policy.as_str())
                .push(
                    ", 1) ON CONFLICT (domain, day, reporter, policy) \
                     DO UPDATE SET reports = dmarc_daily_policies.reports + 1",
                );
            statements.push(insert);
        }
        let (aggregates, failures) = match self.kind {
            ReportKind::Aggregate => (1_i64, 0_i64),
            ReportKind::Failure => (0, 1),
        };
        let mut domain = Statement::new(
            "INSERT INTO dmarc_domains (domain, first_day, last_day, messages, reports, \
             failure_reports) VALUES (",
        );
        domain
            .bind(self.domain.as_str())
            .push(", ")
            .bind_list([
                self.first_day,
                self.last_day,
                self.messages,
                aggregates,
                failures,
            ])
            .push(
                ") ON CONFLICT (domain) DO UPDATE SET \
                 first_day = CASE WHEN excluded.first_day < dmarc_domains.first_day \
                     THEN excluded.first_day ELSE dmarc_domains.first_day END, \
                 last_day = CASE WHEN excluded.last_day > dmarc_domains.last_day \
                     THEN excluded.last_day ELSE dmarc_domains.last_day END, \
                 messages = dmarc_domains.messages + excluded.messages, \
                 reports = dmarc_domains.reports + excluded.reports, \
                 failure_reports = dmarc_domains.failure_reports + excluded.failure_reports",
            );
        statements.push(domain);
        statements
    }
}

/// The domains whose rollup may hold days older than `$1` (a day number).
const DOMAINS_WITH_OLD_DAYS_SQL: &str =
    "SELECT domain FROM dmarc_domains WHERE first_day < $1 ORDER BY domain";

/// The first day of the oldest report still stored for domain `$1`.
const EARLIEST_STORED_REPORT_SQL: &str =
    "SELECT MIN(date_begin) FROM dmarc_reports WHERE domain = $1";

/// The oldest day of domain `$1` before day `$2` that has rollup rows.
const OLDEST_DAY_BEFORE_SQL: &str =
    "SELECT MIN(day) FROM dmarc_daily WHERE domain = $1 AND day < $2";

/// Deletes one day (`$2`) of domain `$1`'s rollup and returns each row's messages, so that
/// exactly what went is taken off the domain's total (a concurrent purge of the same day gets
/// nothing back and takes nothing off).
const PURGE_DAY_SQL: &str =
    "DELETE FROM dmarc_daily WHERE domain = $1 AND day = $2 RETURNING messages";

/// Takes `$1` messages off domain `$2`'s total.
const UNCOUNT_MESSAGES_SQL: &str =
    "UPDATE dmarc_domains SET messages = messages - $1 WHERE domain = $2";

/// Deletes domain `$1`'s policies seen before day `$2`.
const PURGE_POLICIES_SQL: &str = "DELETE FROM dmarc_daily_policies WHERE domain = $1 AND day < $2";

/// Moves domain `$1`'s first day, if it is before `$2`, to the first day of what is left: its
/// rollup or its stored reports (a failure report has no rollup rows). A report stored
/// meanwhile with an older day sets it itself.
const MOVE_FIRST_DAY_SQL: &str = "UPDATE dmarc_domains SET first_day = COALESCE(\
    (SELECT MIN(day) FROM (\
        SELECT MIN(day) AS day FROM dmarc_daily WHERE domain = $1 \
        UNION ALL SELECT MIN(date_begin) / 86400 FROM dmarc_reports WHERE domain = $1) AS days), \
    first_day) WHERE domain = $1 AND first_day < $2";

/// Deletes domain `$1` when neither reports nor rollup rows are left of it.
const DROP_EMPTY_DOMAIN_SQL: &str = "DELETE FROM dmarc_domains WHERE domain = $1 \
    AND reports = 0 AND failure_reports = 0 \
    AND NOT EXISTS (SELECT 1 FROM dmarc_daily WHERE domain = $1)";

/// Deletes the rollup's days before `cutoff_day` (a day number) of every domain, one day of
/// one domain per transaction, and keeps `dmarc_domains` right: its messages lose what was
/// deleted, its first day moves to what is left, and a domain with nothing left goes. A day
/// that a report still stored covers stays (the days before a domain's oldest stored report
/// only go): an imported archive of old reports keeps its charts as long as its reports.
/// Returns how many days (of one domain each) went.
pub(crate) async fn purge_days<DB>(pool: &sqlx::Pool<DB>, cutoff_day: i64) -> StoreResult<u64>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<i64>: sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let domains: Vec<String> = sqlx::query_scalar::<DB, String>(DOMAINS_WITH_OLD_DAYS_SQL)
        .bind(cutoff_day)
        .fetch_all(pool)
        .await
        .map_err(DB::failure)?;
    let mut days = 0;
    for domain in &domains {
        let earliest_report = sqlx::query_scalar::<DB, Option<i64>>(EARLIEST_STORED_REPORT_SQL)
            .bind(domain.as_str())
            .fetch_one(pool)
            .await
            .map_err(DB::failure)?;
        let limit =
            earliest_report.map_or(cutoff_day, |begin| cutoff_day.min(begin.div_euclid(86_400)));
        loop {
            let oldest = sqlx::query_scalar::<DB, Option<i64>>(OLDEST_DAY_BEFORE_SQL)
                .bind(domain.as_str())
                .bind(limit)
                .fetch_one(pool)
                .await
                .map_err(DB::failure)?;
            let Some(day) = oldest else { break };
            // The delete comes first, so that on SQLite the transaction holds the write lock
            // from its first statement.
            let mut tx = pool.begin().await.map_err(DB::failure)?;
            let messages: Vec<i64> = sqlx::query_scalar::<DB, i64>(PURGE_DAY_SQL)
                .bind(domain.as_str())
                .bind(day)
                .fetch_all(&mut *tx)
                .await
                .map_err(DB::failure)?;
            sqlx::query::<DB>(UNCOUNT_MESSAGES_SQL)
                .bind(messages.iter().fold(0_i64, |sum, n| sum.saturating_add(*n)))
                .bind(domain.as_str())
                .execute(&mut *tx)
                .await
                .map_err(DB::failure)?;
            tx.commit().await.map_err(DB::failure)?;
            days += 1;
        }
        let mut tx = pool.begin().await.map_err(DB::failure)?;
        for sql in [PURGE_POLICIES_SQL, MOVE_FIRST_DAY_SQL] {
            sqlx::query::<DB>(sql)
                .bind(domain.as_str())
                .bind(limit)
                .execute(&mut *tx)
                .await
                .map_err(DB::failure)?;
        }
        sqlx::query::<DB>(DROP_EMPTY_DOMAIN_SQL)
            .bind(domain.as_str())
            .execute(&mut *tx)
            .await
            .map_err(DB::failure)?;
        tx.commit().await.map_err(DB::failure)?;
    }
    Ok(days)
}

/// DMARC's outcome, for filtering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DmarcOutcome {
    Pass,
    Fail,
}

impl DmarcOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            DmarcOutcome::Pass => "pass",
            DmarcOutcome::Fail => "fail",
        }
    }

    pub fn parse(text: &str) -> Option<DmarcOutcome> {
        match text {
            "pass" => Some(DmarcOutcome::Pass),
            "fail" => Some(DmarcOutcome::Fail),
            _ => None,
        }
    }
}

/// Which rollup rows a dashboard query sums: one domain, a range of days (both ends
/// included), and optionally one reporter, one source IP, one DMARC outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DmarcFilter {
    pub domain: String,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub reporter: Option<String>,
    pub source_ip: Option<String>,
    pub outcome: Option<DmarcOutcome>,
}

/// Message counts of some rollup rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmarcCounts {
    pub messages: i64,
    pub dmarc_pass: i64,
    pub dkim_aligned: i64,
    pub spf_aligned: i64,
    pub dkim_pass: i64,
    pub spf_pass: i64,
}

impl DmarcCounts {
    pub fn dmarc_fail(&self) -> i64 {
        self.messages - self.dmarc_pass
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &DmarcCounts) {
        self.messages += other.messages;
        self.dmarc_pass += other.dmarc_pass;
        self.dkim_aligned += other.dkim_aligned;
        self.spf_aligned += other.spf_aligned;
        self.dkim_pass += other.dkim_pass;
        self.spf_pass += other.spf_pass;
    }
}

/// One day of a domain's rollup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmarcDay {
    pub day: NaiveDate,
    pub counts: DmarcCounts,
}

/// A domain with reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmarcDomain {
    pub domain: String,
    /// The first and last UTC day its reports cover.
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    /// Messages in its aggregate reports, all days.
    pub messages: i64,
    pub reports: i64,
    pub failure_reports: i64,
}

/// One sending source (IP address) of a domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmarcSource {
    pub source_ip: String,
    pub counts: DmarcCounts,
    /// How many reporters saw it.
    pub reporters: i64,
    /// Messages per disposition the receivers applied (`none`, `quarantine`, `reject`, `pass`,
    /// or empty when not given), most first.
    pub dispositions: Vec<(String, i64)>,
    /// Messages per policy override reason (comma-separated types when several), most first;
    /// messages without one are not listed.
    pub reasons: Vec<(String, i64)>,
}

/// One reporter of a domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmarcReporter {
    pub reporter: String,
    pub counts: DmarcCounts,
}

/// A published policy as reporters saw it, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmarcPolicySeen {
    pub policy: String,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub reports: i64,
    pub reporters: i64,
}

/// What reporters saw of one source IP, per domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmarcSourceSeen {
    pub domain: String,
    pub counts: DmarcCounts,
}

/// A stored report as listed: no report body, no records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportListing {
    pub id: String,
    pub kind: ReportKind,
    pub reporter: String,
    pub report_id: String,
    pub domain: String,
    pub date_begin: i64,
    pub date_end: i64,
    pub received_at: i64,
}

/// The sums every rollup read selects, in [`DmarcCounts`] order.
pub(crate) const COUNT_COLUMNS: &str = "CAST(SUM(messages) AS BIGINT), \
    CAST(SUM(dmarc_pass * messages) AS BIGINT), CAST(SUM(dkim_aligned * messages) AS BIGINT), \
    CAST(SUM(spf_aligned * messages) AS BIGINT), CAST(SUM(dkim_pass * messages) AS BIGINT), \
    CAST(SUM(spf_pass * messages) AS BIGINT)";

/// Appends ` WHERE …` selecting `filter`'s rollup rows to `query`.
pub(crate) fn push_filter<'a>(query: &mut Statement<'a>, filter: &'a DmarcFilter) {
    query
        .push(" WHERE domain = ")
        .bind(filter.domain.as_str())
        .push(" AND day >= ")
        .bind(day_number(filter.first_day))
        .push(" AND day <= ")
        .bind(day_number(filter.last_day));
    if let Some(reporter) = &filter.reporter {
        query.push(" AND reporter = ").bind(reporter.as_str());
    }
    if let Some(source_ip) = &filter.source_ip {
        query.push(" AND source_ip = ").bind(source_ip.as_str());
    }
    if let Some(outcome) = filter.outcome {
        query
            .push(" AND dmarc_pass = ")
            .bind(i64::from(outcome == DmarcOutcome::Pass));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::NewRecord;

    fn report(begin: i64, end: i64, records: Vec<NewRecord>) -> NewReport {
        NewReport {
            kind: ReportKind::Aggregate,
            reporter: "r".to_owned(),
            report_id: "1".to_owned(),
            domain: "example.org".to_owned(),
            date_begin: begin,
            date_end: end,
            received_at: end,
            report: serde_json::value::to_raw_value(&serde_json::Value::Null).unwrap(),
            raw: Vec::new(),
            records,
            policy: Some("p=none".to_owned()),
        }
    }

    fn record(ip: &str, count: i64, dkim: &str) -> NewRecord {
        NewRecord {
            source_ip: ip.to_owned(),
            count,
            dkim: Some(dkim.to_owned()),
            spf: Some("fail".to_owned()),
            disposition: Some("none".to_owned()),
            ..NewRecord::default()
        }
    }

    #[test]
    fn records_of_one_class_are_summed_and_a_two_day_report_is_shared() {
        // 2023-11-15 12:00 UTC to 2023-11-16 12:00 UTC: half on each day.
        let rows = RollupRows::for_report(
            &report(
                1_700_049_600,
                1_700_136_000,
                vec![
                    record("192.0.2.1", 3, "pass"),
                    record("192.0.2.1", 7, "pass"),
                    record("192.0.2.2", 5, "fail"),
                ],
            ),
            "example.org",
            "r",
        );
        let days: Vec<_> = rows
            .daily
            .iter()
            .map(|((day, key), n)| (day_of(*day).to_string(), key.source_ip.as_str(), *n))
            .collect();
        assert_eq!(
            days,
            [
                ("2023-11-15".to_owned(), "192.0.2.1", 5),
                ("2023-11-15".to_owned(), "192.0.2.2", 3),
                ("2023-11-16".to_owned(), "192.0.2.1", 5),
                ("2023-11-16".to_owned(), "192.0.2.2", 2),
            ]
        );
        assert_eq!(rows.messages, 15);
        assert_eq!(
            (
                day_of(rows.first_day).to_string(),
                day_of(rows.last_day).to_string()
            ),
            ("2023-11-15".to_owned(), "2023-11-16".to_owned())
        );
    }

    #[test]
    fn a_report_that_would_make_too_many_rows_counts_on_its_first_day() {
        let records = (0..1_000)
            .map(|n| record(&format!("10.0.{}.{}", n / 256, n % 256), 1, "pass"))
            .collect();
        // 200 days × 1,000 sources is past the limit.
        let rows = RollupRows::for_report(
            &report(1_700_006_400, 1_700_006_400 + 200 * 86_400, records),
            "example.org",
            "r",
        );
        assert_eq!(rows.daily.len(), 1_000);
        assert!(rows.daily.keys().all(|(day, _)| *day == rows.first_day));
        assert_eq!(rows.daily.values().sum::<i64>(), 1_000);
    }
}
