//! [`ResultStore`] written once for both databases. The reads are the same SQL on SQLite and
//! PostgreSQL; what differs (purging, error codes, integrity checks) is each backend's
//! [`Backend`] implementation, and writing is each backend's [`RowWriter`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, FromRow, IntoArguments, Pool, Type};

use crate::listing::{ListSql, SEQ_OF_ID_SQL};
use crate::record::{InsertRow, RESULT_COLUMNS, ResultRow};
use crate::{ListQuery, NewResult, ResultStore, StoreError, StoreResult, StoredResult};

/// The parts of the store that differ between the databases.
#[async_trait]
pub(crate) trait Backend: Database {
    /// Classifies a failed query.
    fn failure(error: sqlx::Error) -> StoreError;

    /// Deletes the results received before `cutoff` and returns how many; several instances
    /// may call this at once.
    async fn purge(pool: &Pool<Self>, cutoff: DateTime<Utc>) -> StoreResult<u64>;

    /// See [`ResultStore::integrity_check`].
    async fn integrity_check(pool: &Pool<Self>) -> StoreResult<Vec<String>>;
}

/// How a backend makes new results durable.
#[async_trait]
pub(crate) trait RowWriter: Send + Sync {
    /// Stores one message's `rows` and their raw messages in one transaction: all of them
    /// are durable when this returns `Ok`, none of them otherwise.
    async fn write(&self, rows: Vec<InsertRow>) -> StoreResult<()>;

    /// Finishes the writes under way and closes whatever the writer holds of its own;
    /// later writes fail with [`StoreError::Unavailable`].
    async fn close(&self);
}

pub(crate) struct SqlStore<DB: Database, W> {
    pool: Pool<DB>,
    writer: W,
}

impl<DB: Database, W> SqlStore<DB, W> {
    pub fn new(pool: Pool<DB>, writer: W) -> SqlStore<DB, W> {
        SqlStore { pool, writer }
    }
}

#[async_trait]
impl<DB: Backend, W: RowWriter> ResultStore for SqlStore<DB, W>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    for<'r> ResultRow: FromRow<'r, DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    async fn insert(&self, results: Vec<NewResult>) -> StoreResult<Vec<String>> {
        let rows = results
            .into_iter()
            .map(InsertRow::new)
            .collect::<StoreResult<Vec<_>>>()?;
        let ids = rows.iter().map(|row| row.id.clone()).collect();
        if !rows.is_empty() {
            self.writer.write(rows).await?;
        }
        Ok(ids)
    }

    async fn get(&self, id: &str) -> StoreResult<Option<StoredResult>> {
        let sql = format!("SELECT {RESULT_COLUMNS} FROM results WHERE id = $1");
        let row = sqlx::query_as::<DB, ResultRow>(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(DB::failure)?;
        row.map(StoredResult::try_from).transpose()
    }

    async fn raw_message(&self, id: &str) -> StoreResult<Option<Vec<u8>>> {
        sqlx::query_scalar::<DB, Vec<u8>>("SELECT message FROM raw_messages WHERE result_id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(DB::failure)
    }

    async fn list(&self, query: &ListQuery) -> StoreResult<Vec<StoredResult>> {
        let before_seq = match &query.before {
            Some(id) => Some(
                sqlx::query_scalar::<DB, i64>(SEQ_OF_ID_SQL)
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(DB::failure)?
                    .ok_or_else(|| StoreError::UnknownId(id.clone()))?,
            ),
            None => None,
        };
        let list = ListSql::new(query, before_seq);
        let rows = list
            .bind_to(sqlx::query_as::<DB, ResultRow>(&list.sql))
            .fetch_all(&self.pool)
            .await
            .map_err(DB::failure)?;
        rows.into_iter().map(StoredResult::try_from).collect()
    }

    async fn purge(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        DB::purge(&self.pool, cutoff).await
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query::<DB>("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(DB::failure)?;
        Ok(())
    }

    async fn integrity_check(&self) -> StoreResult<Vec<String>> {
        DB::integrity_check(&self.pool).await
    }

    async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}
