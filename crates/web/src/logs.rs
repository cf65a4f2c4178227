//! The SMTP session log: the page `/logs` (the last 100 sessions, today, or the last seven
//! days, filtered by client address, sender, reply code and direction, each session expandable
//! to its transcript), one session's page `/logs/{id}`, its live updates at `/logs/events`, the
//! plain-text log at `/logs/raw` and the JSON at `/api/v1/sessions`.
//!
//! Sessions go both ways: clients' sessions with the listener (`in`) and the tester's own
//! delivery attempts (`out`: replies by mail, weekly summaries), labelled as such; every view
//! shows both unless `direction=in` or `direction=out` picks one.
//!
//! The page works without JavaScript; `logs.js` only adds new sessions as they are stored,
//! drawn by the server with the same template as the page. The raw log is streamed a page of
//! sessions at a time, so its memory is bounded however long the day was. Its format is
//! documented in the README ("Session log"): one event per line, every value a client chose
//! quoted and escaped so that it cannot break a line.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use askama::Template;
use authcheck_store::{Direction, SessionQuery, SharedStore, StoreError, StoredSession};
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Days, NaiveDate, Utc};
use futures::stream::{self, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio_stream::wrappers::BroadcastStream;

use crate::AppState;
use crate::api::{error_json, param_error_json, store_unavailable_json};
use crate::feed::{Feed, FeedSource, MAX_STREAM_LIFETIME, RECONNECT_DELAY};
use crate::pages::{bad_request_page, malformed_query_page, render, store_unavailable_page};
use crate::params::{ParamError, is_result_id, sender_filter};
use crate::view::clip_listed;

/// Sessions on one page of `/logs` (and the API's default and largest `limit`).
pub(crate) const SESSIONS_PER_PAGE: u32 = 100;
/// The most days `/logs?days=` and `/logs/raw?days=` cover.
const MAX_DAYS: u32 = 7;
/// Sessions read from the store per step of the raw log's stream.
const RAW_LOG_PAGE: u32 = 200;

/// The query parameters of every session view; unknown ones are ignored.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LogParams {
    day: Option<String>,
    date: Option<String>,
    days: Option<String>,
    client: Option<String>,
    sender: Option<String>,
    code: Option<String>,
    direction: Option<String>,
    before: Option<String>,
    after: Option<String>,
    limit: Option<String>,
}

/// Which stretch of time a view covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Period {
    /// The newest sessions, whenever they were.
    Latest,
    /// One UTC day.
    Day(NaiveDate),
    /// The last `n` UTC days, today included.
    Days(u32),
}

impl Period {
    fn bounds(self, today: NaiveDate) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        let midnight = |day: NaiveDate| day.and_time(chrono::NaiveTime::MIN).and_utc();
        match self {
            Period::Latest => (None, None),
            Period::Day(day) => (
                Some(midnight(day)),
                day.checked_add_days(Days::new(1)).map(midnight),
            ),
            Period::Days(n) => (
                today
                    .checked_sub_days(Days::new(u64::from(n.saturating_sub(1))))
                    .map(midnight),
                None,
            ),
        }
    }

    fn describe(self, today: NaiveDate) -> String {
        match self {
            Period::Latest => format!("the last {SESSIONS_PER_PAGE} sessions"),
            Period::Day(day) if day == today => format!("today ({day})"),
            Period::Day(day) => day.to_string(),
            Period::Days(n) => format!("the last {n} days"),
        }
    }
}

fn param_error(parameter: &'static str, message: String) -> ParamError {
    ParamError { parameter, message }
}

/// A day as `today` or `YYYY-MM-DD`.
fn parse_day(
    parameter: &'static str,
    text: &str,
    today: NaiveDate,
) -> Result<NaiveDate, ParamError> {
    if text.eq_ignore_ascii_case("today") {
        return Ok(today);
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        param_error(
            parameter,
            format!("{parameter}: {text:?} is not a day; use today or a date such as {today}"),
        )
    })
}

fn parse_days(text: &str) -> Result<u32, ParamError> {
    match text.parse::<u32>() {
        Ok(days) if (1..=MAX_DAYS).contains(&days) => Ok(days),
        _ => Err(param_error(
            "days",
            format!("days: {text:?} is not allowed; use a whole number from 1 to {MAX_DAYS}"),
        )),
    }
}

fn given(value: &Option<String>) -> Option<&str> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

impl LogParams {
    /// The period of `/logs` and the API: `day=today|YYYY-MM-DD` or `days=N`; the newest
    /// sessions when neither is given.
    fn period(&self, today: NaiveDate) -> Result<Period, ParamError> {
        match (given(&self.day), given(&self.days)) {
            (Some(_), Some(_)) => Err(param_error(
                "days",
                "days: give either day or days, not both".to_owned(),
            )),
            (Some(day), None) => Ok(Period::Day(parse_day("day", day, today)?)),
            (None, Some(days)) => Ok(Period::Days(parse_days(days)?)),
            (None, None) => Ok(Period::Latest),
        }
    }

    /// The period of `/logs/raw`: `date=YYYY-MM-DD` or `days=N`, today by default.
    fn raw_period(&self, today: NaiveDate) -> Result<Period, ParamError> {
        match (given(&self.date).or(given(&self.day)), given(&self.days)) {
            (Some(_), Some(_)) => Err(param_error(
                "days",
                "days: give either date or days, not both".to_owned(),
            )),
            (Some(date), None) => Ok(Period::Day(parse_day("date", date, today)?)),
            (None, Some(days)) => Ok(Period::Days(parse_days(days)?)),
            (None, None) => Ok(Period::Day(today)),
        }
    }

    fn filter(&self) -> Result<Filter, ParamError> {
        let client = match given(&self.client) {
            None => None,
            Some(text) => Some(text.parse::<IpAddr>().map_err(|_| {
                param_error(
                    "client",
                    format!(
                        "client: {:?} is not an IP address; give one such as 192.0.2.7 or 2001:db8::7",
                        clip_listed(text)
                    ),
                )
            })?),
        };
        let code = match given(&self.code) {
            None => None,
            Some(text) => match text.parse::<u16>() {
                Ok(code) if (200..600).contains(&code) => Some(code),
                _ => {
                    return Err(param_error(
                        "code",
                        format!(
                            "code: {:?} is not an SMTP reply code; give three digits such as 550",
                            clip_listed(text)
                        ),
                    ));
                }
            },
        };
        let direction = match given(&self.direction) {
            None | Some("all") => None,
            Some(text) => Some(Direction::parse(text).ok_or_else(|| {
                param_error(
                    "direction",
                    format!(
                        "direction: {:?} is not a direction; use in (clients' sessions), out (the tester's deliveries) or all",
                        clip_listed(text)
                    ),
                )
            })?),
        };
        Ok(Filter {
            client: client.map(|ip| ip.to_string()),
            sender: sender_filter(self.sender.as_deref())?,
            code,
            direction,
        })
    }

    fn before(&self) -> Result<Option<String>, ParamError> {
        match given(&self.before) {
            None => Ok(None),
            Some(id) if is_result_id(id) => Ok(Some(id.to_owned())),
            Some(id) => Err(unknown_session("before", id)),
        }
    }

    fn limit(&self) -> Result<u32, ParamError> {
        let Some(text) = given(&self.limit) else {
            return Ok(SESSIONS_PER_PAGE);
        };
        match text.parse::<u32>() {
            Ok(limit) if (1..=SESSIONS_PER_PAGE).contains(&limit) => Ok(limit),
            _ => Err(param_error(
                "limit",
                format!(
                    "limit: {:?} is not allowed; use a whole number from 1 to {SESSIONS_PER_PAGE}",
                    clip_listed(text)
                ),
            )),
        }
    }
}

fn unknown_session(parameter: &'static str, id: &str) -> ParamError {
    param_error(
        parameter,
        format!(
            "{parameter}: no session with id {:?}; it may have expired, start again from the newest sessions",
            clip_listed(id)
        ),
    )
}

/// The filters a client of the page, the API or the live feed asked for.
#[derive(Debug, Clone, Default)]
struct Filter {
    client: Option<String>,
    sender: Option<String>,
    code: Option<u16>,
    /// Both directions when `None`.
    direction: Option<Direction>,
}

impl Filter {
    fn query(&self, period: Period, today: NaiveDate) -> SessionQuery {
        let (since, until) = period.bounds(today);
        SessionQuery {
            since,
            until,
            client: self.client.clone(),
            sender: self.sender.clone(),
            code: self.code,
            direction: self.direction,
            ..SessionQuery::default()
        }
    }

    /// Whether a new session passes the filter, as the store's query decides it.
    fn matches(&self, session: &StoredSession) -> bool {
        let sender_matches = |sender: &str| {
            let sender = sender.to_lowercase();
            session.entry.mail_from.as_deref().is_some_and(|from| {
                let from = from.to_lowercase();
                from == sender
                    || from
                        .rsplit_once('@')
                        .is_some_and(|(_, domain)| domain.trim_end_matches('.') == sender)
            })
        };
        session.entry.listed
            && self
                .direction
                .is_none_or(|direction| session.entry.direction == direction)
            && self
                .client
                .as_deref()
                .is_none_or(|ip| session.entry.client_ip == ip)
            && self.sender.as_deref().is_none_or(sender_matches)
            && self
                .code
                .is_none_or(|code| session.entry.events.iter().any(|event| event.code == code))
    }
}

// ---------------------------------------------------------------------------------------
// What the template shows of a session.

/// One session as the page shows it.
pub(crate) struct SessionView {
    pub(crate) id: String,
    /// The tester's own delivery attempt: the "client" is the server it connected to.
    pub(crate) outbound: bool,
    /// Drawn open (the session's own page).
    pub(crate) open: bool,
    pub(crate) started: String,
    pub(crate) seconds: String,
    pub(crate) client: String,
    pub(crate) port: u16,
    pub(crate) ptr: String,
    pub(crate) helo: String,
    pub(crate) mail_from: String,
    pub(crate) tls: String,
    pub(crate) codes: Vec<CodeView>,
    pub(crate) ending: String,
    pub(crate) result_ids: Vec<String>,
    pub(crate) events: Vec<EventView>,
}

pub(crate) struct CodeView {
    pub(crate) code: u16,
    pub(crate) class: &'static str,
}

pub(crate) struct EventView {
    /// Events the listener left out just before this one.
    pub(crate) left_out_before: u32,
    pub(crate) time: String,
    pub(crate) command: String,
    pub(crate) code: String,
    pub(crate) class: &'static str,
    pub(crate) status: String,
    pub(crate) text: String,
}

fn code_class(code: u16) -> &'static str {
    match code / 100 {
        2 => "c2",
        3 => "c3",
        4 => "c4",
        5 => "c5",
        _ => "c0",
    }
}

impl SessionView {
    pub(crate) fn new(session: &StoredSession) -> SessionView {
        let seconds =
            (session.entry.ended_at - session.entry.started_at).num_milliseconds() as f64 / 1000.0;
        let events = session
            .entry
            .events
            .iter()
            .enumerate()
            .map(|(index, event)| EventView {
                left_out_before: if index == session.entry.left_out_at as usize {
                    session.entry.events_left_out
                } else {
                    0
                },
                time: event.at.format("%H:%M:%S%.3f").to_string(),
                command: event.command.clone(),
                code: if event.code == 0 {
                    "—".to_owned()
                } else {
                    event.code.to_string()
                },
                class: code_class(event.code),
                status: event.status.clone().unwrap_or_default(),
                text: event.text.clone(),
            })
            .collect();
        SessionView {
            id: session.id.clone(),
            outbound: session.entry.direction == Direction::Outbound,
            open: false,
            started: session
                .entry
                .started_at
                .format("%Y-%m-%d %H:%M:%S")
                .to_string(),
            seconds: format!("{seconds:.1}"),
            client: session.entry.client_ip.clone(),
            port: session.entry.client_port,
            ptr: clip_listed(session.entry.client_ptr.as_deref().unwrap_or_default()),
            helo: clip_listed(session.entry.helo.as_deref().unwrap_or_default()),
            mail_from: match session.entry.mail_from.as_deref() {
                None => String::new(),
                Some("") => "<>".to_owned(),
                Some(from) => clip_listed(from),
            },
            tls: match (&session.entry.tls_version, &session.entry.tls_cipher) {
                (Some(version), Some(cipher)) => format!("{version} {cipher}"),
                (Some(version), None) => version.clone(),
                _ => String::new(),
            },
            codes: session
                .codes()
                .into_iter()
                .map(|code| CodeView {
                    code,
                    class: code_class(code),
                })
                .collect(),
            ending: session.entry.ending.clone(),
            result_ids: session.entry.result_ids.clone(),
            events,
        }
    }
}

// ---------------------------------------------------------------------------------------
// GET /logs

struct PeriodLink {
    label: &'static str,
    href: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "logs.html")]
struct LogsPage {
    period: String,
    period_links: Vec<PeriodLink>,
    /// The period's own parameter (`day=...` or `days=...`), kept by the filter form.
    period_name: &'static str,
    period_value: String,
    client: String,
    sender: String,
    code: String,
    /// `in`, `out`, or empty for both.
    direction: &'static str,
    sessions: Vec<SessionView>,
    older_link: Option<String>,
    /// Whether new sessions belong at the top of this page (the newest page).
    live: bool,
    newest_id: String,
    raw_link: String,
}

/// `GET /logs?day=today|YYYY-MM-DD|days=N&client=IP&sender=S&code=NNN&before=ID`
pub(crate) async fn logs_page(
    State(state): State<AppState>,
    params: Result<Query<LogParams>, QueryRejection>,
) -> Response {
    if !state.config.public_results {
        return crate::private::lists_off_page();
    }
    let Ok(Query(params)) = params else {
        return malformed_query_page();
    };
    let today = Utc::now().date_naive();
    let (period, filter, before) = match (params.period(today), params.filter(), params.before()) {
        (Ok(period), Ok(filter), Ok(before)) => (period, filter, before),
        (Err(error), _, _) | (_, Err(error), _) | (_, _, Err(error)) => {
            return bad_request_page(&error);
        }
    };
    let page = match session_page(
        &state.store,
        &filter,
        period,
        today,
        before.clone(),
        SESSIONS_PER_PAGE,
    )
    .await
    {
        Ok(page) => page,
        Err(PageError::Param(error)) => return bad_request_page(&error),
        Err(PageError::Store(error)) => return store_unavailable_page(&error),
    };
    let (period_name, period_value) = match period {
        Period::Latest => ("", String::new()),
        Period::Day(day) => ("day", day.to_string()),
        Period::Days(n) => ("days", n.to_string()),
    };
    let link = |extra: &[(&str, &str)]| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if !period_name.is_empty() {
            query.append_pair(period_name, &period_value);
        }
        for (name, value) in [
            ("client", filter.client.as_deref()),
            ("sender", filter.sender.as_deref()),
        ] {
            if let Some(value) = value {
                query.append_pair(name, value);
            }
        }
        if let Some(code) = filter.code {
            query.append_pair("code", &code.to_string());
        }
        if let Some(direction) = filter.direction {
            query.append_pair("direction", direction.as_str());
        }
        for (name, value) in extra {
            query.append_pair(name, value);
        }
        format!("/logs?{}", query.finish())
    };
    let older_link = page
        .next_before
        .as_deref()
        .map(|id| link(&[("before", id)]));
    let period_link = |label, name: &str, value: &str, current| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if !name.is_empty() {
            query.append_pair(name, value);
        }
        PeriodLink {
            label,
            href: format!("/logs?{}", query.finish()),
            current,
        }
    };
    let period_links = vec![
        period_link("Last 100", "", "", period == Period::Latest),
        period_link("Today", "day", "today", period == Period::Day(today)),
        period_link("Last 7 days", "days", "7", period == Period::Days(MAX_DAYS)),
    ];
    let raw_link = match period {
        Period::Day(day) => format!("/logs/raw?date={day}"),
        Period::Days(n) => format!("/logs/raw?days={n}"),
        Period::Latest => "/logs/raw".to_owned(),
    };
    let sessions: Vec<SessionView> = page.sessions.iter().map(SessionView::new).collect();
    let logs = LogsPage {
        period: period.describe(today),
        period_links,
        period_name,
        period_value,
        client: filter.client.clone().unwrap_or_default(),
        sender: filter.sender.clone().unwrap_or_default(),
        code: filter.code.map(|code| code.to_string()).unwrap_or_default(),
        direction: filter.direction.map_or("", Direction::as_str),
        newest_id: sessions.first().map(|s| s.id.clone()).unwrap_or_default(),
        sessions,
        older_link,
        // Older pages and past days never get new sessions.
        live: before.is_none() && !matches!(period, Period::Day(day) if day != today),
        raw_link,
    };
    render(StatusCode::OK, &logs)
}

// ---------------------------------------------------------------------------------------
// GET /logs/{id}

#[derive(Template)]
#[template(path = "session.html")]
struct SessionDetailPage {
    s: SessionView,
}

/// `GET /logs/{id}`: one session, open, listed or not (the id is the key to it: the result
/// page of a private test links its reply's sessions here, which no listing shows).
pub(crate) async fn session_detail(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let not_found = || {
        crate::pages::error_page(
            StatusCode::NOT_FOUND,
            "Session not found",
            "There is no session with this id; sessions are kept for a limited time.",
        )
    };
    if !is_result_id(&id) {
        return not_found();
    }
    let query = SessionQuery {
        id: Some(id),
        limit: 1,
        ..SessionQuery::default()
    };
    match state.store.list_sessions(&query).await {
        Ok(sessions) => match sessions.first() {
            Some(session) => {
                let mut view = SessionView::new(session);
                view.open = true;
                render(StatusCode::OK, &SessionDetailPage { s: view })
            }
            None => not_found(),
        },
        Err(error) => store_unavailable_page(&error),
    }
}

struct SessionPage {
    sessions: Vec<StoredSession>,
    next_before: Option<String>,
}

enum PageError {
    Param(ParamError),
    Store(StoreError),
}

/// One page of sessions, newest first, looking one ahead to know whether an older page exists.
async fn session_page(
    store: &SharedStore,
    filter: &Filter,
    period: Period,
    today: NaiveDate,
    before: Option<String>,
    limit: u32,
) -> Result<SessionPage, PageError> {
    let query = SessionQuery {
        before,
        limit: limit + 1,
        ..filter.query(period, today)
    };
    let mut sessions = match store.list_sessions(&query).await {
        Ok(sessions) => sessions,
        Err(StoreError::UnknownId(id)) => {
            return Err(PageError::Param(unknown_session("before", &id)));
        }
        Err(error) => return Err(PageError::Store(error)),
    };
    let has_more = sessions.len() > limit as usize;
    sessions.truncate(limit as usize);
    let next_before = has_more
        .then(|| sessions.last().map(|s| s.id.clone()))
        .flatten();
    Ok(SessionPage {
        sessions,
        next_before,
    })
}

// ---------------------------------------------------------------------------------------
// GET /api/v1/sessions

/// `GET /api/v1/sessions?limit=N&before=ID&day=...|days=N&client=IP&sender=S&code=NNN`:
/// `{"sessions": [...], "next_before": ID|null}`, newest first.
pub(crate) async fn list_sessions_json(
    State(state): State<AppState>,
    params: Result<Query<LogParams>, QueryRejection>,
) -> Response {
    if !state.config.public_results {
        return crate::private::lists_off_json();
    }
    let Ok(Query(params)) = params else {
        return error_json(
            StatusCode::BAD_REQUEST,
            "the query string is malformed; use limit=N&before=ID&day=YYYY-MM-DD&client=IP&sender=ADDRESS&code=NNN",
        );
    };
    let today = Utc::now().date_naive();
    let parsed = (|| {
        Ok((
            params.period(today)?,
            params.filter()?,
            params.before()?,
            params.limit()?,
        ))
    })();
    let (period, filter, before, limit) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return param_error_json(&error),
    };
    match session_page(&state.store, &filter, period, today, before, limit).await {
        Ok(page) => {
            let public_url = &state.config.public_url;
            let sessions: Vec<_> = page
                .sessions
                .iter()
                .map(|session| session_json(session, public_url))
                .collect();
            Json(json!({ "sessions": sessions, "next_before": page.next_before })).into_response()
        }
        Err(PageError::Param(error)) => param_error_json(&error),
        Err(PageError::Store(error)) => store_unavailable_json(&error),
    }
}

fn session_json(session: &StoredSession, public_url: &str) -> serde_json::Value {
    let tls = session
        .entry
        .tls_version
        .as_ref()
        .map(|version| json!({ "version": version, "cipher": session.entry.tls_cipher }));
    let events: Vec<_> = session
        .entry
        .events
        .iter()
        .map(|event| {
            json!({
                "at": event.at,
                "command": event.command,
                "code": (event.code != 0).then_some(event.code),
                "status": event.status,
                "text": event.text,
            })
        })
        .collect();
    let results: Vec<_> = session
        .entry
        .result_ids
        .iter()
        .map(|id| json!({ "id": id, "url": crate::result_url(public_url, id) }))
        .collect();
    json!({
        "id": session.id,
        "direction": session.entry.direction.as_str(),
        "started_at": session.entry.started_at,
        "ended_at": session.entry.ended_at,
        "client_ip": session.entry.client_ip,
        "client_port": session.entry.client_port,
        "client_ptr": session.entry.client_ptr,
        "helo": session.entry.helo,
        "tls": tls,
        "mail_from": session.entry.mail_from,
        "ending": session.entry.ending,
        "codes": session.codes(),
        "results": results,
        "events": events,
        "events_left_out": session.entry.events_left_out,
        "events_left_out_at": session.entry.left_out_at,
    })
}

// ---------------------------------------------------------------------------------------
// GET /logs/raw

/// `GET /logs/raw?date=YYYY-MM-DD|days=N`: the plain-text log, today's by default.
pub(crate) async fn raw_log(
    State(state): State<AppState>,
    params: Result<Query<LogParams>, QueryRejection>,
) -> Response {
    if !state.config.public_results {
        return crate::private::lists_off_page();
    }
    let plain_error = |message: &str| {
        (
            StatusCode::BAD_REQUEST,
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{message}\n"),
        )
            .into_response()
    };
    let Ok(Query(params)) = params else {
        return plain_error("the query string is malformed; use date=YYYY-MM-DD or days=N");
    };
    let today = Utc::now().date_naive();
    let period = match params.raw_period(today) {
        Ok(period) => period,
        Err(error) => return plain_error(&error.message),
    };
    let query = Filter::default().query(period, today);
    let name = match period {
        Period::Day(day) => format!("authcheck-sessions-{day}.log"),
        Period::Days(n) => format!("authcheck-sessions-{n}-days-to-{today}.log"),
        Period::Latest => format!("authcheck-sessions-{today}.log"),
    };
    // The first page is read before answering, so a database that cannot be reached gets
    // a clear 503 instead of an empty log.
    let first = match raw_page(&state.store, &query, None).await {
        Ok(first) => first,
        Err(error) => {
            tracing::warn!(%error, "web: store query failed");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(CONTENT_TYPE, "text/plain; charset=utf-8")],
                "the session database is unavailable; try again shortly\n",
            )
                .into_response();
        }
    };
    let store = state.store.clone();
    let pages = stream::unfold(Some(first), move |page| {
        let (store, query) = (store.clone(), query.clone());
        async move {
            let (sessions, text) = page?;
            let next = match sessions.last() {
                Some(last) if sessions.len() == RAW_LOG_PAGE as usize => {
                    match raw_page(&store, &query, Some(last.seq)).await {
                        Ok(next) => Some(next),
                        Err(error) => {
                            tracing::warn!(%error, "web: the raw log stopped part-way");
                            return Some((
                                Ok::<_, Infallible>(format!(
                                    "# the log stops here: the database could not be read ({error})\n"
                                )),
                                None,
                            ));
                        }
                    }
                }
                _ => None,
            };
            Some((Ok(text), next))
        }
    });
    (
        [
            (CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
            (CONTENT_DISPOSITION, format!("inline; filename=\"{name}\"")),
        ],
        Body::from_stream(pages),
    )
        .into_response()
}

/// One page of the raw log: the sessions stored after `after_seq`, oldest first, and
/// their lines.
async fn raw_page(
    store: &SharedStore,
    query: &SessionQuery,
    after_seq: Option<i64>,
) -> Result<(Vec<StoredSession>, String), StoreError> {
    let query = SessionQuery {
        after_seq,
        oldest_first: true,
        limit: RAW_LOG_PAGE,
        ..query.clone()
    };
    let sessions = store.list_sessions(&query).await?;
    let mut text = String::new();
    for session in &sessions {
        write_raw_lines(&mut text, session);
    }
    Ok((sessions, text))
}

fn raw_time(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// `text` as a quoted value: `"` and `\` escaped with a backslash, line breaks and other
/// control characters (and U+2028, U+2029) as `\n`, `\r`, `\t` or `\u{XX}`, so one value
/// never spans two lines nor ends early.
pub(crate) fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn or_dash(value: Option<&str>) -> String {
    value.map_or_else(|| "-".to_owned(), quoted)
}

/// The lines of one session (format in the README, "Session log").
fn write_raw_lines(out: &mut String, session: &StoredSession) {
    let head = |at: &DateTime<Utc>| {
        format!(
            "{} session={} client={}",
            raw_time(at),
            session.id,
            session.entry.client_ip
        )
    };
    let _ = writeln!(
        out,
        "{} event=start port={} ptr={} direction={}",
        head(&session.entry.started_at),
        session.entry.client_port,
        or_dash(session.entry.client_ptr.as_deref()),
        session.entry.direction.as_str()
    );
    for (index, event) in session.entry.events.iter().enumerate() {
        if index == session.entry.left_out_at as usize && session.entry.events_left_out > 0 {
            let _ = writeln!(
                out,
                "{} event=left-out count={}",
                head(&event.at),
                session.entry.events_left_out
            );
        }
        let (kind, what) = match event
            .command
            .strip_prefix('(')
            .and_then(|c| c.strip_suffix(')'))
        {
            Some(prompt) => ("reply", format!("on={}", quoted(prompt))),
            None => ("command", format!("command={}", quoted(&event.command))),
        };
        let _ = writeln!(
            out,
            "{} event={kind} {what} code={} status={} text={}",
            head(&event.at),
            if event.code == 0 {
                "-".to_owned()
            } else {
                event.code.to_string()
            },
            event.status.as_deref().unwrap_or("-"),
            quoted(&event.text)
        );
    }
    let _ = writeln!(
        out,
        "{} event=end reason={} helo={} mail_from={} tls={} cipher={} results={}",
        head(&session.entry.ended_at),
        session.entry.ending,
        or_dash(session.entry.helo.as_deref()),
        or_dash(session.entry.mail_from.as_deref()),
        or_dash(session.entry.tls_version.as_deref()),
        or_dash(session.entry.tls_cipher.as_deref()),
        if session.entry.result_ids.is_empty() {
            "-".to_owned()
        } else {
            session.entry.result_ids.join(",")
        }
    );
}

// ---------------------------------------------------------------------------------------
// GET /logs/events

/// One session drawn for the live page: the same markup as the page's.
#[derive(Template)]
#[template(path = "session_entry.html")]
struct SessionEntry {
    s: SessionView,
}

/// The fan-out of new sessions to every `/logs/events` client of one router; each client
/// filters.
pub(crate) type SessionFeed = Feed<NewSessions>;

/// The sessions the live log follows.
pub(crate) struct NewSessions;

impl FeedSource for NewSessions {
    type Row = StoredSession;
    const ROWS: &'static str = "sessions";

    fn seq(row: &StoredSession) -> i64 {
        row.seq
    }

    async fn newest_seq(store: &SharedStore) -> Result<i64, StoreError> {
        let newest = store
            .list_sessions(&SessionQuery {
                limit: 1,
                ..SessionQuery::default()
            })
            .await?;
        Ok(newest.first().map_or(0, |session| session.seq))
    }

    /// At most one read; a larger burst is taken over the next polls, oldest first.
    async fn after(store: &SharedStore, seq: i64) -> Result<Vec<StoredSession>, StoreError> {
        store
            .list_sessions(&SessionQuery {
                after_seq: Some(seq),
                oldest_first: true,
                limit: authcheck_store::MAX_SESSION_LIMIT,
                ..SessionQuery::default()
            })
            .await
    }
}

/// `GET /logs/events?after=ID&client=IP&sender=S&code=NNN`: each new matching session as one
/// `session` event whose data is `{"id": ..., "html": ...}`, the entry as the page draws it.
pub(crate) async fn session_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<LogParams>, QueryRejection>,
) -> Response {
    if !state.config.public_results {
        return crate::private::lists_off_json();
    }
    let Ok(Query(params)) = params else {
        return error_json(
            StatusCode::BAD_REQUEST,
            "the query string is malformed; use after=ID&client=IP&sender=ADDRESS&code=NNN",
        );
    };
    let filter = match params.filter() {
        Ok(filter) => filter,
        Err(error) => return param_error_json(&error),
    };
    let after = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .or(given(&params.after))
        .filter(|id| is_result_id(id))
        .map(str::to_owned);
    let receiver = match state.sessions.subscribe().await {
        Ok(receiver) => receiver,
        Err(error) => return store_unavailable_json(&error),
    };
    // What was stored between the page and this stream: newer than `after`, oldest first.
    let missed = match after {
        None => Vec::new(),
        Some(after) => {
            let mut query = filter.query(Period::Latest, Utc::now().date_naive());
            query.limit = SESSIONS_PER_PAGE;
            match state
                .store
                .list_sessions(&SessionQuery {
                    before: None,
                    ..query.clone()
                })
                .await
            {
                Ok(newest) => {
                    let mut missed: Vec<StoredSession> =
                        newest.into_iter().take_while(|s| s.id != after).collect();
                    missed.reverse();
                    missed
                }
                Err(error) => return store_unavailable_json(&error),
            }
        }
    };
    let caught_up_to = missed.last().map(|session| session.seq);
    let live = BroadcastStream::new(receiver).filter_map(move |item| {
        let keep = item.ok().filter(|session| {
            caught_up_to.is_none_or(|seq| session.seq > seq) && filter.matches(session)
        });
        futures::future::ready(keep)
    });
    let sessions = stream::iter(missed.into_iter().map(Arc::new)).chain(live);
    let session_events = sessions.map(|session| session_event(&session));
    let events = stream::once(async { Event::default().retry(RECONNECT_DELAY) })
        .chain(session_events)
        .take_until(tokio::time::sleep(MAX_STREAM_LIFETIME))
        .map(Ok::<_, Infallible>);
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn session_event(session: &StoredSession) -> Event {
    let html = SessionEntry {
        s: SessionView::new(session),
    }
    .render()
    .unwrap_or_default();
    Event::default()
        .event("session")
        .id(session.id.clone())
        .data(json!({ "id": session.id, "html": html }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_stay_on_one_line() {
        assert_eq!(quoted("a \"b\" \\ c"), r#""a \"b\" \\ c""#);
        assert_eq!(
            quoted("x\r\ny\u{2028}z\u{0}\u{85}"),
            r#""x\r\ny\u{2028}z\u{0}\u{85}""#
        );
        assert_eq!(quoted("héllo <b>"), "\"héllo <b>\"");
    }

    #[test]
    fn periods_cover_whole_utc_days() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let (since, until) = Period::Day(today).bounds(today);
        assert_eq!(since.unwrap().to_rfc3339(), "2026-11-30T00:00:00+00:00");
        assert_eq!(until.unwrap().to_rfc3339(), "2026-12-01T00:00:00+00:00");
        let (since, until) = Period::Days(7).bounds(today);
        assert_eq!(since.unwrap().to_rfc3339(), "2026-11-24T00:00:00+00:00");
        assert_eq!(until, None);
    }

    #[test]
    fn bad_parameters_name_themselves() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let params = |day: &str, days: &str, client: &str, code: &str| LogParams {
            day: Some(day.into()),
            days: Some(days.into()),
            client: Some(client.into()),
            code: Some(code.into()),
            ..LogParams::default()
        };
        assert_eq!(
            params("yesterday", "", "", "")
                .period(today)
                .unwrap_err()
                .parameter,
            "day"
        );
        assert_eq!(
            params("", "8", "", "").period(today).unwrap_err().parameter,
            "days"
        );
        assert_eq!(
            params("", "", "1.2.3", "").filter().unwrap_err().parameter,
            "client"
        );
        assert_eq!(
            params("", "", "", "55").filter().unwrap_err().parameter,
            "code"
        );
        assert_eq!(
            params("", "", "", "600").filter().unwrap_err().parameter,
            "code"
        );
        let ok = params("2026-11-29", "", " 192.0.2.1 ", "550");
        assert_eq!(
            ok.period(today).unwrap(),
            Period::Day(NaiveDate::from_ymd_opt(2026, 11, 29).unwrap())
        );
        assert_eq!(ok.filter().unwrap().code, Some(550));
    }
}
