//! Private test addresses on the site: `/new` (a page whose button makes one, without
//! JavaScript), `POST /api/v1/tests` (the same as JSON), the test's page `/t/{token}`, which
//! waits for the message and shows its results live (`/t/{token}/events`, server-sent events;
//! without JavaScript the page reloads itself while it waits), and the switch that turns the
//! public lists off ([`WebConfig::public_results`](crate::WebConfig::public_results)).
//!
//! Who can read what: a private test's results are listed only on its page, whose address
//! holds the token; each result is also readable at its own id. Making tests is bounded per
//! client address and per hour ([`CreationLimit`]) and in all (the store's cap on open tests),
//! so strangers cannot fill the disk with them.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use askama::Template;
use authcheck_store::{
    ListQuery, MAX_LIST_LIMIT, PrivateTest, PrivateToken, ResultSummary, SharedStore, StoreError,
    Visibility,
};
use axum::extract::{Extension, Path, Query, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::stream::{self, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio_stream::wrappers::BroadcastStream;

use crate::AppState;
use crate::api::{error_json, store_unavailable_json};
use crate::feed::{Feed, FeedSource, MAX_STREAM_LIFETIME, RECONNECT_DELAY};
use crate::live::{newest_result_seq, result_event, results_after};
use crate::pages::{error_page, render, store_unavailable_page};
use crate::params::is_result_id;
use crate::view::{ResultRow, utc_time};

/// The results a test's page shows; a test gets a handful of messages.
const RESULTS_SHOWN: u32 = 50;
/// How often the page reloads itself without JavaScript while it waits for a message.
const RELOAD_SECONDS: u32 = 10;
/// Clients whose creations are counted at once; past it, only clients seen this hour are kept.
const MAX_CLIENTS_TRACKED: usize = 100_000;

/// The private tests' settings.
#[derive(Clone, Copy, Debug)]
pub struct PrivateTestsConfig {
    /// How long a new address takes mail.
    pub lifetime: Duration,
    /// Most addresses open at once.
    pub max_open: u32,
    /// Most addresses one client makes per hour; 0 for no limit.
    pub per_client_per_hour: u32,
}

impl Default for PrivateTestsConfig {
    fn default() -> Self {
        PrivateTestsConfig {
            lifetime: Duration::from_secs(7 * 86_400),
            max_open: 10_000,
            per_client_per_hour: 20,
        }
    }
}

/// The address of the HTTP client, which [`crate::serve`] adds to each request.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub IpAddr);

/// How many tests each client made in the current hour: an IPv4 address, or an IPv6 /64 (one
/// customer's network), as the SMTP side counts clients.
pub(crate) struct CreationLimit {
    per_hour: u32,
    clients: Mutex<HashMap<IpAddr, (i64, u32)>>,
}

impl CreationLimit {
    pub(crate) fn new(per_hour: u32) -> Self {
        CreationLimit {
            per_hour,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one creation by `client` at `now` (seconds since the epoch), unless it is past
    /// the limit for the hour.
    pub(crate) fn allow(&self, client: IpAddr, now: i64) -> bool {
        if self.per_hour == 0 {
            return true;
        }
        let key = match client {
            IpAddr::V4(_) => client,
            IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        };
        let hour = now.div_euclid(3600);
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if clients.len() >= MAX_CLIENTS_TRACKED && !clients.contains_key(&key) {
            clients.retain(|_, (seen_hour, _)| *seen_hour == hour);
            if clients.len() >= MAX_CLIENTS_TRACKED {
                return false;
            }
        }
        let (seen_hour, count) = clients.entry(key).or_insert((hour, 0));
        if *seen_hour != hour {
            (*seen_hour, *count) = (hour, 0);
        }
        if *count >= self.per_hour {
            return false;
        }
        *count += 1;
        true
    }
}

/// Why no test was made.
enum NotMade {
    TooManyFromClient,
    TooManyOpen,
    Store(StoreError),
}

async fn make_test(state: &AppState, client: Option<ClientAddr>) -> Result<PrivateTest, NotMade> {
    let now = Utc::now().timestamp();
    // A request that came without an address (tests that serve the router themselves) shares
    // one count.
    let client = client.map_or(IpAddr::from([0, 0, 0, 0]), |ClientAddr(ip)| ip);
    if !state.creations.allow(client, now) {
        return Err(NotMade::TooManyFromClient);
    }
    let config = state.config.private_tests;
    let lifetime = i64::try_from(config.lifetime.as_secs()).unwrap_or(i64::MAX);
    match state
        .store
        .create_private_test(now, now.saturating_add(lifetime), config.max_open)
        .await
    {
        Ok(Some(test)) => {
            tracing::info!(%client, expires_at = test.expires_at, "private test address made");
            Ok(test)
        }
        Ok(None) => {
            tracing::warn!(
                max_open = config.max_open,
                "a private test address was refused: max_private_tests are open"
            );
            Err(NotMade::TooManyOpen)
        }
        Err(error) => Err(NotMade::Store(error)),
    }
}

fn per_hour_message(state: &AppState) -> String {
    format!(
        "This address has made {} private test addresses in the last hour, the most allowed. \
         Use one of them, or try again in an hour.",
        state.config.private_tests.per_client_per_hour
    )
}

const FULL_MESSAGE: &str = "Too many private test addresses are open on this tester right now. \
    Try again later.";

/// The address a test is written to: at the first tester domain (any tester domain works).
fn test_address(state: &AppState, token: PrivateToken) -> String {
    let domain = state
        .config
        .domains
        .first()
        .map_or("tester.localhost", String::as_str);
    token.address(domain)
}

fn test_url(state: &AppState, token: PrivateToken) -> String {
    format!(
        "{}/t/{token}",
        state.config.public_url.trim_end_matches('/')
    )
}

fn time_of(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap_or_default()
}

/// How long a test lasts, as people say it: `7 days`, `12 hours`, `30 minutes`.
fn lifetime_text(lifetime: Duration) -> String {
    let seconds = lifetime.as_secs();
    let (amount, unit) = match seconds {
        s if s >= 86_400 && s.is_multiple_of(86_400) => (s / 86_400, "day"),
        s if s >= 3600 && s.is_multiple_of(3600) => (s / 3600, "hour"),
        s if s >= 60 && s.is_multiple_of(60) => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{amount} {unit}{}", if amount == 1 { "" } else { "s" })
}

#[derive(Template)]
#[template(path = "new.html")]
struct NewPage {
    lifetime: String,
    public_results: bool,
}

/// `GET /new`: what a private test address is, who can read what, and the button.
pub(crate) async fn new_page(State(state): State<AppState>) -> Response {
    render(
        StatusCode::OK,
        &NewPage {
            lifetime: lifetime_text(state.config.private_tests.lifetime),
            public_results: state.config.public_results,
        },
    )
}

/// `POST /new`: makes a test and sends the browser to its page (303).
pub(crate) async fn create_from_form(
    State(state): State<AppState>,
    client: Option<Extension<ClientAddr>>,
) -> Response {
    match make_test(&state, client.map(|Extension(client)| client)).await {
        Ok(test) => (
            StatusCode::SEE_OTHER,
            [(LOCATION, format!("/t/{}", test.token))],
        )
            .into_response(),
        Err(NotMade::TooManyFromClient) => error_page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many private test addresses",
            &per_hour_message(&state),
        ),
        Err(NotMade::TooManyOpen) => error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many private test addresses",
            FULL_MESSAGE,
        ),
        Err(NotMade::Store(error)) => store_unavailable_page(&error),
    }
}

/// `POST /api/v1/tests`: makes a test; 201 with `{"address", "url", "expires_at"}`.
pub(crate) async fn create_from_api(
    State(state): State<AppState>,
    client: Option<Extension<ClientAddr>>,
) -> Response {
    match make_test(&state, client.map(|Extension(client)| client)).await {
        Ok(test) => {
            let body = json!({
                "address": test_address(&state, test.token),
                "url": test_url(&state, test.token),
                "expires_at": time_of(test.expires_at).to_rfc3339_opts(SecondsFormat::Secs, true),
            });
            (StatusCode::CREATED, axum::Json(body)).into_response()
        }
        Err(NotMade::TooManyFromClient) => {
            error_json(StatusCode::TOO_MANY_REQUESTS, &per_hour_message(&state))
        }
        Err(NotMade::TooManyOpen) => error_json(StatusCode::SERVICE_UNAVAILABLE, FULL_MESSAGE),
        Err(NotMade::Store(error)) => store_unavailable_json(&error),
    }
}

#[derive(Template)]
#[template(path = "private_test.html")]
struct TestPage {
    token: String,
    address: String,
    other_domains: Vec<String>,
    expires_at: String,
    open: bool,
    rows: Vec<ResultRow>,
    newest_id: String,
    reload_seconds: u32,
    public_results: bool,
}

fn no_such_test_page() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "No such private test",
        "There is no private test at this address, or it has expired and was deleted. \
         Make a new one at /new.",
    )
}

/// `GET /t/{token}`: the test's address, its results, and a live list that waits for more.
pub(crate) async fn test_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Response {
    let Some(token) = PrivateToken::parse(&token) else {
        return no_such_test_page();
    };
    let test = match state.store.private_test(token).await {
        Ok(Some(test)) => test,
        Ok(None) => return no_such_test_page(),
        Err(error) => return store_unavailable_page(&error),
    };
    let query = ListQuery {
        visibility: Visibility::PrivateTest(token),
        limit: RESULTS_SHOWN,
        ..ListQuery::default()
    };
    let results = match state.store.list(&query).await {
        Ok(results) => results,
        Err(error) => return store_unavailable_page(&error),
    };
    let rows: Vec<ResultRow> = results.iter().map(ResultRow::new).collect();
    let page = TestPage {
        token: token.to_string(),
        address: test_address(&state, token),
        other_domains: state
            .config
            .domains
            .iter()
            .skip(1)
            .map(|domain| token.address(domain))
            .collect(),
        expires_at: utc_time(&time_of(test.expires_at)),
        open: test.is_open(Utc::now().timestamp()),
        newest_id: rows.first().map(|row| row.id.clone()).unwrap_or_default(),
        rows,
        reload_seconds: RELOAD_SECONDS,
        public_results: state.config.public_results,
    };
    let mut response = render(StatusCode::OK, &page);
    // The address is the key to the results: keep it out of other sites' logs and caches.
    let headers = response.headers_mut();
    headers.insert(
        "referrer-policy",
        "no-referrer".parse().expect("a header value"),
    );
    headers.insert("cache-control", "no-store".parse().expect("a header value"));
    response
}

/// The results of every private test, in one poller per router; each stream keeps its own.
pub(crate) type PrivateFeed = Feed<NewPrivateResults>;

pub(crate) struct NewPrivateResults;

impl FeedSource for NewPrivateResults {
    type Row = ResultSummary;
    const ROWS: &'static str = "private test results";

    fn seq(row: &ResultSummary) -> i64 {
        row.seq
    }

    async fn newest_seq(store: &SharedStore) -> Result<i64, StoreError> {
        newest_result_seq(store, Visibility::AnyPrivateTest).await
    }

    async fn after(store: &SharedStore, seen: i64) -> Result<Vec<ResultSummary>, StoreError> {
        results_after(store, Visibility::AnyPrivateTest, seen).await
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct TestEventParams {
    /// The id of the newest result the page already shows.
    after: Option<String>,
}

/// `GET /t/{token}/events?after=<id>`: each new result of this test as a `result` event, the
/// same as `/events` gives.
pub(crate) async fn test_events(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    params: Result<Query<TestEventParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let not_found = || error_json(StatusCode::NOT_FOUND, "no such private test");
    let Some(token) = PrivateToken::parse(&token) else {
        return not_found();
    };
    match state.store.private_test(token).await {
        Ok(Some(_)) => {}
        Ok(None) => return not_found(),
        Err(error) => return store_unavailable_json(&error),
    }
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok());
    let page_after = params.ok().and_then(|Query(params)| params.after);
    let after = last_event_id
        .map(str::to_owned)
        .or(page_after)
        .filter(|id| is_result_id(id));

    let receiver = match state.private_feed.subscribe().await {
        Ok(receiver) => receiver,
        Err(error) => return store_unavailable_json(&error),
    };
    let missed = match after {
        None => Vec::new(),
        Some(after) => {
            let query = ListQuery {
                visibility: Visibility::PrivateTest(token),
                after: Some(after),
                limit: MAX_LIST_LIMIT,
                ..ListQuery::default()
            };
            match state.store.list(&query).await {
                Ok(mut missed) => {
                    missed.reverse();
                    missed
                }
                Err(StoreError::UnknownId(_)) => Vec::new(),
                Err(error) => return store_unavailable_json(&error),
            }
        }
    };
    let caught_up_to = missed.last().map(|result| result.seq);
    let public_url = state.config.public_url.clone();
    let live = BroadcastStream::new(receiver).filter_map(move |item| {
        let keep = item.ok().filter(|result| {
            result.private_test == Some(token) && caught_up_to.is_none_or(|seq| result.seq > seq)
        });
        futures::future::ready(keep)
    });
    let results = stream::iter(missed.into_iter().map(Arc::new)).chain(live);
    let result_events = results.map(move |result| result_event(&result, &public_url));
    let events = stream::once(async { Event::default().retry(RECONNECT_DELAY) })
        .chain(result_events)
        .take_until(tokio::time::sleep(MAX_STREAM_LIFETIME))
        .map(Ok::<_, Infallible>);
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// What a public list answers when the operator turned public lists off.
pub(crate) fn lists_off_page() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "Public results are turned off",
        "This tester keeps every result private: there are no public result lists. \
         Make a private test address at /new; its page shows your results.",
    )
}

pub(crate) fn lists_off_json() -> Response {
    error_json(
        StatusCode::NOT_FOUND,
        "public result lists are turned off on this tester (public_results = false); make a \
         private test address with POST /api/v1/tests",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_makes_at_most_its_hourly_share_and_again_the_next_hour() {
        let limit = CreationLimit::new(2);
        let (client, other) = (IpAddr::from([192, 0, 2, 1]), IpAddr::from([192, 0, 2, 2]));
        let hour = 1_700_000_000 / 3600 * 3600;
        assert!(limit.allow(client, hour));
        assert!(limit.allow(client, hour + 10));
        assert!(!limit.allow(client, hour + 3599));
        assert!(limit.allow(other, hour + 3599), "each client counts apart");
        assert!(limit.allow(client, hour + 3600), "a new hour");
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let limit = CreationLimit::new(1);
        let first: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_network: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_network: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(limit.allow(first, 0));
        assert!(!limit.allow(same_network, 0));
        assert!(limit.allow(other_network, 0));
    }

    #[test]
    fn no_limit_is_zero() {
        let limit = CreationLimit::new(0);
        let client = IpAddr::from([192, 0, 2, 1]);
        assert!((0..1000).all(|_| limit.allow(client, 0)));
    }

    #[test]
    fn lifetimes_read_as_people_say_them() {
        assert_eq!(lifetime_text(Duration::from_secs(7 * 86_400)), "7 days");
        assert_eq!(lifetime_text(Duration::from_secs(3600)), "1 hour");
        assert_eq!(lifetime_text(Duration::from_secs(90)), "90 seconds");
    }
}
