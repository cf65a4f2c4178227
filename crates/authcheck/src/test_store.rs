//! A store for unit tests that fails the calls a test names: the real store (SQLite in memory)
//! behind it answers every other call, so a test shows what a task does when the database has
//! a hiccup at one step.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use authcheck_store::{
    AfterAttempt, DmarcDay, DmarcDomain, DmarcFilter, DmarcPolicySeen, DmarcReporter, DmarcSource,
    DmarcSourceSeen, ListQuery, NewOutgoing, NewRejectedReport, NewReport, NewResult, NewSession,
    NoReply, OutgoingAttempt, OutgoingMessage, OutgoingStatus, PrivateTest, PrivateToken,
    ReplyDecision, ReplyLimits, ReportDomain, ReportInsert, ReportListing, ReportQuery,
    ResultStore, ResultSummary, SelfCheck, SessionQuery, SharedStore, SlotClaim, SourceName, Stats,
    StatsQuery, StatsSample, StoreError, StoreResult, StoredRejectedReport, StoredReport,
    StoredResult, StoredSession,
};
use chrono::{DateTime, NaiveDate, Utc};

/// The real store, and how many more times each named method fails.
pub struct FlakyStore {
    inner: SharedStore,
    failures: Mutex<HashMap<&'static str, u32>>,
}

impl FlakyStore {
    pub fn new(inner: SharedStore) -> FlakyStore {
        FlakyStore {
            inner,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Makes the next `times` calls of `method` fail with [`StoreError::Unavailable`].
    pub fn fail_next(&self, method: &'static str, times: u32) {
        self.failures.lock().unwrap().insert(method, times);
    }

    fn fail(&self, method: &'static str) -> StoreResult<()> {
        let mut failures = self.failures.lock().unwrap();
        match failures.get_mut(method) {
            Some(left) if *left > 0 => {
                *left -= 1;
                Err(StoreError::Unavailable(format!("{method} failed (test)")))
            }
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl ResultStore for FlakyStore {
    async fn insert(&self, results: Vec<NewResult>) -> StoreResult<Vec<String>> {
        self.fail("insert")?;
        self.inner.insert(results).await
    }

    async fn get(&self, id: &str) -> StoreResult<Option<StoredResult>> {
        self.fail("get")?;
        self.inner.get(id).await
    }

    async fn raw_message(&self, id: &str) -> StoreResult<Option<Vec<u8>>> {
        self.fail("raw_message")?;
        self.inner.raw_message(id).await
    }

    async fn list(&self, query: &ListQuery) -> StoreResult<Vec<ResultSummary>> {
        self.fail("list")?;
        self.inner.list(query).await
    }

    async fn purge(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        self.fail("purge")?;
        self.inner.purge(cutoff).await
    }

    async fn insert_sessions(&self, sessions: Vec<NewSession>) -> StoreResult<()> {
        self.fail("insert_sessions")?;
        self.inner.insert_sessions(sessions).await
    }

    async fn list_sessions(&self, query: &SessionQuery) -> StoreResult<Vec<StoredSession>> {
        self.fail("list_sessions")?;
        self.inner.list_sessions(query).await
    }

    async fn insert_report(&self, report: NewReport) -> StoreResult<ReportInsert> {
        self.fail("insert_report")?;
        self.inner.insert_report(report).await
    }

    async fn insert_rejected_report(&self, rejected: NewRejectedReport) -> StoreResult<String> {
        self.fail("insert_rejected_report")?;
        self.inner.insert_rejected_report(rejected).await
    }

    async fn get_report(&self, id: &str) -> StoreResult<Option<StoredReport>> {
        self.fail("get_report")?;
        self.inner.get_report(id).await
    }

    async fn report_records(
        &self,
        id: &str,
        first: u32,
        count: u32,
    ) -> StoreResult<Vec<serde_json::Value>> {
        self.fail("report_records")?;
        self.inner.report_records(id, first, count).await
    }

    async fn list_rejected_reports(&self, limit: u32) -> StoreResult<Vec<StoredRejectedReport>> {
        self.fail("list_rejected_reports")?;
        self.inner.list_rejected_reports(limit).await
    }

    async fn purge_reports(&self, cutoff: i64) -> StoreResult<u64> {
        self.fail("purge_reports")?;
        self.inner.purge_reports(cutoff).await
    }

    async fn sources_to_look_up(
        &self,
        ips: &[String],
        stale_before: i64,
    ) -> StoreResult<Vec<String>> {
        self.fail("sources_to_look_up")?;
        self.inner.sources_to_look_up(ips, stale_before).await
    }

    async fn record_sources(&self, names: &[SourceName]) -> StoreResult<()> {
        self.fail("record_sources")?;
        self.inner.record_sources(names).await
    }

    async fn source_names(&self, ips: &[String]) -> StoreResult<Vec<SourceName>> {
        self.fail("source_names")?;
        self.inner.source_names(ips).await
    }

    async fn report_domains_seen(&self) -> StoreResult<Vec<ReportDomain>> {
        self.fail("report_domains_seen")?;
        self.inner.report_domains_seen().await
    }

    async fn raw_report(&self, id: &str) -> StoreResult<Option<Vec<u8>>> {
        self.fail("raw_report")?;
        self.inner.raw_report(id).await
    }

    async fn list_reports(&self, query: &ReportQuery) -> StoreResult<Vec<ReportListing>> {
        self.fail("list_reports")?;
        self.inner.list_reports(query).await
    }

    async fn dmarc_domains(&self, limit: u32) -> StoreResult<Vec<DmarcDomain>> {
        self.fail("dmarc_domains")?;
        self.inner.dmarc_domains(limit).await
    }

    async fn dmarc_domain(&self, domain: &str) -> StoreResult<Option<DmarcDomain>> {
        self.fail("dmarc_domain")?;
        self.inner.dmarc_domain(domain).await
    }

    async fn dmarc_daily(&self, filter: &DmarcFilter) -> StoreResult<Vec<DmarcDay>> {
        self.fail("dmarc_daily")?;
        self.inner.dmarc_daily(filter).await
    }

    async fn dmarc_sources(
        &self,
        filter: &DmarcFilter,
        limit: u32,
    ) -> StoreResult<Vec<DmarcSource>> {
        self.fail("dmarc_sources")?;
        self.inner.dmarc_sources(filter, limit).await
    }

    async fn dmarc_reporters(
        &self,
        filter: &DmarcFilter,
        limit: u32,
    ) -> StoreResult<Vec<DmarcReporter>> {
        self.fail("dmarc_reporters")?;
        self.inner.dmarc_reporters(filter, limit).await
    }

    async fn dmarc_policies(
        &self,
        filter: &DmarcFilter,
        limit: u32,
    ) -> StoreResult<Vec<DmarcPolicySeen>> {
        self.fail("dmarc_policies")?;
        self.inner.dmarc_policies(filter, limit).await
    }

    async fn dmarc_source_seen(
        &self,
        source_ip: &str,
        first_day: NaiveDate,
        last_day: NaiveDate,
        limit: u32,
    ) -> StoreResult<Vec<DmarcSourceSeen>> {
        self.fail("dmarc_source_seen")?;
        self.inner
            .dmarc_source_seen(source_ip, first_day, last_day, limit)
            .await
    }

    async fn claim_self_check(
        &self,
        target: &str,
        slot: i64,
        instance: &str,
        now: i64,
    ) -> StoreResult<bool> {
        self.fail("claim_self_check")?;
        self.inner
            .claim_self_check(target, slot, instance, now)
            .await
    }

    async fn slot_claimed(&self, target: &str, slot: i64) -> StoreResult<bool> {
        self.fail("slot_claimed")?;
        self.inner.slot_claimed(target, slot).await
    }

    async fn queue_claimed(
        &self,
        claim: &SlotClaim<'_>,
        messages: Vec<NewOutgoing>,
        max_queued: u32,
    ) -> StoreResult<Option<Vec<Option<String>>>> {
        self.fail("queue_claimed")?;
        self.inner.queue_claimed(claim, messages, max_queued).await
    }

    async fn signing_key(&self, name: &str) -> StoreResult<Option<String>> {
        self.fail("signing_key")?;
        self.inner.signing_key(name).await
    }

    async fn signing_key_or_keep(
        &self,
        name: &str,
        candidate: &str,
        now: i64,
    ) -> StoreResult<String> {
        self.fail("signing_key_or_keep")?;
        self.inner.signing_key_or_keep(name, candidate, now).await
    }

    async fn create_private_test(
        &self,
        now: i64,
        expires_at: i64,
        max_open: u32,
    ) -> StoreResult<Option<PrivateTest>> {
        self.fail("create_private_test")?;
        self.inner
            .create_private_test(now, expires_at, max_open)
            .await
    }

    async fn private_test(&self, token: PrivateToken) -> StoreResult<Option<PrivateTest>> {
        self.fail("private_test")?;
        self.inner.private_test(token).await
    }

    async fn purge_private_tests(&self, now: i64) -> StoreResult<u64> {
        self.fail("purge_private_tests")?;
        self.inner.purge_private_tests(now).await
    }

    async fn insert_self_check(&self, check: SelfCheck) -> StoreResult<()> {
        self.fail("insert_self_check")?;
        self.inner.insert_self_check(check).await
    }

    async fn self_checks_since(&self, since: i64) -> StoreResult<Vec<SelfCheck>> {
        self.fail("self_checks_since")?;
        self.inner.self_checks_since(since).await
    }

    async fn queue_reply(
        &self,
        result_ids: &[String],
        reply: NewOutgoing,
        limits: &ReplyLimits,
    ) -> StoreResult<Result<String, NoReply>> {
        self.fail("queue_reply")?;
        self.inner.queue_reply(result_ids, reply, limits).await
    }

    async fn record_no_reply(
        &self,
        result_ids: &[String],
        reason: NoReply,
        at: i64,
    ) -> StoreResult<()> {
        self.fail("record_no_reply")?;
        self.inner.record_no_reply(result_ids, reason, at).await
    }

    async fn queue_outgoing(
        &self,
        message: NewOutgoing,
        max_queued: u32,
    ) -> StoreResult<Option<String>> {
        self.fail("queue_outgoing")?;
        self.inner.queue_outgoing(message, max_queued).await
    }

    async fn claim_outgoing(
        &self,
        claimant: &str,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> StoreResult<Vec<OutgoingMessage>> {
        self.fail("claim_outgoing")?;
        self.inner
            .claim_outgoing(claimant, now, lease_until, limit)
            .await
    }

    async fn renew_outgoing_claim(
        &self,
        id: &str,
        claimant: &str,
        now: i64,
        lease_until: i64,
    ) -> StoreResult<bool> {
        self.fail("renew_outgoing_claim")?;
        self.inner
            .renew_outgoing_claim(id, claimant, now, lease_until)
            .await
    }

    async fn record_attempt(
        &self,
        id: &str,
        claimant: &str,
        attempt: OutgoingAttempt,
        after: AfterAttempt,
    ) -> StoreResult<bool> {
        self.fail("record_attempt")?;
        self.inner
            .record_attempt(id, claimant, attempt, after)
            .await
    }

    async fn outgoing_status(&self, id: &str) -> StoreResult<Option<OutgoingStatus>> {
        self.fail("outgoing_status")?;
        self.inner.outgoing_status(id).await
    }

    async fn reply_decision(&self, result_id: &str) -> StoreResult<Option<ReplyDecision>> {
        self.fail("reply_decision")?;
        self.inner.reply_decision(result_id).await
    }

    async fn stats(&self, query: &StatsQuery) -> StoreResult<Stats> {
        self.fail("stats")?;
        self.inner.stats(query).await
    }

    async fn add_to_stats(&self, samples: Vec<StatsSample>) -> StoreResult<()> {
        self.fail("add_to_stats")?;
        self.inner.add_to_stats(samples).await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.fail("ping")?;
        self.inner.ping().await
    }

    async fn ready(&self) -> StoreResult<()> {
        self.fail("ready")?;
        self.inner.ready().await
    }

    fn free_disk_space(&self) -> StoreResult<Option<u64>> {
        self.fail("free_disk_space")?;
        self.inner.free_disk_space()
    }

    async fn integrity_check(&self) -> StoreResult<Vec<String>> {
        self.fail("integrity_check")?;
        self.inner.integrity_check().await
    }

    async fn close(&self) {
        self.inner.close().await
    }
}
