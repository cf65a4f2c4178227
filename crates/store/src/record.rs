//! The mapping between results and table rows that both backends share: new ids, the column
//! values derived for the sender filter, one `messages` row per distinct raw message, the SQL
//! that names the columns, and the conversion of a fetched row back into a [`StoredResult`].

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use rand::RngCore;

use serde_json::value::RawValue;

use crate::statement::{RowsPerStatement, Statement};
use crate::{
    Mailbox, NewResult, PrivateToken, ResultSummary, SessionFacts, StoreError, StoreResult,
    StoredResult,
};
use authcheck_verifier::display::{MAX_DISPLAY_FIELD_BYTES, bounded_display_text};

/// A new public result id, 32 lowercase hex digits: the second it was made (32 bits), the
/// millisecond within that second (12 bits), then 84 random bits, so that nobody can guess
/// the address of someone else's result. The leading time keeps new ids in ascending order,
/// so the indexes on ids grow at their end: the ids one commit adds land on the same page or
/// two, where ids drawn at random (or ordered only by their second, when some thousands of
/// ids share it) dirty a page each. The millisecond cut what each message writes under load
/// by a fifth (README, "Ids ordered to the millisecond").
///
/// The random bits come from rand's thread-local generator, a cryptographic one (ChaCha12)
/// that the operating system seeds and reseeds: asking the operating system itself costs a
/// system call per draw, two ids per message.
pub(crate) fn new_result_id() -> String {
    let now = Utc::now();
    let seconds = now.timestamp() as u32;
    // Up to 1,999 during a leap second, which still fits the three digits.
    let millisecond = now.timestamp_subsec_millis();
    let mut random = rand::thread_rng();
    let (high, low) = (random.next_u32() & 0xf_ffff, random.next_u64());
    format!("{seconds:08x}{millisecond:03x}{high:05x}{low:016x}")
}

/// PostgreSQL keeps timestamps to the microsecond; SQLite is held to the same precision so
/// that both backends give back the same `received_at`.
pub(crate) fn to_stored_precision(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// The lowercase domain of an address (the part after the last `@`), if it has one.
pub(crate) fn domain_of(address: &str) -> Option<String> {
    let (_, domain) = address.rsplit_once('@')?;
    let domain = domain.trim_end_matches('.');
    (!domain.is_empty()).then(|| domain.to_lowercase())
}

/// PostgreSQL cannot store NUL in text (nor `\u0000` in JSONB), yet a decoded Subject may
/// hold one; both backends store U+FFFD in its place so that such a message is still recorded.
pub(crate) fn without_nul(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// `report` with every NUL in its strings replaced; JSON text can only hold a NUL escaped,
/// so only a report whose text shows that escape is parsed to look closer.
fn report_without_nul(report: Box<RawValue>) -> StoreResult<Box<RawValue>> {
    fn has_nul(value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::String(text) => text.contains('\0'),
            serde_json::Value::Array(items) => items.iter().any(has_nul),
            serde_json::Value::Object(fields) => fields
                .iter()
                .any(|(name, value)| name.contains('\0') || has_nul(value)),
            _ => false,
        }
    }
    fn replace_nul(value: &serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::String(text) => {
                serde_json::Value::String(without_nul(text).into_owned())
            }
            serde_json::Value::Array(items) => items.iter().map(replace_nul).collect(),
            serde_json::Value::Object(fields) => fields
                .iter()
                .map(|(name, value)| (without_nul(name).into_owned(), replace_nul(value)))
                .collect(),
            other => other.clone(),
        }
    }
    let unreadable = |error: serde_json::Error| {
        StoreError::Config(format!("a report is not valid JSON: {error}"))
    };
    if !report.get().contains("\\u0000") {
        return Ok(report);
    }
    let value: serde_json::Value = serde_json::from_str(report.get()).map_err(unreadable)?;
    if !has_nul(&value) {
        return Ok(report);
    }
    serde_json::value::to_raw_value(&replace_nul(&value)).map_err(unreadable)
}

/// The start of the statement that stores results; [`push_results_insert`] adds the rows' values
/// in this column order.
const INSERT_RESULTS_HEAD: &str = "INSERT INTO results (\
        id, mailbox, received_at, client_ip, client_port, client_ptr, client_ptr_confirmed, \
        helo, tls_version, tls_cipher, mail_from, mail_from_lower, mail_from_domain, recipient, \
        size, header_from, header_from_lower, header_from_domain, subject, verdict, \
        prefixed_subject, report, report_summary, message_id, private_test) ";

const INSERT_MESSAGES_HEAD: &str = "INSERT INTO messages (id, message) ";

/// Most rows one statement stores: 256 rows of 25 values stay far below the databases'
/// limits on bound parameters (32,766 for SQLite, 65,535 for PostgreSQL).
pub(crate) const MAX_ROWS_PER_INSERT: usize = 256;

/// The column list of [`SummaryRow`], for both column constants below.
macro_rules! summary_columns {
    () => {
        "id, seq, mailbox, received_at, client_ip, client_port, client_ptr, \
         client_ptr_confirmed, helo, tls_version, tls_cipher, mail_from, recipient, size, \
         header_from, subject, verdict, prefixed_subject, \
         COALESCE(report_summary, report) AS report_summary, private_test"
    };
}

/// The columns [`SummaryRow`] reads, for `SELECT {SUMMARY_COLUMNS} FROM results ...`: all but
/// the report, whose size the sender chooses; its bounded summary instead (the report itself
/// only for results stored before summaries existed).
pub(crate) const SUMMARY_COLUMNS: &str = summary_columns!();

/// The columns [`ResultRow`] reads, for `SELECT {RESULT_COLUMNS} FROM results ...`.
pub(crate) const RESULT_COLUMNS: &str = concat!(summary_columns!(), ", report");

/// One new result made ready for the database: its id chosen, NUL replaced in its text, the
/// filter columns derived and the report serialized. It is built in the caller's task, so
/// that whatever writes it (one transaction per message, or SQLite's single writer for many)
/// only binds values.
pub(crate) struct InsertRow {
    pub id: String,
    pub received_at: DateTime<Utc>,
    pub(crate) mailbox: Mailbox,
    pub(crate) client_ip: String,
    client_port: i32,
    pub(crate) client_ptr: Option<String>,
    client_ptr_confirmed: bool,
    helo: String,
    tls_version: Option<String>,
    tls_cipher: Option<String>,
    mail_from: String,
    pub(crate) mail_from_lower: String,
    pub(crate) mail_from_domain: Option<String>,
    recipient: String,
    size: i64,
    header_from: Option<String>,
    header_from_lower: Option<String>,
    header_from_domain: Option<String>,
    subject: Option<String>,
    pub(crate) verdict: String,
    prefixed_subject: String,
    report: Box<RawValue>,
    report_summary: Box<RawValue>,
    /// The `messages` row holding this result's raw message.
    message_id: String,
    /// The raw message, on the first row of those that share it; the others leave it `None`.
    raw_message: Option<Arc<Vec<u8>>>,
    pub(crate) private_test: Option<PrivateToken>,
}

impl InsertRow {
    /// The rows for the results of one message. Results with the same raw message (one
    /// message sent to `spf@` and `dkim@`) share one stored copy of it.
    pub fn for_message(results: Vec<NewResult>) -> StoreResult<Vec<InsertRow>> {
        let mut rows: Vec<InsertRow> = Vec::with_capacity(results.len());
        for mut result in results {
            let raw_message = std::mem::take(&mut result.raw_message);
            let mut row = InsertRow::new(result)?;
            let stored_copy = rows.iter().find(|earlier| {
                earlier.raw_message.as_ref().is_some_and(|copy| {
                    Arc::ptr_eq(copy, &raw_message) || copy.as_slice() == raw_message.as_slice()
                })
            });
            match stored_copy {
                Some(earlier) => row.message_id = earlier.message_id.clone(),
                None => row.raw_message = Some(raw_message),
            }
            rows.push(row);
        }
        Ok(rows)
    }

    /// The row for `result`, with a `messages` row of its own (empty until
    /// [`InsertRow::for_message`] fills it).
    fn new(result: NewResult) -> StoreResult<InsertRow> {
        let session = &result.session;
        let size = i64::try_from(session.size).map_err(|_| {
            StoreError::Config(format!(
                "a message of {} bytes is too large to record",
                session.size
            ))
        })?;
        let text = |value: &str| without_nul(value).into_owned();
        let optional_text = |value: &Option<String>| value.as_deref().map(text);
        // Text a sender chooses is stored bounded (the raw message keeps it whole), so that
        // listings stay small; the sender filter's domains are taken from the whole value.
        let shown = |value: &str| text(&bounded_display_text(value, MAX_DISPLAY_FIELD_BYTES));
        let optional_shown = |value: &Option<String>| value.as_deref().map(shown);
        let report = report_without_nul(result.report)?;
        let report_summary = report_without_nul(result.report_summary)?;
        Ok(InsertRow {
            id: new_result_id(),
            received_at: to_stored_precision(result.received_at),
            mailbox: result.mailbox,
            client_ip: text(&session.client_ip),
            client_port: i32::from(session.client_port),
            client_ptr: optional_shown(&session.client_ptr),
            client_ptr_confirmed: session.client_ptr_confirmed,
            helo: shown(&session.helo),
            tls_version: optional_text(&session.tls_version),
            tls_cipher: optional_text(&session.tls_cipher),
            mail_from: shown(&session.mail_from),
            mail_from_lower: shown(&session.mail_from.to_lowercase()),
            mail_from_domain: domain_of(&session.mail_from).map(|domain| shown(&domain)),
            recipient: shown(&session.recipient),
            size,
            header_from: optional_shown(&result.header_from),
            header_from_lower: result
                .header_from
                .as_deref()
                .map(|from| shown(&from.to_lowercase())),
            header_from_domain: result
                .header_from
                .as_deref()
                .and_then(domain_of)
                .map(|domain| shown(&domain)),
            subject: optional_shown(&result.subject),
            verdict: text(&result.verdict),
            prefixed_subject: shown(&result.prefixed_subject),
            report,
            report_summary,
            message_id: new_result_id(),
            raw_message: None,
            private_test: result.private_test,
        })
    }
}

/// Adds to `statements` the inserts storing `rows` and their raw messages, each raw message
/// before the results that refer to it.
pub(crate) fn push_result_inserts<'q>(
    rows: &'q [&'q InsertRow],
    rows_per_statement: RowsPerStatement,
    statements: &mut Vec<Statement<'q>>,
) {
    for chunk in rows.chunks(rows_per_statement.of(MAX_ROWS_PER_INSERT)) {
        statements.extend(messages_insert(chunk));
        statements.push(results_insert(chunk));
    }
}

/// The statement storing `rows` (at most [`MAX_ROWS_PER_INSERT`]) in `results`.
fn results_insert<'q>(rows: &'q [&'q InsertRow]) -> Statement<'q> {
    debug_assert!(rows.len() <= MAX_ROWS_PER_INSERT);
    let mut insert = Statement::new(INSERT_RESULTS_HEAD);
    insert.push_values(rows, |values, row| {
        values
            .bind(row.id.as_str())
            .bind(row.mailbox.as_str())
            .bind(row.received_at)
            .bind(row.client_ip.as_str())
            .bind(row.client_port)
            .bind(row.client_ptr.as_deref())
            .bind(row.client_ptr_confirmed)
            .bind(row.helo.as_str())
            .bind(row.tls_version.as_deref())
            .bind(row.tls_cipher.as_deref())
            .bind(row.mail_from.as_str())
            .bind(row.mail_from_lower.as_str())
            .bind(row.mail_from_domain.as_deref())
            .bind(row.recipient.as_str())
            .bind(row.size)
            .bind(row.header_from.as_deref())
            .bind(row.header_from_lower.as_deref())
            .bind(row.header_from_domain.as_deref())
            .bind(row.subject.as_deref())
            .bind(row.verdict.as_str())
            .bind(row.prefixed_subject.as_str())
            .bind(&*row.report)
            .bind(&*row.report_summary)
            .bind(row.message_id.as_str())
            .bind(row.private_test.as_ref().map(PrivateToken::as_str));
    });
    insert
}

/// The statement storing the raw messages that `rows` (at most [`MAX_ROWS_PER_INSERT`])
/// carry, or `None` when they carry none: rows that share an earlier row's copy carry none.
/// Run it before [`results_insert`] for the same rows, whose `message_id` refers to these.
fn messages_insert<'q>(rows: &'q [&'q InsertRow]) -> Option<Statement<'q>> {
    debug_assert!(rows.len() <= MAX_ROWS_PER_INSERT);
    let mut messages = rows
        .iter()
        .filter_map(|row| {
            Some((
                row.message_id.as_str(),
                row.raw_message.as_deref()?.as_slice(),
            ))
        })
        .peekable();
    messages.peek()?;
    let mut insert = Statement::new(INSERT_MESSAGES_HEAD);
    insert.push_values(messages, |values, (id, message)| {
        values.bind(id).bind(message);
    });
    Some(insert)
}

/// One row of [`SUMMARY_COLUMNS`] as both backends decode it.
#[derive(sqlx::FromRow)]
pub(crate) struct SummaryRow {
    id: String,
    seq: i64,
    mailbox: String,
    received_at: DateTime<Utc>,
    client_ip: String,
    client_port: i32,
    client_ptr: Option<String>,
    client_ptr_confirmed: bool,
    helo: String,
    tls_version: Option<String>,
    tls_cipher: Option<String>,
    mail_from: String,
    recipient: String,
    size: i64,
    header_from: Option<String>,
    subject: Option<String>,
    verdict: String,
    prefixed_subject: String,
    #[sqlx(json)]
    report_summary: serde_json::Value,
    private_test: Option<String>,
}

/// One row of [`RESULT_COLUMNS`] as both backends decode it.
#[derive(sqlx::FromRow)]
pub(crate) struct ResultRow {
    #[sqlx(flatten)]
    summary: SummaryRow,
    #[sqlx(json)]
    report: serde_json::Value,
}

impl TryFrom<SummaryRow> for ResultSummary {
    type Error = StoreError;

    fn try_from(row: SummaryRow) -> StoreResult<ResultSummary> {
        let corrupt = |what: String| {
            StoreError::Config(format!(
                "result {} in the database has {what}; the database was changed by something \
                 other than authcheck, restore it from a backup",
                row.id
            ))
        };
        let mailbox = Mailbox::parse(&row.mailbox)
            .ok_or_else(|| corrupt(format!("an unknown mailbox {:?}", row.mailbox)))?;
        let client_port = u16::try_from(row.client_port)
            .map_err(|_| corrupt(format!("an impossible client port {}", row.client_port)))?;
        let size = u64::try_from(row.size)
            .map_err(|_| corrupt(format!("a negative message size {}", row.size)))?;
        let private_test = row
            .private_test
            .as_deref()
            .map(|token| {
                PrivateToken::parse(token)
                    .ok_or_else(|| corrupt("a malformed private test token".to_owned()))
            })
            .transpose()?;
        Ok(ResultSummary {
            id: row.id,
            seq: row.seq,
            mailbox,
            received_at: row.received_at,
            session: SessionFacts {
                client_ip: row.client_ip,
                client_port,
                client_ptr: row.client_ptr,
                client_ptr_confirmed: row.client_ptr_confirmed,
                helo: row.helo,
                tls_version: row.tls_version,
                tls_cipher: row.tls_cipher,
                mail_from: row.mail_from,
                recipient: row.recipient,
                size,
            },
            header_from: row.header_from,
            subject: row.subject,
            verdict: row.verdict,
            prefixed_subject: row.prefixed_subject,
            report_summary: row.report_summary,
            private_test,
        })
    }
}

impl TryFrom<ResultRow> for StoredResult {
    type Error = StoreError;

    fn try_from(row: ResultRow) -> StoreResult<StoredResult> {
        Ok(StoredResult {
            summary: ResultSummary::try_from(row.summary)?,
            report: row.report,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_is_lowercased_and_taken_after_the_last_at() {
        assert_eq!(
            domain_of("\"a@b\"@Example.ORG").as_deref(),
            Some("example.org")
        );
        assert_eq!(domain_of("postmaster"), None);
        assert_eq!(domain_of(""), None);
    }

    #[test]
    fn ids_lead_with_the_current_millisecond_and_end_in_84_random_bits() {
        let before = Utc::now().timestamp_millis();
        let ids: Vec<String> = (0..1000).map(|_| new_result_id()).collect();
        let after = Utc::now().timestamp_millis();
        let mut random_parts = std::collections::HashSet::new();
        for id in &ids {
            assert_eq!(id.len(), 32, "{id}");
            let seconds = i64::from_str_radix(&id[..8], 16).unwrap();
            let millisecond = i64::from_str_radix(&id[8..11], 16).unwrap();
            let made = seconds * 1000 + millisecond;
            assert!((before..=after).contains(&made), "{id}");
            random_parts.insert(&id[11..]);
        }
        assert_eq!(random_parts.len(), ids.len(), "the random parts differ");
        let times: Vec<&str> = ids.iter().map(|id| &id[..11]).collect();
        assert!(times.is_sorted(), "ids made one after another ascend");
        // 84 random bits: across 1000 ids every one of the 21 hex digits takes many values.
        for position in 11..32 {
            let digits: std::collections::HashSet<u8> =
                ids.iter().map(|id| id.as_bytes()[position]).collect();
            assert!(
                digits.len() > 8,
                "digit {position} barely varies: {digits:?}"
            );
        }
    }
}
