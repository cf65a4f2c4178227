//! Stored DMARC reports: one row per report under a unique key (reporter + report id), its
//! aggregate records beside it, the reports that could not be parsed with their reason, and
//! the reverse DNS names of the records' source addresses.
//!
//! The store knows reports as these plain rows; parsing them is the `dmarc-reports` crate's
//! business, and [`NewReport::from_parsed`] maps a parsed report to its rows. Times are seconds since the epoch.

use authcheck_dmarc_reports::{DkimResult, Report, SpfResult};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::StoreResult;
use crate::statement::{OpenTransaction, Statement};

/// What a report is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportKind {
    Aggregate,
    Failure,
}

impl ReportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Aggregate => "aggregate",
            ReportKind::Failure => "failure",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<ReportKind> {
        match text {
            "aggregate" => Some(ReportKind::Aggregate),
            "failure" => Some(ReportKind::Failure),
            _ => None,
        }
    }
}

/// A parsed report about to be stored.
#[derive(Clone, Debug)]
pub struct NewReport {
    pub kind: ReportKind,
    /// With `report_id`, the unique key: the same pair again is a duplicate.
    pub reporter: String,
    pub report_id: String,
    /// The domain the report is about.
    pub domain: String,
    pub date_begin: i64,
    pub date_end: i64,
    pub received_at: i64,
    /// The parsed report as JSON text, serialized straight from the parsed report: a
    /// `serde_json::Value` tree of a report of 100,000 records takes some 500 MiB.
    pub report: Box<serde_json::value::RawValue>,
    /// The message or file exactly as received.
    pub raw: Vec<u8>,
    pub records: Vec<NewRecord>,
    /// The DMARC policy the reporter saw published, as a record's tags
    /// (`p=reject; sp=none; adkim=r; aspf=r; pct=100`), for the dashboard's policy history.
    pub policy: Option<String>,
}

impl NewReport {
    /// The rows of a parsed report that arrived as `raw` at `received_at`: the one mapping
    /// from the parser's reports to the store's, for the service, `dmarc import` and tests.
    /// An aggregate report's records each keep their JSON ([`NewRecord::detail`]), and the
    /// report's JSON is the rest of it (its `records` empty), so that a page of records is
    /// read without the whole report.
    pub fn from_parsed(mut report: Report, raw: Vec<u8>, received_at: i64) -> NewReport {
        // Stored by the name its page looks up; a report naming no domain (refused when it
        // arrives, see `Report::check_received`) is stored under "".
        let domain = report.domain().unwrap_or_default();
        let records = match &mut report {
            Report::Aggregate(aggregate) => std::mem::take(&mut aggregate.records),
            Report::Failure(_) => Vec::new(),
        };
        // Straight to text: a `Value` tree would take ten times the size.
        let json = serde_json::value::to_raw_value(&report).unwrap_or_else(|_| {
            serde_json::value::RawValue::from_string("null".to_owned()).expect("null is JSON")
        });
        match &report {
            Report::Aggregate(aggregate) => NewReport {
                kind: ReportKind::Aggregate,
                reporter: aggregate.reporter().to_owned(),
                report_id: aggregate.metadata.report_id.clone(),
                domain,
                date_begin: aggregate.metadata.date_range.begin,
                date_end: aggregate.metadata.date_range.end,
                received_at,
                report: json,
                raw,
                records: records
                    .into_iter()
                    .map(|record| NewRecord {
                        detail: serde_json::to_string(&record).ok(),
                        source_ip: record.source_ip.to_string(),
                        count: i64::try_from(record.count).unwrap_or(i64::MAX),
                        disposition: record.policy_evaluated.disposition.map(|d| d.to_string()),
                        dkim: record.policy_evaluated.dkim.map(|r| r.to_string()),
                        spf: record.policy_evaluated.spf.map(|r| r.to_string()),
                        dkim_pass: record
                            .auth_results
                            .dkim
                            .iter()
                            .any(|dkim| dkim.result == Some(DkimResult::Pass)),
                        spf_pass: record
                            .auth_results
                            .spf
                            .iter()
                            .any(|spf| spf.result == Some(SpfResult::Pass)),
                        reasons: record
                            .policy_evaluated
                            .reasons
                            .iter()
                            .filter_map(|reason| reason.kind.map(|kind| kind.to_string()))
                            .collect(),
                        header_from: record.identifiers.header_from,
                    })
                    .collect(),
                policy: Some(aggregate.policy.tags()).filter(|tags| !tags.is_empty()),
            },
            Report::Failure(failure) => {
                // A failure report has no report id; its Message-ID serves, or failing that the
                // digest of its bytes, so the same message imported twice is a duplicate.
                let report_id = failure.message_id.clone().unwrap_or_else(|| {
                    let digest = Sha256::digest(&raw);
                    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                    format!("sha256:{hex}")
                });
                let date = failure.date.unwrap_or(received_at);
                NewReport {
                    kind: ReportKind::Failure,
                    reporter: failure.reporter.clone().unwrap_or_default(),
                    report_id,
                    domain,
                    date_begin: date,
                    date_end: date,
                    received_at,
                    report: json,
                    raw,
                    records: Vec::new(),
                    policy: None,
                }
            }
        }
    }
}

/// One row of an aggregate report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewRecord {
    pub source_ip: String,
    pub count: i64,
    pub disposition: Option<String>,
    /// The DMARC-aligned DKIM and SPF results (`policy_evaluated`): `pass` or `fail`.
    pub dkim: Option<String>,
    pub spf: Option<String>,
    pub header_from: String,
    /// Whether any DKIM signature, and the SPF check, passed at all (`auth_results`), aligned
    /// or not.
    pub dkim_pass: bool,
    pub spf_pass: bool,
    /// Why the receiver overrode the policy (`policy_evaluated/reason/type`), in the RFC's
    /// spelling.
    pub reasons: Vec<String>,
    /// The record as parsed (`authcheck_dmarc_reports::Record` as JSON), which the report page
    /// shows; see [`ResultStore::report_records`](crate::ResultStore::report_records).
    pub detail: Option<String>,
}

/// What became of a report given to [`ResultStore::insert_report`](crate::ResultStore).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReportInsert {
    /// Stored under this new id.
    Stored(String),
    /// The same reporter and report id were stored before, under this id; nothing was written.
    Duplicate(String),
}

/// A report that could not be parsed, about to be stored with the reason.
#[derive(Clone, Debug)]
pub struct NewRejectedReport {
    pub received_at: i64,
    /// Where it came from: `smtp:<recipient>` or the file it was imported from.
    pub source: String,
    /// Why it was refused, as the user reads it.
    pub reason: String,
    pub raw: Vec<u8>,
}

/// A stored report, without its raw bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredReport {
    pub id: String,
    pub kind: ReportKind,
    pub reporter: String,
    pub report_id: String,
    pub domain: String,
    pub date_begin: i64,
    pub date_end: i64,
    pub received_at: i64,
    pub report: serde_json::Value,
    /// How many aggregate records it has.
    pub records: i64,
}

/// A stored rejected report, without its raw bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRejectedReport {
    pub id: String,
    pub received_at: i64,
    pub source: String,
    pub reason: String,
}

pub(crate) const INSERT_REPORT_SQL: &str = "INSERT INTO dmarc_reports \
    (id, kind, reporter, report_id, domain, date_begin, date_end, received_at, report, raw) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
    ON CONFLICT (reporter, report_id) DO NOTHING RETURNING id";

pub(crate) const EXISTING_REPORT_SQL: &str =
    "SELECT id FROM dmarc_reports WHERE reporter = $1 AND report_id = $2";

pub(crate) const INSERT_REJECTED_SQL: &str = "INSERT INTO dmarc_rejected \
    (id, received_at, source, reason, raw) VALUES ($1, $2, $3, $4, $5)";

pub(crate) const GET_REPORT_SQL: &str = "SELECT id, kind, reporter, report_id, domain, \
    date_begin, date_end, received_at, report, \
    (SELECT COUNT(*) FROM dmarc_records WHERE dmarc_records.report = dmarc_reports.id) \
    FROM dmarc_reports WHERE id = $1";

/// Most records one [`ResultStore::report_records`](crate::ResultStore::report_records) call
/// reads.
pub const MAX_RECORDS_READ: u32 = 1_000;

/// The details of report `$1`'s records from position `$2` up to (not including) `$3`.
pub(crate) const REPORT_RECORDS_SQL: &str = "SELECT detail FROM dmarc_records \
    WHERE report = $1 AND position >= $2 AND position < $3 AND detail IS NOT NULL \
    ORDER BY position";

pub(crate) const RAW_REPORT_SQL: &str = "SELECT raw FROM dmarc_reports WHERE id = $1";

pub(crate) const LIST_REJECTED_SQL: &str = "SELECT id, received_at, source, reason \
    FROM dmarc_rejected ORDER BY seq DESC LIMIT $1";

/// The start of the statement that stores a report's records; [`push_records_insert`] adds the
/// rows' values in this column order.
const INSERT_RECORDS_HEAD: &str = "INSERT INTO dmarc_records \
    (report, position, source_ip, count, disposition, dkim, spf, header_from, detail) ";

/// Most records one statement stores: 9 values each, far below the databases' limits on bound
/// parameters (32,766 for SQLite, 65,535 for PostgreSQL). A report of 100,000 records is 100
/// statements in the report's one transaction, not 100,000 round trips.
pub(crate) const RECORDS_PER_INSERT: usize = 1000;

/// The multi-row INSERT of `rows` records; bind 9 values per record in the column order of
/// [`INSERT_RECORDS_HEAD`]. (The SQL is written out rather than built with sqlx's
/// `QueryBuilder`, whose arguments cannot outlive it in code written for both databases.)
pub(crate) fn records_insert_sql(rows: usize) -> String {
    format!("{INSERT_RECORDS_HEAD}VALUES {}", placeholders(rows, 9))
}

/// `($1, $2, ...), (...)`: `rows` groups of `columns` numbered placeholders.
fn placeholders(rows: usize, columns: usize) -> String {
    let mut text = String::with_capacity(rows * columns * 6);
    for row in 0..rows {
        if row > 0 {
            text.push_str(", ");
        }
        text.push('(');
        for column in 0..columns {
            if column > 0 {
                text.push_str(", ");
            }
            text.push_str(&format!("${}", row * columns + column + 1));
        }
        text.push(')');
    }
    text
}

/// Most reports, and most rejected reports, one purge transaction deletes. Fewer than the
/// results' batch: a report takes its records with it (up to the parser's record limit).
pub(crate) const REPORT_PURGE_BATCH: i64 = 100;

/// Deletes one batch of reports received before `$1` (`$2` at most), their records with them
/// (`ON DELETE CASCADE`), and returns each one's domain and kind, for the domain totals.
const PURGE_REPORTS_BATCH_SQL: &str = "DELETE FROM dmarc_reports WHERE seq IN \
    (SELECT seq FROM dmarc_reports WHERE received_at < $1 ORDER BY received_at LIMIT $2) \
    RETURNING domain, kind";

/// Takes purged reports (`$1` aggregate, `$2` failure) off their domain's totals (`$3`).
const UNCOUNT_REPORTS_SQL: &str = "UPDATE dmarc_domains \
    SET reports = reports - $1, failure_reports = failure_reports - $2 WHERE domain = $3";

/// Deletes one batch of rejected reports received before `$1` (`$2` at most).
const PURGE_REJECTED_BATCH_SQL: &str = "DELETE FROM dmarc_rejected WHERE seq IN \
    (SELECT seq FROM dmarc_rejected WHERE received_at < $1 ORDER BY received_at LIMIT $2)";

/// Deletes the source names looked up before `$1`: a source still sending is looked up again
/// with its next report, so no name is older than the retention.
const PURGE_SOURCES_BATCH_SQL: &str = "DELETE FROM dmarc_sources WHERE ip IN \
    (SELECT ip FROM dmarc_sources WHERE looked_up_at < $1 ORDER BY looked_up_at LIMIT $2)";

/// One purge batch, run by each backend's writer inside its own transaction: at most
/// [`REPORT_PURGE_BATCH`] reports received before `cutoff` (seconds since the epoch), taken
/// off their domains' report counts in the same transaction, as many rejected reports, and as
/// many source names looked up before it. Returns how many rows of each went.
pub(crate) async fn purge_reports_batch(
    transaction: &mut impl OpenTransaction,
    cutoff: i64,
) -> StoreResult<[u64; 3]> {
    let batch = |sql| Statement::with_values(sql, [cutoff.into(), REPORT_PURGE_BATCH.into()]);
    let purged = transaction
        .fetch_text_rows(&batch(PURGE_REPORTS_BATCH_SQL))
        .await?;
    let mut per_domain: std::collections::BTreeMap<&str, (i64, i64)> = Default::default();
    for row in &purged {
        let text = |column: usize| row.get(column).and_then(Option::as_deref);
        let counts = per_domain.entry(text(0).unwrap_or_default()).or_default();
        match text(1).and_then(ReportKind::parse) {
            Some(ReportKind::Failure) => counts.1 += 1,
            _ => counts.0 += 1,
        }
    }
    for (domain, (aggregates, failures)) in per_domain {
        let uncount = Statement::with_values(
            UNCOUNT_REPORTS_SQL,
            [aggregates.into(), failures.into(), domain.into()],
        );
        transaction.execute(&uncount).await?;
    }
    let rejected = transaction
        .execute(&batch(PURGE_REJECTED_BATCH_SQL))
        .await?;
    let sources = transaction.execute(&batch(PURGE_SOURCES_BATCH_SQL)).await?;
    Ok([purged.len() as u64, rejected, sources])
}

/// The reverse DNS name of a source address, as looked up at ingest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceName {
    /// The address as the records write it (`IpAddr`'s text form).
    pub ip: String,
    /// The first PTR name, without its final dot; `None` when there is none or the lookup
    /// failed.
    pub ptr: Option<String>,
    /// The organizational domain of `ptr` (Public Suffix List).
    pub org_domain: Option<String>,
    /// Seconds since the epoch.
    pub looked_up_at: i64,
}

/// A domain that reports were received for, for the list of RFC 7489 section 7.1
/// authorization records the tester's operator publishes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportDomain {
    pub domain: String,
    /// Reports stored for it (aggregate and failure).
    pub reports: i64,
    /// When the newest of them was received, seconds since the epoch.
    pub last_received: i64,
}

pub(crate) const REPORT_DOMAINS_SEEN_SQL: &str = "SELECT domain, COUNT(*), MAX(received_at) \
    FROM dmarc_reports WHERE domain <> '' GROUP BY domain ORDER BY domain";

/// Most addresses one lookup statement names.
pub(crate) const SOURCES_PER_QUERY: usize = 1000;

/// The statement that stores `rows` looked-up names (bind ip, ptr, org_domain, looked_up_at
/// for each); a name looked up again replaces the old one.
pub(crate) fn sources_upsert_sql(rows: usize) -> String {
    format!(
        "INSERT INTO dmarc_sources (ip, ptr, org_domain, looked_up_at) VALUES {} \
         ON CONFLICT (ip) DO UPDATE SET ptr = excluded.ptr, org_domain = excluded.org_domain, \
         looked_up_at = excluded.looked_up_at",
        placeholders(rows, 4)
    )
}

/// `SELECT <columns> FROM dmarc_sources WHERE ip IN (<count> placeholders)`.
pub(crate) fn sources_select_sql(columns: &str, count: usize) -> String {
    let list = placeholders(count, 1).replace(['(', ')'], "");
    format!("SELECT {columns} FROM dmarc_sources WHERE ip IN ({list})")
}

/// The columns of [`GET_REPORT_SQL`] as read.
pub(crate) type ReportRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    String,
    i64,
);

pub(crate) fn stored_report(row: ReportRow) -> crate::StoreResult<StoredReport> {
    let (id, kind, reporter, report_id, domain, date_begin, date_end, received_at, report, records) =
        row;
    let corrupt = |what: String| crate::StoreError::Config(format!("stored report {id}: {what}"));
    Ok(StoredReport {
        kind: ReportKind::parse(&kind).ok_or_else(|| corrupt(format!("unknown kind {kind}")))?,
        report: serde_json::from_str(&report).map_err(|e| corrupt(e.to_string()))?,
        id,
        reporter,
        report_id,
        domain,
        date_begin,
        date_end,
        received_at,
        records,
    })
}
