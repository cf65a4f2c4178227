//! Durable storage of test results.
//!
//! Every message the tester accepts becomes one [`StoredResult`] per tester mailbox, kept with
//! its report and its session facts until the retention purge removes it; the raw message is
//! stored once, however many mailboxes it was sent to.
//! [`ResultStore`] is the interface; SQLite (the embedded default, in WAL mode) and PostgreSQL
//! (for several instances sharing one tester domain) implement it. [`open`] picks the backend
//! from the database URL and runs the migrations in `migrations/`.

mod dashboard;
mod failure;
mod group_commit;
mod listing;
mod outgoing;
mod postgres;
mod private_tests;
mod purge;
mod record;
mod reports;
mod rollup;
mod self_checks;
mod sessions;
mod sql_store;
mod sqlite;
mod sqlite_writer;
mod statement;
mod stats;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

pub use authcheck_verifier::{Mailbox, PrivateToken};

/// What the SMTP session knew about the sender when the message arrived.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionFacts {
    pub client_ip: String,
    pub client_port: u16,
    /// The PTR name of the client IP, if any.
    pub client_ptr: Option<String>,
    /// Whether the PTR name resolves back to the client IP (forward-confirmed reverse DNS).
    pub client_ptr_confirmed: bool,
    pub helo: String,
    /// TLS protocol version and cipher suite, when STARTTLS was used.
    pub tls_version: Option<String>,
    pub tls_cipher: Option<String>,
    /// The MAIL FROM address; empty for the null reverse-path.
    pub mail_from: String,
    /// The RCPT TO address as given (with any `+tag`).
    pub recipient: String,
    /// Message size in bytes.
    pub size: u64,
}

/// A result about to be stored.
///
/// Both backends keep `received_at` to the microsecond, and store any NUL character in the
/// text fields and the report as U+FFFD (PostgreSQL cannot store NUL in text).
#[derive(Clone, Debug)]
pub struct NewResult {
    pub mailbox: Mailbox,
    pub received_at: DateTime<Utc>,
    pub session: SessionFacts,
    /// The address in the From header field, if there is one.
    pub header_from: Option<String>,
    /// The original Subject (decoded), if there is one.
    pub subject: Option<String>,
    /// The verdict for this mailbox, exactly as shown, e.g. `|OK| spf-pass`.
    pub verdict: String,
    /// `<verdict> <original subject>`.
    pub prefixed_subject: String,
    /// The verifier's report, serialized once as JSON and stored as it is.
    pub report: Box<serde_json::value::RawValue>,
    /// The report's bounded summary ([`authcheck_verifier::ReportSummary`]) as JSON, which
    /// listings read instead of the report.
    pub report_summary: Box<serde_json::value::RawValue>,
    /// The message exactly as received, shared by the results of one message (one per tester
    /// mailbox or private test it was sent to), so that they hold one copy in all.
    pub raw_message: Arc<Vec<u8>>,
    /// The private test whose address the message was sent to: the result is then listed
    /// only on that test's page ([`Visibility`]). `None` for public results.
    pub private_test: Option<PrivateToken>,
}

/// What a listing shows of a result: every column but the report, so that a page of results
/// costs a bounded number of bytes whatever the messages held.
///
/// Its text fields are as stored: each at most
/// [`MAX_DISPLAY_FIELD_BYTES`](authcheck_verifier::display::MAX_DISPLAY_FIELD_BYTES), a longer
/// one cut with a note of the received length (see
/// [`bounded_display_text`](authcheck_verifier::display::bounded_display_text)); the raw message
/// keeps them whole.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ResultSummary {
    /// Public, unguessable id: 32 lowercase hex digits, the millisecond it was made then 84
    /// random bits.
    pub id: String,
    /// Store-wide insertion order; newer results have larger values.
    pub seq: i64,
    pub mailbox: Mailbox,
    pub received_at: DateTime<Utc>,
    pub session: SessionFacts,
    pub header_from: Option<String>,
    pub subject: Option<String>,
    pub verdict: String,
    pub prefixed_subject: String,
    /// The report's summary as stored, bounded; for results stored before summaries existed,
    /// the whole report. [`authcheck_verifier::ReportSummary::from_stored`] reads either.
    pub report_summary: serde_json::Value,
    /// The private test the result belongs to, `None` for a public result. Never serialized:
    /// the token is the key to the test's page.
    #[serde(skip)]
    pub private_test: Option<PrivateToken>,
}

/// A stored result: what its listing shows and the whole report, without the raw message
/// (fetch that with [`ResultStore::raw_message`]).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StoredResult {
    #[serde(flatten)]
    pub summary: ResultSummary,
    pub report: serde_json::Value,
}

/// Whose results a listing may show. Public lists never show a private test's results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Visibility {
    /// Results sent to the public addresses (`spf@`, `dkim@`, `check@`) only.
    #[default]
    Public,
    /// The results of this private test only: its page.
    PrivateTest(PrivateToken),
    /// The results of every private test: the feed behind the private tests' pages, which
    /// gives each page its own.
    AnyPrivateTest,
}

/// Which results to list, newest first.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// Public results unless it says otherwise.
    pub visibility: Visibility,
    pub mailbox: Option<Mailbox>,
    /// Only results whose MAIL FROM or From address, or either one's domain, equals this
    /// (without regard to case). A blank value filters nothing.
    pub sender: Option<String>,
    /// Only results older than the result with this id (for paging).
    pub before: Option<String>,
    /// Only results newer than the result with this id (for catching up after a reconnect).
    pub after: Option<String>,
    /// Only results newer than this `seq` (for live updates).
    pub after_seq: Option<i64>,
    /// At most this many results; clamped to `1..=MAX_LIST_LIMIT`.
    pub limit: u32,
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or written now (connection lost, disk full, read-only);
    /// the SMTP client should retry later.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The database URL or the database itself is not usable.
    #[error("{0}")]
    Config(String),
    /// `before` or `after` named an id that does not exist.
    #[error("no result with id {0}")]
    UnknownId(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Storage of test results. Both backends pass one shared test suite.
#[async_trait]
pub trait ResultStore: Send + Sync {
    /// Stores the results of one message in one transaction and returns their ids, in order.
    /// When this returns `Ok`, the results are durable. The results are taken, not copied:
    /// their raw message and report go to the database as they are, and results carrying
    /// the same raw message share one stored copy of it.
    async fn insert(&self, results: Vec<NewResult>) -> StoreResult<Vec<String>>;
    async fn get(&self, id: &str) -> StoreResult<Option<StoredResult>>;
    async fn raw_message(&self, id: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Results matching `query`, newest first, without their reports.
    async fn list(&self, query: &ListQuery) -> StoreResult<Vec<ResultSummary>>;
    /// Deletes results received before `cutoff`, and their raw messages, the SMTP sessions
    /// and the self-checks (with their claims) started before it, the reply decisions,
    /// delivery attempts and sent or failed outgoing messages from before it, and the
    /// statistics' hosts and senders of the days before it (their counts stay
    /// [`STATS_HISTORY_DAYS`] longer); returns how many results.
    /// It deletes in short transactions of a few hundred results each, between which new
    /// results are written, so a large purge delays no message for long.
    async fn purge(&self, cutoff: DateTime<Utc>) -> StoreResult<u64>;
    /// Stores finished SMTP sessions in one transaction (on SQLite, the same transaction as
    /// the results waiting beside them). Durable when this returns `Ok`.
    async fn insert_sessions(&self, sessions: Vec<NewSession>) -> StoreResult<()>;
    /// Sessions matching `query`, newest first unless it asks for the oldest first.
    async fn list_sessions(&self, query: &SessionQuery) -> StoreResult<Vec<StoredSession>>;
    /// Stores a parsed DMARC report and its records in one transaction (the records in
    /// multi-row statements), unless the same reporter and report id are stored already: then
    /// nothing is written and the answer is [`ReportInsert::Duplicate`]. Durable when this
    /// returns `Ok`. The same transaction adds the report to the daily rollup the dashboard
    /// reads (see [`DmarcFilter`]).
    async fn insert_report(&self, report: NewReport) -> StoreResult<ReportInsert>;
    /// Stores a report that could not be parsed, with the reason; returns its id.
    async fn insert_rejected_report(&self, rejected: NewRejectedReport) -> StoreResult<String>;
    /// A stored report. Its `report` JSON holds its records only if it was stored before
    /// records kept their own ([`NewRecord::detail`]); read those with
    /// [`ResultStore::report_records`].
    async fn get_report(&self, id: &str) -> StoreResult<Option<StoredReport>>;
    /// The records of report `id` from the `first` (0 for the first) on, at most `count`
    /// (≤ [`MAX_RECORDS_READ`]), as parsed (`authcheck_dmarc_reports::Record` JSON); empty
    /// for a report stored with its records inside its own JSON.
    async fn report_records(
        &self,
        id: &str,
        first: u32,
        count: u32,
    ) -> StoreResult<Vec<serde_json::Value>>;
    /// The newest rejected reports first, at most `limit`.
    async fn list_rejected_reports(&self, limit: u32) -> StoreResult<Vec<StoredRejectedReport>>;
    /// Deletes the reports (with their records) and the rejected reports received before
    /// `cutoff` (seconds since the epoch), and the source names looked up before it, taking
    /// the reports off their domains' totals; then the daily rollup's days before `cutoff`'s
    /// day that no stored report covers any more, with their messages, and the domains left
    /// with nothing. Returns how many reports and rejected reports. Like
    /// [`ResultStore::purge`], in short transactions between which new results and reports
    /// are written.
    async fn purge_reports(&self, cutoff: i64) -> StoreResult<u64>;
    /// Those of `ips` whose name was never looked up, or was looked up before `stale_before`
    /// (seconds since the epoch), in the order given.
    async fn sources_to_look_up(
        &self,
        ips: &[String],
        stale_before: i64,
    ) -> StoreResult<Vec<String>>;
    /// Stores looked-up source names (in multi-row statements), replacing older ones.
    async fn record_sources(&self, names: &[SourceName]) -> StoreResult<()>;
    /// The stored names of those of `ips` that were looked up.
    async fn source_names(&self, ips: &[String]) -> StoreResult<Vec<SourceName>>;
    /// Every domain with stored reports, by name, with how many and when the last arrived: the
    /// domains whose `<domain>._report._dmarc.<tester domain>` authorization record (RFC 7489
    /// section 7.1) the operator publishes.
    async fn report_domains_seen(&self) -> StoreResult<Vec<ReportDomain>>;
    /// A stored report's message or file exactly as received.
    async fn raw_report(&self, id: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Stored reports matching `query`, the newest period first, without their bodies.
    async fn list_reports(&self, query: &ReportQuery) -> StoreResult<Vec<ReportListing>>;
    /// The domains with reports, the most recent data first, at most `limit`
    /// (≤ [`MAX_DASHBOARD_ROWS`]).
    async fn dmarc_domains(&self, limit: u32) -> StoreResult<Vec<DmarcDomain>>;
    /// One domain with reports (`domain` lowercase), or `None`.
    async fn dmarc_domain(&self, domain: &str) -> StoreResult<Option<DmarcDomain>>;
    /// The rollup of `filter` per day, oldest first; days without reported messages are
    /// absent.
    async fn dmarc_daily(&self, filter: &DmarcFilter) -> StoreResult<Vec<DmarcDay>>;
    /// The sources (IP addresses) of `filter`, those failing DMARC most first.
    async fn dmarc_sources(
        &self,
        filter: &DmarcFilter,
        limit: u32,
    ) -> StoreResult<Vec<DmarcSource>>;
    /// The reporters of `filter`, most messages first.
    async fn dmarc_reporters(
        &self,
        filter: &DmarcFilter,
        limit: u32,
    ) -> StoreResult<Vec<DmarcReporter>>;
    /// The published policies reporters saw for `filter`'s domain, days and reporter, in the
    /// order they were first seen.
    async fn dmarc_policies(
        &self,
        filter: &DmarcFilter,
        limit: u32,
    ) -> StoreResult<Vec<DmarcPolicySeen>>;
    /// What reporters saw of `source_ip` from `first_day` to `last_day`, per domain, most
    /// messages first.
    async fn dmarc_source_seen(
        &self,
        source_ip: &str,
        first_day: NaiveDate,
        last_day: NaiveDate,
        limit: u32,
    ) -> StoreResult<Vec<DmarcSourceSeen>>;
    /// Claims the self-check of `target` in interval `slot` (its start time divided by the
    /// interval) for `instance`: `true` for the first claim, `false` when another instance
    /// (or this one) claimed it already, so that instances sharing one database check each
    /// target once per interval. Claims go with the results' purge, kept
    /// [`CLAIMS_KEPT_BEYOND_RETENTION`] longer.
    async fn claim_self_check(
        &self,
        target: &str,
        slot: i64,
        instance: &str,
        now: i64,
    ) -> StoreResult<bool>;
    /// Whether `target`'s `slot` is claimed already (see [`ResultStore::claim_self_check`]).
    async fn slot_claimed(&self, target: &str, slot: i64) -> StoreResult<bool>;
    /// Claims `claim`'s slot and queues `messages` (as [`ResultStore::queue_outgoing`] would,
    /// each `None` when the queue is full or the message too big) in one transaction: `None`,
    /// queueing nothing, when the slot was claimed already. A failure leaves the slot
    /// unclaimed, so the work is done again later rather than lost.
    async fn queue_claimed(
        &self,
        claim: &SlotClaim<'_>,
        messages: Vec<NewOutgoing>,
        max_queued: u32,
    ) -> StoreResult<Option<Vec<Option<String>>>>;
    /// The signing key kept as `name` (a PKCS#8 PEM), if one is.
    async fn signing_key(&self, name: &str) -> StoreResult<Option<String>>;
    /// The signing key kept as `name` (a PKCS#8 PEM): the one kept already, or else
    /// `candidate`, kept now with the time `now`. Instances that start together on one
    /// database all get the first one kept.
    async fn signing_key_or_keep(
        &self,
        name: &str,
        candidate: &str,
        now: i64,
    ) -> StoreResult<String>;
    /// Makes a private test, open from `now` until `expires_at` (seconds since the epoch),
    /// with a new token from the operating system's generator; `None` when `max_open` tests
    /// are open at `now` already.
    async fn create_private_test(
        &self,
        now: i64,
        expires_at: i64,
        max_open: u32,
    ) -> StoreResult<Option<PrivateTest>>;
    /// The private test with `token`, expired or not, until it is purged.
    async fn private_test(&self, token: PrivateToken) -> StoreResult<Option<PrivateTest>>;
    /// Deletes the private tests that expired at or before `now`; returns how many. Their
    /// results stay until the results' own purge, readable at their ids only.
    async fn purge_private_tests(&self, now: i64) -> StoreResult<u64>;
    /// Records one self-check.
    async fn insert_self_check(&self, check: SelfCheck) -> StoreResult<()>;
    /// The self-checks started at or after `since` (seconds since the epoch), newest first,
    /// at most [`MAX_SELF_CHECKS_LISTED`].
    async fn self_checks_since(&self, since: i64) -> StoreResult<Vec<SelfCheck>>;
    /// Queues `reply` for the tested message whose results are `result_ids`, unless one of
    /// `limits` says no, and records the decision for each result either way: the reply's id,
    /// or the [`NoReply`] reason. Decisions of instances sharing a database take turns, so
    /// the limits count every reply queued before. A result decided before keeps its first
    /// decision.
    async fn queue_reply(
        &self,
        result_ids: &[String],
        reply: NewOutgoing,
        limits: &ReplyLimits,
    ) -> StoreResult<Result<String, NoReply>>;
    /// Records that the results `result_ids` (of one message) get no reply, and why.
    async fn record_no_reply(
        &self,
        result_ids: &[String],
        reason: NoReply,
        at: i64,
    ) -> StoreResult<()>;
    /// Queues a message that answers no test (a summary) unless `max_queued` messages wait
    /// already (then `None`).
    async fn queue_outgoing(
        &self,
        message: NewOutgoing,
        max_queued: u32,
    ) -> StoreResult<Option<String>>;
    /// Claims up to `limit` queued messages due at `now` for `claimant` (one name per running
    /// process) until `lease_until`: no other claim takes them before then, on any instance
    /// sharing the database.
    async fn claim_outgoing(
        &self,
        claimant: &str,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> StoreResult<Vec<OutgoingMessage>>;
    /// Extends `claimant`'s claim of the queued message `id` to `lease_until`, if it is still
    /// theirs and its lease has not run out at `now`; `false` otherwise (stop the attempt).
    async fn renew_outgoing_claim(
        &self,
        id: &str,
        claimant: &str,
        now: i64,
        lease_until: i64,
    ) -> StoreResult<bool>;
    /// Records `claimant`'s attempt at the claimed message `id` and what follows it, and ends
    /// the claim; `false`, recording nothing, when another claimant holds the message now.
    async fn record_attempt(
        &self,
        id: &str,
        claimant: &str,
        attempt: OutgoingAttempt,
        after: AfterAttempt,
    ) -> StoreResult<bool>;
    /// An outgoing message with its attempts.
    async fn outgoing_status(&self, id: &str) -> StoreResult<Option<OutgoingStatus>>;
    /// Whether the result `result_id` got a reply, with the reply's attempts; `None` when no
    /// decision was taken (replies were off).
    async fn reply_decision(&self, result_id: &str) -> StoreResult<Option<ReplyDecision>>;
    /// What the statistics' rollups hold for `query` (see [`Stats`]); reads no result and no
    /// session, so it costs the same whatever the traffic.
    async fn stats(&self, query: &StatsQuery) -> StoreResult<Stats>;
    /// Adds results to the statistics' rollups without storing them, as [`ResultStore::insert`]
    /// adds those it stores: for the statistics benchmark, which needs weeks of traffic in
    /// the rollups and not the results themselves.
    async fn add_to_stats(&self, samples: Vec<StatsSample>) -> StoreResult<()>;
    /// Checks that the database answers (a read).
    async fn ping(&self) -> StoreResult<()>;
    /// Readiness: commits a one-row write the way results are written (through SQLite's
    /// writer thread, or a PostgreSQL transaction), so it fails with
    /// [`StoreError::Unavailable`] when new results could not be stored either: the writer
    /// has stopped, the disk is full or read-only, the server is gone.
    async fn ready(&self) -> StoreResult<()>;
    /// Bytes free for authcheck on the disk that holds the SQLite database (its folder's file
    /// system, as `df` shows them), for the free-space floor. `None` for PostgreSQL, whose
    /// disk is the server's and out of sight: watch it on the server.
    fn free_disk_space(&self) -> StoreResult<Option<u64>>;
    /// Looks for damage in the database and returns what it found, empty when healthy.
    /// SQLite runs `PRAGMA integrity_check`; PostgreSQL verifies its own pages as it reads
    /// them, so there this only checks that the server answers.
    async fn integrity_check(&self) -> StoreResult<Vec<String>>;
    /// Closes every connection, waiting for queries under way; call it at shutdown (SQLite
    /// then folds its write-ahead log back into the database file). Calls made afterwards
    /// fail with [`StoreError::Unavailable`].
    async fn close(&self);
}

pub type SharedStore = Arc<dyn ResultStore>;

pub use dashboard::{MAX_REPORT_OFFSET, ReportQuery};
pub use listing::{MAX_LIST_LIMIT, sender_matches};
pub use outgoing::{
    AfterAttempt, MAX_ATTEMPTS_LISTED, MAX_OUTGOING_BYTES, NewOutgoing, NoReply, OutgoingAttempt,
    OutgoingKind, OutgoingMessage, OutgoingState, OutgoingStatus, RateLimit, ReplyDecision,
    ReplyLimits, SlotClaim,
};
pub use private_tests::PrivateTest;
pub use reports::{
    MAX_RECORDS_READ, NewRecord, NewRejectedReport, NewReport, ReportDomain, ReportInsert,
    ReportKind, SourceName, StoredRejectedReport, StoredReport,
};
pub use rollup::{
    DmarcCounts, DmarcDay, DmarcDomain, DmarcFilter, DmarcOutcome, DmarcPolicySeen, DmarcReporter,
    DmarcSource, DmarcSourceSeen, MAX_DASHBOARD_ROWS, MAX_ROLLUP_ROWS_PER_REPORT, ReportListing,
};
pub use self_checks::{CLAIMS_KEPT_BEYOND_RETENTION, MAX_SELF_CHECKS_LISTED, SelfCheck};
pub use sessions::{
    Direction, MAX_EVENT_TEXT_BYTES, MAX_SESSION_EVENTS, MAX_SESSION_LIMIT, MAX_SESSION_RESULT_IDS,
    NewSession, SessionEvent, SessionQuery, StoredSession, new_session_id,
};
pub use stats::{
    GradeCounts, MAX_STATS_TOP, STATS_HISTORY_DAYS, Stats, StatsDay, StatsHost, StatsMonth,
    StatsQuery, StatsReply, StatsSample, StatsSender, StatsSessionDay, VerdictCount, grade_of,
};

/// How long a query waits for a database connection before the store reports
/// [`StoreError::Unavailable`]: long enough to ride out a brief hiccup, short enough that an
/// SMTP client gets a prompt temporary failure rather than a hanging session.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens the store named by `url` and runs the migrations:
///
/// * `sqlite://PATH` (relative to the working directory) or `sqlite:///ABSOLUTE/PATH`: the
///   file and its folder are created when missing;
/// * `sqlite::memory:`: a private database in a temporary folder, removed when the store is
///   dropped (tests);
/// * `postgres://USER:PASSWORD@HOST:PORT/DATABASE` (or `postgresql://`).
///
/// A malformed URL, a folder that cannot be created, or a database the migrations cannot
/// update gives [`StoreError::Config`]; a PostgreSQL server that cannot be reached within
/// [`ACQUIRE_TIMEOUT`] gives [`StoreError::Unavailable`].
pub async fn open(url: &str) -> StoreResult<SharedStore> {
    if url.starts_with("sqlite:") {
        sqlite::open(url).await
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        postgres::open(url).await
    } else {
        // Only the scheme is repeated: the rest of a URL may hold a password.
        let scheme = url.split_once(':').map_or("(none)", |(scheme, _)| scheme);
        Err(StoreError::Config(format!(
            "unsupported database URL scheme {scheme:?}; use sqlite://PATH, \
             sqlite:///ABSOLUTE/PATH, sqlite::memory: or postgres://USER:PASSWORD@HOST/DATABASE"
        )))
    }
}
