//! Group commit for SQLite: results that arrive together are written in one transaction.
//!
//! Every commit is synced to disk (`synchronous=FULL`), because a 250 reply promises the result
//! is kept. SQLite admits one writer at a time, so with one transaction per message the sync is
//! paid once per message and concurrent writers wait in SQLite's busy handler, which sleeps for
//! milliseconds at a time. Here one task owns writing: it takes every insert waiting in its
//! queue, writes each in its own savepoint (so one message's failure rolls back that message
//! only), commits once, and only then answers each caller. Durability per reply is unchanged;
//! the sync is shared.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Sqlite, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use crate::record::InsertRow;
use crate::sql_store::{Backend, SqlStore};
use crate::sqlite::insert_rows;
use crate::{ListQuery, NewResult, ResultStore, StoreError, StoreResult, StoredResult};

/// Most messages written in one transaction; more wait for the next one.
const MAX_BATCH: usize = 64;
/// Inserts that may wait for the writer before callers wait to queue.
const QUEUE_DEPTH: usize = 1024;

struct Job {
    results: Vec<NewResult>,
    done: oneshot::Sender<StoreResult<Vec<String>>>,
}

/// The SQLite store: reads go straight to the pool, inserts through the one writer task.
pub(crate) struct GroupCommitStore {
    reads: SqlStore<Sqlite>,
    jobs: mpsc::Sender<Job>,
}

impl GroupCommitStore {
    pub fn new(reads: SqlStore<Sqlite>, pool: SqlitePool) -> GroupCommitStore {
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(write_batches(pool, queue));
        GroupCommitStore { reads, jobs }
    }
}

/// Runs until the store is dropped (the queue closes).
async fn write_batches(pool: SqlitePool, mut queue: mpsc::Receiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (results, replies): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|job| (job.results, job.done)).unzip();
        match write_batch(&pool, &results).await {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(error) => {
                for reply in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// One transaction for all `messages`; each message's outcome, or the error that lost them all.
async fn write_batch(
    pool: &SqlitePool,
    messages: &[Vec<NewResult>],
) -> StoreResult<Vec<StoreResult<Vec<String>>>> {
    let mut transaction = pool.begin().await.map_err(Sqlite::failure)?;
    let mut outcomes = Vec::with_capacity(messages.len());
    for results in messages {
        sqlx::query("SAVEPOINT message")
            .execute(&mut *transaction)
            .await
            .map_err(Sqlite::failure)?;
        let outcome = write_message(&mut transaction, results).await;
        if outcome.is_err() {
            sqlx::query("ROLLBACK TO message")
                .execute(&mut *transaction)
                .await
                .map_err(Sqlite::failure)?;
        }
        sqlx::query("RELEASE message")
            .execute(&mut *transaction)
            .await
            .map_err(Sqlite::failure)?;
        outcomes.push(outcome);
    }
    transaction.commit().await.map_err(Sqlite::failure)?;
    Ok(outcomes)
}

async fn write_message(
    connection: &mut sqlx::SqliteConnection,
    results: &[NewResult],
) -> StoreResult<Vec<String>> {
    let rows = results
        .iter()
        .map(InsertRow::new)
        .collect::<StoreResult<Vec<_>>>()?;
    insert_rows(connection, &rows).await?;
    Ok(rows.into_iter().map(|row| row.id).collect())
}

#[async_trait]
impl ResultStore for GroupCommitStore {
    async fn insert(&self, results: &[NewResult]) -> StoreResult<Vec<String>> {
        if results.is_empty() {
            return Ok(Vec::new());
        }
        let (done, answer) = oneshot::channel();
        let job = Job {
            results: results.to_vec(),
            done,
        };
        let writer_gone = || StoreError::Unavailable("the database writer has stopped".into());
        self.jobs.send(job).await.map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }

    async fn get(&self, id: &str) -> StoreResult<Option<StoredResult>> {
        self.reads.get(id).await
    }

    async fn raw_message(&self, id: &str) -> StoreResult<Option<Vec<u8>>> {
        self.reads.raw_message(id).await
    }

    async fn list(&self, query: &ListQuery) -> StoreResult<Vec<StoredResult>> {
        self.reads.list(query).await
    }

    async fn purge(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        self.reads.purge(cutoff).await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.reads.ping().await
    }

    async fn integrity_check(&self) -> StoreResult<Vec<String>> {
        self.reads.integrity_check().await
    }

    async fn close(&self) {
        self.reads.close().await;
    }
}
