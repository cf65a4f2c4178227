//! The SQLite writer's own connection: SQLite called directly (rusqlite, linking the same
//! SQLite library as sqlx) on the writer's thread, for everything [`crate::group_commit`]
//! writes (batches, rollups, purges, probes) and its checkpoints.
//!
//! sqlx runs each SQLite connection on a worker thread of its own and hands every
//! statement's outcome back over a channel. A batch is a dozen statements (BEGIN, the
//! inserts, the rollup upserts, COMMIT), so each batch woke the writer a dozen times, and the
//! two threads took turns on the machine's cores about six times per message stored. Called
//! from the writer's thread, SQLite does the same work with no hand-off at all.

use std::path::Path;

use async_trait::async_trait;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{CachedStatement, Connection, OpenFlags, ToSql};

use crate::failure::schema_mismatch;
use crate::sqlite::{BUSY_TIMEOUT, CONNECTION_PRAGMAS, names_missing_schema, stored_time_text};
use crate::statement::{OpenTransaction, RowsPerStatement, Statement, Value};
use crate::{StoreError, StoreResult};

/// Rows per insert, upsert or delete: one, so that each statement has one text whatever the
/// batch, and stays prepared.
pub(crate) const ROWS_PER_STATEMENT: RowsPerStatement = RowsPerStatement::One;

/// Statements kept prepared: every statement the writer runs has one text whatever the batch
/// ([`ROWS_PER_STATEMENT`]), some twenty in all.
const PREPARED_STATEMENTS: usize = 64;

pub(crate) struct WriterConnection {
    connection: Connection,
}

impl WriterConnection {
    /// Opens the database file at `path` (created by the store's pool, with its tables) with
    /// the settings of every connection of the store.
    pub(crate) fn open(path: &Path, read_only: bool) -> StoreResult<WriterConnection> {
        let access = if read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE
        };
        let flags = access | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_EXRESCODE;
        let connection = Connection::open_with_flags(path, flags).map_err(failure)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(failure)?;
        for (name, value) in CONNECTION_PRAGMAS {
            connection
                .execute_batch(&format!("PRAGMA {name} = {value}"))
                .map_err(failure)?;
        }
        connection.set_prepared_statement_cache_capacity(PREPARED_STATEMENTS);
        Ok(WriterConnection { connection })
    }

    /// Runs `statements`, stopping at the first that fails.
    pub(crate) fn write_all(&self, statements: &[Statement<'_>]) -> StoreResult<()> {
        statements
            .iter()
            .try_for_each(|statement| self.execute_now(statement).map(drop))
            .map_err(failure)
    }

    /// Opens a transaction that takes the write lock at once.
    pub(crate) fn begin(&self) -> StoreResult<()> {
        self.run("BEGIN IMMEDIATE").map_err(failure)
    }

    /// Commits the open transaction if `outcome` is `Ok`, which is on disk when this returns
    /// `Ok`; rolls it back otherwise, or when the commit fails.
    pub(crate) fn finish<T>(&self, outcome: StoreResult<T>) -> StoreResult<T> {
        let outcome = outcome.and_then(|value| self.run("COMMIT").map_err(failure).map(|()| value));
        if outcome.is_err() && self.in_transaction() {
            // A failed ROLLBACK leaves the transaction open: the writer then drops the
            // connection, which ends it.
            let _ = self.run("ROLLBACK");
        }
        outcome
    }

    /// Copies as much of the write-ahead log into the database file as no reader still needs.
    pub(crate) fn passive_checkpoint(&self) -> StoreResult<()> {
        self.connection
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .map_err(failure)
    }

    /// Whether a transaction is left open (a failed rollback): the connection must then be
    /// replaced.
    pub(crate) fn in_transaction(&self) -> bool {
        !self.connection.is_autocommit()
    }

    fn run(&self, sql: &str) -> rusqlite::Result<()> {
        self.connection.prepare_cached(sql)?.raw_execute().map(drop)
    }

    /// `statement` prepared (or taken from the cache) with its values bound.
    fn prepare(&self, statement: &Statement<'_>) -> rusqlite::Result<CachedStatement<'_>> {
        let mut prepared = self.connection.prepare_cached(statement.sql())?;
        debug_assert_eq!(prepared.parameter_count(), statement.values().len());
        for (index, value) in statement.values().iter().enumerate() {
            prepared.raw_bind_parameter(index + 1, value)?;
        }
        Ok(prepared)
    }

    fn execute_now(&self, statement: &Statement<'_>) -> rusqlite::Result<u64> {
        let changed = self.prepare(statement)?.raw_execute()?;
        Ok(changed as u64)
    }

    fn fetch_text_rows_now(
        &self,
        statement: &Statement<'_>,
    ) -> rusqlite::Result<Vec<Vec<Option<String>>>> {
        let mut prepared = self.prepare(statement)?;
        let columns = prepared.column_count();
        let mut rows = prepared.raw_query();
        let mut texts = Vec::new();
        while let Some(row) = rows.next()? {
            texts.push(
                (0..columns)
                    .map(|column| row.get(column))
                    .collect::<Result<_, _>>()?,
            );
        }
        Ok(texts)
    }
}

/// SQLite is called on the writer's own thread, so nothing here waits.
#[async_trait]
impl OpenTransaction for WriterConnection {
    fn rows_per_statement(&self) -> RowsPerStatement {
        ROWS_PER_STATEMENT
    }

    async fn execute(&mut self, statement: &Statement<'_>) -> StoreResult<u64> {
        self.execute_now(statement).map_err(failure)
    }

    async fn fetch_text_rows(
        &mut self,
        statement: &Statement<'_>,
    ) -> StoreResult<Vec<Vec<Option<String>>>> {
        self.fetch_text_rows_now(statement).map_err(failure)
    }
}

impl ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Text(Some(text)) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Value::Text(None) | Value::BigInt(None) => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::BigInt(Some(number)) => ToSqlOutput::from(*number),
            Value::Int(number) => ToSqlOutput::from(*number),
            Value::Bool(flag) => ToSqlOutput::from(*flag),
            Value::Bytes(bytes) => ToSqlOutput::Borrowed(ValueRef::Blob(bytes)),
            Value::Json(json) => ToSqlOutput::Borrowed(ValueRef::Text(json.get().as_bytes())),
            Value::Time(at) => ToSqlOutput::from(stored_time_text(*at)),
        })
    }
}

/// Classifies a failure as the store's other SQLite failures are (see [`crate::failure`]):
/// a database without this version's tables cannot be cured by retrying; everything else
/// (a full disk, a read-only file, a lock held too long) might be.
fn failure(error: rusqlite::Error) -> StoreError {
    let message = match &error {
        rusqlite::Error::SqliteFailure(_, Some(message)) => message.as_str(),
        _ => "",
    };
    if names_missing_schema(message) {
        return schema_mismatch(&error);
    }
    StoreError::Unavailable(error.to_string())
}
