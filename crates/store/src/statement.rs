//! SQL text built piece by piece with `$n` placeholders, and its values, which every way of
//! running SQL binds alike: sqlx for either database ([`Statement::query`], through
//! [`Backend::bind`]) and the SQLite writer's own connection ([`crate::sqlite_writer`]).
//! (sqlx's `QueryBuilder` cannot be executed from code generic over the database, as the
//! store's is, and its values cannot be handed to anything but sqlx.)

use std::borrow::Cow;
use std::fmt::Write;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::value::RawValue;

use crate::StoreResult;
use crate::sql_store::Backend;

/// An open transaction, on either database, running [`Statement`]s: what the writes and
/// purges written once for both backends need.
#[async_trait]
pub(crate) trait OpenTransaction: Send {
    /// How many rows this database's statements should carry.
    fn rows_per_statement(&self) -> RowsPerStatement;

    /// Runs `statement` and returns how many rows it changed.
    async fn execute(&mut self, statement: &Statement<'_>) -> StoreResult<u64>;

    /// Runs `statement` and returns its rows, every column read as text (NULL as `None`).
    async fn fetch_text_rows(
        &mut self,
        statement: &Statement<'_>,
    ) -> StoreResult<Vec<Vec<Option<String>>>>;
}

/// How many rows one insert or upsert statement carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RowsPerStatement {
    /// One, so that the statement's text is the same for every row: the SQLite writer,
    /// which calls SQLite in its own thread, prepares it once and runs it per row.
    One,
    /// As many as the statement may bind (at most `most`): each statement is a round trip
    /// to PostgreSQL.
    Many,
}

impl RowsPerStatement {
    /// The rows per statement, for a statement that may carry at most `most`.
    pub(crate) fn of(self, most: usize) -> usize {
        match self {
            RowsPerStatement::One => 1,
            RowsPerStatement::Many => most,
        }
    }
}

/// A value for one placeholder, typed as the column it goes to (PostgreSQL checks).
pub(crate) enum Value<'a> {
    /// Text, or NULL.
    Text(Option<Cow<'a, str>>),
    /// A `BIGINT`, or NULL.
    BigInt(Option<i64>),
    /// An `INTEGER` (32 bits in PostgreSQL).
    Int(i32),
    Bool(bool),
    Bytes(&'a [u8]),
    /// JSON text (`JSONB` in PostgreSQL, text in SQLite).
    Json(&'a RawValue),
    /// An instant, encoded as each database stores times.
    Time(DateTime<Utc>),
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(text: &'a str) -> Value<'a> {
        Value::Text(Some(Cow::Borrowed(text)))
    }
}

impl From<String> for Value<'_> {
    fn from(text: String) -> Self {
        Value::Text(Some(Cow::Owned(text)))
    }
}

impl<'a> From<Option<&'a str>> for Value<'a> {
    fn from(text: Option<&'a str>) -> Value<'a> {
        Value::Text(text.map(Cow::Borrowed))
    }
}

impl From<i64> for Value<'_> {
    fn from(number: i64) -> Self {
        Value::BigInt(Some(number))
    }
}

impl From<i32> for Value<'_> {
    fn from(number: i32) -> Self {
        Value::Int(number)
    }
}

impl From<bool> for Value<'_> {
    fn from(flag: bool) -> Self {
        Value::Bool(flag)
    }
}

impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(bytes: &'a [u8]) -> Value<'a> {
        Value::Bytes(bytes)
    }
}

impl<'a> From<&'a RawValue> for Value<'a> {
    fn from(json: &'a RawValue) -> Value<'a> {
        Value::Json(json)
    }
}

impl From<DateTime<Utc>> for Value<'_> {
    fn from(at: DateTime<Utc>) -> Self {
        Value::Time(at)
    }
}

/// A statement being built: SQL text and the values of its placeholders, in order. Each
/// placeholder `$n` appears once, and in order, so the `n`th value is also the `n`th
/// parameter SQLite counts.
#[derive(Default)]
pub(crate) struct Statement<'a> {
    sql: String,
    values: Vec<Value<'a>>,
}

impl<'a> Statement<'a> {
    pub(crate) fn new(sql: impl Into<String>) -> Statement<'a> {
        Statement {
            sql: sql.into(),
            values: Vec::new(),
        }
    }

    /// `sql`, whose placeholders `$1`, `$2`, … each appear once and in order, with `values`.
    pub(crate) fn with_values(
        sql: &str,
        values: impl IntoIterator<Item = Value<'a>>,
    ) -> Statement<'a> {
        let statement = Statement {
            sql: sql.to_owned(),
            values: values.into_iter().collect(),
        };
        debug_assert!(
            (1..=statement.values.len()).all(|n| statement.sql.contains(&format!("${n}"))),
            "{sql} has fewer placeholders than values"
        );
        statement
    }

    /// Appends SQL text.
    pub(crate) fn push(&mut self, sql: &str) -> &mut Statement<'a> {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder for `value`.
    pub(crate) fn bind(&mut self, value: impl Into<Value<'a>>) -> &mut Statement<'a> {
        self.values.push(value.into());
        let _ = write!(self.sql, "${}", self.values.len());
        self
    }

    /// Appends placeholders for `values`, separated by commas.
    pub(crate) fn bind_list<V: Into<Value<'a>>>(
        &mut self,
        values: impl IntoIterator<Item = V>,
    ) -> &mut Statement<'a> {
        for (n, value) in values.into_iter().enumerate() {
            if n > 0 {
                self.sql.push_str(", ");
            }
            self.bind(value);
        }
        self
    }

    /// Appends `VALUES (…), (…)`: one parenthesised row per item of `rows`, whose
    /// placeholders `row` binds with [`Row::bind`].
    pub(crate) fn push_values<T>(
        &mut self,
        rows: impl IntoIterator<Item = T>,
        mut row: impl FnMut(&mut Row<'_, 'a>, T),
    ) -> &mut Statement<'a> {
        self.sql.push_str("VALUES ");
        for (n, item) in rows.into_iter().enumerate() {
            self.sql.push_str(if n == 0 { "(" } else { ", (" });
            row(
                &mut Row {
                    statement: self,
                    first: true,
                },
                item,
            );
            self.sql.push(')');
        }
        self
    }

    pub(crate) fn sql(&self) -> &str {
        &self.sql
    }

    pub(crate) fn values(&self) -> &[Value<'a>] {
        &self.values
    }

    /// The query to run through sqlx, its values bound.
    pub(crate) fn query<'q, DB: Backend>(
        &'q self,
    ) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>> {
        self.values
            .iter()
            .fold(sqlx::query::<DB>(&self.sql), |query, value| {
                DB::bind(query, value)
            })
    }
}

/// The placeholders of one row of [`Statement::push_values`], separated by commas.
pub(crate) struct Row<'s, 'a> {
    statement: &'s mut Statement<'a>,
    first: bool,
}

impl<'a> Row<'_, 'a> {
    pub(crate) fn bind(&mut self, value: impl Into<Value<'a>>) -> &mut Self {
        if !self.first {
            self.statement.sql.push_str(", ");
        }
        self.first = false;
        self.statement.bind(value);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order_across_rows() {
        let mut statement = Statement::new("INSERT INTO t (a, b) ");
        statement.push_values([("x", 1_i64), ("y", 2)], |row, (text, number)| {
            row.bind(text).bind(number);
        });
        statement
            .push(" ON CONFLICT (a) DO UPDATE SET b = ")
            .bind(3_i64);
        assert_eq!(
            statement.sql(),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) ON CONFLICT (a) DO UPDATE SET b = $5"
        );
        assert_eq!(statement.values().len(), 5);
    }
}
