//! The PostgreSQL backend, for several authcheck instances sharing one tester domain and one
//! database.

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::error::DatabaseError;
use sqlx::postgres::PgArguments;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::query::Query;
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, Row, Transaction};

use crate::failure::query_failure;
use crate::purge::purge_results_batch;
use crate::record::{InsertRow, push_result_inserts};
use crate::reports::purge_reports_batch;
use crate::sessions::{SessionRow, push_session_inserts};
use crate::sql_store::{Backend, Purged, RowWriter, SqlStore};
use crate::statement::{OpenTransaction, RowsPerStatement, Statement, Value};
use crate::stats::{ResultStats, SessionStats, StatsKeys};
use crate::{ACQUIRE_TIMEOUT, SharedStore, StoreError, StoreResult};

const POOL_SIZE: u32 = 8;

/// Transaction-scoped advisory lock keys (arbitrary, fixed numbers, the ASCII of
/// "ac-insrt" and "ac-purge") that every instance uses.
const INSERT_LOCK: i64 = 0x6163_2d69_6e73_7274;
const PURGE_LOCK: i64 = 0x6163_2d70_7572_6765;
/// "ac-sessn": sessions are written in turns too, for the same reason as results.
const SESSIONS_LOCK: i64 = 0x6163_2d73_6573_736e;

/// Many rows per statement: each statement is a round trip to the server.
const ROWS_PER_STATEMENT: RowsPerStatement = RowsPerStatement::Many;

/// Connects to `url` (`postgres://` or `postgresql://`) and applies the migrations; several
/// instances may do this at once (sqlx serialises migrations with an advisory lock).
pub(crate) async fn open(url: &str) -> StoreResult<SharedStore> {
    let options = PgConnectOptions::from_str(url).map_err(|error| {
        StoreError::Config(format!(
            "the PostgreSQL database URL is not valid ({error}); use \
             postgres://USER:PASSWORD@HOST:PORT/DATABASE"
        ))
    })?;
    let server = format!(
        "{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or_default()
    );
    let pool = PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|error| connect_failure(&server, error))?;
    sqlx::migrate!("../../migrations/postgres")
        .run(&pool)
        .await
        .map_err(|error| {
            StoreError::Config(format!(
                "cannot bring the PostgreSQL database {server} up to date ({error}); if it was \
                 last used by a newer authcheck, run that version"
            ))
        })?;
    Ok(Arc::new(SqlStore::new(pool.clone(), PgWriter { pool })))
}

/// A server that refuses us (bad password, no such database) needs the operator; a server
/// that cannot be reached may come back by itself.
fn connect_failure(server: &str, error: sqlx::Error) -> StoreError {
    let refused_by_server = matches!(
        &error,
        sqlx::Error::Database(database)
            if database.code().is_some_and(|code| code.starts_with("28") || code.starts_with("3D"))
    );
    if refused_by_server {
        StoreError::Config(format!(
            "PostgreSQL at {server} refused the connection ({error}); check the user, password \
             and database name in the database URL"
        ))
    } else {
        StoreError::Unavailable(format!(
            "cannot connect to PostgreSQL at {server} ({error}); check that the server is \
             running and reachable"
        ))
    }
}

fn is_schema_mismatch(error: &dyn DatabaseError) -> bool {
    // undefined_table, undefined_column
    matches!(error.code().as_deref(), Some("42P01" | "42703"))
}

async fn lock_for_transaction(
    transaction: &mut Transaction<'_, Postgres>,
    key: i64,
) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(key)
        .execute(&mut **transaction)
        .await
        .map_err(Postgres::failure)?;
    Ok(())
}

/// Runs `statements` in `transaction`, one after the other.
async fn execute_all(
    transaction: &mut Transaction<'_, Postgres>,
    statements: &[Statement<'_>],
) -> StoreResult<()> {
    for statement in statements {
        transaction.execute(statement).await?;
    }
    Ok(())
}

#[async_trait]
impl OpenTransaction for Transaction<'_, Postgres> {
    fn rows_per_statement(&self) -> RowsPerStatement {
        ROWS_PER_STATEMENT
    }

    async fn execute(&mut self, statement: &Statement<'_>) -> StoreResult<u64> {
        let done = statement
            .query::<Postgres>()
            .execute(&mut **self)
            .await
            .map_err(Postgres::failure)?;
        Ok(done.rows_affected())
    }

    async fn fetch_text_rows(
        &mut self,
        statement: &Statement<'_>,
    ) -> StoreResult<Vec<Vec<Option<String>>>> {
        let rows = statement
            .query::<Postgres>()
            .fetch_all(&mut **self)
            .await
            .map_err(Postgres::failure)?;
        rows.iter()
            .map(|row| (0..row.len()).map(|column| row.try_get(column)).collect())
            .collect::<Result<_, _>>()
            .map_err(Postgres::failure)
    }
}

/// Writes each message in its own transaction, the instances taking turns.
struct PgWriter {
    pool: PgPool,
}

#[async_trait]
impl RowWriter for PgWriter {
    async fn write(&self, rows: Vec<InsertRow>) -> StoreResult<()> {
        let mut transaction = self.pool.begin().await.map_err(Postgres::failure)?;
        // Sequence numbers are handed out when rows are inserted, but become visible when
        // transactions commit. Taking turns makes both orders agree, so a client polling with
        // `after_seq` never skips a result that commits late with a smaller `seq`.
        lock_for_transaction(&mut transaction, INSERT_LOCK).await?;
        let rows: Vec<&InsertRow> = rows.iter().collect();
        let mut statements = Vec::new();
        push_result_inserts(&rows, ROWS_PER_STATEMENT, &mut statements);
        let stats = ResultStats::of(rows.iter().filter_map(|row| StatsKeys::of_public_row(row)));
        stats.push_upserts(ROWS_PER_STATEMENT, &mut statements);
        execute_all(&mut transaction, &statements).await?;
        transaction.commit().await.map_err(Postgres::failure)
    }

    async fn write_sessions(&self, rows: Vec<SessionRow>) -> StoreResult<()> {
        let mut transaction = self.pool.begin().await.map_err(Postgres::failure)?;
        // As for results: `seq` order and commit order agree, so the live log skips nothing.
        lock_for_transaction(&mut transaction, SESSIONS_LOCK).await?;
        let mut statements = Vec::new();
        push_session_inserts(&rows, ROWS_PER_STATEMENT, &mut statements);
        let stats = SessionStats::of(&rows);
        stats.push_upserts(ROWS_PER_STATEMENT, &mut statements);
        execute_all(&mut transaction, &statements).await?;
        transaction.commit().await.map_err(Postgres::failure)
    }

    async fn write_stats(&self, stats: ResultStats) -> StoreResult<()> {
        let mut transaction = self.pool.begin().await.map_err(Postgres::failure)?;
        // The same turns as the results, whose rollup rows these are.
        lock_for_transaction(&mut transaction, INSERT_LOCK).await?;
        let mut upserts = Vec::new();
        stats.push_upserts(ROWS_PER_STATEMENT, &mut upserts);
        execute_all(&mut transaction, &upserts).await?;
        transaction.commit().await.map_err(Postgres::failure)
    }

    async fn purge_batch(&self, cutoff: DateTime<Utc>) -> StoreResult<Purged> {
        // Two instances deleting the same rows at once could lock them in different orders
        // and deadlock; taking turns cannot. The second then finds those rows gone.
        let mut transaction = self.pool.begin().await.map_err(Postgres::failure)?;
        lock_for_transaction(&mut transaction, PURGE_LOCK).await?;
        let purged = purge_results_batch(&mut transaction, cutoff).await?;
        transaction.commit().await.map_err(Postgres::failure)?;
        Ok(purged)
    }

    async fn purge_reports_batch(&self, cutoff: i64) -> StoreResult<[u64; 3]> {
        let mut transaction = self.pool.begin().await.map_err(Postgres::failure)?;
        lock_for_transaction(&mut transaction, PURGE_LOCK).await?;
        let deleted = purge_reports_batch(&mut transaction, cutoff).await?;
        transaction.commit().await.map_err(Postgres::failure)?;
        Ok(deleted)
    }

    async fn probe(&self) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO readiness_probe (id, written_at) VALUES (1, now()) \
             ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at",
        )
        .execute(&self.pool)
        .await
        .map_err(Postgres::failure)?;
        Ok(())
    }

    /// The server's disk is out of sight from here.
    fn free_disk_space(&self) -> StoreResult<Option<u64>> {
        Ok(None)
    }

    /// Writes go through the store's pool, which the store closes.
    async fn close(&self) {}
}

#[async_trait]
impl Backend for Postgres {
    fn failure(error: sqlx::Error) -> StoreError {
        query_failure(error, is_schema_mismatch)
    }

    fn bind<'q>(
        query: Query<'q, Postgres, PgArguments>,
        value: &'q Value<'q>,
    ) -> Query<'q, Postgres, PgArguments> {
        match value {
            Value::Text(text) => query.bind(text.as_deref()),
            Value::BigInt(number) => query.bind(*number),
            Value::Int(number) => query.bind(*number),
            Value::Bool(flag) => query.bind(*flag),
            Value::Bytes(bytes) => query.bind(*bytes),
            Value::Json(json) => query.bind(Json(*json)),
            Value::Time(at) => query.bind(*at),
        }
    }

    async fn integrity_check(pool: &PgPool) -> StoreResult<Vec<String>> {
        // PostgreSQL checks its own pages as it reads them; what is left to check from here
        // is that the server answers.
        sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map_err(Postgres::failure)?;
        Ok(Vec::new())
    }
}
