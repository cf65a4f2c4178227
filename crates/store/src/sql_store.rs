//! [`ResultStore`] written once for both databases. The reads are the same SQL on SQLite and
//! PostgreSQL; what differs (error codes, integrity checks) is each backend's [`Backend`]
//! implementation, and writing (new results, purge batches, the readiness probe) is each
//! backend's [`RowWriter`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, FromRow, IntoArguments, Pool, Type};

use crate::dashboard::{Dashboard, ReportQuery};
use crate::listing::{ListSql, SEQ_OF_ID_SQL};
use crate::outgoing::Outgoing;
use crate::private_tests::{
    CREATE_PRIVATE_TEST_SQL, GET_PRIVATE_TEST_SQL, PURGE_PRIVATE_TESTS_SQL, PrivateTestRow,
    new_token, private_test,
};
use crate::record::{InsertRow, RESULT_COLUMNS, ResultRow, SummaryRow, new_result_id, without_nul};
use crate::reports::{
    EXISTING_REPORT_SQL, GET_REPORT_SQL, INSERT_REJECTED_SQL, INSERT_REPORT_SQL, LIST_REJECTED_SQL,
    MAX_RECORDS_READ, RAW_REPORT_SQL, RECORDS_PER_INSERT, REPORT_DOMAINS_SEEN_SQL,
    REPORT_RECORDS_SQL, ReportRow, SOURCES_PER_QUERY, records_insert_sql, sources_select_sql,
    sources_upsert_sql, stored_report,
};
use crate::rollup::{
    DmarcDay, DmarcDomain, DmarcFilter, DmarcPolicySeen, DmarcReporter, DmarcSource,
    DmarcSourceSeen, ReportListing, RollupRows,
};
use crate::self_checks::{
    CLAIM_SELF_CHECK_SQL, CLAIMS_KEPT_BEYOND_RETENTION, INSERT_SELF_CHECK_SQL,
    LIST_SELF_CHECKS_SQL, MAX_SELF_CHECKS_LISTED, OFFER_SIGNING_KEY_SQL,
    PURGE_SELF_CHECK_CLAIMS_SQL, PURGE_SELF_CHECKS_SQL, SELF_CHECK_CLAIMED_SQL, SIGNING_KEY_SQL,
    SelfCheckRow, self_check,
};
use crate::sessions::{
    SESSION_SEQ_OF_ID_SQL, SessionBind, SessionRow, StoredSessionRow, session_list_sql,
};
use crate::statement::Value;
use crate::stats::{self, ResultStats, StatsKeys};

use crate::{
    AfterAttempt, ListQuery, NewOutgoing, NewRecord, NewRejectedReport, NewReport, NewResult,
    NewSession, NoReply, OutgoingAttempt, OutgoingMessage, OutgoingStatus, PrivateTest,
    PrivateToken, ReplyDecision, ReplyLimits, ReportDomain, ReportInsert, ResultStore,
    ResultSummary, SelfCheck, SessionQuery, SlotClaim, SourceName, Stats, StatsQuery, StatsSample,
    StoreError, StoreResult, StoredRejectedReport, StoredReport, StoredResult, StoredSession,
};

/// The parts of the store that differ between the databases.
#[async_trait]
pub(crate) trait Backend: Database {
    /// Classifies a failed query.
    fn failure(error: sqlx::Error) -> StoreError;

    /// `query` with `value` bound to its next placeholder, encoded as this database stores it.
    fn bind<'q>(
        query: sqlx::query::Query<'q, Self, Self::Arguments<'q>>,
        value: &'q Value<'q>,
    ) -> sqlx::query::Query<'q, Self, Self::Arguments<'q>>;

    /// See [`ResultStore::integrity_check`].
    async fn integrity_check(pool: &Pool<Self>) -> StoreResult<Vec<String>>;
}

/// How a backend makes new results durable.
#[async_trait]
pub(crate) trait RowWriter: Send + Sync {
    /// Stores one message's `rows` and their raw messages in one transaction: all of them
    /// are durable when this returns `Ok`, none of them otherwise.
    async fn write(&self, rows: Vec<InsertRow>) -> StoreResult<()>;

    /// Stores finished sessions in one transaction, batched with results where the backend
    /// batches writes.
    async fn write_sessions(&self, rows: Vec<SessionRow>) -> StoreResult<()>;

    /// Adds `stats` to the statistics' rollups in one transaction.
    async fn write_stats(&self, stats: ResultStats) -> StoreResult<()>;

    /// Deletes at most [`PURGE_BATCH`] results received before `cutoff`, the raw
    /// messages no result refers to any more, at most [`PURGE_BATCH`] sessions started
    /// before `cutoff`, and a bounded batch of each statistics rollup's rows that are due
    /// ([`crate::stats::purge_statements`]), in one short transaction
    /// ([`purge_results_batch`](crate::purge::purge_results_batch)); returns how many of each.
    /// Several instances may call this at once.
    async fn purge_batch(&self, cutoff: DateTime<Utc>) -> StoreResult<Purged>;

    /// Deletes at most [`REPORT_PURGE_BATCH`](crate::reports::REPORT_PURGE_BATCH) reports
    /// (with their records), as many rejected reports and source names, older than `cutoff`
    /// (seconds since the epoch), in one short transaction
    /// ([`purge_reports_batch`](crate::reports::purge_reports_batch)); returns
    /// how many rows of each. Several instances may call this at once.
    async fn purge_reports_batch(&self, cutoff: i64) -> StoreResult<[u64; 3]>;

    /// Commits a one-row write the way results are written; see [`ResultStore::ready`].
    async fn probe(&self) -> StoreResult<()>;

    /// See [`ResultStore::free_disk_space`].
    fn free_disk_space(&self) -> StoreResult<Option<u64>>;

    /// Finishes the writes under way and closes whatever the writer holds of its own;
    /// later writes fail with [`StoreError::Unavailable`].
    async fn close(&self);
}

/// What one purge batch deleted.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Purged {
    pub results: u64,
    pub sessions: u64,
    /// Rows of the statistics' rollups ([`crate::stats::purge_statements`]).
    pub stats_rows: u64,
}

/// Most results one purge transaction deletes: small enough that the transaction takes a few
/// milliseconds and writes of new results waiting behind it never notice.
pub(crate) const PURGE_BATCH: i64 = 500;

/// `record` with NUL replaced in its text, which PostgreSQL cannot store.
fn record_without_nul(record: NewRecord) -> NewRecord {
    let text = |value: String| match without_nul(&value) {
        std::borrow::Cow::Borrowed(_) => value,
        std::borrow::Cow::Owned(replaced) => replaced,
    };
    NewRecord {
        source_ip: text(record.source_ip),
        count: record.count,
        disposition: record.disposition.map(text),
        dkim: record.dkim.map(text),
        spf: record.spf.map(text),
        header_from: text(record.header_from),
        ..record
    }
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

impl<DB: Backend, W> SqlStore<DB, W>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// The `seq` of the result `id` names, for paging; an unknown id is an error.
    async fn seq_of(&self, id: Option<&str>) -> StoreResult<Option<i64>> {
        let Some(id) = id else {
            return Ok(None);
        };
        sqlx::query_scalar::<DB, i64>(SEQ_OF_ID_SQL)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(DB::failure)?
            .map(Some)
            .ok_or_else(|| StoreError::UnknownId(id.to_owned()))
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
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Decode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB>,
    for<'r> ReportRow: FromRow<'r, DB::Row>,
    for<'r> (String, i64, String, String): FromRow<'r, DB::Row>,
    for<'r> (String, i64, i64): FromRow<'r, DB::Row>,
    for<'r> (String, i64): FromRow<'r, DB::Row>,
    for<'r> (String, Option<String>, Option<String>, i64): FromRow<'r, DB::Row>,
    for<'r> SummaryRow: FromRow<'r, DB::Row>,
    for<'r> StoredSessionRow: FromRow<'r, DB::Row>,
    for<'r> SelfCheckRow: FromRow<'r, DB::Row>,
    for<'r> PrivateTestRow: FromRow<'r, DB::Row>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Decode<'q, DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn create_private_test(
        &self,
        now: i64,
        expires_at: i64,
        max_open: u32,
    ) -> StoreResult<Option<PrivateTest>> {
        let token = new_token();
        let created = sqlx::query_scalar::<DB, String>(CREATE_PRIVATE_TEST_SQL)
            .bind(token.as_str().to_owned())
            .bind(now)
            .bind(expires_at)
            .bind(i64::from(max_open))
            .fetch_optional(&self.pool)
            .await
            .map_err(DB::failure)?;
        Ok(created.is_some().then_some(PrivateTest {
            token,
            created_at: now,
            expires_at,
        }))
    }

    async fn private_test(&self, token: PrivateToken) -> StoreResult<Option<PrivateTest>> {
        sqlx::query_as::<DB, PrivateTestRow>(GET_PRIVATE_TEST_SQL)
            .bind(token.as_str().to_owned())
            .fetch_optional(&self.pool)
            .await
            .map_err(DB::failure)?
            .map(private_test)
            .transpose()
    }

    async fn purge_private_tests(&self, now: i64) -> StoreResult<u64> {
        let purged = sqlx::query_scalar::<DB, String>(PURGE_PRIVATE_TESTS_SQL)
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(DB::failure)?;
        Ok(purged.len() as u64)
    }

    async fn insert(&self, results: Vec<NewResult>) -> StoreResult<Vec<String>> {
        let rows = InsertRow::for_message(results)?;
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
        sqlx::query_scalar::<DB, Vec<u8>>(
            "SELECT messages.message FROM results \
             JOIN messages ON messages.id = results.message_id WHERE results.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(DB::failure)
    }

    async fn list(&self, query: &ListQuery) -> StoreResult<Vec<ResultSummary>> {
        let before_seq = self.seq_of(query.before.as_deref()).await?;
        let after_seq = self.seq_of(query.after.as_deref()).await?;
        let list = ListSql::new(query, before_seq, after_seq);
        let rows = list
            .bind_to(sqlx::query_as::<DB, SummaryRow>(&list.sql))
            .fetch_all(&self.pool)
            .await
            .map_err(DB::failure)?;
        rows.into_iter().map(ResultSummary::try_from).collect()
    }

    async fn purge(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        let mut deleted = 0;
        loop {
            let batch = self.writer.purge_batch(cutoff).await?;
            deleted += batch.results;
            if batch.results == 0 && batch.sessions == 0 && batch.stats_rows == 0 {
                break;
            }
        }
        // A few rows a day per target: one statement each is short enough.
        let claims_cutoff = cutoff
            .timestamp()
            .saturating_sub(CLAIMS_KEPT_BEYOND_RETENTION);
        for (sql, cutoff) in [
            (PURGE_SELF_CHECKS_SQL, cutoff.timestamp()),
            (PURGE_SELF_CHECK_CLAIMS_SQL, claims_cutoff),
        ] {
            sqlx::query::<DB>(sql)
                .bind(cutoff)
                .execute(&self.pool)
                .await
                .map_err(DB::failure)?;
        }
        Outgoing(&self.pool).purge(cutoff.timestamp()).await?;
        Ok(deleted)
    }

    async fn queue_reply(
        &self,
        result_ids: &[String],
        reply: NewOutgoing,
        limits: &ReplyLimits,
    ) -> StoreResult<Result<String, NoReply>> {
        Outgoing(&self.pool)
            .queue_reply(result_ids, reply, limits)
            .await
    }

    async fn record_no_reply(
        &self,
        result_ids: &[String],
        reason: NoReply,
        at: i64,
    ) -> StoreResult<()> {
        Outgoing(&self.pool)
            .record_no_reply(result_ids, reason, at)
            .await
    }

    async fn queue_outgoing(
        &self,
        message: NewOutgoing,
        max_queued: u32,
    ) -> StoreResult<Option<String>> {
        Outgoing(&self.pool)
            .queue_outgoing(message, max_queued)
            .await
    }

    async fn claim_outgoing(
        &self,
        instance: &str,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> StoreResult<Vec<OutgoingMessage>> {
        Outgoing(&self.pool)
            .claim(instance, now, lease_until, limit)
            .await
    }

    async fn renew_outgoing_claim(
        &self,
        id: &str,
        claimant: &str,
        now: i64,
        lease_until: i64,
    ) -> StoreResult<bool> {
        Outgoing(&self.pool)
            .renew(id, claimant, now, lease_until)
            .await
    }

    async fn record_attempt(
        &self,
        id: &str,
        claimant: &str,
        attempt: OutgoingAttempt,
        after: AfterAttempt,
    ) -> StoreResult<bool> {
        Outgoing(&self.pool)
            .record_attempt(id, claimant, attempt, after)
            .await
    }

    async fn outgoing_status(&self, id: &str) -> StoreResult<Option<OutgoingStatus>> {
        Outgoing(&self.pool).status(id).await
    }

    async fn reply_decision(&self, result_id: &str) -> StoreResult<Option<ReplyDecision>> {
        Outgoing(&self.pool).decision(result_id).await
    }

    async fn claim_self_check(
        &self,
        target: &str,
        slot: i64,
        instance: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let claimed = sqlx::query_scalar::<DB, i64>(CLAIM_SELF_CHECK_SQL)
            .bind(without_nul(target).into_owned())
            .bind(slot)
            .bind(without_nul(instance).into_owned())
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(DB::failure)?;
        Ok(claimed.is_some())
    }

    async fn slot_claimed(&self, target: &str, slot: i64) -> StoreResult<bool> {
        let claimed = sqlx::query_scalar::<DB, i64>(SELF_CHECK_CLAIMED_SQL)
            .bind(without_nul(target).into_owned())
            .bind(slot)
            .fetch_optional(&self.pool)
            .await
            .map_err(DB::failure)?;
        Ok(claimed.is_some())
    }

    async fn queue_claimed(
        &self,
        claim: &SlotClaim<'_>,
        messages: Vec<NewOutgoing>,
        max_queued: u32,
    ) -> StoreResult<Option<Vec<Option<String>>>> {
        Outgoing(&self.pool)
            .queue_claimed(claim, messages, max_queued)
            .await
    }

    async fn signing_key(&self, name: &str) -> StoreResult<Option<String>> {
        sqlx::query_scalar::<DB, String>(SIGNING_KEY_SQL)
            .bind(name.to_owned())
            .fetch_optional(&self.pool)
            .await
            .map_err(DB::failure)
    }

    async fn signing_key_or_keep(
        &self,
        name: &str,
        candidate: &str,
        now: i64,
    ) -> StoreResult<String> {
        sqlx::query(OFFER_SIGNING_KEY_SQL)
            .bind(name.to_owned())
            .bind(candidate.to_owned())
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(DB::failure)?;
        sqlx::query_scalar::<DB, String>(SIGNING_KEY_SQL)
            .bind(name.to_owned())
            .fetch_one(&self.pool)
            .await
            .map_err(DB::failure)
    }

    async fn insert_self_check(&self, check: SelfCheck) -> StoreResult<()> {
        let text = |value: &str| without_nul(value).into_owned();
        sqlx::query::<DB>(INSERT_SELF_CHECK_SQL)
            .bind(text(&check.instance))
            .bind(text(&check.target))
            .bind(check.started_at)
            .bind(i64::from(check.ok))
            .bind(check.failed_step.as_deref().map(text))
            .bind(check.failure.as_deref().map(text))
            .bind(check.tls.as_deref().map(text))
            .bind(check.duration_ms)
            .bind(check.result_id.as_deref().map(text))
            .bind(check.verdicts.as_deref().map(text))
            .execute(&self.pool)
            .await
            .map_err(DB::failure)?;
        Ok(())
    }

    async fn self_checks_since(&self, since: i64) -> StoreResult<Vec<SelfCheck>> {
        let rows = sqlx::query_as::<DB, SelfCheckRow>(LIST_SELF_CHECKS_SQL)
            .bind(since)
            .bind(i64::from(MAX_SELF_CHECKS_LISTED))
            .fetch_all(&self.pool)
            .await
            .map_err(DB::failure)?;
        Ok(rows.into_iter().map(self_check).collect())
    }

    async fn insert_sessions(&self, sessions: Vec<NewSession>) -> StoreResult<()> {
        let rows = sessions
            .into_iter()
            .map(SessionRow::new)
            .collect::<StoreResult<Vec<_>>>()?;
        if rows.is_empty() {
            return Ok(());
        }
        self.writer.write_sessions(rows).await
    }

    async fn list_sessions(&self, query: &SessionQuery) -> StoreResult<Vec<StoredSession>> {
        let before_seq = match query.before.as_deref() {
            None => None,
            Some(id) => Some(
                sqlx::query_scalar::<DB, i64>(SESSION_SEQ_OF_ID_SQL)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(DB::failure)?
                    .ok_or_else(|| StoreError::UnknownId(id.to_owned()))?,
            ),
        };
        let (sql, binds) = session_list_sql(query, before_seq);
        let mut select = sqlx::query_as::<DB, StoredSessionRow>(&sql);
        for bind in &binds {
            select = match bind {
                SessionBind::Text(text) => select.bind(text.as_str()),
                SessionBind::Integer(number) => select.bind(*number),
            };
        }
        let rows = select.fetch_all(&self.pool).await.map_err(DB::failure)?;
        rows.into_iter().map(StoredSession::try_from).collect()
    }

    async fn insert_report(&self, report: NewReport) -> StoreResult<ReportInsert> {
        let reporter = without_nul(&report.reporter).into_owned();
        let report_id = without_nul(&report.report_id).into_owned();
        let domain = without_nul(&report.domain).into_owned();
        let rollup = RollupRows::for_report(&report, &domain, &reporter);
        let mut tx = self.pool.begin().await.map_err(DB::failure)?;
        let inserted = sqlx::query_scalar::<DB, String>(INSERT_REPORT_SQL)
            .bind(new_result_id())
            .bind(report.kind.as_str())
            .bind(reporter.clone())
            .bind(report_id.clone())
            .bind(domain)
            .bind(report.date_begin)
            .bind(report.date_end)
            .bind(report.received_at)
            .bind(String::from(Box::<str>::from(report.report)))
            .bind(report.raw)
            .fetch_optional(&mut *tx)
            .await
            .map_err(DB::failure)?;
        let Some(id) = inserted else {
            drop(tx);
            let existing = sqlx::query_scalar::<DB, String>(EXISTING_REPORT_SQL)
                .bind(reporter)
                .bind(report_id)
                .fetch_one(&self.pool)
                .await
                .map_err(DB::failure)?;
            return Ok(ReportInsert::Duplicate(existing));
        };
        let mut records = report
            .records
            .into_iter()
            .map(record_without_nul)
            .enumerate();
        loop {
            let chunk: Vec<(usize, NewRecord)> =
                records.by_ref().take(RECORDS_PER_INSERT).collect();
            if chunk.is_empty() {
                break;
            }
            let sql = records_insert_sql(chunk.len());
            let mut insert = sqlx::query::<DB>(&sql);
            for (position, record) in chunk {
                insert = insert
                    .bind(id.clone())
                    .bind(position as i64)
                    .bind(record.source_ip)
                    .bind(record.count)
                    .bind(record.disposition)
                    .bind(record.dkim)
                    .bind(record.spf)
                    .bind(record.header_from)
                    .bind(record.detail);
            }
            insert.execute(&mut *tx).await.map_err(DB::failure)?;
        }
        for statement in rollup.inserts() {
            statement
                .query::<DB>()
                .execute(&mut *tx)
                .await
                .map_err(DB::failure)?;
        }
        tx.commit().await.map_err(DB::failure)?;
        Ok(ReportInsert::Stored(id))
    }

    async fn insert_rejected_report(&self, rejected: NewRejectedReport) -> StoreResult<String> {
        let id = new_result_id();
        sqlx::query::<DB>(INSERT_REJECTED_SQL)
            .bind(id.clone())
            .bind(rejected.received_at)
            .bind(without_nul(&rejected.source).into_owned())
            .bind(without_nul(&rejected.reason).into_owned())
            .bind(rejected.raw)
            .execute(&self.pool)
            .await
            .map_err(DB::failure)?;
        Ok(id)
    }

    async fn get_report(&self, id: &str) -> StoreResult<Option<StoredReport>> {
        let row = sqlx::query_as::<DB, ReportRow>(GET_REPORT_SQL)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(DB::failure)?;
        row.map(stored_report).transpose()
    }

    async fn report_records(
        &self,
        id: &str,
        first: u32,
        count: u32,
    ) -> StoreResult<Vec<serde_json::Value>> {
        let details = sqlx::query_scalar::<DB, String>(REPORT_RECORDS_SQL)
            .bind(id)
            .bind(i64::from(first))
            .bind(i64::from(first) + i64::from(count.min(MAX_RECORDS_READ)))
            .fetch_all(&self.pool)
            .await
            .map_err(DB::failure)?;
        details
            .iter()
            .map(|detail| {
                serde_json::from_str(detail).map_err(|error| {
                    StoreError::Config(format!("a record of stored report {id}: {error}"))
                })
            })
            .collect()
    }

    async fn list_rejected_reports(&self, limit: u32) -> StoreResult<Vec<StoredRejectedReport>> {
        let rows = sqlx::query_as::<DB, (String, i64, String, String)>(LIST_REJECTED_SQL)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(DB::failure)?;
        Ok(rows
            .into_iter()
            .map(|(id, received_at, source, reason)| StoredRejectedReport {
                id,
                received_at,
                source,
                reason,
            })
            .collect())
    }

    async fn purge_reports(&self, cutoff: i64) -> StoreResult<u64> {
        let mut deleted = 0;
        loop {
            let [reports, rejected, sources] = self.writer.purge_reports_batch(cutoff).await?;
            deleted += reports + rejected;
            if reports + rejected + sources == 0 {
                break;
            }
        }
        crate::rollup::purge_days(&self.pool, cutoff.div_euclid(86_400)).await?;
        Ok(deleted)
    }

    async fn sources_to_look_up(
        &self,
        ips: &[String],
        stale_before: i64,
    ) -> StoreResult<Vec<String>> {
        let mut fresh = std::collections::HashSet::new();
        for chunk in ips.chunks(SOURCES_PER_QUERY) {
            let sql = sources_select_sql("ip, looked_up_at", chunk.len());
            let mut query = sqlx::query_as::<DB, (String, i64)>(&sql);
            for ip in chunk {
                query = query.bind(ip.clone());
            }
            let rows = query.fetch_all(&self.pool).await.map_err(DB::failure)?;
            fresh.extend(
                rows.into_iter()
                    .filter(|(_, looked_up_at)| *looked_up_at >= stale_before)
                    .map(|(ip, _)| ip),
            );
        }
        Ok(ips
            .iter()
            .filter(|ip| !fresh.contains(*ip))
            .cloned()
            .collect())
    }

    async fn record_sources(&self, names: &[SourceName]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(DB::failure)?;
        for chunk in names.chunks(SOURCES_PER_QUERY) {
            let sql = sources_upsert_sql(chunk.len());
            let mut upsert = sqlx::query::<DB>(&sql);
            for name in chunk {
                let text = |value: &str| without_nul(value).into_owned();
                upsert = upsert
                    .bind(text(&name.ip))
                    .bind(name.ptr.as_deref().map(text))
                    .bind(name.org_domain.as_deref().map(text))
                    .bind(name.looked_up_at);
            }
            upsert.execute(&mut *tx).await.map_err(DB::failure)?;
        }
        tx.commit().await.map_err(DB::failure)
    }

    async fn source_names(&self, ips: &[String]) -> StoreResult<Vec<SourceName>> {
        let mut names = Vec::new();
        for chunk in ips.chunks(SOURCES_PER_QUERY) {
            let sql = sources_select_sql("ip, ptr, org_domain, looked_up_at", chunk.len());
            let mut query =
                sqlx::query_as::<DB, (String, Option<String>, Option<String>, i64)>(&sql);
            for ip in chunk {
                query = query.bind(ip.clone());
            }
            let rows = query.fetch_all(&self.pool).await.map_err(DB::failure)?;
            names.extend(
                rows.into_iter()
                    .map(|(ip, ptr, org_domain, looked_up_at)| SourceName {
                        ip,
                        ptr,
                        org_domain,
                        looked_up_at,
                    }),
            );
        }
        Ok(names)
    }

    async fn report_domains_seen(&self) -> StoreResult<Vec<ReportDomain>> {
        let rows = sqlx::query_as::<DB, (String, i64, i64)>(REPORT_DOMAINS_SEEN_SQL)
            .fetch_all(&self.pool)
            .await
            .map_err(DB::failure)?;
        Ok(rows
            .into_iter()
            .map(|(domain, reports, last_received)| ReportDomain {
                domain,
                reports,
                last_received,
            })
            .collect())
    }

    async fn raw_report(&self, id: &str) -> StoreResult<Option<Vec<u8>>> {
        sqlx::query_scalar::<DB, Vec<u8>>(RAW_REPORT_SQL)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(DB::failure)
    }

    async fn list_reports(&self, query: &ReportQuery) -> StoreResult<Vec<ReportListing>> {
        Dashboard(&self.pool).reports(query).await
    }

    async fn dmarc_domains(&self, limit: u32) -> StoreResult<Vec<DmarcDomain>> {
        Dashboard(&self.pool).domains(limit).await
    }

    async fn dmarc_domain(&self, domain: &str) -> StoreResult<Option<DmarcDomain>> {
        Dashboard(&self.pool).domain(domain).await
    }

    async fn dmarc_daily(&self, filter: &DmarcFilter) -> StoreResult<Vec<DmarcDay>> {
        Dashboard(&self.pool).daily(filter).await
    }

    async fn dmarc_sources(
        &self,
        filter: &DmarcFilter,
        limit: u32,
    ) -> StoreResult<Vec<DmarcSource>> {
        Dashboard(&self.pool).sources(filter, limit).await
    }

    async fn dmarc_reporters(
        &self,
        filter: &DmarcFilter,
        limit: u32,
    ) -> StoreResult<Vec<DmarcReporter>> {
        Dashboard(&self.pool).reporters(filter, limit).await
    }

    async fn dmarc_policies(
        &self,
        filter: &DmarcFilter,
        limit: u32,
    ) -> StoreResult<Vec<DmarcPolicySeen>> {
        Dashboard(&self.pool).policies(filter, limit).await
    }

    async fn dmarc_source_seen(
        &self,
        source_ip: &str,
        first_day: chrono::NaiveDate,
        last_day: chrono::NaiveDate,
        limit: u32,
    ) -> StoreResult<Vec<DmarcSourceSeen>> {
        Dashboard(&self.pool)
            .source_seen(source_ip, first_day, last_day, limit)
            .await
    }

    async fn stats(&self, query: &StatsQuery) -> StoreResult<Stats> {
        stats::read_stats(&self.pool, query).await
    }

    async fn add_to_stats(&self, samples: Vec<StatsSample>) -> StoreResult<()> {
        let keys = samples.iter().map(StatsKeys::of_sample);
        self.writer.write_stats(ResultStats::of(keys)).await
    }

    async fn ready(&self) -> StoreResult<()> {
        self.writer.probe().await
    }

    fn free_disk_space(&self) -> StoreResult<Option<u64>> {
        self.writer.free_disk_space()
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
