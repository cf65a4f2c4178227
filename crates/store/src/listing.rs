//! The SQL for [`ListQuery`](crate::ListQuery), shared by both backends: both accept `$n`
//! placeholders, so only the binding of the values is backend-specific.

use sqlx::{Database, Encode, Type};

use crate::record::{SUMMARY_COLUMNS, domain_of};
use crate::{ListQuery, ResultSummary, Visibility};

/// The most results one list call returns, whatever limit was asked for.
pub const MAX_LIST_LIMIT: u32 = 200;

pub(crate) const SEQ_OF_ID_SQL: &str = "SELECT seq FROM results WHERE id = $1";

/// A value for one `$n` placeholder of a listing query.
pub(crate) enum Bind {
    Text(String),
    Integer(i64),
}

/// A listing query ready to run: SQL and the values for its placeholders, in order.
pub(crate) struct ListSql {
    pub sql: String,
    pub binds: Vec<Bind>,
}

impl ListSql {
    /// Builds the query for `query`; `before_seq` and `after_seq` are the `seq` of
    /// `query.before` and `query.after`, already looked up by the caller. Only the
    /// [`SUMMARY_COLUMNS`] are read: never the report.
    pub fn new(query: &ListQuery, before_seq: Option<i64>, after_seq: Option<i64>) -> ListSql {
        let mut conditions = Vec::new();
        let mut binds = Vec::new();
        fn placeholder(value: Bind, binds: &mut Vec<Bind>) -> String {
            binds.push(value);
            format!("${}", binds.len())
        }

        match query.visibility {
            Visibility::Public => conditions.push("private_test IS NULL".to_owned()),
            Visibility::PrivateTest(token) => {
                let p = placeholder(Bind::Text(token.as_str().to_owned()), &mut binds);
                conditions.push(format!("private_test = {p}"));
            }
            Visibility::AnyPrivateTest => conditions.push("private_test IS NOT NULL".to_owned()),
        }
        if let Some(mailbox) = query.mailbox {
            let p = placeholder(Bind::Text(mailbox.as_str().to_owned()), &mut binds);
            conditions.push(format!("mailbox = {p}"));
        }
        if let Some(sender) = normalized_sender(query.sender.as_deref()) {
            let p = placeholder(Bind::Text(sender), &mut binds);
            conditions.push(format!(
                "(mail_from_lower = {p} OR mail_from_domain = {p} \
                  OR header_from_lower = {p} OR header_from_domain = {p})"
            ));
        }
        if let Some(seq) = before_seq {
            let p = placeholder(Bind::Integer(seq), &mut binds);
            conditions.push(format!("seq < {p}"));
        }
        for seq in [query.after_seq, after_seq].into_iter().flatten() {
            let p = placeholder(Bind::Integer(seq), &mut binds);
            conditions.push(format!("seq > {p}"));
        }
        let limit = placeholder(
            Bind::Integer(i64::from(query.limit.clamp(1, MAX_LIST_LIMIT))),
            &mut binds,
        );

        let filter = format!("WHERE {}", conditions.join(" AND "));
        ListSql {
            sql: format!(
                "SELECT {SUMMARY_COLUMNS} FROM results {filter} ORDER BY seq DESC LIMIT {limit}"
            ),
            binds,
        }
    }

    /// Binds the placeholder values to `query`, which must have been made from `self.sql`.
    pub fn bind_to<'q, DB, O>(
        &'q self,
        mut query: sqlx::query::QueryAs<'q, DB, O, <DB as Database>::Arguments<'q>>,
    ) -> sqlx::query::QueryAs<'q, DB, O, <DB as Database>::Arguments<'q>>
    where
        DB: Database,
        &'q str: Encode<'q, DB> + Type<DB>,
        i64: Encode<'q, DB> + Type<DB>,
    {
        for value in &self.binds {
            query = match value {
                Bind::Text(text) => query.bind(text.as_str()),
                Bind::Integer(number) => query.bind(*number),
            };
        }
        query
    }
}

/// The sender filter as stored for comparison (trimmed, lowercase); a blank filter is none.
fn normalized_sender(sender: Option<&str>) -> Option<String> {
    let sender = sender?.trim();
    (!sender.is_empty()).then(|| sender.to_lowercase())
}

/// Whether `result` passes the sender filter `sender` ([`ListQuery::sender`]) as the listing
/// SQL decides it, for results that did not come from a filtered query (the live feed's new
/// results): its MAIL FROM or From address, or either one's domain, equals the filter without
/// regard to case; a blank filter passes everything. The columns the SQL compares are derived
/// by the same [`domain_of`] from the same addresses.
pub fn sender_matches(sender: &str, result: &ResultSummary) -> bool {
    let Some(sender) = normalized_sender(Some(sender)) else {
        return true;
    };
    [
        Some(result.session.mail_from.as_str()),
        result.header_from.as_deref(),
    ]
    .into_iter()
    .flatten()
    .filter(|address| !address.is_empty())
    .any(|address| {
        address.to_lowercase() == sender
            || domain_of(address).is_some_and(|domain| domain == sender)
    })
}
