//! One purge batch of old results and sessions, written once for both databases: each
//! backend's writer opens the transaction (PostgreSQL also takes its turn), runs the batch
//! through [`OpenTransaction`], and commits.

use chrono::{DateTime, Utc};

use crate::StoreResult;
use crate::sessions::{PURGE_SESSIONS_SQL, millis};
use crate::sql_store::{PURGE_BATCH, Purged};
use crate::statement::{OpenTransaction, Statement};
use crate::stats::purge_statements;

/// Deletes one batch of old results (`$1` the cutoff, `$2` the batch size) and returns the
/// `message_id` of each, for [`delete_orphaned_messages`].
const PURGE_BATCH_SQL: &str = "DELETE FROM results WHERE seq IN \
    (SELECT seq FROM results WHERE received_at < $1 ORDER BY received_at LIMIT $2) \
    RETURNING message_id";

/// Deletes at most [`PURGE_BATCH`] results received before `cutoff`, the raw messages no
/// result refers to any more, at most [`PURGE_BATCH`] sessions started before `cutoff`, and a
/// bounded batch of each statistics rollup's rows that are due, in `transaction`.
pub(crate) async fn purge_results_batch(
    transaction: &mut impl OpenTransaction,
    cutoff: DateTime<Utc>,
) -> StoreResult<Purged> {
    let results = Statement::with_values(PURGE_BATCH_SQL, [cutoff.into(), PURGE_BATCH.into()]);
    let deleted_rows = transaction.fetch_text_rows(&results).await?;
    let deleted = deleted_rows.len() as u64;
    let message_ids: Vec<String> = deleted_rows.into_iter().flatten().flatten().collect();
    let ids_per_statement = transaction
        .rows_per_statement()
        .of(message_ids.len().max(1));
    for ids in message_ids.chunks(ids_per_statement) {
        transaction.execute(&delete_orphaned_messages(ids)).await?;
    }
    let sessions = Statement::with_values(
        PURGE_SESSIONS_SQL,
        [millis(cutoff).into(), PURGE_BATCH.into()],
    );
    let sessions = transaction.execute(&sessions).await?;
    let mut stats_rows = 0;
    for statement in purge_statements(cutoff.timestamp()) {
        stats_rows += transaction.execute(&statement).await?;
    }
    Ok(Purged {
        results: deleted,
        sessions,
        stats_rows,
    })
}

/// The statement deleting those of `message_ids` (at least one) that no result refers to any
/// more.
fn delete_orphaned_messages(message_ids: &[String]) -> Statement<'_> {
    let mut delete = Statement::new("DELETE FROM messages WHERE id IN (");
    delete.bind_list(message_ids.iter().map(String::as_str));
    delete.push(") AND NOT EXISTS (SELECT 1 FROM results WHERE results.message_id = messages.id)");
    delete
}
