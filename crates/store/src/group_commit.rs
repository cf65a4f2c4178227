//! Group commit for SQLite: results that arrive together are written in one transaction, and
//! nobody is answered before that transaction is on disk.
//!
//! A 250 reply promises the result is kept, so every commit must be synced. SQLite admits one
//! writer at a time, so with one transaction per message the sync is paid once per message and
//! concurrent writers wait in SQLite's busy handler, which sleeps for milliseconds at a time.
//! Here one writer, on a thread of its own with a connection of its own, takes every insert
//! waiting in its queue and writes them all in one transaction.
//!
//! SQLite runs with `synchronous=FULL`: each commit syncs the write-ahead log before it
//! returns, so a batch's callers are answered once their transaction is on disk. While the
//! writer waits for that sync, new results queue up and make the next batch larger; that is
//! what keeps the number of transactions, each of which rewrites some ten table and index
//! pages, well below the number of messages. (Syncing on another thread while the writer went
//! on with the next batch was tried: it made transactions smaller and wrote about 20% more
//! for the same messages, at no gain in rate.)
//!
//! The writer keeps its own connection because SQLite's page cache belongs to a connection and
//! is dropped whenever another connection has written: a writer taking turns with the pool's
//! connections would read the tables' upper pages from the file again for every batch.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use sqlx::{Sqlite, SqlitePool};
use tokio::sync::{Notify, mpsc, oneshot};

use chrono::{DateTime, Utc};

use crate::purge::purge_results_batch;
use crate::record::{InsertRow, push_result_inserts};
use crate::reports::purge_reports_batch;
use crate::sessions::{SessionRow, push_session_inserts};
use crate::sql_store::{Backend, Purged, RowWriter};
use crate::sqlite_writer::{ROWS_PER_STATEMENT, WriterConnection};
use crate::statement::Statement;
use crate::stats::{ResultStats, SessionStats, StatsKeys};
use crate::{StoreError, StoreResult};

/// Most messages written in one transaction; more wait for the next one.
const MAX_BATCH: usize = 64;
/// Inserts that may wait for the writer before callers wait to queue.
const QUEUE_DEPTH: usize = 1024;
/// A checkpoint is due after this many transactions or messages, whichever comes first:
/// about half SQLite's own threshold of 1,000 pages of write-ahead log, as a transaction
/// changes some ten pages (tables and indexes) and a message adds about three. Half, because
/// the checkpoint runs beside the writer and, on a busy machine, starts late: the log keeps
/// growing until it has caught up.
const COMMITS_PER_CHECKPOINT: usize = 50;
const MESSAGES_PER_CHECKPOINT: usize = 150;
/// Checkpoints asked of the checkpointer that it has not caught up with before the writer
/// copies the log itself: on a starved machine the checkpointer may not run for seconds, and
/// the log must not grow without bound meanwhile.
const CHECKPOINTS_LEFT_TO_THE_CHECKPOINTER: usize = 1;

enum Command {
    Write {
        rows: Vec<InsertRow>,
        done: oneshot::Sender<StoreResult<()>>,
    },
    /// SMTP sessions, written in the same transaction as the results waiting beside them.
    WriteSessions {
        rows: Vec<SessionRow>,
        done: oneshot::Sender<StoreResult<()>>,
    },
    /// Rollup counts alone ([`crate::ResultStore::add_to_stats`]), in a transaction of their own.
    WriteStats {
        stats: ResultStats,
        done: oneshot::Sender<StoreResult<()>>,
    },
    /// Delete up to [`PURGE_BATCH`](crate::sql_store::PURGE_BATCH) results received before
    /// `cutoff`, and the raw messages no result refers to any more, in one short transaction
    /// between two batches of writes.
    Purge {
        cutoff: DateTime<Utc>,
        done: oneshot::Sender<StoreResult<Purged>>,
    },
    /// Delete one batch of reports, rejected reports and source names older than `cutoff`
    /// (seconds since the epoch), like `Purge`.
    PurgeReports {
        cutoff: i64,
        done: oneshot::Sender<StoreResult<[u64; 3]>>,
    },
    /// Commit a one-row write, to show that commits still reach the disk.
    Probe(oneshot::Sender<StoreResult<()>>),
    /// Write what came before, close the connection, answer, and stop.
    Stop(oneshot::Sender<()>),
}

/// The handle callers write through; the writer stops when asked to or when the last handle
/// is dropped.
pub(crate) struct GroupCommit {
    commands: mpsc::Sender<Command>,
    /// The folder of the database file, whose file system's free space the store reports.
    folder: PathBuf,
}

impl GroupCommit {
    /// Opens the writer's connection to the database file at `database` and starts the writer
    /// on a thread of its own, where no other work delays it. `read_only` opens it as the URL
    /// opened the pool's connections (`mode=ro`), so that writes fail as they should.
    /// `keep_alive` (a temporary folder, say) is dropped when the writer stops.
    pub fn start(
        database: &Path,
        read_only: bool,
        pool: SqlitePool,
        keep_alive: impl Send + 'static,
    ) -> StoreResult<GroupCommit> {
        let cannot_start = |error: std::io::Error| {
            StoreError::Config(format!("cannot start the SQLite writer: {error}"))
        };
        let folder = match database.parent() {
            Some(folder) if !folder.as_os_str().is_empty() => folder.to_owned(),
            _ => PathBuf::from("."),
        };
        let writer = Writer {
            connection: Some(WriterConnection::open(database, read_only)?),
            database: database.to_owned(),
            read_only,
        };
        let (commands, queue) = mpsc::channel(QUEUE_DEPTH);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(cannot_start)?;
        let checkpoints = Arc::new(Checkpoints::default());
        let checkpointer = checkpoint_when_due(pool, checkpoints.clone());
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                let _keep_alive = keep_alive;
                runtime.block_on(async {
                    tokio::spawn(checkpointer);
                    writer.run(queue, &checkpoints).await;
                })
            })
            .map_err(cannot_start)?;
        Ok(GroupCommit { commands, folder })
    }

    /// Queues the command `make` builds around its answer channel and waits for the answer.
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<StoreResult<T>>) -> Command,
    ) -> StoreResult<T> {
        let (done, answer) = oneshot::channel();
        let writer_gone = || StoreError::Unavailable("the database writer has stopped".into());
        self.commands
            .send(make(done))
            .await
            .map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }
}

#[async_trait]
impl RowWriter for GroupCommit {
    async fn write(&self, rows: Vec<InsertRow>) -> StoreResult<()> {
        self.ask(|done| Command::Write { rows, done }).await
    }

    async fn write_sessions(&self, rows: Vec<SessionRow>) -> StoreResult<()> {
        self.ask(|done| Command::WriteSessions { rows, done }).await
    }

    async fn write_stats(&self, stats: ResultStats) -> StoreResult<()> {
        self.ask(|done| Command::WriteStats { stats, done }).await
    }

    async fn purge_batch(&self, cutoff: DateTime<Utc>) -> StoreResult<Purged> {
        self.ask(|done| Command::Purge { cutoff, done }).await
    }

    async fn purge_reports_batch(&self, cutoff: i64) -> StoreResult<[u64; 3]> {
        self.ask(|done| Command::PurgeReports { cutoff, done })
            .await
    }

    async fn probe(&self) -> StoreResult<()> {
        self.ask(Command::Probe).await
    }

    fn free_disk_space(&self) -> StoreResult<Option<u64>> {
        let stats = rustix::fs::statvfs(&self.folder).map_err(|error| {
            StoreError::Unavailable(format!(
                "cannot read the free space of {} ({error})",
                self.folder.display()
            ))
        })?;
        // Blocks available to unprivileged users, as `df` counts them.
        Ok(Some(stats.f_bavail.saturating_mul(stats.f_frsize)))
    }

    async fn close(&self) {
        let (done, stopped) = oneshot::channel();
        if self.commands.send(Command::Stop(done)).await.is_ok() {
            let _ = stopped.await;
        }
    }
}

/// The writer's side: its connection, reopened if a failure left it unusable.
struct Writer {
    connection: Option<WriterConnection>,
    database: PathBuf,
    read_only: bool,
}

impl Writer {
    /// Runs until asked to stop or until the store is dropped (the queue closes).
    async fn run(mut self, mut queue: mpsc::Receiver<Command>, checkpoints: &Checkpoints) {
        let mut commands = Vec::with_capacity(MAX_BATCH);
        let (mut commits, mut messages_written) = (0, 0);
        let mut checkpoints_not_caught_up = 0;
        while queue.recv_many(&mut commands, MAX_BATCH).await > 0 {
            let mut messages = Vec::with_capacity(commands.len());
            let mut replies = Vec::with_capacity(commands.len());
            let mut sessions = Vec::new();
            let mut session_replies = Vec::new();
            let mut stats_writes = Vec::new();
            let mut purges = Vec::new();
            let mut report_purges = Vec::new();
            let mut probes = Vec::new();
            let mut stop = None;
            for command in commands.drain(..) {
                match command {
                    // Dropped unanswered, the caller learns the writer has stopped.
                    _ if stop.is_some() => {}
                    Command::Write { rows, done } => {
                        messages.push(rows);
                        replies.push(done);
                    }
                    Command::WriteSessions { rows, done } => {
                        sessions.extend(rows);
                        session_replies.push(done);
                    }
                    Command::WriteStats { stats, done } => stats_writes.push((stats, done)),
                    Command::Purge { cutoff, done } => purges.push((cutoff, done)),
                    Command::PurgeReports { cutoff, done } => report_purges.push((cutoff, done)),
                    Command::Probe(done) => probes.push(done),
                    Command::Stop(done) => stop = Some(done),
                }
            }
            if !messages.is_empty() || !sessions.is_empty() {
                let (outcomes, sessions_outcome) = self.write_batch(&messages, &sessions);
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
                for reply in session_replies {
                    let _ = reply.send(sessions_outcome.clone());
                }
                commits += 1;
                messages_written += messages.len();
            }
            for (stats, done) in stats_writes {
                let _ = done.send(self.write_stats(&stats));
                commits += 1;
            }
            // Each purge batch is short, and the purge asks for the next one only after this
            // one is answered: writes queued meanwhile go first.
            for (cutoff, done) in purges {
                let _ = done.send(self.purge_batch(cutoff).await);
                commits += 1;
            }
            for (cutoff, done) in report_purges {
                let _ = done.send(self.purge_reports_batch(cutoff).await);
                commits += 1;
            }
            if !probes.is_empty() {
                let outcome = self.probe();
                for done in probes {
                    let _ = done.send(outcome.clone());
                }
            }
            if let Some(done) = stop {
                self.connection = None;
                let _ = done.send(());
                return;
            }
            if commits >= COMMITS_PER_CHECKPOINT || messages_written >= MESSAGES_PER_CHECKPOINT {
                checkpoints.due.notify_one();
                (commits, messages_written) = (0, 0);
                checkpoints_not_caught_up += 1;
            }
            // The checkpointer shares this thread's runtime, and SQLite's calls above do not
            // yield: while writes keep the queue full, only this lets it run between batches
            // (without it, the writer ended up copying the log itself about half the time).
            tokio::task::yield_now().await;
            if checkpoints.caught_up.swap(false, Ordering::AcqRel)
                || checkpoints_not_caught_up > CHECKPOINTS_LEFT_TO_THE_CHECKPOINTER
            {
                self.finish_checkpoint();
                checkpoints_not_caught_up = 0;
            }
        }
    }

    fn connection(&mut self) -> StoreResult<&mut WriterConnection> {
        let connection = match self.connection.take() {
            Some(connection) => connection,
            None => WriterConnection::open(&self.database, self.read_only)?,
        };
        Ok(self.connection.insert(connection))
    }

    /// The connection, with a transaction opened on it; [`Writer::finish`] ends it.
    fn begin(&mut self) -> StoreResult<&mut WriterConnection> {
        let connection = self.connection()?;
        connection.begin()?;
        Ok(connection)
    }

    /// Runs `statements` in one transaction.
    fn write(&mut self, statements: &[Statement<'_>]) -> StoreResult<()> {
        let outcome = self.begin()?.write_all(statements);
        self.finish(outcome)
    }

    /// Commits the open transaction, or rolls it back if `outcome` is an error. A connection
    /// that cannot roll back is dropped, which ends its transaction; the next write opens
    /// another.
    fn finish<T>(&mut self, outcome: StoreResult<T>) -> StoreResult<T> {
        let Some(connection) = self.connection.as_mut() else {
            return outcome;
        };
        let outcome = connection.finish(outcome);
        if connection.in_transaction() {
            tracing::warn!("cannot roll back a failed SQLite write; reconnecting");
            self.connection = None;
        }
        outcome
    }

    /// One transaction for all `messages` and `sessions`, and each message's outcome and
    /// the sessions'. Only if that transaction fails are they written again apart, each
    /// message alone and the sessions together, so that one message's failure (an
    /// oversized row, say) costs no other message its place, and a session row never costs
    /// a message its.
    fn write_batch(
        &mut self,
        messages: &[Vec<InsertRow>],
        sessions: &[SessionRow],
    ) -> (Vec<StoreResult<()>>, StoreResult<()>) {
        let all_rows: Vec<&InsertRow> = messages.iter().flatten().collect();
        let error = match self.write_in_transaction(&all_rows, sessions) {
            Ok(()) => return (vec![Ok(()); messages.len()], Ok(())),
            Err(error) => error,
        };
        if sessions.is_empty() && messages.len() == 1 {
            return (vec![Err(error)], Ok(()));
        }
        if messages.is_empty() {
            return (Vec::new(), Err(error));
        }
        let mut outcomes = Vec::with_capacity(messages.len());
        for rows in messages {
            let rows: Vec<&InsertRow> = rows.iter().collect();
            outcomes.push(self.write_in_transaction(&rows, &[]));
        }
        let sessions_outcome = if sessions.is_empty() {
            Ok(())
        } else {
            self.write_in_transaction(&[], sessions)
        };
        (outcomes, sessions_outcome)
    }

    /// Stores `rows`, their raw messages, `sessions` and the rollups' counts of both in one
    /// transaction.
    fn write_in_transaction(
        &mut self,
        rows: &[&InsertRow],
        sessions: &[SessionRow],
    ) -> StoreResult<()> {
        let result_stats =
            ResultStats::of(rows.iter().filter_map(|row| StatsKeys::of_public_row(row)));
        let session_stats = SessionStats::of(sessions);
        let mut statements = Vec::new();
        push_result_inserts(rows, ROWS_PER_STATEMENT, &mut statements);
        push_session_inserts(sessions, ROWS_PER_STATEMENT, &mut statements);
        // The statistics' rollups, in the same transaction: one upsert row per key and batch.
        result_stats.push_upserts(ROWS_PER_STATEMENT, &mut statements);
        session_stats.push_upserts(ROWS_PER_STATEMENT, &mut statements);
        self.write(&statements)
    }

    /// Adds `stats` to the rollups in a transaction of its own.
    fn write_stats(&mut self, stats: &ResultStats) -> StoreResult<()> {
        let mut upserts = Vec::new();
        stats.push_upserts(ROWS_PER_STATEMENT, &mut upserts);
        self.write(&upserts)
    }

    /// Deletes one batch of results older than `cutoff`, the raw messages left without a
    /// result, and one batch of sessions started before `cutoff`, in one transaction.
    async fn purge_batch(&mut self, cutoff: DateTime<Utc>) -> StoreResult<Purged> {
        let outcome = purge_results_batch(self.begin()?, cutoff).await;
        self.finish(outcome)
    }

    /// Deletes one batch of reports, rejected reports and source names older than `cutoff`, in
    /// one transaction; returns how many of each.
    async fn purge_reports_batch(&mut self, cutoff: i64) -> StoreResult<[u64; 3]> {
        let outcome = purge_reports_batch(self.begin()?, cutoff).await;
        self.finish(outcome)
    }

    /// Rewrites the readiness row in a transaction of its own.
    fn probe(&mut self) -> StoreResult<()> {
        let mut probe = Statement::new("INSERT INTO readiness_probe (id, written_at) VALUES (1, ");
        probe
            .bind(Utc::now())
            .push(") ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at");
        self.write(&[probe])
    }

    /// Run between batches after the checkpointer caught up, or in its place when it has
    /// fallen behind: copies what was written meanwhile, so that the next transaction starts
    /// the log over.
    fn finish_checkpoint(&mut self) {
        let outcome = self
            .connection()
            .and_then(|connection| connection.passive_checkpoint());
        if let Err(error) = outcome {
            warn_checkpoint_failed(&error);
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
/// since (see [`Writer::finish_checkpoint`]).
async fn checkpoint_when_due(pool: SqlitePool, checkpoints: Arc<Checkpoints>) {
    loop {
        checkpoints.due.notified().await;
        match passive_checkpoint(&pool).await {
            Ok(()) => checkpoints.caught_up.store(true, Ordering::Release),
            Err(_) if pool.is_closed() => return,
            Err(error) => warn_checkpoint_failed(&Sqlite::failure(error)),
        }
    }
}

/// Copies as much of the write-ahead log into the database file as no reader still needs,
/// without waiting for anyone.
async fn passive_checkpoint<'c>(
    executor: impl sqlx::Executor<'c, Database = Sqlite>,
) -> Result<(), sqlx::Error> {
    sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .execute(executor)
        .await
        .map(drop)
}

fn warn_checkpoint_failed(error: &StoreError) {
    tracing::warn!(%error, "SQLite checkpoint failed; the write-ahead log grows until one succeeds");
}
