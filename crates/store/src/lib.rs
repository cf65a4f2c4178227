//! Durable storage of test results.
//!
//! Every message the tester accepts becomes one [`StoredResult`] per tester mailbox, kept with
//! its report, its session facts and the raw message until the retention purge removes it.
//! [`ResultStore`] is the interface; SQLite (the embedded default, in WAL mode) and PostgreSQL
//! (for several instances sharing one tester domain) implement it. [`open`] picks the backend
//! from the database URL and runs the migrations in `migrations/`.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The tester mailbox a result belongs to.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Mailbox {
    Spf,
    Dkim,
}

impl Mailbox {
    pub fn as_str(self) -> &'static str {
        match self {
            Mailbox::Spf => "spf",
            Mailbox::Dkim => "dkim",
        }
    }

    /// Parses `spf` or `dkim`, in any case.
    pub fn parse(name: &str) -> Option<Mailbox> {
        match name.to_ascii_lowercase().as_str() {
            "spf" => Some(Mailbox::Spf),
            "dkim" => Some(Mailbox::Dkim),
            _ => None,
        }
    }
}

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
    /// The verifier's report, as JSON.
    pub report: serde_json::Value,
    /// The message exactly as received.
    pub raw_message: Vec<u8>,
}

/// A stored result, without the raw message (fetch that with [`ResultStore::raw_message`]).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StoredResult {
    /// Public, unguessable id (128 random bits, lowercase hex).
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
    pub report: serde_json::Value,
}

/// Which results to list, newest first.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    pub mailbox: Option<Mailbox>,
    /// Only results whose MAIL FROM or From address, or either one's domain, equals this
    /// (without regard to case).
    pub sender: Option<String>,
    /// Only results older than the result with this id (for paging).
    pub before: Option<String>,
    /// Only results newer than this `seq` (for live updates).
    pub after_seq: Option<i64>,
    pub limit: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or written now (connection lost, disk full, read-only);
    /// the SMTP client should retry later.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The database URL or the database itself is not usable.
    #[error("{0}")]
    Config(String),
    /// `before` named an id that does not exist.
    #[error("no result with id {0}")]
    UnknownId(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Storage of test results. Both backends pass one shared test suite.
#[async_trait]
pub trait ResultStore: Send + Sync {
    /// Stores the results of one message in one transaction and returns their ids, in order.
    /// When this returns `Ok`, the results are durable.
    async fn insert(&self, results: &[NewResult]) -> StoreResult<Vec<String>>;
    async fn get(&self, id: &str) -> StoreResult<Option<StoredResult>>;
    async fn raw_message(&self, id: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Results matching `query`, newest first.
    async fn list(&self, query: &ListQuery) -> StoreResult<Vec<StoredResult>>;
    /// Deletes results received before `cutoff`; returns how many.
    async fn purge(&self, cutoff: DateTime<Utc>) -> StoreResult<u64>;
    /// Checks that the database answers.
    async fn ping(&self) -> StoreResult<()>;
}

pub type SharedStore = Arc<dyn ResultStore>;

/// Opens the store named by `url` (`sqlite://PATH` or `postgres://...`), creating a SQLite
/// file and its folder when missing, and runs the migrations.
pub async fn open(url: &str) -> StoreResult<SharedStore> {
    let _ = url;
    Err(StoreError::Config("not yet implemented".into()))
}
