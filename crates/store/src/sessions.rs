//! The SMTP session log: one row per session, whatever it stored (a delivered message, a
//! relay attempt, a timeout), with its bounded transcript; both a client's sessions with the
//! listener ([`Direction::Inbound`]) and the tester's own delivery attempts to other servers
//! ([`Direction::Outbound`]: replies by mail, weekly summaries), which the statistics never
//! count as clients' sessions.
//!
//! The SMTP listener produces the transcript and the binary hands it here; the store knows a
//! session only as these plain values. Every text a client chose is stored bounded again here
//! (the listener bounds it first), so a row costs a bounded number of bytes whatever the
//! caller passes. Times are milliseconds since the Unix epoch on both backends, so the same
//! SQL compares them.

use crate::statement::{RowsPerStatement, Statement};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::record::{domain_of, new_result_id, without_nul};
use crate::{StoreError, StoreResult};
use authcheck_verifier::display::{MAX_DISPLAY_FIELD_BYTES, bounded_display_text};

/// The most transcript events one stored session keeps; more are dropped from the end.
pub const MAX_SESSION_EVENTS: usize = 64;
/// The most bytes of one event's command or reply text as stored.
pub const MAX_EVENT_TEXT_BYTES: usize = 512;
/// The most result ids one stored session keeps.
pub const MAX_SESSION_RESULT_IDS: usize = 64;
/// The most sessions one [`SessionQuery`] returns, whatever limit was asked for.
pub const MAX_SESSION_LIMIT: u32 = 200;

/// One command (or the server's own words: the greeting, a timeout) and its reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEvent {
    pub at: DateTime<Utc>,
    /// The command line as sent (cut), or a description in parentheses for replies the
    /// server sent without a command, such as `(connect)` or `(end of data)`.
    pub command: String,
    /// The reply code; 0 when the command got no reply (the connection ended first).
    pub code: u16,
    /// The enhanced status code (RFC 3463) of the reply, such as `5.7.1`, if it had one.
    pub status: Option<String>,
    /// The reply's first line after the code and status (cut).
    pub text: String,
}

/// Who opened a session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// A client connected to the listener (every session stored before directions existed).
    #[default]
    #[serde(rename = "in")]
    Inbound,
    /// The tester connected to another server to deliver a message of its outgoing queue.
    #[serde(rename = "out")]
    Outbound,
}

impl Direction {
    /// The stable token: stored, in the JSON API and in `/logs?direction=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "in",
            Direction::Outbound => "out",
        }
    }

    /// The token as stored; `None` for anything else.
    pub fn parse(token: &str) -> Option<Direction> {
        match token {
            "in" => Some(Direction::Inbound),
            "out" => Some(Direction::Outbound),
            _ => None,
        }
    }
}

/// A session as the log keeps it: about to be stored, or the body of a [`StoredSession`].
///
/// For an outbound session the "client" fields name the other end, the server the tester
/// connected to (its address, port and host name), and `helo` the name the tester gave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSession {
    /// The id to store the session under, chosen beforehand by [`new_session_id`] when the
    /// caller links to it (an outgoing attempt); a new one when `None`.
    #[serde(skip)]
    pub id: Option<String>,
    #[serde(default)]
    pub direction: Direction,
    /// Whether the public listings show the session. A session that is not listed is read
    /// by its id only: a reply to a private test's sender, whose existence would tell that
    /// the private test passed DMARC.
    #[serde(skip, default = "listed_by_default")]
    pub listed: bool,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub client_ip: String,
    pub client_port: u16,
    /// The PTR name of the client address, when it has one.
    pub client_ptr: Option<String>,
    /// The last name given in EHLO or HELO.
    pub helo: Option<String>,
    pub tls_version: Option<String>,
    pub tls_cipher: Option<String>,
    /// The reverse-path of the session's first accepted MAIL FROM (empty for `<>`).
    pub mail_from: Option<String>,
    /// Why the session ended, as a stable token (`quit`, `timeout`, ...).
    pub ending: String,
    pub events: Vec<SessionEvent>,
    /// Events the listener left out, between `events[..left_out_at]` and the rest.
    pub events_left_out: u32,
    pub left_out_at: u32,
    /// The ids of the results the session's messages were stored as.
    pub result_ids: Vec<String>,
}

/// A stored session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSession {
    /// Public id: 32 lowercase hex digits, like a result id.
    pub id: String,
    /// Store-wide insertion order (sessions are stored when they end).
    pub seq: i64,
    #[serde(flatten)]
    pub entry: NewSession,
}

impl StoredSession {
    /// The distinct reply codes of the session, in order of first appearance.
    pub fn codes(&self) -> Vec<u16> {
        distinct_codes(&self.entry.events)
    }
}

fn listed_by_default() -> bool {
    true
}

/// A new session id, for a session whose id the caller needs before storing it
/// ([`NewSession::id`]).
pub fn new_session_id() -> String {
    new_result_id()
}

/// Which sessions to list. Sessions that are not listed ([`NewSession::listed`]) are found
/// only by [`SessionQuery::id`].
#[derive(Clone, Debug, Default)]
pub struct SessionQuery {
    /// Only the session with this id, listed or not (its id is the key to it).
    pub id: Option<String>,
    /// Only sessions in this direction; both when `None`.
    pub direction: Option<Direction>,
    /// Only sessions started at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Only sessions started before this instant.
    pub until: Option<DateTime<Utc>>,
    /// Only sessions from this client address (exact).
    pub client: Option<String>,
    /// Only sessions whose MAIL FROM address, or its domain, equals this (any case).
    pub sender: Option<String>,
    /// Only sessions in which this reply code was given.
    pub code: Option<u16>,
    /// Only sessions older than the session with this id (paging, newest first).
    pub before: Option<String>,
    /// Only sessions stored after this `seq` (live updates, raw log paging).
    pub after_seq: Option<i64>,
    /// Oldest first instead of newest first.
    pub oldest_first: bool,
    /// At most this many; clamped to `1..=MAX_SESSION_LIMIT`.
    pub limit: u32,
}

/// Milliseconds since the epoch, as stored.
pub(crate) fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn distinct_codes(events: &[SessionEvent]) -> Vec<u16> {
    let mut codes = Vec::new();
    for event in events {
        if event.code != 0 && !codes.contains(&event.code) {
            codes.push(event.code);
        }
    }
    codes
}

/// A session made ready for the database: id chosen, text bounded and free of NUL, the
/// filter columns derived and the transcript serialized.
pub(crate) struct SessionRow {
    pub id: String,
    direction: Direction,
    listed: i32,
    pub(crate) started_ms: i64,
    ended_ms: i64,
    client_ip: String,
    client_port: i32,
    client_ptr: Option<String>,
    helo: Option<String>,
    tls_version: Option<String>,
    tls_cipher: Option<String>,
    mail_from: Option<String>,
    mail_from_lower: Option<String>,
    mail_from_domain: Option<String>,
    ending: String,
    codes: String,
    result_ids: String,
    events: String,
    events_left_out: i32,
    left_out_at: i32,
    /// The 4xx and 5xx replies of the kept events, code and enhanced status ('' if none),
    /// for the statistics.
    refusals: Vec<(u16, String)>,
}

fn shown(value: &str) -> String {
    without_nul(&bounded_display_text(value, MAX_DISPLAY_FIELD_BYTES)).into_owned()
}

/// `text` cut to at most `max` bytes on a character boundary, without NUL.
fn cut(text: &str, max: usize) -> String {
    without_nul(&text[..text.floor_char_boundary(max)]).into_owned()
}

impl SessionRow {
    pub fn new(session: NewSession) -> StoreResult<SessionRow> {
        let mut events = session.events;
        let mut left_out = session.events_left_out;
        if events.len() > MAX_SESSION_EVENTS {
            left_out = left_out.saturating_add((events.len() - MAX_SESSION_EVENTS) as u32);
            events.truncate(MAX_SESSION_EVENTS);
        }
        for event in &mut events {
            event.command = cut(&event.command, MAX_EVENT_TEXT_BYTES);
            event.text = cut(&event.text, MAX_EVENT_TEXT_BYTES);
            event.status = event.status.as_deref().map(|status| cut(status, 16));
        }
        let codes: String = distinct_codes(&events)
            .iter()
            .map(|code| format!(" {code}"))
            .collect::<String>()
            + " ";
        let refusals = events
            .iter()
            .filter(|event| event.code >= 400)
            .map(|event| (event.code, event.status.clone().unwrap_or_default()))
            .collect();
        let result_ids: Vec<&str> = session
            .result_ids
            .iter()
            .take(MAX_SESSION_RESULT_IDS)
            .map(|id| id.as_str())
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()))
            .collect();
        let events = serde_json::to_string(&events)
            .map_err(|error| StoreError::Config(format!("cannot encode a transcript: {error}")))?;
        let mail_from = session.mail_from.as_deref().map(shown);
        let id = session
            .id
            .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
            .unwrap_or_else(new_result_id);
        Ok(SessionRow {
            id,
            direction: session.direction,
            listed: i32::from(session.listed),
            started_ms: millis(session.started_at),
            ended_ms: millis(session.ended_at),
            client_ip: cut(&session.client_ip, 64),
            client_port: i32::from(session.client_port),
            client_ptr: session.client_ptr.as_deref().map(shown),
            helo: session.helo.as_deref().map(shown),
            tls_version: session.tls_version.as_deref().map(|v| cut(v, 64)),
            tls_cipher: session.tls_cipher.as_deref().map(|v| cut(v, 128)),
            mail_from_lower: mail_from.as_deref().map(str::to_lowercase),
            mail_from_domain: session
                .mail_from
                .as_deref()
                .and_then(domain_of)
                .map(|domain| shown(&domain)),
            mail_from,
            ending: cut(&session.ending, 64),
            codes,
            result_ids: result_ids.join(" "),
            events,
            events_left_out: i32::try_from(left_out).unwrap_or(i32::MAX),
            left_out_at: i32::try_from(session.left_out_at.min(MAX_SESSION_EVENTS as u32))
                .unwrap_or(0),
            refusals,
        })
    }
}

impl SessionRow {
    /// The 4xx and 5xx replies the session was given, in order.
    pub(crate) fn refusals(&self) -> &[(u16, String)] {
        &self.refusals
    }

    /// Whether a client opened the session: only those count in the statistics.
    pub(crate) fn is_inbound(&self) -> bool {
        self.direction == Direction::Inbound
    }
}

/// Adds to `statements` the inserts storing `rows` in `smtp_sessions`.
pub(crate) fn push_session_inserts<'q>(
    rows: &'q [SessionRow],
    rows_per_statement: RowsPerStatement,
    statements: &mut Vec<Statement<'q>>,
) {
    statements.extend(
        rows.chunks(rows_per_statement.of(MAX_SESSIONS_PER_INSERT))
            .map(sessions_insert),
    );
}

/// The statement storing `rows` (at most [`MAX_SESSIONS_PER_INSERT`]) in `smtp_sessions`.
fn sessions_insert(rows: &[SessionRow]) -> Statement<'_> {
    debug_assert!(rows.len() <= MAX_SESSIONS_PER_INSERT);
    let mut insert = Statement::new(
        "INSERT INTO smtp_sessions (id, started_ms, ended_ms, client_ip, client_port, \
         client_ptr, helo, tls_version, tls_cipher, mail_from, mail_from_lower, \
         mail_from_domain, ending, codes, result_ids, events, events_left_out, left_out_at, \
         direction, listed) ",
    );
    insert.push_values(rows, |values, row| {
        values
            .bind(row.id.as_str())
            .bind(row.started_ms)
            .bind(row.ended_ms)
            .bind(row.client_ip.as_str())
            .bind(row.client_port)
            .bind(row.client_ptr.as_deref())
            .bind(row.helo.as_deref())
            .bind(row.tls_version.as_deref())
            .bind(row.tls_cipher.as_deref())
            .bind(row.mail_from.as_deref())
            .bind(row.mail_from_lower.as_deref())
            .bind(row.mail_from_domain.as_deref())
            .bind(row.ending.as_str())
            .bind(row.codes.as_str())
            .bind(row.result_ids.as_str())
            .bind(row.events.as_str())
            .bind(row.events_left_out)
            .bind(row.left_out_at)
            .bind(row.direction.as_str())
            .bind(row.listed);
    });
    insert
}

/// Most session rows one insert statement carries: 20 values each, far below the databases'
/// limits on bound parameters.
const MAX_SESSIONS_PER_INSERT: usize = 256;

/// Deletes one batch of sessions started before `$1` (milliseconds), at most `$2`.
pub(crate) const PURGE_SESSIONS_SQL: &str = "DELETE FROM smtp_sessions WHERE seq IN \
    (SELECT seq FROM smtp_sessions WHERE started_ms < $1 ORDER BY seq LIMIT $2)";

pub(crate) const SESSION_SEQ_OF_ID_SQL: &str = "SELECT seq FROM smtp_sessions WHERE id = $1";

const SESSION_COLUMNS: &str = "id, seq, started_ms, ended_ms, client_ip, client_port, \
    client_ptr, helo, tls_version, tls_cipher, mail_from, ending, result_ids, events, \
    events_left_out, left_out_at, direction, listed";

/// A value for one `$n` placeholder of a session listing.
pub(crate) enum SessionBind {
    Text(String),
    Integer(i64),
}

/// The SQL for `query` and its values; `before_seq` is the `seq` of `query.before`.
pub(crate) fn session_list_sql(
    query: &SessionQuery,
    before_seq: Option<i64>,
) -> (String, Vec<SessionBind>) {
    let mut conditions = Vec::new();
    let mut binds = Vec::new();
    let mut placeholder = |value: SessionBind| {
        binds.push(value);
        format!("${}", binds.len())
    };
    match query.id.as_deref() {
        Some(id) => conditions.push(format!(
            "id = {}",
            placeholder(SessionBind::Text(id.to_owned()))
        )),
        None => conditions.push("listed = 1".to_owned()),
    }
    if let Some(direction) = query.direction {
        conditions.push(format!(
            "direction = {}",
            placeholder(SessionBind::Text(direction.as_str().to_owned()))
        ));
    }
    if let Some(since) = query.since {
        conditions.push(format!(
            "started_ms >= {}",
            placeholder(SessionBind::Integer(millis(since)))
        ));
    }
    if let Some(until) = query.until {
        conditions.push(format!(
            "started_ms < {}",
            placeholder(SessionBind::Integer(millis(until)))
        ));
    }
    if let Some(client) = query
        .client
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        conditions.push(format!(
            "client_ip = {}",
            placeholder(SessionBind::Text(client.to_owned()))
        ));
    }
    if let Some(sender) = query
        .sender
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let p = placeholder(SessionBind::Text(sender.to_lowercase()));
        conditions.push(format!("(mail_from_lower = {p} OR mail_from_domain = {p})"));
    }
    if let Some(code) = query.code {
        conditions.push(format!(
            "codes LIKE {}",
            placeholder(SessionBind::Text(format!("% {code} %")))
        ));
    }
    if let Some(seq) = before_seq {
        conditions.push(format!("seq < {}", placeholder(SessionBind::Integer(seq))));
    }
    if let Some(seq) = query.after_seq {
        conditions.push(format!("seq > {}", placeholder(SessionBind::Integer(seq))));
    }
    let limit = placeholder(SessionBind::Integer(i64::from(
        query.limit.clamp(1, MAX_SESSION_LIMIT),
    )));
    let filter = format!("WHERE {}", conditions.join(" AND "));
    let order = if query.oldest_first { "ASC" } else { "DESC" };
    (
        format!(
            "SELECT {SESSION_COLUMNS} FROM smtp_sessions {filter} ORDER BY seq {order} LIMIT {limit}"
        ),
        binds,
    )
}

/// One row of [`SESSION_COLUMNS`] as both backends decode it.
#[derive(sqlx::FromRow)]
pub(crate) struct StoredSessionRow {
    id: String,
    seq: i64,
    started_ms: i64,
    ended_ms: i64,
    client_ip: String,
    client_port: i32,
    client_ptr: Option<String>,
    helo: Option<String>,
    tls_version: Option<String>,
    tls_cipher: Option<String>,
    mail_from: Option<String>,
    ending: String,
    result_ids: String,
    events: String,
    events_left_out: i32,
    left_out_at: i32,
    direction: String,
    listed: i32,
}

impl TryFrom<StoredSessionRow> for StoredSession {
    type Error = StoreError;

    fn try_from(row: StoredSessionRow) -> StoreResult<StoredSession> {
        let events: Vec<SessionEvent> = serde_json::from_str(&row.events).map_err(|error| {
            StoreError::Config(format!(
                "session {} in the database has an unreadable transcript ({error}); the \
                 database was changed by something other than authcheck",
                row.id
            ))
        })?;
        let direction = Direction::parse(&row.direction).ok_or_else(|| {
            StoreError::Config(format!(
                "session {} in the database has the unknown direction {:?}; the database was \
                 changed by something other than authcheck",
                row.id, row.direction
            ))
        })?;
        Ok(StoredSession {
            id: row.id,
            seq: row.seq,
            entry: NewSession {
                id: None,
                direction,
                listed: row.listed != 0,
                started_at: from_millis(row.started_ms),
                ended_at: from_millis(row.ended_ms),
                client_ip: row.client_ip,
                client_port: u16::try_from(row.client_port).unwrap_or(0),
                client_ptr: row.client_ptr,
                helo: row.helo,
                tls_version: row.tls_version,
                tls_cipher: row.tls_cipher,
                mail_from: row.mail_from,
                ending: row.ending,
                events,
                events_left_out: u32::try_from(row.events_left_out).unwrap_or(0),
                left_out_at: u32::try_from(row.left_out_at).unwrap_or(0),
                result_ids: row
                    .result_ids
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
            },
        })
    }
}
