//! Turning errors from queries into [`StoreError`]s, the same way for both backends and for
//! the SQLite writer's own connection.
//!
//! The SMTP listener answers `Unavailable` with a temporary failure, so the sending server
//! tries again later: that is the right answer for every failure a retry can cure (lost
//! connections, full disks, read-only files, lock timeouts). Only failures a retry cannot cure
//! (a database whose tables are not the ones this version created, undecodable rows) are
//! `Config`.

use sqlx::error::DatabaseError;

use crate::StoreError;

/// Classifies `error` from a query; `is_schema_mismatch` recognises the backend's "no such
/// table/column" errors.
pub(crate) fn query_failure(
    error: sqlx::Error,
    is_schema_mismatch: fn(&dyn DatabaseError) -> bool,
) -> StoreError {
    match error {
        sqlx::Error::Database(database) if is_schema_mismatch(database.as_ref()) => {
            schema_mismatch(&database)
        }
        sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::TypeNotFound { .. } => StoreError::Config(format!(
            "the database holds data this version of authcheck cannot read ({error}); point it \
             at a database created by this version"
        )),
        sqlx::Error::PoolTimedOut => StoreError::Unavailable(
            "no database connection became available in time (is the database server up?)"
                .to_owned(),
        ),
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// A database whose tables are not the ones this version created: a retry cannot cure that.
pub(crate) fn schema_mismatch(error: &dyn std::fmt::Display) -> StoreError {
    StoreError::Config(format!(
        "the database does not have the tables this version of authcheck expects ({error}); \
         point it at a database created by this version"
    ))
}
