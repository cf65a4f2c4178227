//! The DMARC part of the JSON API, read from the same rollup as the pages:
//!
//! * `GET /api/v1/dmarc/domains`: the domains with reports;
//! * `GET /api/v1/dmarc/domains/{domain}/daily?from&to&reporter&source&result`: one object
//!   per day of the range (the newest 30 days of the domain's data by default), zeros included;
//! * `GET /api/v1/dmarc/domains/{domain}/sources?…&limit=N`: sources failing DMARC most first;
//! * `GET /api/v1/dmarc/reports?domain&reporter&kind&from&to&limit&offset`: stored reports,
//!   newest period first, and `next_offset` when there are more;
//! * `GET /api/v1/dmarc/reports/{id}`: one report as parsed, its records capped at
//!   [`MAX_API_RECORDS`] (`records_not_listed` counts the rest; the raw file has them all),
//!   its reporter errors and warnings at [`NOTES_SHOWN`] (`errors_not_listed`,
//!   `warnings_not_listed`).
//!
//! Days are `YYYY-MM-DD` (UTC), times RFC 3339. Errors follow the API's convention: a JSON
//! `{"error": …}`, 400 naming the bad `parameter`, 404 for an unknown domain or report, 503
//! when the database cannot be reached.

use authcheck_store::{
    DmarcCounts, DmarcDomain, DmarcFilter, MAX_DASHBOARD_ROWS, MAX_REPORT_OFFSET, ReportKind,
    ReportListing, ReportQuery,
};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::api::{error_json, param_error_json, store_unavailable_json};
use crate::dmarc::{
    DashboardError, NOTES_SHOWN, RawDashboardParams, domain_name, every_day, notes_not_listed,
    resolve, source_names,
};
use crate::json::epoch_time_json;
use crate::params::{ParamError, is_result_id};

/// Most records one report's API object lists.
pub(crate) const MAX_API_RECORDS: usize = 1_000;
/// Rows a listing gives when no `limit` is asked for.
const DEFAULT_API_ROWS: u32 = 100;

fn malformed_query() -> Response {
    error_json(
        StatusCode::BAD_REQUEST,
        "the query string is malformed; see the API documentation in the README",
    )
}

fn dashboard_error_json(error: DashboardError) -> Response {
    match error {
        DashboardError::NotADomain => error_json(StatusCode::NOT_FOUND, "not a domain name"),
        DashboardError::UnknownDomain(domain) => error_json(
            StatusCode::NOT_FOUND,
            &format!("no DMARC report about {domain} has been received"),
        ),
        DashboardError::Param(error) => param_error_json(&error),
        DashboardError::Store(error) => store_unavailable_json(&error),
    }
}

fn public(state: &AppState, path: &str) -> String {
    format!("{}{path}", state.config.public_url.trim_end_matches('/'))
}

fn counts_json(counts: &DmarcCounts) -> serde_json::Map<String, Value> {
    let mut object = serde_json::Map::new();
    object.insert("messages".into(), json!(counts.messages));
    object.insert("dmarc_pass".into(), json!(counts.dmarc_pass));
    object.insert("dmarc_fail".into(), json!(counts.dmarc_fail()));
    object.insert("spf_pass".into(), json!(counts.spf_pass));
    object.insert("spf_aligned".into(), json!(counts.spf_aligned));
    object.insert("dkim_pass".into(), json!(counts.dkim_pass));
    object.insert("dkim_aligned".into(), json!(counts.dkim_aligned));
    object
}

fn domain_json(state: &AppState, domain: &DmarcDomain) -> Value {
    json!({
        "domain": domain.domain,
        "first_day": domain.first_day.to_string(),
        "last_day": domain.last_day.to_string(),
        "messages": domain.messages,
        "reports": domain.reports,
        "failure_reports": domain.failure_reports,
        "url": public(state, &format!("/dmarc/{}", domain.domain)),
    })
}

/// `limit`: 1 to [`MAX_DASHBOARD_ROWS`], `default` when absent.
fn limit_param(raw: Option<&str>, default: u32) -> Result<u32, ParamError> {
    let Some(text) = raw.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(default);
    };
    match text.parse::<u32>() {
        Ok(limit) if (1..=MAX_DASHBOARD_ROWS).contains(&limit) => Ok(limit),
        _ => Err(ParamError::new(
            "limit",
            format!("limit: not allowed; use a whole number from 1 to {MAX_DASHBOARD_ROWS}"),
        )),
    }
}

/// `GET /api/v1/dmarc/domains`
pub(crate) async fn domains(State(state): State<AppState>) -> Response {
    match state.store.dmarc_domains(MAX_DASHBOARD_ROWS).await {
        Ok(domains) => {
            let listed: Vec<Value> = domains.iter().map(|d| domain_json(&state, d)).collect();
            Json(json!({ "domains": listed })).into_response()
        }
        Err(error) => store_unavailable_json(&error),
    }
}

/// The dashboard's filters plus `limit`, for the API.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawApiParams {
    #[serde(flatten)]
    filters: RawDashboardParams,
    limit: Option<String>,
}

/// What every per-domain handler opens with: the query string read, the domain looked up and
/// the filters checked; or the error response to give.
async fn open_domain(
    state: &AppState,
    path: &str,
    params: Result<Query<RawApiParams>, QueryRejection>,
) -> Result<(RawApiParams, DmarcDomain, DmarcFilter), Response> {
    let Ok(Query(raw)) = params else {
        return Err(malformed_query());
    };
    let (domain, _, filter) = resolve(state, path, &raw.filters)
        .await
        .map_err(dashboard_error_json)?;
    Ok((raw, domain, filter))
}

/// A per-domain answer: the domain, the days its filters cover, and `items` under `key`.
fn domain_answer(
    domain: &DmarcDomain,
    filter: &DmarcFilter,
    key: &str,
    items: Vec<Value>,
) -> Response {
    let mut object = serde_json::Map::new();
    object.insert("domain".into(), json!(domain.domain));
    object.insert("from".into(), json!(filter.first_day.to_string()));
    object.insert("to".into(), json!(filter.last_day.to_string()));
    object.insert(key.into(), Value::Array(items));
    Json(Value::Object(object)).into_response()
}

/// `GET /api/v1/dmarc/domains/{domain}/daily`
pub(crate) async fn daily(
    State(state): State<AppState>,
    Path(path): Path<String>,
    params: Result<Query<RawApiParams>, QueryRejection>,
) -> Response {
    let answer = async {
        let (_, domain, filter) = open_domain(&state, &path, params).await?;
        let days = state
            .store
            .dmarc_daily(&filter)
            .await
            .map_err(|error| store_unavailable_json(&error))?;
        let days: Vec<Value> = every_day(&filter, &days)
            .iter()
            .map(|day| {
                let mut object = counts_json(&day.counts);
                object.insert("day".into(), json!(day.day.to_string()));
                Value::Object(object)
            })
            .collect();
        Ok(domain_answer(&domain, &filter, "days", days))
    };
    answer.await.unwrap_or_else(|error: Response| error)
}

/// `GET /api/v1/dmarc/domains/{domain}/sources`
pub(crate) async fn sources(
    State(state): State<AppState>,
    Path(path): Path<String>,
    params: Result<Query<RawApiParams>, QueryRejection>,
) -> Response {
    let answer = async {
        let (raw, domain, filter) = open_domain(&state, &path, params).await?;
        let limit = limit_param(raw.limit.as_deref(), DEFAULT_API_ROWS)
            .map_err(|error| param_error_json(&error))?;
        let sources = state
            .store
            .dmarc_sources(&filter, limit)
            .await
            .map_err(|error| store_unavailable_json(&error))?;
        let names = source_names(&state, &sources).await;
        let named = |counts: &[(String, i64)]| -> Value {
            Value::Array(
                counts
                    .iter()
                    .map(|(name, messages)| json!({ "name": name, "messages": messages }))
                    .collect(),
            )
        };
        let listed: Vec<Value> = sources
            .iter()
            .map(|source| {
                let mut object = counts_json(&source.counts);
                object.insert("source_ip".into(), json!(source.source_ip));
                let name = names.get(&source.source_ip);
                object.insert("ptr".into(), json!(name.and_then(|n| n.ptr.as_deref())));
                object.insert(
                    "org_domain".into(),
                    json!(name.and_then(|n| n.org_domain.as_deref())),
                );
                object.insert("reporters".into(), json!(source.reporters));
                object.insert("dispositions".into(), named(&source.dispositions));
                object.insert("reasons".into(), named(&source.reasons));
                Value::Object(object)
            })
            .collect();
        Ok(domain_answer(&domain, &filter, "sources", listed))
    };
    answer.await.unwrap_or_else(|error: Response| error)
}

fn listing_json(state: &AppState, report: &ReportListing) -> serde_json::Map<String, Value> {
    let mut object = serde_json::Map::new();
    object.insert("id".into(), json!(report.id));
    object.insert("kind".into(), json!(report.kind.as_str()));
    object.insert("reporter".into(), json!(report.reporter));
    object.insert("report_id".into(), json!(report.report_id));
    object.insert("domain".into(), json!(report.domain));
    object.insert("date_begin".into(), epoch_time_json(report.date_begin));
    object.insert("date_end".into(), epoch_time_json(report.date_end));
    object.insert("received_at".into(), epoch_time_json(report.received_at));
    object.insert(
        "url".into(),
        json!(public(state, &format!("/dmarc/report/{}", report.id))),
    );
    object.insert(
        "raw_url".into(),
        json!(public(state, &format!("/dmarc/report/{}/raw", report.id))),
    );
    object
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawReportListParams {
    domain: Option<String>,
    reporter: Option<String>,
    kind: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

fn report_query(raw: &RawReportListParams) -> Result<ReportQuery, ParamError> {
    let filters = RawDashboardParams {
        from: raw.from.clone(),
        to: raw.to.clone(),
        reporter: raw.reporter.clone(),
        ..RawDashboardParams::default()
    }
    .check()?;
    let domain = match raw
        .domain
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        None => None,
        Some(text) => Some(domain_name(text).ok_or_else(|| {
            ParamError::new(
                "domain",
                "domain: not a domain name; give one like example.com",
            )
        })?),
    };
    let kind = match raw.kind.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
        None => None,
        Some("aggregate") => Some(ReportKind::Aggregate),
        Some("failure") => Some(ReportKind::Failure),
        Some(_) => {
            return Err(ParamError::new(
                "kind",
                "kind: not a kind of report; use aggregate or failure",
            ));
        }
    };
    let offset = match raw
        .offset
        .as_deref()
        .map(str::trim)
        .filter(|o| !o.is_empty())
    {
        None => 0,
        Some(text) => match text.parse::<u32>() {
            Ok(offset) if offset <= MAX_REPORT_OFFSET => offset,
            _ => {
                return Err(ParamError::new(
                    "offset",
                    format!("offset: use a whole number from 0 to {MAX_REPORT_OFFSET}"),
                ));
            }
        },
    };
    Ok(ReportQuery {
        domain,
        first_day: filters.from,
        last_day: filters.to,
        reporter: filters.reporter,
        kind,
        offset,
        limit: limit_param(raw.limit.as_deref(), DEFAULT_API_ROWS)?,
    })
}

/// `GET /api/v1/dmarc/reports`
pub(crate) async fn reports(
    State(state): State<AppState>,
    params: Result<Query<RawReportListParams>, QueryRejection>,
) -> Response {
    let Ok(Query(raw)) = params else {
        return malformed_query();
    };
    let mut query = match report_query(&raw) {
        Ok(query) => query,
        Err(error) => return param_error_json(&error),
    };
    let limit = query.limit;
    // One more, to tell whether another page follows.
    query.limit = (limit + 1).min(MAX_DASHBOARD_ROWS);
    let mut listed = match state.store.list_reports(&query).await {
        Ok(listed) => listed,
        Err(error) => return store_unavailable_json(&error),
    };
    let more = listed.len() > limit as usize
        || (limit == MAX_DASHBOARD_ROWS && listed.len() == limit as usize);
    listed.truncate(limit as usize);
    let next_offset =
        (more && query.offset + limit <= MAX_REPORT_OFFSET).then(|| query.offset + limit);
    let reports: Vec<Value> = listed
        .iter()
        .map(|report| Value::Object(listing_json(&state, report)))
        .collect();
    Json(json!({ "reports": reports, "next_offset": next_offset })).into_response()
}

/// `GET /api/v1/dmarc/reports/{id}`
pub(crate) async fn report(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let not_found = || error_json(StatusCode::NOT_FOUND, &format!("no report with id {id}"));
    if !is_result_id(&id) {
        return not_found();
    }
    let stored = match state.store.get_report(&id).await {
        Ok(Some(stored)) => stored,
        Ok(None) => return not_found(),
        Err(error) => return store_unavailable_json(&error),
    };
    let listing = ReportListing {
        id: stored.id.clone(),
        kind: stored.kind,
        reporter: stored.reporter.clone(),
        report_id: stored.report_id.clone(),
        domain: stored.domain.clone(),
        date_begin: stored.date_begin,
        date_end: stored.date_end,
        received_at: stored.received_at,
    };
    let mut object = listing_json(&state, &listing);
    let mut report = stored.report;
    let total = usize::try_from(stored.records).unwrap_or(0);
    if let Some(records) = report.get_mut("records").and_then(Value::as_array_mut) {
        if records.is_empty() && total > 0 {
            // Stored with its records apart: the first of them only are read.
            match state
                .store
                .report_records(&id, 0, MAX_API_RECORDS as u32)
                .await
            {
                Ok(first) => *records = first,
                Err(error) => return store_unavailable_json(&error),
            }
        }
        records.truncate(MAX_API_RECORDS);
    }
    object.insert("records_total".into(), json!(total));
    object.insert(
        "records_not_listed".into(),
        json!(total.saturating_sub(MAX_API_RECORDS)),
    );
    let errors_omitted = report["metadata"]["errors_omitted"].as_u64().unwrap_or(0);
    let errors_not_listed = cap_notes(report.pointer_mut("/metadata/errors"), errors_omitted);
    let warnings_omitted = report["warnings_omitted"].as_u64().unwrap_or(0);
    let warnings_not_listed = cap_notes(report.get_mut("warnings"), warnings_omitted);
    object.insert("errors_not_listed".into(), json!(errors_not_listed));
    object.insert("warnings_not_listed".into(), json!(warnings_not_listed));
    object.insert("report".into(), report);
    Json(Value::Object(object)).into_response()
}

/// Cuts a report's list of notes (errors, warnings) to [`NOTES_SHOWN`], as its page does, and
/// says how many are not listed ([`notes_not_listed`]).
fn cap_notes(notes: Option<&mut Value>, omitted: u64) -> u64 {
    let count = match notes.and_then(Value::as_array_mut) {
        Some(notes) => {
            let count = notes.len();
            notes.truncate(NOTES_SHOWN);
            count
        }
        None => 0,
    };
    notes_not_listed(count, omitted)
}
