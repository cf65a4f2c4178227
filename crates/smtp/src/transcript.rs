//! The record of one session that the listener hands to [`Delivery::session_ended`]: who
//! connected, each command with its reply, the results stored and why the session ended.
//!
//! It is bounded whatever the client does: the first [`TRANSCRIPT_HEAD`] and the last
//! [`TRANSCRIPT_TAIL`] events are kept and those between counted, each line cut to
//! [`TRANSCRIPT_TEXT_CHARS`] characters. Message data is never recorded.
//!
//! A session that gave a private test address as a recipient names no result ids at all, in
//! its list or in the replies that named them: an id is the key to its result, and the log is
//! public. That is decided here from the recipient, when the record is made, because the
//! bounded text may no longer show the private message (it can fall between head and tail)
//! and a cut reply line can hold part of an id.
//!
//! [`Delivery::session_ended`]: crate::Delivery::session_ended

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::config::{
    TRANSCRIPT_HEAD, TRANSCRIPT_RESULT_IDS, TRANSCRIPT_TAIL, TRANSCRIPT_TEXT_CHARS,
};
use crate::delivery::TlsInfo;
use crate::replies::Reply;

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnding {
    /// The client sent QUIT.
    ClientQuit,
    /// The client closed the connection without QUIT.
    ClientClosed,
    /// The client sent nothing within the command timeout (421).
    CommandTimeout,
    /// The session reached its time limit (421).
    SessionTimeLimit,
    /// The client sent too many refused commands (421).
    TooManyErrors,
    /// A BDAT chunk over the size limit, not read (421).
    ChunkTooBig,
    /// The server is shutting down (421).
    Shutdown,
    /// Refused at connect: the server has as many sessions as it serves at once (421).
    TooManyConnections,
    /// Refused at connect: this client has as many sessions as one client may (421).
    TooManyFromAddress,
    /// The TLS handshake after STARTTLS failed or took too long.
    TlsFailed,
    /// A connection error: reset, broken pipe, or replies the client did not read in time.
    ConnectionError,
}

impl SessionEnding {
    /// A stable token for storage, logs and filters: `quit`, `closed`, `timeout`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            SessionEnding::ClientQuit => "quit",
            SessionEnding::ClientClosed => "closed",
            SessionEnding::CommandTimeout => "timeout",
            SessionEnding::SessionTimeLimit => "time-limit",
            SessionEnding::TooManyErrors => "too-many-errors",
            SessionEnding::ChunkTooBig => "chunk-too-big",
            SessionEnding::Shutdown => "shutdown",
            SessionEnding::TooManyConnections => "too-many-connections",
            SessionEnding::TooManyFromAddress => "too-many-from-address",
            SessionEnding::TlsFailed => "tls-failed",
            SessionEnding::ConnectionError => "connection-error",
        }
    }

    /// Every ending, for documentation and parsing.
    pub const ALL: [SessionEnding; 11] = [
        SessionEnding::ClientQuit,
        SessionEnding::ClientClosed,
        SessionEnding::CommandTimeout,
        SessionEnding::SessionTimeLimit,
        SessionEnding::TooManyErrors,
        SessionEnding::ChunkTooBig,
        SessionEnding::Shutdown,
        SessionEnding::TooManyConnections,
        SessionEnding::TooManyFromAddress,
        SessionEnding::TlsFailed,
        SessionEnding::ConnectionError,
    ];

    /// The ending named by [`SessionEnding::as_str`]'s token.
    pub fn parse(token: &str) -> Option<SessionEnding> {
        SessionEnding::ALL
            .into_iter()
            .find(|ending| ending.as_str() == token)
    }

    /// Whether the client ended the session itself, as clients normally do.
    pub(crate) fn by_client(self) -> bool {
        matches!(
            self,
            SessionEnding::ClientQuit | SessionEnding::ClientClosed
        )
    }
}

impl fmt::Display for SessionEnding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SessionEnding::ClientQuit => "client quit",
            SessionEnding::ClientClosed => "client closed the connection",
            SessionEnding::CommandTimeout => "command timeout",
            SessionEnding::SessionTimeLimit => "session time limit reached",
            SessionEnding::TooManyErrors => "too many refused commands",
            SessionEnding::ChunkTooBig => "a BDAT chunk over the size limit",
            SessionEnding::Shutdown => "server shutting down",
            SessionEnding::TooManyConnections => "refused: too many connections",
            SessionEnding::TooManyFromAddress => "refused: too many connections from the address",
            SessionEnding::TlsFailed => "TLS handshake failed",
            SessionEnding::ConnectionError => "connection error",
        })
    }
}

/// One command and its reply, or a reply the server gave on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptEvent {
    pub at: DateTime<Utc>,
    /// The command line without its line end, cut; or, for a reply without a command, what
    /// prompted it in parentheses: `(connect)`, `(end of data)`, `(timeout)`, `(shutdown)`,
    /// `(line too long)`, `(server)`.
    pub command: String,
    /// The reply code; 0 when the session ended before the command was answered.
    pub code: u16,
    /// The enhanced status code (RFC 3463), such as `5.7.1`, when the reply has one.
    pub status: Option<String>,
    /// The first line of the reply after the code and status, cut.
    pub text: String,
}

/// Everything the listener knew of one finished session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub client: SocketAddr,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    /// The last name given in EHLO or HELO.
    pub helo: Option<String>,
    pub tls: Option<TlsInfo>,
    /// The reverse-path of the first accepted MAIL FROM (empty for `<>`).
    pub mail_from: Option<String>,
    pub ending: SessionEnding,
    /// The first and last events; `events_left_out` more lay between `events[..left_out_at]`
    /// and the rest.
    pub events: Vec<TranscriptEvent>,
    pub events_left_out: usize,
    pub left_out_at: usize,
    /// The ids of the results the session's messages were stored as; empty when the session
    /// gave a private test address as a recipient.
    pub result_ids: Vec<String>,
}

/// What a reply that named stored results shows instead, in a session that wrote to a private
/// test address.
pub const RESULTS_HIDDEN: &str =
    "Stored (result ids not shown: the session wrote to a private test address)";

/// An event as kept, and whether its reply named stored results.
struct Kept {
    event: TranscriptEvent,
    names_results: bool,
}

/// A session's transcript as it is written.
pub(crate) struct Transcript {
    started_at: DateTime<Utc>,
    started: Instant,
    head: Vec<Kept>,
    tail: VecDeque<Kept>,
    left_out: usize,
    /// The command waiting for its reply.
    pending: Option<String>,
    /// What the next reply without a command answers.
    prompt: Option<&'static str>,
    pub(crate) mail_from: Option<String>,
    result_ids: Vec<String>,
    /// Whether the next reply names stored results (set by [`Transcript::stored`]).
    results_in_reply: bool,
    /// Whether a private test address was accepted as a recipient.
    private: bool,
}

impl Transcript {
    pub(crate) fn new() -> Transcript {
        Transcript {
            started_at: Utc::now(),
            started: Instant::now(),
            head: Vec::new(),
            tail: VecDeque::new(),
            left_out: 0,
            pending: None,
            prompt: None,
            mail_from: None,
            result_ids: Vec::new(),
            results_in_reply: false,
            private: false,
        }
    }

    /// Wall-clock time, counted on the monotonic clock from the session's start so that
    /// the events of one session stay in order.
    fn now(&self) -> DateTime<Utc> {
        self.started_at + chrono::Duration::from_std(self.started.elapsed()).unwrap_or_default()
    }

    /// A command line has arrived; its reply comes with [`Transcript::reply`].
    pub(crate) fn command(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let head = &line[..line.len().min(TRANSCRIPT_TEXT_CHARS * 4)];
        self.finish_pending();
        self.pending = Some(cut(&String::from_utf8_lossy(head)));
    }

    /// The next reply without a command answers `what` (shown in parentheses).
    pub(crate) fn prompt(&mut self, what: &'static str) {
        self.prompt = Some(what);
    }

    pub(crate) fn reply(&mut self, reply: &Reply) {
        let command = match (self.pending.take(), self.prompt.take()) {
            (Some(command), _) => command,
            (None, Some(what)) => format!("({what})"),
            (None, None) => "(server)".to_owned(),
        };
        let first_line = reply.text().lines().next().unwrap_or("");
        let (status, text) = split_status(first_line);
        let event = TranscriptEvent {
            at: self.now(),
            command,
            code: reply.code(),
            status: status.map(str::to_owned),
            text: cut(text),
        };
        let names_results = std::mem::take(&mut self.results_in_reply);
        self.add(event, names_results);
    }

    /// A message was stored as the results `ids`, which the next reply names.
    pub(crate) fn stored(&mut self, ids: impl IntoIterator<Item = String>) {
        for id in ids {
            self.results_in_reply = true;
            if self.result_ids.len() < TRANSCRIPT_RESULT_IDS {
                self.result_ids.push(id);
            }
        }
    }

    /// A private test address was accepted as a recipient: the record will name no result
    /// ids, the other messages' included, as the README promises.
    pub(crate) fn private_recipient(&mut self) {
        self.private = true;
    }

    /// A command left without a reply (the connection ended first) is recorded with code 0.
    fn finish_pending(&mut self) {
        if let Some(command) = self.pending.take() {
            let event = TranscriptEvent {
                at: self.now(),
                command,
                code: 0,
                status: None,
                text: String::new(),
            };
            self.add(event, false);
        }
    }

    fn add(&mut self, event: TranscriptEvent, names_results: bool) {
        let kept = Kept {
            event,
            names_results,
        };
        if self.head.len() < TRANSCRIPT_HEAD {
            self.head.push(kept);
            return;
        }
        self.tail.push_back(kept);
        if self.tail.len() > TRANSCRIPT_TAIL {
            self.tail.pop_front();
            self.left_out += 1;
        }
    }

    pub(crate) fn finish(
        mut self,
        client: SocketAddr,
        helo: Option<String>,
        tls: Option<TlsInfo>,
        ending: SessionEnding,
    ) -> SessionRecord {
        self.finish_pending();
        let ended_at = self.now();
        let left_out_at = self.head.len();
        let private = self.private;
        let events = self
            .head
            .into_iter()
            .chain(self.tail)
            .map(|mut kept| {
                if private && kept.names_results {
                    kept.event.text = RESULTS_HIDDEN.to_owned();
                }
                kept.event
            })
            .collect();
        if private {
            self.result_ids.clear();
        }
        SessionRecord {
            client,
            started_at: self.started_at,
            ended_at,
            helo: helo.map(|helo| cut(&helo)),
            tls,
            mail_from: self.mail_from.map(|from| cut(&from)),
            ending,
            events,
            events_left_out: self.left_out,
            left_out_at,
            result_ids: self.result_ids,
        }
    }
}

/// The record of a connection refused before its session started.
pub(crate) fn refused(client: SocketAddr, reply: &Reply, ending: SessionEnding) -> SessionRecord {
    let mut transcript = Transcript::new();
    transcript.prompt("connect");
    transcript.reply(reply);
    transcript.finish(client, None, None, ending)
}

/// `text` cut to [`TRANSCRIPT_TEXT_CHARS`] characters.
fn cut(text: &str) -> String {
    match text.char_indices().nth(TRANSCRIPT_TEXT_CHARS) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

/// The enhanced status code at the start of a reply's text (`5.7.1 relaying denied`), and
/// the rest.
fn split_status(text: &str) -> (Option<&str>, &str) {
    let (first, rest) = text.split_once(' ').unwrap_or((text, ""));
    let mut parts = first.split('.');
    let is_status = matches!(parts.next(), Some("2" | "4" | "5"))
        && parts
            .by_ref()
            .take(2)
            .filter(|part| {
                (1..=3).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit())
            })
            .count()
            == 2
        && parts.next().is_none();
    if is_status {
        (Some(first), rest)
    } else {
        (None, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_status_is_split_from_the_text() {
        assert_eq!(
            split_status("5.7.1 relaying denied"),
            (Some("5.7.1"), "relaying denied")
        );
        assert_eq!(split_status("2.0.0 OK"), (Some("2.0.0"), "OK"));
        assert_eq!(
            split_status("authcheck.test greets x"),
            (None, "authcheck.test greets x")
        );
        assert_eq!(split_status("5.7 x"), (None, "5.7 x"));
        assert_eq!(split_status("5.1.1.1 x"), (None, "5.1.1.1 x"));
    }

    #[test]
    fn a_long_session_keeps_its_head_and_its_tail() {
        let mut transcript = Transcript::new();
        for n in 0..100 {
            transcript.command(format!("NOOP {n}\r\n").as_bytes());
            transcript.reply(&crate::replies::OK);
        }
        transcript.command(b"QUIT\r\n");
        let record = transcript.finish(
            "192.0.2.1:25".parse().unwrap(),
            None,
            None,
            SessionEnding::ClientClosed,
        );
        assert_eq!(record.events.len(), TRANSCRIPT_HEAD + TRANSCRIPT_TAIL);
        assert_eq!(
            record.events_left_out,
            101 - TRANSCRIPT_HEAD - TRANSCRIPT_TAIL
        );
        assert_eq!(record.left_out_at, TRANSCRIPT_HEAD);
        assert_eq!(record.events[0].command, "NOOP 0");
        assert_eq!(record.events[0].status.as_deref(), Some("2.0.0"));
        let last = record.events.last().unwrap();
        assert_eq!((last.command.as_str(), last.code), ("QUIT", 0));
    }

    /// A reply cut at [`TRANSCRIPT_TEXT_CHARS`] may end inside an id or its address; nothing of
    /// it may remain, whichever message came first.
    #[test]
    fn a_session_with_a_private_recipient_keeps_no_part_of_any_result_id() {
        let id = format!("private-{}", "x".repeat(180));
        let accepted = [crate::delivery::Accepted::Result {
            mailbox: crate::delivery::Mailbox::Check,
            url: format!("https://results.test/r/{id}"),
            id: id.clone(),
        }];
        let mut transcript = Transcript::new();
        transcript.stored([id.clone()]);
        transcript.reply(&crate::replies::stored(&accepted));
        transcript.command(b"RCPT TO:<test-abcdefghijklmnopqrst@t>\r\n");
        transcript.private_recipient();
        transcript.reply(&crate::replies::OK);
        let record = transcript.finish(
            "192.0.2.1:25".parse().unwrap(),
            None,
            None,
            SessionEnding::ClientQuit,
        );
        assert!(record.result_ids.is_empty());
        assert_eq!(record.events[0].text, RESULTS_HIDDEN);
        assert!(record.events.iter().all(|e| !e.text.contains("xxxx")));
    }

    #[test]
    fn lines_are_cut() {
        let mut transcript = Transcript::new();
        transcript.command(format!("HELO {}\r\n", "é".repeat(10_000)).as_bytes());
        transcript.reply(&crate::replies::OK);
        let record = transcript.finish(
            "192.0.2.1:25".parse().unwrap(),
            None,
            None,
            SessionEnding::ClientQuit,
        );
        assert_eq!(
            record.events[0].command.chars().count(),
            TRANSCRIPT_TEXT_CHARS
        );
    }

    #[test]
    fn endings_have_distinct_tokens_that_parse_back() {
        for ending in SessionEnding::ALL {
            assert_eq!(SessionEnding::parse(ending.as_str()), Some(ending));
        }
    }
}
