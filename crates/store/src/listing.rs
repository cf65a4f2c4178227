//! The SQL for [`ListQuery`](crate::ListQuery), shared by both backends: both accept `$n`
//! placeholders, so only the binding of the values is backend-specific.

use sqlx::{Database, Encode, Type};

use crate::ListQuery;
use crate::record::RESULT_COLUMNS;

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
    /// Builds the query for `query`; `before_seq` is the `seq` of `query.before`, already
    /// looked up by the caller.
    pub fn new(query: &ListQuery, before_seq: Option<i64>) -> ListSql {
        let mut conditions = Vec::new();
        let mut binds = Vec::new();
        fn placeholder(value: Bind, binds: &mut Vec<Bind>) -> String {
            binds.push(value);
            format!("${}", binds.len())
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
        if let Some(seq) = query.after_seq {
            let p = placeholder(Bind::Integer(seq), &mut binds);
            conditions.push(format!("seq > {p}"));
        }
        let limit = placeholder(
            Bind::Integer(i64::from(query.limit.clamp(1, MAX_LIST_LIMIT))),
            &mut binds,
        );

        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        ListSql {
            sql: format!(
                "SELECT {RESULT_COLUMNS} FROM results {filter} ORDER BY seq DESC LIMIT {limit}"
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
