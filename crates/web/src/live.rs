//! The live feed: new results pushed to open pages as server-sent events at `/events`.
//!
//! One background task per router polls the store for results newer than the last one it saw
//! (the store is the only shared state, so this works with several instances on one
//! PostgreSQL database) and fans them out through a broadcast channel; each client filters the
//! stream by mailbox and sender. A client that passes `after=<id>` (or reconnects with
//! `Last-Event-ID`) first gets what it missed since that result, so nothing that arrived
//! between rendering the page and opening the stream is lost. Streams end after
//! [`MAX_STREAM_LIFETIME`] and the browser reconnects, so shutdown never waits on a client.

use std::convert::Infallible;
use std::sync::Arc;

use authcheck_store::{
    ListQuery, MAX_LIST_LIMIT, ResultSummary, SharedStore, StoreError, Visibility,
};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, StreamExt};
use serde::Deserialize;
use tokio_stream::wrappers::BroadcastStream;

use crate::AppState;
use crate::api::{error_json, param_error_json, store_unavailable_json};
use crate::feed::{Feed, FeedSource, MAX_STREAM_LIFETIME, RECONNECT_DELAY};
use crate::json::listed_json;
use crate::params::{ParamError, RawListParams, is_result_id};
use crate::view::ResultRow;

/// The fan-out of new results to every `/events` client of one router.
pub(crate) type LiveFeed = Feed<NewResults>;

/// The results a live page follows.
pub(crate) struct NewResults;

impl FeedSource for NewResults {
    type Row = ResultSummary;
    const ROWS: &'static str = "results";

    fn seq(row: &ResultSummary) -> i64 {
        row.seq
    }

    async fn newest_seq(store: &SharedStore) -> Result<i64, StoreError> {
        newest_result_seq(store, Visibility::Public).await
    }

    async fn after(store: &SharedStore, seen: i64) -> Result<Vec<ResultSummary>, StoreError> {
        results_after(store, Visibility::Public, seen).await
    }
}

/// The `seq` of the newest result of `visibility`, or 0 when there is none.
pub(crate) async fn newest_result_seq(
    store: &SharedStore,
    visibility: Visibility,
) -> Result<i64, StoreError> {
    let newest = store
        .list(&ListQuery {
            visibility,
            limit: 1,
            ..ListQuery::default()
        })
        .await?;
    Ok(newest.first().map_or(0, |result| result.seq))
}

/// The results of `visibility` stored after `seen`, oldest first. The store lists newest
/// first, so a burst larger than one page is read backwards, page by page, down to the last
/// result already seen.
pub(crate) async fn results_after(
    store: &SharedStore,
    visibility: Visibility,
    seen: i64,
) -> Result<Vec<ResultSummary>, StoreError> {
    let mut new_results: Vec<ResultSummary> = Vec::new();
    loop {
        let query = ListQuery {
            visibility,
            after_seq: Some(seen),
            before: new_results.last().map(|result| result.id.clone()),
            limit: MAX_LIST_LIMIT,
            ..ListQuery::default()
        };
        let page = store.list(&query).await?;
        let full = page.len() == MAX_LIST_LIMIT as usize;
        new_results.extend(page);
        if !full {
            break;
        }
    }
    new_results.reverse();
    Ok(new_results)
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct EventParams {
    #[serde(flatten)]
    list: RawListParams,
    /// The id of the newest result the page already shows.
    after: Option<String>,
}

/// `GET /events?mailbox=spf&sender=...&after=<id>`: each new matching result as one `result`
/// event whose data is its API listing JSON plus a `row` object for drawing the table line.
pub(crate) async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<EventParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if !state.config.public_results {
        return crate::private::lists_off_json();
    }
    let Ok(Query(params)) = params else {
        return error_json(
            StatusCode::BAD_REQUEST,
            "the query string is malformed; use mailbox=spf|dkim|check&sender=ADDRESS",
        );
    };
    let filter = match LiveFilter::from_params(&params.list) {
        Ok(filter) => filter,
        Err(error) => return param_error_json(&error),
    };
    // A reconnecting EventSource says where it left off; that beats the page's own `after`.
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok());
    let after = last_event_id
        .or(params.after.as_deref())
        .filter(|id| is_result_id(id));

    let receiver = match state.live.subscribe().await {
        Ok(receiver) => receiver,
        Err(error) => return store_unavailable_json(&error),
    };
    let missed = match missed_since(&state.store, &filter, after).await {
        Ok(missed) => missed,
        Err(error) => return store_unavailable_json(&error),
    };
    let caught_up_to = missed.last().map(|result| result.seq);
    let public_url = state.config.public_url.clone();

    let live = BroadcastStream::new(receiver).filter_map(move |item| {
        // A lagging client skips what it missed rather than being disconnected.
        let keep = item.ok().filter(|result| {
            caught_up_to.is_none_or(|seq| result.seq > seq) && filter.matches(result)
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

/// Results stored after `after` that the client has not seen, oldest first; none when
/// `after` has expired.
async fn missed_since(
    store: &SharedStore,
    filter: &LiveFilter,
    after: Option<&str>,
) -> Result<Vec<ResultSummary>, StoreError> {
    let Some(after) = after else {
        return Ok(Vec::new());
    };
    let query = ListQuery {
        mailbox: filter.mailbox,
        sender: filter.sender.clone(),
        after: Some(after.to_owned()),
        limit: MAX_LIST_LIMIT,
        ..ListQuery::default()
    };
    match store.list(&query).await {
        Ok(mut missed) => {
            missed.reverse();
            Ok(missed)
        }
        Err(StoreError::UnknownId(_)) => Ok(Vec::new()),
        Err(error) => Err(error),
    }
}

pub(crate) fn result_event(result: &ResultSummary, public_url: &str) -> Event {
    let mut data = listed_json(result, public_url);
    data["row"] = serde_json::to_value(ResultRow::new(result)).unwrap_or_default();
    Event::default()
        .event("result")
        .id(result.id.clone())
        .data(data.to_string())
}

/// Which results one client wants.
struct LiveFilter {
    mailbox: Option<authcheck_store::Mailbox>,
    sender: Option<String>,
}

impl LiveFilter {
    fn from_params(params: &RawListParams) -> Result<Self, ParamError> {
        Ok(LiveFilter {
            mailbox: params.mailbox()?,
            sender: params.sender()?,
        })
    }

    fn matches(&self, result: &ResultSummary) -> bool {
        self.mailbox.is_none_or(|mailbox| mailbox == result.mailbox)
            && self
                .sender
                .as_deref()
                .is_none_or(|sender| authcheck_store::sender_matches(sender, result))
    }
}
