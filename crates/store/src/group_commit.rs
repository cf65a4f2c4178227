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
use sqlx::{Sqlite, SqlitePool};
use std::sync::Arc;

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{Notify, mpsc, oneshot};

use crate::record::InsertRow;
use crate::sql_store::{Backend, RowWriter};
use crate::sqlite::insert_rows;
use crate::{StoreError, StoreResult};

/// Most messages written in one transaction; more wait for the next one.
const MAX_BATCH: usize = 64;
/// Inserts that may wait for the writer before callers wait to queue.
const QUEUE_DEPTH: usize = 1024;
/// A checkpoint is due after this many transactions or messages, whichever comes first:
/// about SQLite's own threshold of 1,000 pages of write-ahead log, as a transaction changes
/// some ten pages (tables and indexes) and a message adds about three.
const COMMITS_PER_CHECKPOINT: usize = 100;
const MESSAGES_PER_CHECKPOINT: usize = 300;

struct Job {
    rows: Vec<InsertRow>,
    done: oneshot::Sender<StoreResult<()>>,
}

/// The handle callers write through; the writer stops when the last handle is dropped.
pub(crate) struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the writer on a thread of its own. Each statement is a round trip to SQLite's
    /// worker thread; on the service's runtime every round trip would also wait its turn
    /// behind the sessions' verification work, and the one writer would become the limit.
    pub fn start(pool: SqlitePool) -> StoreResult<GroupCommit> {
        let cannot_start = |error: std::io::Error| {
            StoreError::Config(format!("cannot start the SQLite writer: {error}"))
        };
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(cannot_start)?;
        let checkpoints = Arc::new(Checkpoints::default());
        let checkpointer = checkpoint_when_due(pool.clone(), checkpoints.clone());
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                runtime.block_on(async {
                    tokio::spawn(checkpointer);
                    write_batches(pool, queue, &checkpoints).await;
                })
            })
            .map_err(cannot_start)?;
        Ok(GroupCommit { jobs })
    }
}

#[async_trait]
impl RowWriter for GroupCommit {
    async fn write(&self, rows: Vec<InsertRow>) -> StoreResult<()> {
        let (done, answer) = oneshot::channel();
        let writer_gone = || StoreError::Unavailable("the database writer has stopped".into());
        self.jobs
            .send(Job { rows, done })
            .await
            .map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }
}

/// Runs until the store is dropped (the queue closes).
async fn write_batches(
    pool: SqlitePool,
    mut queue: mpsc::Receiver<Job>,
    checkpoints: &Checkpoints,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let (mut commits, mut messages_written) = (0, 0);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (messages, replies): (Vec<_>, Vec<_>) =
            batch.drain(..).map(|job| (job.rows, job.done)).unzip();
        match write_batch(&pool, &messages).await {
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
        commits += 1;
        messages_written += messages.len();
        if commits >= COMMITS_PER_CHECKPOINT || messages_written >= MESSAGES_PER_CHECKPOINT {
            checkpoints.due.notify_one();
            (commits, messages_written) = (0, 0);
        }
        if checkpoints.caught_up.swap(false, Ordering::AcqRel) {
            finish_checkpoint(&pool).await;
        }
    }
}

/// What the writer and the checkpointer tell each other.
#[derive(Default)]
struct Checkpoints {
    /// The write-ahead log has grown enough to be copied into the database file.
    due: Notify,
    /// The checkpointer has copied all the log it saw; the writer finishes the rest.
    caught_up: AtomicBool,
}

/// Copies the write-ahead log into the database file whenever the writer says it has grown.
///
/// SQLite would otherwise do this itself inside the commit that crosses its threshold, and
/// every message in that batch would wait for the copy and its sync. A passive checkpoint on
/// another connection does not block the writer; but the log only starts over from its
/// beginning once a checkpoint has caught up with the writer, which one running beside a
/// busy writer never does. So the writer, between two batches, copies the little written
/// since (see [`finish_checkpoint`]).
async fn checkpoint_when_due(pool: SqlitePool, checkpoints: Arc<Checkpoints>) {
    loop {
        checkpoints.due.notified().await;
        match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            Ok(_) => checkpoints.caught_up.store(true, Ordering::Release),
            Err(_) if pool.is_closed() => return,
            Err(error) => tracing::warn!(
                %error,
                "SQLite checkpoint failed; the write-ahead log grows until one succeeds"
            ),
        }
    }
}

/// Run by the writer between batches after the checkpointer caught up: copies what was
/// written meanwhile, so that the next transaction starts the log over.
async fn finish_checkpoint(pool: &SqlitePool) {
    if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .execute(pool)
        .await
        && !pool.is_closed()
    {
        tracing::warn!(%error, "SQLite checkpoint failed; the write-ahead log grows until one succeeds");
    }
}

/// One transaction for all `messages`; each message's outcome, or the error that lost them all.
///
/// All the rows go in a few statements: each statement is a round trip to SQLite's worker
/// thread, and on a busy machine the round trips, not SQLite, are what take the time. Only if
/// that fails are the messages written again one by one, so that one message's failure
/// (an oversized row, say) costs no other message its place.
async fn write_batch(
    pool: &SqlitePool,
    messages: &[Vec<InsertRow>],
) -> StoreResult<Vec<StoreResult<()>>> {
    let all_rows: Vec<&InsertRow> = messages.iter().flatten().collect();
    let mut transaction = pool.begin().await.map_err(Sqlite::failure)?;
    match insert_rows(&mut transaction, &all_rows).await {
        Ok(()) => {
            transaction.commit().await.map_err(Sqlite::failure)?;
            Ok(vec![Ok(()); messages.len()])
        }
        Err(error) if messages.len() == 1 => Ok(vec![Err(error)]),
        Err(_) => {
            transaction.rollback().await.map_err(Sqlite::failure)?;
            write_one_by_one(pool, messages).await
        }
    }
}

/// Like [`write_batch`], each message in a savepoint of its own.
async fn write_one_by_one(
    pool: &SqlitePool,
    messages: &[Vec<InsertRow>],
) -> StoreResult<Vec<StoreResult<()>>> {
    let mut transaction = pool.begin().await.map_err(Sqlite::failure)?;
    let mut outcomes = Vec::with_capacity(messages.len());
    for rows in messages {
        sqlx::query("SAVEPOINT message")
            .execute(&mut *transaction)
            .await
            .map_err(Sqlite::failure)?;
        let rows: Vec<&InsertRow> = rows.iter().collect();
        let outcome = insert_rows(&mut transaction, &rows).await;
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
