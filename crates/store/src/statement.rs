//! SQL text built piece by piece with `$n` placeholders, and its values, which both backends
//! bind the same way. (sqlx's `QueryBuilder` cannot be executed from code generic over the
//! database, as the store's is.)

use std::fmt::Write;

use sqlx::{Database, Encode, Type};

/// A value for one placeholder.
pub(crate) enum Value {
    Text(String),
    Integer(i64),
}

impl From<&str> for Value {
    fn from(text: &str) -> Value {
        Value::Text(text.to_owned())
    }
}

impl From<i64> for Value {
    fn from(number: i64) -> Value {
        Value::Integer(number)
    }
}

impl From<bool> for Value {
    fn from(flag: bool) -> Value {
        Value::Integer(i64::from(flag))
    }
}

/// A statement being built: SQL text and the values of its placeholders, in order.
#[derive(Default)]
pub(crate) struct Statement {
    sql: String,
    values: Vec<Value>,
}

impl Statement {
    pub(crate) fn new(sql: impl Into<String>) -> Statement {
        Statement {
            sql: sql.into(),
            values: Vec::new(),
        }
    }

    /// Appends SQL text.
    pub(crate) fn push(&mut self, sql: &str) -> &mut Statement {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder for `value`.
    pub(crate) fn bind(&mut self, value: impl Into<Value>) -> &mut Statement {
        self.values.push(value.into());
        let _ = write!(self.sql, "${}", self.values.len());
        self
    }

    /// Appends placeholders for `values`, separated by commas.
    pub(crate) fn bind_list<V: Into<Value>>(
        &mut self,
        values: impl IntoIterator<Item = V>,
    ) -> &mut Statement {
        for (n, value) in values.into_iter().enumerate() {
            if n > 0 {
                self.sql.push_str(", ");
            }
            self.bind(value);
        }
        self
    }

    /// The query to run, its values bound.
    pub(crate) fn query<'q, DB>(&'q self) -> sqlx::query::Query<'q, DB, DB::Arguments<'q>>
    where
        DB: Database,
        &'q str: Encode<'q, DB> + Type<DB>,
        i64: Encode<'q, DB> + Type<DB>,
    {
        let mut query = sqlx::query::<DB>(&self.sql);
        for value in &self.values {
            query = match value {
                Value::Text(text) => query.bind(text.as_str()),
                Value::Integer(number) => query.bind(*number),
            };
        }
        query
    }
}
