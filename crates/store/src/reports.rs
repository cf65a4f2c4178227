//! Stored DMARC reports: one row per report under a unique key (reporter + report id), its
//! aggregate records beside it, and the reports that could not be parsed with their reason.
//!
//! The store knows reports only as these plain rows; parsing them is the `dmarc-reports`
//! crate's business and the binary maps one to the other. Times are seconds since the epoch.

use serde::{Deserialize, Serialize};

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

    fn parse(text: &str) -> Option<ReportKind> {
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
    /// The parsed report, as JSON.
    pub report: serde_json::Value,
    /// The message or file exactly as received.
    pub raw: Vec<u8>,
    pub records: Vec<NewRecord>,
}

/// One row of an aggregate report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRecord {
    pub source_ip: String,
    pub count: i64,
    pub disposition: Option<String>,
    pub dkim: Option<String>,
    pub spf: Option<String>,
    pub header_from: String,
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

pub(crate) const LIST_REJECTED_SQL: &str = "SELECT id, received_at, source, reason \
    FROM dmarc_rejected ORDER BY seq DESC LIMIT $1";

/// One record per statement, in the report's transaction (prepared once, so a report of a
/// few thousand records costs milliseconds).
pub(crate) const INSERT_RECORD_SQL: &str = "INSERT INTO dmarc_records \
    (report, source_ip, count, disposition, dkim, spf, header_from) \
    VALUES ($1, $2, $3, $4, $5, $6, $7)";

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
