//! The server-rendered pages: the instructions at `/`, the result lists at `/spf`, `/dkim` and
//! `/check`,
//! a result's report at `/r/{id}`, its raw message at `/r/{id}/raw`, the message as delivered
//! at `/r/{id}/eml`, and the error pages.
//!
//! Templates are in the workspace's `templates/` folder; askama escapes every value, and no
//! template marks message-derived text `|safe`.

use askama::Template;
use authcheck_store::{ListQuery, Mailbox, ResultSummary, StoreError, StoredResult};
use authcheck_verifier::{DkimSignatureReport, Report};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{Html, IntoResponse, Response};
use chrono::{NaiveDate, Utc};

use crate::AppState;
use crate::api::{PageError, list_page};
use crate::dmarc::{SeenLine, seen_days, seen_from_address};
use crate::params::{PAGE_SIZE, ParamError, RawListParams, is_result_id};
// The templates' filters, found by askama as `filters::NAME` next to the templates.
use crate::view::filters;
use crate::view::{
    MAX_SIGNATURES_SHOWN, ResultRow, ShownHeaders, TraceItem, display_mail_from, flatten_trace,
    header_fields, stored_verdict_class, utc_time, verdict_class,
};

/// Results of each mailbox shown on the front page.
const FRONT_PAGE_RESULTS: u32 = 10;

/// Renders `template` with `status`; a template that fails to render is a bug, shown as 500.
pub(crate) fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "web: a page template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error: the page could not be rendered",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

pub(crate) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    render(status, &ErrorPage { title, message })
}

pub(crate) fn bad_request_page(error: &ParamError) -> Response {
    error_page(StatusCode::BAD_REQUEST, "Bad request", &error.message)
}

pub(crate) fn store_unavailable_page(error: &StoreError) -> Response {
    tracing::warn!(%error, "web: store query failed");
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "The result database cannot be reached right now. Please try again in a moment.",
    )
}

pub(crate) fn malformed_query_page() -> Response {
    error_page(
        StatusCode::BAD_REQUEST,
        "Bad request",
        "The query string is malformed. Use the links and the filter form on the page.",
    )
}

/// Any path the site does not have.
pub(crate) async fn not_found() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no page at this address.",
    )
}

fn result_not_found_page() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "Result not found",
        "This result does not exist or has expired. Results are kept for a limited time; send a new test message.",
    )
}

/// The test addresses of one tester domain.
struct DomainAddresses {
    spf: String,
    dkim: String,
    check: String,
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    domains: Vec<DomainAddresses>,
    hostname: String,
    example_address: String,
    spf_rows: Vec<ResultRow>,
    dkim_rows: Vec<ResultRow>,
    check_rows: Vec<ResultRow>,
}

/// `GET /`
pub(crate) async fn index(State(state): State<AppState>) -> Response {
    if !state.config.public_results {
        return render(
            StatusCode::OK,
            &PrivateIndexPage {
                hostname: state.config.hostname.clone(),
            },
        );
    }
    let latest = |mailbox| ListQuery {
        mailbox: Some(mailbox),
        limit: FRONT_PAGE_RESULTS,
        ..ListQuery::default()
    };
    let (spf_query, dkim_query, check_query) = (
        latest(Mailbox::Spf),
        latest(Mailbox::Dkim),
        latest(Mailbox::Check),
    );
    let (spf, dkim, check) = tokio::join!(
        state.store.list(&spf_query),
        state.store.list(&dkim_query),
        state.store.list(&check_query)
    );
    let (spf, dkim, check) = match (spf, dkim, check) {
        (Ok(spf), Ok(dkim), Ok(check)) => (spf, dkim, check),
        (Err(error), _, _) | (_, Err(error), _) | (_, _, Err(error)) => {
            return store_unavailable_page(&error);
        }
    };
    let config = &state.config;
    let domains = config
        .domains
        .iter()
        .map(|domain| DomainAddresses {
            spf: format!("spf@{domain}"),
            dkim: format!("dkim@{domain}"),
            check: format!("check@{domain}"),
        })
        .collect();
    let example_address = config.domains.first().map_or_else(
        || "spf@tester.example".to_owned(),
        |domain| format!("spf@{domain}"),
    );
    let page = IndexPage {
        domains,
        hostname: config.hostname.clone(),
        example_address,
        spf_rows: spf.iter().map(ResultRow::new).collect(),
        dkim_rows: dkim.iter().map(ResultRow::new).collect(),
        check_rows: check.iter().map(ResultRow::new).collect(),
    };
    render(StatusCode::OK, &page)
}

/// The front page when public lists are off: only private addresses.
#[derive(Template)]
#[template(path = "index_private.html")]
struct PrivateIndexPage {
    hostname: String,
}

#[derive(Template)]
#[template(path = "list.html")]
struct ListPage {
    mailbox: &'static str,
    sender: String,
    rows: Vec<ResultRow>,
    /// The link to the next (older) page, query string included.
    older_link: Option<String>,
    /// Whether this is the newest page, the only one new results appear on.
    is_first_page: bool,
    /// The newest result shown, for the live feed to catch up from.
    newest_id: String,
}

pub(crate) async fn spf_results(
    state: State<AppState>,
    params: Result<Query<RawListParams>, QueryRejection>,
) -> Response {
    results_page(state, Mailbox::Spf, params).await
}

pub(crate) async fn dkim_results(
    state: State<AppState>,
    params: Result<Query<RawListParams>, QueryRejection>,
) -> Response {
    results_page(state, Mailbox::Dkim, params).await
}

pub(crate) async fn check_results(
    state: State<AppState>,
    params: Result<Query<RawListParams>, QueryRejection>,
) -> Response {
    results_page(state, Mailbox::Check, params).await
}

/// `GET /spf`, `GET /dkim` and `GET /check`: a page of results, newest first, with `before` and `sender`.
async fn results_page(
    State(state): State<AppState>,
    mailbox: Mailbox,
    params: Result<Query<RawListParams>, QueryRejection>,
) -> Response {
    if !state.config.public_results {
        return crate::private::lists_off_page();
    }
    let Ok(Query(params)) = params else {
        return malformed_query_page();
    };
    let (before, sender) = match (params.before(), params.sender()) {
        (Ok(before), Ok(sender)) => (before, sender),
        (Err(error), _) | (_, Err(error)) => return bad_request_page(&error),
    };
    let query = ListQuery {
        mailbox: Some(mailbox),
        sender: sender.clone(),
        before: before.clone(),
        limit: PAGE_SIZE,
        ..ListQuery::default()
    };
    let page = match list_page(&state, query).await {
        Ok(page) => page,
        Err(PageError::Param(error)) => return bad_request_page(&error),
        Err(PageError::Store(error)) => return store_unavailable_page(&error),
    };
    let sender = sender.unwrap_or_default();
    let older_link = page.next_before.map(|id| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("before", &id);
        if !sender.is_empty() {
            query.append_pair("sender", &sender);
        }
        format!("/{}?{}", mailbox.as_str(), query.finish())
    });
    let rows: Vec<ResultRow> = page.results.iter().map(ResultRow::new).collect();
    let list = ListPage {
        mailbox: mailbox.as_str(),
        newest_id: rows.first().map(|row| row.id.clone()).unwrap_or_default(),
        sender,
        rows,
        older_link,
        is_first_page: before.is_none(),
    };
    render(StatusCode::OK, &list)
}

#[derive(Template)]
#[template(path = "result.html")]
struct ResultPage<'a> {
    result: &'a ResultSummary,
    /// `None` when the stored report does not parse as this version's report.
    report: Option<&'a Report>,
    report_json: String,
    spf_trace: Vec<TraceItem<'a>>,
    /// Trace steps left out of `spf_trace`.
    spf_trace_more: usize,
    helo_trace: Vec<TraceItem<'a>>,
    helo_trace_more: usize,
    /// The first DKIM signatures, and how many more there are.
    signatures: &'a [DkimSignatureReport],
    signatures_more: usize,
    verdict_class: &'static str,
    verdict_spf_class: &'static str,
    verdict_dkim_class: &'static str,
    mail_from: String,
    received_at: String,
    headers: ShownHeaders,
    /// What DMARC reporters saw of the sending address around the time of the test.
    dmarc_seen: Vec<SeenLine>,
    /// The first and last day the note counts.
    dmarc_seen_days: (NaiveDate, NaiveDate),
    /// Whether the message got a reply by mail; `None` when replies were off.
    reply: Option<crate::replies::ReplyView>,
}

/// The result `id` and its raw message (absent once purged), read together; or the page to
/// answer instead: not found for a malformed or unknown id, unavailable when the store fails.
async fn result_and_raw_message(
    state: &AppState,
    id: &str,
) -> Result<(StoredResult, Option<Vec<u8>>), Response> {
    if !is_result_id(id) {
        return Err(result_not_found_page());
    }
    let (result, raw) = tokio::join!(state.store.get(id), state.store.raw_message(id));
    match (result, raw) {
        (Ok(Some(result)), Ok(raw)) => Ok((result, raw)),
        (Ok(None), _) => Err(result_not_found_page()),
        (Err(error), _) | (_, Err(error)) => Err(store_unavailable_page(&error)),
    }
}

/// `GET /r/{id}`
pub(crate) async fn result_detail(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let (result, raw) = match result_and_raw_message(&state, &id).await {
        Ok((result, raw)) => (result, raw.unwrap_or_default()),
        Err(page) => return page,
    };
    let report: Option<Report> = serde_json::from_value(result.report.clone()).ok();
    // Shown only for a report this version cannot read.
    let report_json = match report {
        Some(_) => String::new(),
        None => serde_json::to_string_pretty(&result.report).unwrap_or_default(),
    };
    let (spf_trace, spf_trace_more) = report
        .as_ref()
        .map(|report| flatten_trace(&report.spf.check.trace))
        .unwrap_or_default();
    let (helo_trace, helo_trace_more) = report
        .as_ref()
        .and_then(|report| report.spf.helo.as_ref())
        .map(|helo| flatten_trace(&helo.trace))
        .unwrap_or_default();
    let header_from_domain = result
        .summary
        .header_from
        .as_deref()
        .and_then(|from| from.rsplit_once('@'))
        .map(|(_, domain)| domain.trim_end_matches('>').to_ascii_lowercase());
    let dmarc_seen_days = seen_days(
        result.summary.received_at.date_naive(),
        Utc::now().date_naive(),
    );
    let dmarc_seen = seen_from_address(
        &state,
        &result.summary.session.client_ip,
        header_from_domain.as_deref(),
        dmarc_seen_days,
    )
    .await;
    let reply = crate::replies::reply_view(&state, &id).await;
    let all_signatures = report.as_ref().map_or(&[][..], |report| &report.dkim[..]);
    let signatures = &all_signatures[..all_signatures.len().min(MAX_SIGNATURES_SHOWN)];
    let page = ResultPage {
        result: &result.summary,
        report: report.as_ref(),
        report_json,
        spf_trace,
        spf_trace_more,
        helo_trace,
        helo_trace_more,
        signatures,
        signatures_more: all_signatures.len() - signatures.len(),
        verdict_class: stored_verdict_class(&result.summary.verdict),
        verdict_spf_class: verdict_class(report.as_ref().map(|report| report.verdicts.spf)),
        verdict_dkim_class: verdict_class(report.as_ref().map(|report| report.verdicts.dkim)),
        mail_from: display_mail_from(&result.summary.session.mail_from),
        received_at: utc_time(&result.summary.received_at),
        headers: header_fields(&raw),
        dmarc_seen,
        dmarc_seen_days,
        reply,
    };
    render(StatusCode::OK, &page)
}

/// `GET /r/{id}/eml`: the message as the tester delivers it — the verdict in the Subject and the
/// tester's Authentication-Results field on top — as a download.
pub(crate) async fn delivered_message(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let (result, raw) = match result_and_raw_message(&state, &id).await {
        Ok((result, Some(raw))) => (result, raw),
        Ok((_, None)) => return result_not_found_page(),
        Err(page) => return page,
    };
    let authentication_results = result
        .report
        .get("authentication_results")
        .and_then(|value| value.as_str())
        .unwrap_or_default();
    let delivered = authcheck_verifier::message_as_delivered(
        &raw,
        &result.summary.verdict,
        authentication_results,
    );
    (
        [
            (CONTENT_TYPE, "message/rfc822".to_owned()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}-delivered.eml\""),
            ),
        ],
        delivered,
    )
        .into_response()
}

/// `GET /r/{id}/raw`: the message exactly as received, as a download.
pub(crate) async fn raw_message(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    if !is_result_id(&id) {
        return result_not_found_page();
    }
    match state.store.raw_message(&id).await {
        Ok(Some(raw)) => (
            [
                (CONTENT_TYPE, "message/rfc822".to_owned()),
                (
                    CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{id}.eml\""),
                ),
            ],
            raw,
        )
            .into_response(),
        Ok(None) => result_not_found_page(),
        Err(error) => store_unavailable_page(&error),
    }
}
