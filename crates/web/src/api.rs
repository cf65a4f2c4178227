//! The JSON API: `/api/v1/results` and `/api/v1/results/{id}`.
//!
//! Errors are JSON objects `{"error": "..."}`: 400 names the bad parameter (also as
//! `"parameter"`), 404 an unknown id, 503 a database that cannot be reached.

use authcheck_store::{ListQuery, MAX_LIST_LIMIT, ResultSummary, StoreError};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::AppState;
use crate::json::{listed_json, result_json};
use crate::params::{ParamError, RawListParams, is_result_id};

pub(crate) fn error_json(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// A 400 naming the parameter both in the sentence and as `parameter`.
pub(crate) fn param_error_json(error: &ParamError) -> Response {
    let body = json!({ "error": error.message, "parameter": error.parameter });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

pub(crate) fn store_unavailable_json(error: &StoreError) -> Response {
    tracing::warn!(%error, "web: store query failed");
    error_json(
        StatusCode::SERVICE_UNAVAILABLE,
        "the result database is unavailable; try again shortly",
    )
}

/// One page of results, newest first, and the `before` value of the next page (if any).
pub(crate) struct Page {
    pub(crate) results: Vec<ResultSummary>,
    pub(crate) next_before: Option<String>,
}

/// Why a page could not be listed.
pub(crate) enum PageError {
    Param(ParamError),
    Store(StoreError),
}

/// Lists one page for `query`, looking one result ahead to know whether an older page exists.
pub(crate) async fn list_page(state: &AppState, mut query: ListQuery) -> Result<Page, PageError> {
    let limit = query.limit;
    query.limit = (limit + 1).min(MAX_LIST_LIMIT);
    let mut results = match state.store.list(&query).await {
        Ok(results) => results,
        Err(StoreError::UnknownId(id)) => {
            return Err(PageError::Param(ParamError::unknown_before(&id)));
        }
        Err(error) => return Err(PageError::Store(error)),
    };
    // At the largest limit there is no room to look ahead: a full page may have a successor.
    let has_more = results.len() > limit as usize
        || (limit == MAX_LIST_LIMIT && results.len() == limit as usize);
    results.truncate(limit as usize);
    let next_before = if has_more {
        results.last().map(|result| result.id.clone())
    } else {
        None
    };
    Ok(Page {
        results,
        next_before,
    })
}

/// `GET /api/v1/results?mailbox=spf|dkim|check&limit=N&before=ID&sender=S`
pub(crate) async fn list_results(
    State(state): State<AppState>,
    params: Result<Query<RawListParams>, QueryRejection>,
) -> Response {
    if !state.config.public_results {
        return crate::private::lists_off_json();
    }
    let Ok(Query(params)) = params else {
        return error_json(
            StatusCode::BAD_REQUEST,
            "the query string is malformed; use mailbox=spf|dkim|check&limit=N&before=ID&sender=ADDRESS",
        );
    };
    let query = match list_query(&params) {
        Ok(query) => query,
        Err(error) => return param_error_json(&error),
    };
    match list_page(&state, query).await {
        Ok(page) => {
            let public_url = &state.config.public_url;
            let results: Vec<_> = page
                .results
                .iter()
                .map(|result| listed_json(result, public_url))
                .collect();
            Json(json!({ "results": results, "next_before": page.next_before })).into_response()
        }
        Err(PageError::Param(error)) => param_error_json(&error),
        Err(PageError::Store(error)) => store_unavailable_json(&error),
    }
}

fn list_query(params: &RawListParams) -> Result<ListQuery, ParamError> {
    Ok(ListQuery {
        mailbox: params.mailbox()?,
        limit: params.limit()?,
        before: params.before()?,
        sender: params.sender()?,
        ..ListQuery::default()
    })
}

/// `GET /api/v1/results/{id}`
pub(crate) async fn get_result(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let not_found = || error_json(StatusCode::NOT_FOUND, &format!("no result with id {id}"));
    if !is_result_id(&id) {
        return not_found();
    }
    match state.store.get(&id).await {
        Ok(Some(result)) => Json(result_json(
            &result.summary,
            &result.report,
            &state.config.public_url,
        ))
        .into_response(),
        Ok(None) => not_found(),
        Err(error) => store_unavailable_json(&error),
    }
}
