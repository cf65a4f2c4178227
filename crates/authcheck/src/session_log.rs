//! The SMTP session log's writer: the listener hands every finished session to
//! [`TesterDelivery`](crate::delivery::TesterDelivery), which queues it here without waiting;
//! one task gathers what queues up for a moment ([`GATHER_TIME`]), looks up the clients' PTR
//! names and stores the batch in one call (on SQLite, inside the group commit beside the
//! results).
//!
//! No SMTP reply ever waits for a session row: a session is queued after its connection is
//! closed, and when the queue is full (the store is far behind) the record is dropped and
//! counted in `authcheck_session_log_dropped_total` rather than held in memory.

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::Duration;

use authcheck_smtp::{PrivateToken, SessionRecord, TRANSCRIPT_TEXT_CHARS};
use authcheck_store::{Direction, NewSession, SessionEvent, SharedStore};
use authcheck_verifier::PRIVATE_PREFIX;
use futures::future::join_all;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::delivery::PtrLookup;

/// Sessions that may wait for the writer; past this they are dropped and counted.
const QUEUE_DEPTH: usize = 4096;
/// The most sessions stored in one call. Small on purpose: on SQLite the batch shares the
/// results' commit, and 256 sessions at once held the results beside them back (p99 DATA→250
/// 12.2–15.7 ms against 10.3–14.4 ms without a session log, and 20 MB more memory); with 32
/// the p99 and memory were those of no log at all (README, "Cost of the session log").
const MAX_BATCH: usize = 32;
/// How long the PTR lookup of a session's client may take; past it the session is stored
/// without a PTR name.
const PTR_TIME_LIMIT: Duration = Duration::from_secs(2);
/// How long the writer gathers sessions after the first of a batch arrives, unless
/// [`MAX_BATCH`] come sooner: under load the sessions of many connections then share one
/// insert (and, on SQLite, one commit with the results) instead of each few their own; a
/// session shows in `/logs` this much later at most.
const GATHER_TIME: Duration = Duration::from_millis(200);

/// The sending end, held by the delivery.
pub struct SessionLog {
    queue: mpsc::Sender<SessionRecord>,
}

impl SessionLog {
    /// Starts the writer task; it ends once every [`SessionLog`] is dropped and the queue is
    /// written.
    pub fn start(store: SharedStore, ptr: PtrLookup) -> (SessionLog, JoinHandle<()>) {
        let (queue, receiver) = mpsc::channel(QUEUE_DEPTH);
        let writer = tokio::spawn(write_sessions(store, receiver, ptr));
        (SessionLog { queue }, writer)
    }

    /// Queues `record` without waiting.
    pub fn record(&self, record: SessionRecord) {
        if self.queue.try_send(record).is_err() {
            metrics::counter!("authcheck_session_log_dropped_total").increment(1);
        }
    }
}

async fn write_sessions(
    store: SharedStore,
    mut queue: mpsc::Receiver<SessionRecord>,
    ptr: PtrLookup,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let gathered_until = tokio::time::Instant::now() + GATHER_TIME;
        while batch.len() < MAX_BATCH {
            let room = MAX_BATCH - batch.len();
            match tokio::time::timeout_at(gathered_until, queue.recv_many(&mut batch, room)).await {
                // More came; the queue closing (0) or the time being up ends the gathering.
                Ok(received) if received > 0 => {}
                _ => break,
            }
        }
        let records = std::mem::take(&mut batch);
        let names = join_all(
            records
                .iter()
                .map(|record| ptr.name_of(record.client.ip(), PTR_TIME_LIMIT)),
        )
        .await;
        let sessions: Vec<NewSession> = records
            .into_iter()
            .zip(names)
            .map(|(record, name)| new_session(record, name))
            .collect();
        let count = sessions.len();
        if let Err(error) = store.insert_sessions(sessions).await {
            metrics::counter!("authcheck_session_log_dropped_total").increment(count as u64);
            tracing::warn!(%error, sessions = count, "could not store SMTP session log entries");
        }
    }
}

/// What the session log shows in place of a private test's token.
const HIDDEN_TOKEN: &str = "(private)";

/// `text` with the token of every private test address (`test-<token>`, in any case) hidden:
/// the token is the key to the test's page, and `/logs` is public. A line cut short in the
/// middle of a token ends in part of it, which is hidden too: a part is most of the key.
/// Borrowed as it is when it holds no `test-`, as nearly every line does.
fn hide_tokens(text: &str) -> Cow<'_, str> {
    let Some(mut at) = find_private_prefix(text) else {
        return Cow::Borrowed(text);
    };
    let cut = text.chars().count() >= TRANSCRIPT_TEXT_CHARS;
    let mut shown = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let token_start = at + PRIVATE_PREFIX.len();
        shown.push_str(&rest[..token_start]);
        rest = &rest[token_start..];
        let whole = rest.get(..PrivateToken::LEN).and_then(PrivateToken::parse);
        // The start of a token (padded with a letter of its alphabet, it parses) at the end of
        // a line the transcript cut.
        let cut_short = cut
            && !rest.is_empty()
            && rest.len() < PrivateToken::LEN
            && PrivateToken::parse(&format!("{rest:a<width$}", width = PrivateToken::LEN))
                .is_some();
        if whole.is_some() || cut_short {
            shown.push_str(HIDDEN_TOKEN);
            rest = &rest[rest.len().min(PrivateToken::LEN)..];
        }
        match find_private_prefix(rest) {
            Some(next) => at = next,
            None => break,
        }
    }
    shown.push_str(rest);
    Cow::Owned(shown)
}

/// Where `test-` starts in `text`, in any case. It is ASCII, so that is a character boundary.
fn find_private_prefix(text: &str) -> Option<usize> {
    text.as_bytes()
        .windows(PRIVATE_PREFIX.len())
        .position(|window| window.eq_ignore_ascii_case(PRIVATE_PREFIX.as_bytes()))
}

/// Keeps private tests' tokens out of the session log wherever the transcript shows them. A
/// session that wrote to one comes without result ids already: the listener decides that from
/// the recipients ([`authcheck_smtp::RESULTS_HIDDEN`]), as the kept text may not show it.
fn without_private_keys(session: &mut NewSession) {
    for event in &mut session.events {
        for text in [&mut event.command, &mut event.text] {
            if let Cow::Owned(hidden) = hide_tokens(text) {
                *text = hidden;
            }
        }
    }
}

/// The store's form of a session record, without the keys to private tests
/// ([`without_private_keys`]).
pub fn new_session(record: SessionRecord, client_ptr: Option<String>) -> NewSession {
    let mut session = session_of(record, client_ptr);
    without_private_keys(&mut session);
    session
}

fn session_of(record: SessionRecord, client_ptr: Option<String>) -> NewSession {
    let (tls_version, tls_cipher) = match record.tls {
        Some(tls) => (Some(tls.version), Some(tls.cipher)),
        None => (None, None),
    };
    NewSession {
        id: None,
        direction: Direction::Inbound,
        listed: true,
        started_at: record.started_at,
        ended_at: record.ended_at,
        client_ip: record.client.ip().to_string(),
        client_port: record.client.port(),
        client_ptr,
        helo: record.helo,
        tls_version,
        tls_cipher,
        mail_from: record.mail_from,
        ending: record.ending.as_str().to_owned(),
        events: record
            .events
            .into_iter()
            .map(|event| SessionEvent {
                at: event.at,
                command: event.command,
                code: event.code,
                status: event.status,
                text: event.text,
            })
            .collect(),
        events_left_out: u32::try_from(record.events_left_out).unwrap_or(u32::MAX),
        left_out_at: u32::try_from(record.left_out_at).unwrap_or(u32::MAX),
        result_ids: record.result_ids,
    }
}

/// Loopback clients (tests, local tools) have no PTR name worth a query.
pub fn worth_looking_up(ip: IpAddr) -> bool {
    !ip.is_loopback() && !ip.is_unspecified()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_hidden_in_any_case_and_other_text_is_kept() {
        assert_eq!(
            hide_tokens("RCPT TO:<TEST-ABCDEFGHIJKLMNOPQRST+x@tester.example>"),
            "RCPT TO:<TEST-(private)+x@tester.example>"
        );
        assert_eq!(
            hide_tokens("<test-abcdefghijklmnopqrst@a> and <test-bbcdefghijklmnopqrst@b>"),
            "<test-(private)@a> and <test-(private)@b>"
        );
        for kept in [
            "RCPT TO:<spf@t>",
            "test-short@t",
            "test-",
            "contest-x",
            "tést-ü",
            "test-abc@t",
        ] {
            assert_eq!(hide_tokens(kept), kept);
        }
    }

    #[test]
    fn a_token_cut_short_at_the_end_of_a_cut_line_is_hidden() {
        let start = format!("RCPT TO:<@{}:test-", "a".repeat(180));
        let cut = format!("{start}abcdefghij");
        let cut = &cut[..TRANSCRIPT_TEXT_CHARS];
        assert_eq!(hide_tokens(cut), format!("{start}(private)"));
    }
}
