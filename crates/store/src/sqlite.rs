//! The SQLite backend: one database file (in WAL mode, synced on every commit) for a single
//! authcheck instance, or an in-memory database for tests.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::error::DatabaseError;
use sqlx::query::Query;
use sqlx::sqlite::SqliteArguments;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Sqlite, SqlitePool};

use crate::failure::query_failure;
use crate::group_commit::GroupCommit;
use crate::record::to_stored_precision;
use crate::sql_store::{Backend, SqlStore};
use crate::statement::Value;
use crate::{ACQUIRE_TIMEOUT, SharedStore, StoreError, StoreResult};

/// How long a writer waits for another connection's write to finish before giving up.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The settings of every connection to the database: the pool's and the writer's own.
pub(crate) const CONNECTION_PRAGMAS: [(&str, &str); 5] = [
    ("journal_mode", "WAL"),
    // A 250 reply promises the message is kept, so every commit must reach the disk before
    // its callers are answered (see `group_commit`).
    ("synchronous", "FULL"),
    // The writer asks for checkpoints off the commit path (see `group_commit`).
    ("wal_autocheckpoint", "0"),
    // A batch's inserts keep a statement journal (to undo one statement alone); past 64 KiB
    // SQLite would spill it to a temporary file created and deleted per batch.
    ("temp_store", "memory"),
    ("foreign_keys", "ON"),
];

/// WAL lets readers work while one connection writes; a few connections are plenty for the
/// pages, the API, the live feed and the purge. The writer has a connection of its own.
const READ_POOL_SIZE: u32 = 4;

/// Opens `url` (`sqlite://PATH`, `sqlite:///ABSOLUTE/PATH` or `sqlite::memory:`), creating
/// the file and its folder when missing, and applies the migrations.
///
/// `sqlite::memory:` is a database file in a new temporary folder, removed when the store is
/// dropped: a true in-memory database lives inside one connection, but the store needs the
/// pool's readers and its own writer to see the same data.
pub(crate) async fn open(url: &str) -> StoreResult<SharedStore> {
    let location = SqliteLocation::parse(url)?;
    let (options, temporary_folder) = match &location {
        SqliteLocation::Memory => {
            let folder = tempfile::Builder::new()
                .prefix("authcheck-db-")
                .tempdir()
                .map_err(|error| {
                    StoreError::Config(format!(
                        "cannot create a temporary folder for the database ({error}); set \
                         TMPDIR to a writable folder or use sqlite://PATH"
                    ))
                })?;
            let file = folder.path().join("authcheck.db");
            (SqliteConnectOptions::new().filename(file), Some(folder))
        }
        SqliteLocation::File { path, .. } => {
            create_parent_folder(path)?;
            let options = SqliteConnectOptions::from_str(url).map_err(|error| {
                StoreError::Config(format!(
                    "the SQLite database URL is not valid ({error}); use sqlite://PATH, \
                     sqlite:///ABSOLUTE/PATH or sqlite::memory:"
                ))
            })?;
            (options, None)
        }
    };
    let options = CONNECTION_PRAGMAS
        .iter()
        .fold(options, |options, (name, value)| {
            options.pragma(*name, *value)
        })
        .create_if_missing(true)
        .busy_timeout(BUSY_TIMEOUT);

    let described = location.describe();
    let cannot_open = |error: sqlx::Error| {
        StoreError::Config(format!(
            "cannot open the SQLite database {described} ({error}); check that the path \
             names a file (not a folder) that authcheck may read and write"
        ))
    };
    let pool = SqlitePoolOptions::new()
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // A connection to a file in this process cannot go stale; testing it before each
        // use would cost a round trip to SQLite's worker thread.
        .test_before_acquire(false)
        .max_connections(READ_POOL_SIZE)
        .connect_with(options.clone())
        .await
        .map_err(cannot_open)?;
    sqlx::migrate!("../../migrations/sqlite")
        .run(&pool)
        .await
        .map_err(|error| {
            StoreError::Config(format!(
                "cannot bring the SQLite database {described} up to date ({error}); if it was \
                 created by a newer authcheck, run that version or start from a new file"
            ))
        })?;
    let writer = GroupCommit::start(
        options.get_filename(),
        location.read_only(),
        pool.clone(),
        temporary_folder,
    )?;
    Ok(Arc::new(SqlStore::new(pool, writer)))
}

enum SqliteLocation {
    Memory,
    File {
        path: std::path::PathBuf,
        /// `mode=ro` or `immutable=1` in the URL: every connection opens the file read-only.
        read_only: bool,
    },
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
        let read_only = params
            .split('&')
            .any(|param| matches!(param, "mode=ro" | "immutable=1" | "immutable=true"));
        Ok(SqliteLocation::File {
            path: path.into(),
            read_only,
        })
    }

    fn read_only(&self) -> bool {
        matches!(
            self,
            SqliteLocation::File {
                read_only: true,
                ..
            }
        )
    }

    fn describe(&self) -> String {
        match self {
            SqliteLocation::Memory => "in a temporary folder".to_owned(),
            SqliteLocation::File { path, .. } => format!("at {}", path.display()),
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

/// UTC RFC 3339 with exactly six fractional digits, so that comparing the stored text (as the
/// purge does) compares the instants.
pub(crate) fn stored_time_text(at: DateTime<Utc>) -> String {
    to_stored_precision(at).to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Whether SQLite's error `message` says a table or column this version expects is missing.
pub(crate) fn names_missing_schema(message: &str) -> bool {
    message.starts_with("no such table") || message.starts_with("no such column")
}

fn is_schema_mismatch(error: &dyn DatabaseError) -> bool {
    names_missing_schema(error.message())
}

#[async_trait]
impl Backend for Sqlite {
    fn failure(error: sqlx::Error) -> StoreError {
        query_failure(error, is_schema_mismatch)
    }

    fn bind<'q>(
        query: Query<'q, Sqlite, SqliteArguments<'q>>,
        value: &'q Value<'q>,
    ) -> Query<'q, Sqlite, SqliteArguments<'q>> {
        match value {
            Value::Text(text) => query.bind(text.as_deref()),
            Value::BigInt(number) => query.bind(*number),
            Value::Int(number) => query.bind(*number),
            Value::Bool(flag) => query.bind(*flag),
            Value::Bytes(bytes) => query.bind(*bytes),
            Value::Json(json) => query.bind(json.get()),
            Value::Time(at) => query.bind(stored_time_text(*at)),
        }
    }

    async fn integrity_check(pool: &SqlitePool) -> StoreResult<Vec<String>> {
        let report: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(pool)
            .await
            .map_err(Sqlite::failure)?;
        Ok(report.into_iter().filter(|line| line != "ok").collect())
    }
}
