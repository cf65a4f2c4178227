//! Mail the tester sends to others: the outgoing queue (replies by mail, weekly summaries),
//! each delivery attempt, and, for every tested message while replies are on, whether it got a
//! reply or why not ([`NoReply`]).
//!
//! Queueing a reply is one transaction that first updates the one row of `outgoing_lock`, so
//! the decisions of all instances sharing a database take turns: the rate limits count every
//! reply queued before, and the queue's cap holds. A worker claims due messages for a short
//! lease (`claimed_until`, with `claimed_by` naming the claimant: one per running process) and
//! renews it while its attempt runs; a claim only takes rows whose lease has run out, a renewal
//! and the attempt's record only rows still the claimant's, so two instances never send one
//! message at once, and a message whose worker died is taken again soon after its last renewal.
//! Times are seconds since the epoch.
//!
//! The store keeps rows; composing, delivering and the retry policy are the binary's and the
//! `outbound` crate's business.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use crate::record::{domain_of, new_result_id, without_nul};
use crate::self_checks::CLAIM_SELF_CHECK_SQL;
use crate::sql_store::Backend;
use crate::{StoreError, StoreResult};

/// One interval's claim (see [`crate::ResultStore::claim_self_check`]), taken together with
/// the messages the interval's work queues ([`crate::ResultStore::queue_claimed`]).
#[derive(Clone, Copy, Debug)]
pub struct SlotClaim<'a> {
    pub target: &'a str,
    pub slot: i64,
    pub instance: &'a str,
    pub now: i64,
}

/// The largest message the queue takes, in bytes: a reply or a summary is a few kilobytes.
pub const MAX_OUTGOING_BYTES: usize = 256 * 1024;
/// The most attempts listed for one message.
pub const MAX_ATTEMPTS_LISTED: u32 = 100;
/// The most messages one claim takes.
pub const MAX_CLAIM: u32 = 100;

/// Why a tested message got no reply. Its `Display` is the sentence the result page shows
/// after "no reply sent: "; [`NoReply::as_str`] the stable token stored and put in the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoReply {
    /// The message went to a mailbox the operator did not turn replies on for.
    MailboxNotReplied,
    /// MAIL FROM was `<>`: there is no one to reply to (RFC 3834 section 2).
    NullSender,
    /// The message did not pass DMARC with an aligned identity, so the MAIL FROM address may
    /// be forged and the reply would be backscatter.
    DmarcNotPassed,
    /// The MAIL FROM address's domain is not the From domain that passed DMARC.
    SenderNotAligned,
    /// `Auto-Submitted` other than `no` (RFC 3834 section 2).
    AutoSubmitted,
    /// `Precedence: bulk`, `list` or `junk`.
    BulkPrecedence,
    /// `List-Id`: mail from a list.
    MailingList,
    /// The recipient address had its reply within the per-address window.
    RateLimitedAddress,
    /// The recipient domain had its replies within the per-domain window.
    RateLimitedDomain,
    /// The sending client address had its replies within the per-client window.
    RateLimitedClient,
    /// The outgoing queue is full.
    QueueFull,
    /// The reply could not be composed (the key or the message is unusable).
    CannotCompose,
    /// The MAIL FROM address is in one of the tester's own domains: the tester would mail
    /// itself (its self-check's messages), every interval.
    TesterItself,
}

impl NoReply {
    pub const ALL: [NoReply; 13] = [
        NoReply::MailboxNotReplied,
        NoReply::NullSender,
        NoReply::DmarcNotPassed,
        NoReply::SenderNotAligned,
        NoReply::AutoSubmitted,
        NoReply::BulkPrecedence,
        NoReply::MailingList,
        NoReply::RateLimitedAddress,
        NoReply::RateLimitedDomain,
        NoReply::RateLimitedClient,
        NoReply::QueueFull,
        NoReply::CannotCompose,
        NoReply::TesterItself,
    ];

    /// The stable token: stored, and in the JSON API.
    pub fn as_str(self) -> &'static str {
        match self {
            NoReply::MailboxNotReplied => "mailbox-not-replied",
            NoReply::NullSender => "null-sender",
            NoReply::DmarcNotPassed => "dmarc-not-passed",
            NoReply::SenderNotAligned => "sender-not-aligned",
            NoReply::AutoSubmitted => "auto-submitted",
            NoReply::BulkPrecedence => "bulk-precedence",
            NoReply::MailingList => "mailing-list",
            NoReply::RateLimitedAddress => "rate-limited-address",
            NoReply::RateLimitedDomain => "rate-limited-domain",
            NoReply::RateLimitedClient => "rate-limited-client",
            NoReply::QueueFull => "queue-full",
            NoReply::CannotCompose => "cannot-compose",
            NoReply::TesterItself => "tester-itself",
        }
    }
}

impl fmt::Display for NoReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NoReply::MailboxNotReplied => "replies are not sent for this mailbox",
            NoReply::NullSender => "null sender",
            NoReply::DmarcNotPassed => "DMARC did not pass",
            NoReply::SenderNotAligned => {
                "the MAIL FROM address is neither SPF-authenticated nor the From address"
            }
            NoReply::AutoSubmitted => "auto-submitted",
            NoReply::BulkPrecedence => "bulk, list or junk precedence",
            NoReply::MailingList => "mailing list",
            NoReply::RateLimitedAddress => "rate limited (this address had a reply recently)",
            NoReply::RateLimitedDomain => "rate limited (this domain had its replies recently)",
            NoReply::RateLimitedClient => {
                "rate limited (this sending server had its replies recently)"
            }
            NoReply::QueueFull => "the outgoing queue is full",
            NoReply::CannotCompose => "the reply could not be composed",
            NoReply::TesterItself => "the sender is the tester itself (one of its own domains)",
        })
    }
}

impl FromStr for NoReply {
    type Err = String;

    fn from_str(token: &str) -> Result<NoReply, String> {
        NoReply::ALL
            .into_iter()
            .find(|reason| reason.as_str() == token)
            .ok_or_else(|| format!("unknown no-reply reason {token:?}"))
    }
}

/// What an outgoing message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutgoingKind {
    /// A reply with a tested message's results.
    Reply,
    /// The weekly summary to an operator.
    Summary,
}

impl OutgoingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutgoingKind::Reply => "reply",
            OutgoingKind::Summary => "summary",
        }
    }

    fn parse(text: &str) -> StoreResult<OutgoingKind> {
        match text {
            "reply" => Ok(OutgoingKind::Reply),
            "summary" => Ok(OutgoingKind::Summary),
            other => Err(unreadable(format!("unknown outgoing kind {other:?}"))),
        }
    }
}

/// Where an outgoing message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutgoingState {
    /// Waiting for its next attempt.
    Queued,
    /// A server took it.
    Sent,
    /// Refused for good, or still not taken when its time ran out.
    Failed,
}

impl OutgoingState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutgoingState::Queued => "queued",
            OutgoingState::Sent => "sent",
            OutgoingState::Failed => "failed",
        }
    }

    fn parse(text: &str) -> StoreResult<OutgoingState> {
        match text {
            "queued" => Ok(OutgoingState::Queued),
            "sent" => Ok(OutgoingState::Sent),
            "failed" => Ok(OutgoingState::Failed),
            other => Err(unreadable(format!("unknown outgoing state {other:?}"))),
        }
    }
}

fn unreadable(problem: String) -> StoreError {
    StoreError::Config(format!(
        "the database holds data this version of authcheck cannot read ({problem})"
    ))
}

/// A message about to be queued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOutgoing {
    pub kind: OutgoingKind,
    /// The one recipient (RCPT TO).
    pub recipient: String,
    /// The address of the client whose message this answers (empty for a summary): the
    /// per-client rate limit counts by it.
    pub client: String,
    /// The message, unsigned (it is signed at each attempt), at most [`MAX_OUTGOING_BYTES`].
    pub message: Vec<u8>,
    pub created_at: i64,
    /// After this the message is not tried again.
    pub give_up_at: i64,
}

/// At most `count` replies per `window_seconds`; a count of 0 is no limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub window_seconds: i64,
}

/// The limits a reply is queued within.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyLimits {
    pub per_address: RateLimit,
    pub per_domain: RateLimit,
    pub per_client: RateLimit,
    /// The most messages queued (not yet sent or failed) at once.
    pub max_queued: u32,
}

/// A claimed message, to be attempted now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub id: String,
    pub kind: OutgoingKind,
    pub recipient: String,
    pub message: Vec<u8>,
    pub created_at: i64,
    pub give_up_at: i64,
    /// Attempts made before this one.
    pub attempts: i64,
    /// The results a reply answers (the tested message's), for the session log's link to
    /// them; empty for a summary, and for a reply to a private test (see `private`).
    pub result_ids: Vec<String>,
    /// Whether the message answers a private test: then nothing public may show it (its
    /// existence tells that the test passed DMARC).
    pub private: bool,
}

/// One delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingAttempt {
    pub at: i64,
    pub ok: bool,
    /// The server tried (`name [address]`), or the route that could not be found.
    pub server: String,
    /// The SMTP step that failed (`connect`, `RCPT TO`, ...), or `route`.
    pub step: Option<String>,
    /// The server's last reply, or what went wrong.
    pub detail: String,
    pub tls: Option<String>,
    /// The outbound session in the SMTP session log that shows this attempt's transcript,
    /// when it reached a server and the session was stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

/// What follows an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterAttempt {
    Sent,
    /// Try again at this time.
    RetryAt(i64),
    Failed,
}

/// An outgoing message as the result page and the API show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingStatus {
    pub id: String,
    pub kind: OutgoingKind,
    pub recipient: String,
    pub state: OutgoingState,
    pub created_at: i64,
    /// When the next attempt is due (meaningful while queued).
    pub next_attempt_at: i64,
    pub give_up_at: i64,
    /// Oldest first, at most [`MAX_ATTEMPTS_LISTED`].
    pub attempts: Vec<OutgoingAttempt>,
}

/// Whether a tested message got a reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyDecision {
    pub decided_at: i64,
    /// Why there is no reply, or `None` when one was queued.
    pub no_reply: Option<NoReply>,
    /// The queued reply.
    pub reply: Option<OutgoingStatus>,
}

const CLAIM_COLUMNS: &str =
    "id, kind, recipient, message, created_at, give_up_at, attempts, private";

pub(crate) struct Outgoing<'p, DB: Database>(pub(crate) &'p Pool<DB>);

impl<'p, DB> Outgoing<'p, DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// See [`crate::ResultStore::queue_reply`].
    pub async fn queue_reply(
        &self,
        result_ids: &[String],
        reply: NewOutgoing,
        limits: &ReplyLimits,
    ) -> StoreResult<Result<String, NoReply>> {
        let now = reply.created_at;
        let addressing = Addressing::of(&reply);
        let mut tx = self.0.begin().await.map_err(DB::failure)?;
        take_decision_turn(&mut tx).await?;
        let limits_in_order = [
            (
                "recipient",
                addressing.recipient.as_str(),
                limits.per_address,
                NoReply::RateLimitedAddress,
            ),
            (
                "recipient_domain",
                addressing.domain.as_str(),
                limits.per_domain,
                NoReply::RateLimitedDomain,
            ),
            (
                "client",
                addressing.client.as_str(),
                limits.per_client,
                NoReply::RateLimitedClient,
            ),
        ];
        let mut refused = None;
        for (column, value, limit, reason) in limits_in_order {
            if limit.count == 0 {
                continue;
            }
            let sql = format!(
                "SELECT COUNT(*) FROM outgoing WHERE kind = 'reply' AND {column} = $1 \
                 AND created_at > $2"
            );
            let sent: i64 = sqlx::query_scalar::<DB, i64>(&sql)
                .bind(value)
                .bind(now - limit.window_seconds)
                .fetch_one(&mut *tx)
                .await
                .map_err(DB::failure)?;
            if sent >= i64::from(limit.count) {
                refused = Some(reason);
                break;
            }
        }
        if refused.is_none() && queued_count(&mut tx).await? >= i64::from(limits.max_queued) {
            refused = Some(NoReply::QueueFull);
        }
        if refused.is_none() && reply.message.len() > MAX_OUTGOING_BYTES {
            refused = Some(NoReply::CannotCompose);
        }
        let reply_id = match refused {
            Some(_) => None,
            None => Some(insert_outgoing(&mut tx, &reply, &addressing).await?),
        };
        for result_id in result_ids {
            sqlx::query::<DB>(
                "INSERT INTO reply_decisions (result_id, decided_at, reply_id, no_reply) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (result_id) DO NOTHING",
            )
            .bind(clean(result_id))
            .bind(now)
            .bind(reply_id.clone())
            .bind(refused.map(|reason| reason.as_str().to_owned()))
            .execute(&mut *tx)
            .await
            .map_err(DB::failure)?;
        }
        if let Some(id) = &reply_id {
            // Kept on the message: the results may be purged while it still waits.
            sqlx::query::<DB>(
                "UPDATE outgoing SET private = 1 WHERE id = $1 AND EXISTS (SELECT 1 \
                 FROM reply_decisions d JOIN results r ON r.id = d.result_id \
                 WHERE d.reply_id = $1 AND r.private_test IS NOT NULL)",
            )
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(DB::failure)?;
        }
        tx.commit().await.map_err(DB::failure)?;
        Ok(match (reply_id, refused) {
            (Some(id), _) => Ok(id),
            (None, Some(reason)) => Err(reason),
            (None, None) => unreachable!("either queued or refused"),
        })
    }

    /// See [`crate::ResultStore::record_no_reply`].
    pub async fn record_no_reply(
        &self,
        result_ids: &[String],
        reason: NoReply,
        at: i64,
    ) -> StoreResult<()> {
        let mut tx = self.0.begin().await.map_err(DB::failure)?;
        for result_id in result_ids {
            sqlx::query::<DB>(
                "INSERT INTO reply_decisions (result_id, decided_at, reply_id, no_reply) \
                 VALUES ($1, $2, NULL, $3) ON CONFLICT (result_id) DO NOTHING",
            )
            .bind(clean(result_id))
            .bind(at)
            .bind(reason.as_str())
            .execute(&mut *tx)
            .await
            .map_err(DB::failure)?;
        }
        tx.commit().await.map_err(DB::failure)
    }

    /// See [`crate::ResultStore::queue_outgoing`].
    pub async fn queue_outgoing(
        &self,
        message: NewOutgoing,
        max_queued: u32,
    ) -> StoreResult<Option<String>> {
        let mut tx = self.0.begin().await.map_err(DB::failure)?;
        let id = queue_within(&mut tx, std::slice::from_ref(&message), max_queued)
            .await?
            .remove(0);
        tx.commit().await.map_err(DB::failure)?;
        Ok(id)
    }

    /// See [`crate::ResultStore::queue_claimed`].
    pub async fn queue_claimed(
        &self,
        claim: &SlotClaim<'_>,
        messages: Vec<NewOutgoing>,
        max_queued: u32,
    ) -> StoreResult<Option<Vec<Option<String>>>> {
        let mut tx = self.0.begin().await.map_err(DB::failure)?;
        let claimed = sqlx::query_scalar::<DB, i64>(CLAIM_SELF_CHECK_SQL)
            .bind(clean(claim.target))
            .bind(claim.slot)
            .bind(clean(claim.instance))
            .bind(claim.now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(DB::failure)?;
        if claimed.is_none() {
            return Ok(None);
        }
        let ids = queue_within(&mut tx, &messages, max_queued).await?;
        tx.commit().await.map_err(DB::failure)?;
        Ok(Some(ids))
    }

    /// See [`crate::ResultStore::claim_outgoing`].
    pub async fn claim(
        &self,
        instance: &str,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> StoreResult<Vec<OutgoingMessage>> {
        // The lease is checked again on the row being updated: on PostgreSQL an instance that
        // waited for another's claim of the same row sees the new lease and skips it.
        let sql = format!(
            "UPDATE outgoing SET claimed_by = $1, claimed_until = $2 WHERE id IN \
             (SELECT id FROM outgoing WHERE state = 'queued' AND next_attempt_at <= $3 \
              AND claimed_until < $3 ORDER BY next_attempt_at LIMIT $4) \
             AND state = 'queued' AND claimed_until < $3 RETURNING {CLAIM_COLUMNS}"
        );
        let rows = sqlx::query::<DB>(&sql)
            .bind(clean(instance))
            .bind(lease_until)
            .bind(now)
            .bind(i64::from(limit.clamp(1, MAX_CLAIM)))
            .fetch_all(self.0)
            .await
            .map_err(DB::failure)?;
        let mut claimed = rows
            .iter()
            .map(|row| -> StoreResult<OutgoingMessage> {
                let text = |n: usize| row.try_get::<String, usize>(n).map_err(DB::failure);
                let number = |n: usize| row.try_get::<i64, usize>(n).map_err(DB::failure);
                Ok(OutgoingMessage {
                    id: text(0)?,
                    kind: OutgoingKind::parse(&text(1)?)?,
                    recipient: text(2)?,
                    message: row.try_get::<Vec<u8>, usize>(3).map_err(DB::failure)?,
                    created_at: number(4)?,
                    give_up_at: number(5)?,
                    attempts: number(6)?,
                    result_ids: Vec::new(),
                    private: number(7)? != 0,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        for message in &mut claimed {
            if message.kind != OutgoingKind::Reply {
                continue;
            }
            let answered = sqlx::query::<DB>(
                "SELECT d.result_id, r.private_test FROM reply_decisions d \
                 LEFT JOIN results r ON r.id = d.result_id WHERE d.reply_id = $1 \
                 ORDER BY d.result_id",
            )
            .bind(message.id.as_str())
            .fetch_all(self.0)
            .await
            .map_err(DB::failure)?;
            for row in answered {
                let result_id = row.try_get::<String, usize>(0).map_err(DB::failure)?;
                let private_test = row
                    .try_get::<Option<String>, usize>(1)
                    .map_err(DB::failure)?;
                if private_test.is_some() {
                    message.private = true;
                }
                message.result_ids.push(result_id);
            }
            if message.private {
                message.result_ids.clear();
            }
        }
        claimed.sort_by_key(|message| message.created_at);
        Ok(claimed)
    }

    /// See [`crate::ResultStore::renew_outgoing_claim`].
    pub async fn renew(
        &self,
        id: &str,
        claimant: &str,
        now: i64,
        lease_until: i64,
    ) -> StoreResult<bool> {
        let renewed = sqlx::query::<DB>(
            "UPDATE outgoing SET claimed_until = $3 WHERE id = $1 AND claimed_by = $2 \
             AND state = 'queued' AND claimed_until >= $4 RETURNING id",
        )
        .bind(id)
        .bind(clean(claimant))
        .bind(lease_until)
        .bind(now)
        .fetch_optional(self.0)
        .await
        .map_err(DB::failure)?;
        Ok(renewed.is_some())
    }

    /// See [`crate::ResultStore::record_attempt`].
    pub async fn record_attempt(
        &self,
        id: &str,
        claimant: &str,
        attempt: OutgoingAttempt,
        after: AfterAttempt,
    ) -> StoreResult<bool> {
        let (state, next) = match after {
            AfterAttempt::Sent => (OutgoingState::Sent, attempt.at),
            AfterAttempt::RetryAt(at) => (OutgoingState::Queued, at),
            AfterAttempt::Failed => (OutgoingState::Failed, attempt.at),
        };
        let mut tx = self.0.begin().await.map_err(DB::failure)?;
        let updated = sqlx::query::<DB>(
            "UPDATE outgoing SET attempts = attempts + 1, state = $2, next_attempt_at = $3, \
             claimed_by = '', claimed_until = 0 WHERE id = $1 AND claimed_by = $4 RETURNING id",
        )
        .bind(id)
        .bind(state.as_str())
        .bind(next)
        .bind(clean(claimant))
        .fetch_optional(&mut *tx)
        .await
        .map_err(DB::failure)?;
        if updated.is_none() {
            // Another instance holds the message now: its attempt is the one to record.
            return Ok(false);
        }
        sqlx::query::<DB>(
            "INSERT INTO outgoing_attempts (outgoing_id, at, ok, server, step, detail, tls, \
             session_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(attempt.at)
        .bind(i64::from(attempt.ok))
        .bind(bounded(&attempt.server))
        .bind(attempt.step.as_deref().map(bounded))
        .bind(bounded(&attempt.detail))
        .bind(attempt.tls.as_deref().map(bounded))
        .bind(attempt.session_id.as_deref().map(bounded))
        .execute(&mut *tx)
        .await
        .map_err(DB::failure)?;
        tx.commit().await.map_err(DB::failure)?;
        Ok(true)
    }

    /// See [`crate::ResultStore::outgoing_status`].
    pub async fn status(&self, id: &str) -> StoreResult<Option<OutgoingStatus>> {
        let row = sqlx::query::<DB>(
            "SELECT id, kind, recipient, state, created_at, next_attempt_at, give_up_at \
             FROM outgoing WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.0)
        .await
        .map_err(DB::failure)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let text = |n: usize| row.try_get::<String, usize>(n).map_err(DB::failure);
        let number = |n: usize| row.try_get::<i64, usize>(n).map_err(DB::failure);
        let attempts = sqlx::query::<DB>(
            "SELECT at, ok, server, step, detail, tls, session_id FROM outgoing_attempts \
             WHERE outgoing_id = $1 ORDER BY seq LIMIT $2",
        )
        .bind(id)
        .bind(i64::from(MAX_ATTEMPTS_LISTED))
        .fetch_all(self.0)
        .await
        .map_err(DB::failure)?
        .iter()
        .map(|row| -> StoreResult<OutgoingAttempt> {
            let text = |n: usize| row.try_get::<String, usize>(n).map_err(DB::failure);
            let maybe = |n: usize| row.try_get::<Option<String>, usize>(n).map_err(DB::failure);
            let number = |n: usize| row.try_get::<i64, usize>(n).map_err(DB::failure);
            Ok(OutgoingAttempt {
                at: number(0)?,
                ok: number(1)? != 0,
                server: text(2)?,
                step: maybe(3)?,
                detail: text(4)?,
                tls: maybe(5)?,
                session_id: maybe(6)?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
        Ok(Some(OutgoingStatus {
            id: text(0)?,
            kind: OutgoingKind::parse(&text(1)?)?,
            recipient: text(2)?,
            state: OutgoingState::parse(&text(3)?)?,
            created_at: number(4)?,
            next_attempt_at: number(5)?,
            give_up_at: number(6)?,
            attempts,
        }))
    }

    /// See [`crate::ResultStore::reply_decision`].
    pub async fn decision(&self, result_id: &str) -> StoreResult<Option<ReplyDecision>> {
        let row = sqlx::query::<DB>(
            "SELECT decided_at, reply_id, no_reply FROM reply_decisions WHERE result_id = $1",
        )
        .bind(result_id)
        .fetch_optional(self.0)
        .await
        .map_err(DB::failure)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let decided_at = row.try_get::<i64, usize>(0).map_err(DB::failure)?;
        let reply_id = row
            .try_get::<Option<String>, usize>(1)
            .map_err(DB::failure)?;
        let no_reply = row
            .try_get::<Option<String>, usize>(2)
            .map_err(DB::failure)?
            .map(|token| token.parse::<NoReply>().map_err(unreadable))
            .transpose()?;
        let reply = match reply_id {
            Some(id) => self.status(&id).await?,
            None => None,
        };
        Ok(Some(ReplyDecision {
            decided_at,
            no_reply,
            reply,
        }))
    }

    /// Deletes decisions, attempts and finished messages from before `cutoff`; queued
    /// messages stay until they are sent or given up.
    pub async fn purge(&self, cutoff: i64) -> StoreResult<()> {
        for sql in [
            "DELETE FROM reply_decisions WHERE decided_at < $1",
            "DELETE FROM outgoing_attempts WHERE at < $1",
            "DELETE FROM outgoing WHERE created_at < $1 AND state <> 'queued'",
        ] {
            sqlx::query::<DB>(sql)
                .bind(cutoff)
                .execute(self.0)
                .await
                .map_err(DB::failure)?;
        }
        Ok(())
    }
}

/// A message's recipient, its domain and the client it answers, as stored and counted.
struct Addressing {
    recipient: String,
    domain: String,
    client: String,
}

impl Addressing {
    fn of(message: &NewOutgoing) -> Addressing {
        let recipient = clean(&message.recipient).to_lowercase();
        Addressing {
            domain: domain_of(&recipient).unwrap_or_default(),
            client: clean(&message.client),
            recipient,
        }
    }
}

/// Written first in every transaction that queues: the decisions of every instance take
/// turns from here on, so the queue's count and the rate limits hold across instances.
async fn take_decision_turn<'c, DB>(tx: &mut sqlx::Transaction<'c, DB>) -> StoreResult<()>
where
    DB: Backend,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
{
    sqlx::query::<DB>("UPDATE outgoing_lock SET decisions = decisions + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await
        .map_err(DB::failure)?;
    Ok(())
}

/// How many messages wait in the queue.
async fn queued_count<'c, DB>(tx: &mut sqlx::Transaction<'c, DB>) -> StoreResult<i64>
where
    DB: Backend,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    sqlx::query_scalar::<DB, i64>("SELECT COUNT(*) FROM outgoing WHERE state = 'queued'")
        .fetch_one(&mut **tx)
        .await
        .map_err(DB::failure)
}

/// Queues `messages` in `tx`, each as long as the queue holds fewer than `max_queued` and the
/// message is at most [`MAX_OUTGOING_BYTES`]: its id, or `None`.
async fn queue_within<'c, DB>(
    tx: &mut sqlx::Transaction<'c, DB>,
    messages: &[NewOutgoing],
    max_queued: u32,
) -> StoreResult<Vec<Option<String>>>
where
    DB: Backend,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    take_decision_turn(tx).await?;
    let mut queued = queued_count(tx).await?;
    let mut ids = Vec::with_capacity(messages.len());
    for message in messages {
        if message.message.len() > MAX_OUTGOING_BYTES || queued >= i64::from(max_queued) {
            ids.push(None);
            continue;
        }
        ids.push(Some(
            insert_outgoing(tx, message, &Addressing::of(message)).await?,
        ));
        queued += 1;
    }
    Ok(ids)
}

/// Inserts `message`, queued under a new id, which it returns.
async fn insert_outgoing<'c, DB>(
    tx: &mut sqlx::Transaction<'c, DB>,
    message: &NewOutgoing,
    addressing: &Addressing,
) -> StoreResult<String>
where
    DB: Backend,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
{
    let id = new_result_id();
    sqlx::query::<DB>(
        "INSERT INTO outgoing (id, kind, recipient, recipient_domain, client, message, \
         created_at, give_up_at, next_attempt_at, state) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7, 'queued')",
    )
    .bind(id.as_str())
    .bind(message.kind.as_str())
    .bind(addressing.recipient.as_str())
    .bind(addressing.domain.as_str())
    .bind(addressing.client.as_str())
    .bind(message.message.clone())
    .bind(message.created_at)
    .bind(message.give_up_at)
    .execute(&mut **tx)
    .await
    .map_err(DB::failure)?;
    Ok(id)
}

/// Text as stored: without NUL.
fn clean(text: &str) -> String {
    without_nul(text).into_owned()
}

/// An attempt's text as stored: at most 1000 bytes (a reply's text, an error), without NUL.
fn bounded(text: &str) -> String {
    clean(&text[..text.floor_char_boundary(1000)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_reads_back_from_its_token() {
        for reason in NoReply::ALL {
            assert_eq!(reason.as_str().parse::<NoReply>(), Ok(reason));
            assert!(!reason.to_string().is_empty());
        }
        assert!("forged".parse::<NoReply>().is_err());
        assert_eq!(NoReply::DmarcNotPassed.to_string(), "DMARC did not pass");
    }
}
