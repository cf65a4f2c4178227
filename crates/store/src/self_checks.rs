//! The self-checks: one row per message the tester sent itself through a real SMTP server
//! (what happened, how long until its result was stored, the verdicts it got), and the claims
//! that keep several instances sharing one database from checking the same target twice in
//! the same interval. Times are seconds since the epoch, durations milliseconds.
//!
//! It also keeps the tester's own signing key when several instances share the database,
//! so that they all sign with one key.
//!
//! The store keeps these as plain rows; running the check is the binary's business.

use serde::{Deserialize, Serialize};

/// Most self-checks one listing returns: a day of checks at one a minute, with room to spare;
/// a page stays small however short the operator made the interval.
pub const MAX_SELF_CHECKS_LISTED: u32 = 2000;

/// One self-check, as recorded and as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfCheck {
    /// The host name of the instance that ran it.
    pub instance: String,
    /// The SMTP server it sent to, `HOST:PORT`.
    pub target: String,
    pub started_at: i64,
    /// The message was taken and its result read back from the store.
    pub ok: bool,
    /// The SMTP step that failed (`connect`, `RCPT TO`, ...), or `result` when the message was
    /// taken but its result could not be read back.
    pub failed_step: Option<String>,
    /// The server's reply to the failed step, or what went wrong when there was none.
    pub failure: Option<String>,
    /// The TLS version used, when STARTTLS was.
    pub tls: Option<String>,
    /// From the start of the delivery to the stored result read back; for a failure, to the
    /// failure.
    pub duration_ms: Option<i64>,
    /// The id the target's 250 reply named.
    pub result_id: Option<String>,
    /// The verdicts of the stored result, e.g. `|OK| spf-pass`.
    pub verdicts: Option<String>,
}

pub(crate) const INSERT_SELF_CHECK_SQL: &str = "INSERT INTO self_checks \
    (instance, target, started_at, ok, failed_step, failure, tls, duration_ms, result_id, verdicts) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

pub(crate) const LIST_SELF_CHECKS_SQL: &str = "SELECT instance, target, started_at, ok, \
    failed_step, failure, tls, duration_ms, result_id, verdicts FROM self_checks \
    WHERE started_at >= $1 ORDER BY started_at DESC, seq DESC LIMIT $2";

/// Claims one interval's check of one target; the conflict makes every other instance's claim
/// of the same slot return no row.
pub(crate) const CLAIM_SELF_CHECK_SQL: &str = "INSERT INTO self_check_claims \
    (target, slot, instance, claimed_at) VALUES ($1, $2, $3, $4) \
    ON CONFLICT DO NOTHING RETURNING slot";

/// Keeps `pem` as key `name` unless a key of that name is kept already.
pub(crate) const OFFER_SIGNING_KEY_SQL: &str = "INSERT INTO signing_keys (name, pem, created_at) \
    VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";

pub(crate) const SIGNING_KEY_SQL: &str = "SELECT pem FROM signing_keys WHERE name = $1";

pub(crate) const PURGE_SELF_CHECKS_SQL: &str = "DELETE FROM self_checks WHERE started_at < $1";
pub(crate) const PURGE_SELF_CHECK_CLAIMS_SQL: &str =
    "DELETE FROM self_check_claims WHERE claimed_at < $1";

/// Whether a slot is claimed, to skip the work of a slot claimed already.
pub(crate) const SELF_CHECK_CLAIMED_SQL: &str =
    "SELECT slot FROM self_check_claims WHERE target = $1 AND slot = $2";

/// How much longer than the results a claim is kept: two of the longest interval that claims
/// (the weekly summary's week). A claim purged while its interval still runs would be
/// claimed, and its work done, again; so however short `retention` is, a claim outlives its
/// interval.
pub const CLAIMS_KEPT_BEYOND_RETENTION: i64 = 14 * 86_400;

pub(crate) type SelfCheckRow = (
    String,
    String,
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
);

pub(crate) fn self_check(row: SelfCheckRow) -> SelfCheck {
    let (
        instance,
        target,
        started_at,
        ok,
        failed_step,
        failure,
        tls,
        duration_ms,
        result_id,
        verdicts,
    ) = row;
    SelfCheck {
        instance,
        target,
        started_at,
        ok: ok != 0,
        failed_step,
        failure,
        tls,
        duration_ms,
        result_id,
        verdicts,
    }
}
