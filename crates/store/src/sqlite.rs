//! The SQLite backend: one database file (in WAL mode, synced on every commit) for a single
//! authcheck instance, or an in-memory database for tests.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::error::DatabaseError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection, SqlitePool};

use crate::failure::query_failure;
use crate::group_commit::GroupCommit;
use crate::record::{
    InsertRow, MAX_ROWS_PER_INSERT, raw_messages_insert, results_insert, to_stored_precision,
};
use crate::sql_store::{Backend, SqlStore};
use crate::{ACQUIRE_TIMEOUT, SharedStore, StoreError, StoreResult};

/// How long a writer waits for another connection's write to finish before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// WAL lets readers work while one connection writes; a few connections are plenty.
const FILE_POOL_SIZE: u32 = 4;

/// Opens `url` (`sqlite://PATH`, `sqlite:///ABSOLUTE/PATH` or `sqlite::memory:`), creating
/// the file and its folder when missing, and applies the migrations.
pub(crate) async fn open(url: &str) -> StoreResult<SharedStore> {
    let location = SqliteLocation::parse(url)?;
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|error| {
            StoreError::Config(format!(
                "the SQLite database URL is not valid ({error}); use sqlite://PATH, \
                 sqlite:///ABSOLUTE/PATH or sqlite::memory:"
            ))
        })?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // A 250 reply promises the message is kept, so every commit must reach the disk.
        .synchronous(SqliteSynchronous::Full)
        // The writer asks for checkpoints off the commit path (see `group_commit`).
        .pragma("wal_autocheckpoint", "0")
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true);

    let pool_options = SqlitePoolOptions::new()
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // A connection to a file in this process cannot go stale; testing it before each
        // use would cost the writer a round trip per batch.
        .test_before_acquire(false);
    let pool_options = match &location {
        // An in-memory database lives only as long as a connection to it, and shared-cache
        // connections lock each other out, so keep exactly one connection forever.
        SqliteLocation::Memory => pool_options
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None),
        SqliteLocation::File(path) => {
            create_parent_folder(path)?;
            pool_options.max_connections(FILE_POOL_SIZE)
        }
    };
    let described = location.describe();
    let pool = pool_options.connect_with(options).await.map_err(|error| {
        StoreError::Config(format!(
            "cannot open the SQLite database {described} ({error}); check that the path \
                 names a file (not a folder) that authcheck may read and write"
        ))
    })?;
    sqlx::migrate!("../../migrations/sqlite")
        .run(&pool)
        .await
        .map_err(|error| {
            StoreError::Config(format!(
                "cannot bring the SQLite database {described} up to date ({error}); if it was \
                 created by a newer authcheck, run that version or start from a new file"
            ))
        })?;
    let writer = GroupCommit::start(pool.clone())?;
    Ok(Arc::new(SqlStore::new(pool, writer)))
}

enum SqliteLocation {
    Memory,
    File(std::path::PathBuf),
}

impl SqliteLocation {
    fn parse(url: &str) -> StoreResult<SqliteLocation> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        let (path, params) = rest.split_once('?').unwrap_or((rest, ""));
        if path == ":memory:" || params.split('&').any(|param| param == "mode=memory") {
            return Ok(SqliteLocation::Memory);
        }
        if path.is_empty() {
            return Err(StoreError::Config(
                "the SQLite database URL has no file path; use e.g. sqlite://data/authcheck.db"
                    .to_owned(),
            ));
        }
        Ok(SqliteLocation::File(path.into()))
    }

    fn describe(&self) -> String {
        match self {
            SqliteLocation::Memory => "in memory".to_owned(),
            SqliteLocation::File(path) => format!("at {}", path.display()),
        }
    }
}

fn create_parent_folder(database: &Path) -> StoreResult<()> {
    let Some(folder) = database
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty())
    else {
        return Ok(());
    };
    std::fs::create_dir_all(folder).map_err(|error| {
        StoreError::Config(format!(
            "cannot create the folder {} for the SQLite database ({error}); create it yourself \
             or choose another path in the database URL",
            folder.display()
        ))
    })
}

/// Writes `rows` and their raw messages on `connection` (inside the caller's transaction),
/// a few statements for all of them.
pub(crate) async fn insert_rows(
    connection: &mut SqliteConnection,
    rows: &[&InsertRow],
) -> StoreResult<()> {
    for chunk in rows.chunks(MAX_ROWS_PER_INSERT) {
        let mut results = results_insert(chunk, |row| stored_time_text(row.received_at));
        results
            .build()
            .execute(&mut *connection)
            .await
            .map_err(Sqlite::failure)?;
        let mut raw_messages = raw_messages_insert(chunk);
        raw_messages
            .build()
            .execute(&mut *connection)
            .await
            .map_err(Sqlite::failure)?;
    }
    Ok(())
}

/// UTC RFC 3339 with exactly six fractional digits, so that comparing the stored text (as the
/// purge does) compares the instants.
fn stored_time_text(at: DateTime<Utc>) -> String {
    to_stored_precision(at).to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn is_schema_mismatch(error: &dyn DatabaseError) -> bool {
    let message = error.message();
    message.starts_with("no such table") || message.starts_with("no such column")
}

#[async_trait]
impl Backend for Sqlite {
    fn failure(error: sqlx::Error) -> StoreError {
        query_failure(error, is_schema_mismatch)
    }

    async fn purge(pool: &SqlitePool, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        // SQLite lets one writer in at a time and others wait up to the busy timeout, so
        // purges from several handles take turns; raw messages go with their result through
        // the foreign key's ON DELETE CASCADE.
        let deleted = sqlx::query("DELETE FROM results WHERE received_at < $1")
            .bind(stored_time_text(cutoff))
            .execute(pool)
            .await
            .map_err(Sqlite::failure)?;
        Ok(deleted.rows_affected())
    }

    async fn integrity_check(pool: &SqlitePool) -> StoreResult<Vec<String>> {
        let report: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(pool)
            .await
            .map_err(Sqlite::failure)?;
        Ok(report.into_iter().filter(|line| line != "ok").collect())
    }
}
