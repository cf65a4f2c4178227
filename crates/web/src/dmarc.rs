//! The DMARC report pages: the domains with reports at `/dmarc`, one domain's dashboard at
//! `/dmarc/{domain}`, one report at `/dmarc/report/{id}` (its file at `…/raw`), the reports
//! that could not be parsed at `/dmarc/rejected`, and what reporters saw of a test's sending
//! address, for the result page.
//!
//! Everything but the single report comes from the store's daily rollup, in listings capped
//! here, so a page stays small whatever the data. The dashboard's filters (date range,
//! reporter, source, DMARC result) are a GET form; without a range a domain shows the newest
//! [`DEFAULT_WINDOW_DAYS`] days of its own data, so an imported archive shows at once.

use std::collections::HashMap;
use std::net::IpAddr;

use askama::Template;
use authcheck_dmarc_reports::{AggregateReport, FailureReport, Record, Report};
use authcheck_store::{
    DmarcCounts, DmarcDay, DmarcDomain, DmarcFilter, DmarcOutcome, DmarcSource, ReportListing,
    ReportQuery, SourceName, StoreError, StoredReport,
};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::Deserialize;

use crate::AppState;
use crate::charts::{self, Series, StackedBars, Tone};
use crate::pages::{
    bad_request_page, error_page, malformed_query_page, render, store_unavailable_page,
};
use crate::params::{ParamError, is_result_id};
// The templates' filters, found by askama as `filters::NAME` next to the templates.
use crate::view::filters;

/// Days a domain shows when no range is asked for: the newest of its data.
pub(crate) const DEFAULT_WINDOW_DAYS: i64 = 30;
/// The longest range a dashboard accepts (a chart of at most this many bars).
pub(crate) const MAX_WINDOW_DAYS: i64 = 400;
/// Domains listed on `/dmarc` (the most recent first).
pub(crate) const DOMAINS_SHOWN: u32 = 100;
/// Sources listed on a domain's page (failing first).
pub(crate) const SOURCES_SHOWN: u32 = 100;
pub(crate) const REPORTERS_SHOWN: u32 = 50;
pub(crate) const POLICIES_SHOWN: u32 = 20;
/// Reports listed on a domain's page.
pub(crate) const REPORTS_SHOWN: u32 = 30;
/// Records of one report per page.
pub(crate) const RECORDS_PER_PAGE: usize = 100;
pub(crate) const REJECTED_SHOWN: u32 = 200;
/// Most reporter errors, and most warnings, one report's page and API object list; the rest
/// are counted ("… and 12 more"). The parser keeps about as many, but reports stored before it
/// did may hold any number.
pub(crate) const NOTES_SHOWN: usize = 100;
/// The years a `from` or `to` day may fall in: any report's days, with room, and far enough
/// from chrono's limits that a window around them is never out of range.
const FIRST_YEAR: i32 = 1970;
const LAST_YEAR: i32 = 9999;
/// Longest reporter filter accepted (reporters name themselves; real names are short).
const MAX_REPORTER_LEN: usize = 256;

// ---------------------------------------------------------------------------------------------
// Parameters

/// The dashboard's query parameters as received; unknown ones are ignored.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawDashboardParams {
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
    pub(crate) reporter: Option<String>,
    pub(crate) source: Option<String>,
    pub(crate) result: Option<String>,
}

/// The dashboard's filters, checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DashboardParams {
    pub(crate) from: Option<NaiveDate>,
    pub(crate) to: Option<NaiveDate>,
    pub(crate) reporter: Option<String>,
    pub(crate) source: Option<IpAddr>,
    pub(crate) outcome: Option<DmarcOutcome>,
}

pub(crate) fn blank_is_none(value: &Option<String>) -> Option<&str> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|text| !text.is_empty())
}

pub(crate) fn date_param(
    name: &'static str,
    value: &Option<String>,
) -> Result<Option<NaiveDate>, ParamError> {
    let Some(text) = blank_is_none(value) else {
        return Ok(None);
    };
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        ParamError::new(
            name,
            format!(
                "{name}: {:?} is not a date; write it as YYYY-MM-DD",
                shown(text)
            ),
        )
    })?;
    if !(FIRST_YEAR..=LAST_YEAR).contains(&date.year()) {
        return Err(ParamError::new(
            name,
            format!("{name}: {date} is not between the years {FIRST_YEAR} and {LAST_YEAR}"),
        ));
    }
    Ok(Some(date))
}

/// A `from`-`to` range of days as the dashboards take it: in order, and at most
/// [`MAX_WINDOW_DAYS`] long.
pub(crate) fn check_day_range(from: NaiveDate, to: NaiveDate) -> Result<(), ParamError> {
    if from > to {
        return Err(ParamError::new(
            "from",
            format!("from: {from} is after to ({to}); give the earlier day first"),
        ));
    }
    if (to - from).num_days() >= MAX_WINDOW_DAYS {
        return Err(ParamError::new(
            "to",
            format!("to: a range is at most {MAX_WINDOW_DAYS} days; choose a shorter one"),
        ));
    }
    Ok(())
}

/// A bad value quoted in an error, cut short.
fn shown(text: &str) -> String {
    text.chars().take(64).collect()
}

impl RawDashboardParams {
    pub(crate) fn check(&self) -> Result<DashboardParams, ParamError> {
        let from = date_param("from", &self.from)?;
        let to = date_param("to", &self.to)?;
        if let (Some(from), Some(to)) = (from, to) {
            check_day_range(from, to)?;
        }
        let reporter = match blank_is_none(&self.reporter) {
            Some(reporter) if reporter.len() > MAX_REPORTER_LEN => {
                return Err(ParamError::new(
                    "reporter",
                    format!(
                        "reporter: longer than {MAX_REPORTER_LEN} characters; pick one from the list"
                    ),
                ));
            }
            reporter => reporter.map(str::to_owned),
        };
        let source = match blank_is_none(&self.source) {
            None => None,
            Some(text) => Some(text.parse::<IpAddr>().map_err(|_| {
                ParamError::new(
                    "source",
                    format!(
                        "source: {:?} is not an IP address; give one like 192.0.2.1 or 2001:db8::1",
                        shown(text)
                    ),
                )
            })?),
        };
        let outcome = match blank_is_none(&self.result) {
            None => None,
            Some(text) => Some(DmarcOutcome::parse(text).ok_or_else(|| {
                ParamError::new(
                    "result",
                    format!(
                        "result: {:?} is not a DMARC result; use pass or fail",
                        shown(text)
                    ),
                )
            })?),
        };
        Ok(DashboardParams {
            from,
            to,
            reporter,
            source,
            outcome,
        })
    }
}

impl DashboardParams {
    /// The rollup filter for `domain`: the range asked for, or the newest
    /// [`DEFAULT_WINDOW_DAYS`] days of its data.
    pub(crate) fn filter(&self, domain: &DmarcDomain) -> DmarcFilter {
        let window = Duration::days(DEFAULT_WINDOW_DAYS - 1);
        // A stored day may lie anywhere chrono can count (reports stored before their dates
        // were checked), so the window is clamped, never overflowed.
        let after = |day: NaiveDate| day.checked_add_signed(window).unwrap_or(NaiveDate::MAX);
        let before = |day: NaiveDate| day.checked_sub_signed(window).unwrap_or(NaiveDate::MIN);
        let (first_day, last_day) = match (self.from, self.to) {
            (Some(from), Some(to)) => (from, to),
            (Some(from), None) => (from, after(from).min(domain.last_day.max(from))),
            (None, Some(to)) => (before(to), to),
            (None, None) => (before(domain.last_day), domain.last_day),
        };
        DmarcFilter {
            domain: domain.domain.clone(),
            first_day,
            last_day,
            reporter: self.reporter.clone(),
            source_ip: self.source.map(|ip| ip.to_string()),
            outcome: self.outcome,
        }
    }

    fn is_filtered(&self) -> bool {
        *self != DashboardParams::default()
    }
}

/// `domain` from a path, lowercase without a final dot, if it can be a domain name; anything
/// else never reaches the database. The rule reports are stored by, so every stored domain
/// has its page.
pub(crate) fn domain_name(path: &str) -> Option<String> {
    authcheck_dmarc_reports::domain_name(path)
}

/// `stored` if it is a domain name as reports are stored under now ([`domain_name`]); `None` for
/// a name stored before names were checked (empty, a final dot, other characters), which has no
/// page and no record to publish.
fn as_stored_name(stored: &str) -> Option<&str> {
    domain_name(stored)
        .is_some_and(|name| name == stored)
        .then_some(stored)
}

/// Why a domain's data could not be shown.
pub(crate) enum DashboardError {
    NotADomain,
    UnknownDomain(String),
    Param(ParamError),
    Store(StoreError),
}

impl From<StoreError> for DashboardError {
    fn from(error: StoreError) -> Self {
        DashboardError::Store(error)
    }
}

/// The domain named by a path and the rollup filter its parameters ask for.
pub(crate) async fn resolve(
    state: &AppState,
    path: &str,
    raw: &RawDashboardParams,
) -> Result<(DmarcDomain, DashboardParams, DmarcFilter), DashboardError> {
    let name = domain_name(path).ok_or(DashboardError::NotADomain)?;
    let params = raw.check().map_err(DashboardError::Param)?;
    let domain = state
        .store
        .dmarc_domain(&name)
        .await?
        .ok_or(DashboardError::UnknownDomain(name))?;
    let filter = params.filter(&domain);
    Ok((domain, params, filter))
}

/// Every day of `filter`'s range, with zeros where the rollup has none.
pub(crate) fn every_day(filter: &DmarcFilter, days: &[DmarcDay]) -> Vec<DmarcDay> {
    let mut known = days.iter().peekable();
    filter
        .first_day
        .iter_days()
        .take_while(|day| *day <= filter.last_day)
        .take(MAX_WINDOW_DAYS as usize)
        .map(|day| {
            while known.peek().is_some_and(|known| known.day < day) {
                known.next();
            }
            let counts = known
                .peek()
                .filter(|known| known.day == day)
                .map_or_else(DmarcCounts::default, |known| known.counts);
            DmarcDay { day, counts }
        })
        .collect()
}

/// `part` of `whole` as a percentage with one decimal, or a dash when there is no whole.
pub(crate) fn percent(part: i64, whole: i64) -> String {
    if whole <= 0 {
        return "—".to_owned();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

fn date_time(seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(seconds, 0).map_or_else(
        || seconds.to_string(),
        |at| at.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

fn period(begin: i64, end: i64) -> String {
    format!("{} – {}", date_time(begin), date_time(end))
}

/// `/dmarc/{domain}` with `params` as its query string (and `extra` on top).
pub(crate) fn domain_link(domain: &str, params: &[(&str, String)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        if !value.is_empty() {
            query.append_pair(name, value);
        }
    }
    let query = query.finish();
    if query.is_empty() {
        format!("/dmarc/{domain}")
    } else {
        format!("/dmarc/{domain}?{query}")
    }
}

// ---------------------------------------------------------------------------------------------
// Error pages

fn dashboard_error_page(error: DashboardError) -> Response {
    match error {
        DashboardError::NotADomain => error_page(
            StatusCode::NOT_FOUND,
            "Not a domain name",
            "This address does not name a domain. Pick a domain from the list at /dmarc.",
        ),
        DashboardError::UnknownDomain(domain) => error_page(
            StatusCode::NOT_FOUND,
            "No reports for this domain",
            &format!(
                "No DMARC report about {domain} has been received. Reports appear once the \
                 domain's DMARC record sends them here (see /dmarc)."
            ),
        ),
        DashboardError::Param(error) => bad_request_page(&error),
        DashboardError::Store(error) => store_unavailable_page(&error),
    }
}

fn report_not_found_page() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "Report not found",
        "This report does not exist or has expired. The reports of a domain are listed on its page under /dmarc.",
    )
}

// ---------------------------------------------------------------------------------------------
// /dmarc

struct DomainRow {
    name: String,
    /// `None` for a name stored before names were checked, which has no page.
    link: Option<String>,
    first_day: String,
    last_day: String,
    window_messages: i64,
    pass_rate: String,
    trend_svg: String,
    messages: i64,
    reports: i64,
    failure_reports: i64,
}

#[derive(Template)]
#[template(path = "dmarc_index.html")]
struct IndexPage {
    domains: Vec<DomainRow>,
    domains_more: bool,
    /// The DNS records that authorize this tester to receive each domain's reports.
    authorizations: Vec<String>,
    report_addresses: Vec<String>,
    /// A tester domain for the examples.
    example_tester: String,
}

/// `GET /dmarc`
pub(crate) async fn index(State(state): State<AppState>) -> Response {
    let mut domains = match state.store.dmarc_domains(DOMAINS_SHOWN + 1).await {
        Ok(domains) => domains,
        Err(error) => return store_unavailable_page(&error),
    };
    let domains_more = domains.len() > DOMAINS_SHOWN as usize;
    domains.truncate(DOMAINS_SHOWN as usize);
    let mut rows = Vec::with_capacity(domains.len());
    for domain in &domains {
        let filter = DashboardParams::default().filter(domain);
        let days = match state.store.dmarc_daily(&filter).await {
            Ok(days) => every_day(&filter, &days),
            Err(error) => return store_unavailable_page(&error),
        };
        let mut window = DmarcCounts::default();
        days.iter().for_each(|day| window.add(&day.counts));
        let trend: Vec<i64> = days.iter().map(|day| day.counts.messages).collect();
        rows.push(DomainRow {
            link: as_stored_name(&domain.domain).map(|name| domain_link(name, &[])),
            first_day: domain.first_day.to_string(),
            last_day: domain.last_day.to_string(),
            window_messages: window.messages,
            pass_rate: percent(window.dmarc_pass, window.messages),
            trend_svg: charts::sparkline(
                &format!(
                    "Messages per day for {}, {} to {}",
                    domain.domain, filter.first_day, filter.last_day
                ),
                &trend,
            ),
            messages: domain.messages,
            reports: domain.reports,
            failure_reports: domain.failure_reports,
            name: domain.domain.clone(),
        });
    }
    let testers = &state.config.domains;
    // No record for a stored name that is no domain name: it could not be published.
    let authorizations = domains
        .iter()
        .filter_map(|domain| as_stored_name(&domain.domain))
        .flat_map(|domain| {
            testers
                .iter()
                .map(move |tester| format!("{domain}._report._dmarc.{tester}. TXT \"v=DMARC1\""))
        })
        .collect();
    let page = IndexPage {
        domains: rows,
        domains_more,
        authorizations,
        report_addresses: testers
            .iter()
            .map(|tester| format!("rua@{tester}"))
            .collect(),
        example_tester: testers
            .first()
            .cloned()
            .unwrap_or_else(|| "tester.example".to_owned()),
    };
    render(StatusCode::OK, &page)
}

// ---------------------------------------------------------------------------------------------
// /dmarc/{domain}

/// How much of the reported mail passed DMARC, which the headline rate's colour shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PassShare {
    /// No message reported, so no colour.
    NoMessages,
    /// Every message passed.
    All,
    /// At least half passed: forwarders and mailing lists often account for the rest.
    Most,
    /// Less than half passed: most of the domain's mail fails where it arrives.
    Minority,
}

impl PassShare {
    fn of(pass: i64, messages: i64) -> PassShare {
        if messages <= 0 {
            PassShare::NoMessages
        } else if pass >= messages {
            PassShare::All
        } else if pass * 2 >= messages {
            PassShare::Most
        } else {
            PassShare::Minority
        }
    }

    /// The result colour of the site's style sheet.
    fn css_class(self) -> &'static str {
        match self {
            PassShare::NoMessages => "",
            PassShare::All => "result-pass",
            PassShare::Most => "result-softfail",
            PassShare::Minority => "result-fail",
        }
    }
}

struct Rates {
    messages: i64,
    dmarc_pass: i64,
    dmarc_fail: i64,
    dmarc_rate: String,
    dmarc_share: PassShare,
    spf_pass_rate: String,
    spf_aligned_rate: String,
    dkim_pass_rate: String,
    dkim_aligned_rate: String,
}

impl Rates {
    fn of(counts: &DmarcCounts) -> Rates {
        let all = counts.messages;
        Rates {
            messages: all,
            dmarc_pass: counts.dmarc_pass,
            dmarc_fail: counts.dmarc_fail(),
            dmarc_rate: percent(counts.dmarc_pass, all),
            dmarc_share: PassShare::of(counts.dmarc_pass, all),
            spf_pass_rate: percent(counts.spf_pass, all),
            spf_aligned_rate: percent(counts.spf_aligned, all),
            dkim_pass_rate: percent(counts.dkim_pass, all),
            dkim_aligned_rate: percent(counts.dkim_aligned, all),
        }
    }
}

struct DayRow {
    day: String,
    rates: Rates,
}

struct PolicyRow {
    policy: String,
    first_day: String,
    last_day: String,
    reports: i64,
    reporters: i64,
}

struct ReporterRow {
    name: String,
    /// The page filtered by this reporter; none for a name too long to filter by.
    link: Option<String>,
    rates: Rates,
}

struct SourceRow {
    ip: String,
    link: String,
    /// Reverse DNS and organizational domain of the source, looked up at ingest; `None`
    /// (not looked up, or no name) shows a dash.
    ptr: Option<String>,
    org_domain: Option<String>,
    rates: Rates,
    reporters: i64,
    dispositions: String,
    reasons: String,
}

struct ReportRow {
    id: String,
    kind: &'static str,
    reporter: String,
    period: String,
}

/// The filter form's values, as typed.
struct FormValues {
    from: String,
    to: String,
    reporter: String,
    source: String,
    result: String,
}

#[derive(Template)]
#[template(path = "dmarc_domain.html")]
struct DomainPage {
    domain: String,
    first_day: String,
    last_day: String,
    data_first_day: String,
    data_last_day: String,
    form: FormValues,
    filtered: bool,
    reporter_choices: Vec<String>,
    totals: Rates,
    chart_svg: String,
    days: Vec<DayRow>,
    policies: Vec<PolicyRow>,
    reporters: Vec<ReporterRow>,
    sources: Vec<SourceRow>,
    sources_more: bool,
    reports: Vec<ReportRow>,
    reports_more: bool,
}

/// The bar chart of messages per day, DMARC pass and fail stacked.
pub(crate) fn daily_chart(domain: &str, days: &[DmarcDay]) -> String {
    charts::stacked_bars(&StackedBars {
        title: &format!("Messages per day for {domain}, DMARC pass and fail"),
        labels: days
            .iter()
            .map(|day| day.day.format("%m-%d").to_string())
            .collect(),
        series: vec![
            Series {
                name: "DMARC pass",
                tone: Tone::Ok,
                values: days.iter().map(|day| day.counts.dmarc_pass).collect(),
            },
            Series {
                name: "DMARC fail",
                tone: Tone::Problem,
                values: days.iter().map(|day| day.counts.dmarc_fail()).collect(),
            },
        ],
    })
}

/// The names looked up at ingest for `sources`, by address; none when the store cannot say
/// (the page shows dashes).
pub(crate) async fn source_names(
    state: &AppState,
    sources: &[DmarcSource],
) -> HashMap<String, SourceName> {
    let ips: Vec<String> = sources.iter().map(|s| s.source_ip.clone()).collect();
    match state.store.source_names(&ips).await {
        Ok(names) => names
            .into_iter()
            .map(|name| (name.ip.clone(), name))
            .collect(),
        Err(error) => {
            tracing::warn!(%error, "web: cannot read the names of report sources");
            HashMap::new()
        }
    }
}

fn named_counts(counts: &[(String, i64)], none: &str) -> String {
    counts
        .iter()
        .map(|(name, messages)| {
            let name = if name.is_empty() { none } else { name };
            format!("{name} {messages}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn report_row(report: &ReportListing) -> ReportRow {
    ReportRow {
        id: report.id.clone(),
        kind: report.kind.as_str(),
        reporter: report.reporter.clone(),
        period: period(report.date_begin, report.date_end),
    }
}

/// `GET /dmarc/{domain}`
pub(crate) async fn domain_page(
    State(state): State<AppState>,
    Path(path): Path<String>,
    params: Result<Query<RawDashboardParams>, QueryRejection>,
) -> Response {
    let Ok(Query(raw)) = params else {
        return malformed_query_page();
    };
    let (domain, params, filter) = match resolve(&state, &path, &raw).await {
        Ok(resolved) => resolved,
        Err(error) => return dashboard_error_page(error),
    };
    // The reporters of the whole range, unfiltered by reporter, for the form's choices.
    let choices_filter = DmarcFilter {
        reporter: None,
        ..filter.clone()
    };
    let reports_query = ReportQuery {
        domain: Some(domain.domain.clone()),
        first_day: Some(filter.first_day),
        last_day: Some(filter.last_day),
        reporter: filter.reporter.clone(),
        kind: None,
        offset: 0,
        limit: REPORTS_SHOWN + 1,
    };
    let store = &state.store;
    let choices = async {
        // Without a reporter filter the choices are the reporters listed anyway.
        match filter.reporter {
            Some(_) => store
                .dmarc_reporters(&choices_filter, REPORTERS_SHOWN)
                .await
                .map(Some),
            None => Ok(None),
        }
    };
    let (days, sources, reporters, choices, policies, reports) = tokio::join!(
        store.dmarc_daily(&filter),
        store.dmarc_sources(&filter, SOURCES_SHOWN + 1),
        store.dmarc_reporters(&filter, REPORTERS_SHOWN),
        choices,
        store.dmarc_policies(&filter, POLICIES_SHOWN),
        store.list_reports(&reports_query),
    );
    let (days, mut sources, reporters, choices, policies, mut reports) =
        match (days, sources, reporters, choices, policies, reports) {
            (Ok(a), Ok(b), Ok(c), Ok(d), Ok(e), Ok(f)) => (a, b, c, d, e, f),
            (Err(error), ..)
            | (_, Err(error), ..)
            | (_, _, Err(error), ..)
            | (_, _, _, Err(error), ..)
            | (_, _, _, _, Err(error), _)
            | (.., Err(error)) => return store_unavailable_page(&error),
        };
    let days = every_day(&filter, &days);
    let mut totals = DmarcCounts::default();
    days.iter().for_each(|day| totals.add(&day.counts));
    let sources_more = sources.len() > SOURCES_SHOWN as usize;
    sources.truncate(SOURCES_SHOWN as usize);
    let reports_more = reports.len() > REPORTS_SHOWN as usize;
    reports.truncate(REPORTS_SHOWN as usize);
    let names = source_names(&state, &sources).await;

    let form = FormValues {
        from: params.from.map(|day| day.to_string()).unwrap_or_default(),
        to: params.to.map(|day| day.to_string()).unwrap_or_default(),
        reporter: params.reporter.clone().unwrap_or_default(),
        source: params.source.map(|ip| ip.to_string()).unwrap_or_default(),
        result: params
            .outcome
            .map(|o| o.as_str().to_owned())
            .unwrap_or_default(),
    };
    let range = [("from", form.from.clone()), ("to", form.to.clone())];
    let link_with = |name: &'static str, value: String| {
        let mut params: Vec<(&str, String)> = range.to_vec();
        params.push(("result", form.result.clone()));
        params.push((name, value));
        domain_link(&domain.domain, &params)
    };
    let page = DomainPage {
        first_day: filter.first_day.to_string(),
        last_day: filter.last_day.to_string(),
        data_first_day: domain.first_day.to_string(),
        data_last_day: domain.last_day.to_string(),
        filtered: params.is_filtered(),
        reporter_choices: choices
            .as_ref()
            .unwrap_or(&reporters)
            .iter()
            .map(|r| r.reporter.clone())
            .filter(|name| name.len() <= MAX_REPORTER_LEN)
            .collect(),
        totals: Rates::of(&totals),
        chart_svg: daily_chart(&domain.domain, &days),
        policies: policies
            .into_iter()
            .map(|policy| PolicyRow {
                policy: policy.policy,
                first_day: policy.first_day.to_string(),
                last_day: policy.last_day.to_string(),
                reports: policy.reports,
                reporters: policy.reporters,
            })
            .collect(),
        reporters: reporters
            .iter()
            .map(|reporter| ReporterRow {
                link: (reporter.reporter.len() <= MAX_REPORTER_LEN)
                    .then(|| link_with("reporter", reporter.reporter.clone())),
                name: reporter.reporter.clone(),
                rates: Rates::of(&reporter.counts),
            })
            .collect(),
        sources: sources
            .iter()
            .map(|source| SourceRow {
                link: link_with("source", source.source_ip.clone()),
                ip: source.source_ip.clone(),
                ptr: names
                    .get(&source.source_ip)
                    .and_then(|name| name.ptr.clone()),
                org_domain: names
                    .get(&source.source_ip)
                    .and_then(|name| name.org_domain.clone()),
                rates: Rates::of(&source.counts),
                reporters: source.reporters,
                dispositions: named_counts(&source.dispositions, "not given"),
                reasons: named_counts(&source.reasons, ""),
            })
            .collect(),
        sources_more,
        reports: reports.iter().map(report_row).collect(),
        reports_more,
        days: days
            .iter()
            .rev()
            .map(|day| DayRow {
                day: day.day.to_string(),
                rates: Rates::of(&day.counts),
            })
            .collect(),
        form,
        domain: domain.domain.clone(),
    };
    render(StatusCode::OK, &page)
}

// ---------------------------------------------------------------------------------------------
// /dmarc/report/{id}

struct RecordRow {
    source_ip: String,
    count: u64,
    disposition: String,
    dkim: String,
    spf: String,
    header_from: String,
    envelope_from: String,
    dkim_results: String,
    spf_results: String,
    reasons: String,
}

struct AggregateView {
    format: String,
    org_name: String,
    email: String,
    policy: String,
    records: Vec<RecordRow>,
    records_total: usize,
    first_shown: usize,
    last_shown: usize,
    previous_page: Option<String>,
    next_page: Option<String>,
    errors: Vec<String>,
    errors_not_listed: u64,
    warnings: Vec<String>,
    warnings_not_listed: u64,
}

struct FailureView {
    format: String,
    reporter: String,
    subject: String,
    date: String,
    fields: Vec<(String, String)>,
    original_headers: String,
    text: String,
    warnings: Vec<String>,
    warnings_not_listed: u64,
}

#[derive(Template)]
#[template(path = "dmarc_report.html")]
struct ReportPage {
    id: String,
    kind: &'static str,
    reporter: String,
    report_id: String,
    domain: String,
    domain_link: Option<String>,
    period: String,
    received: String,
    aggregate: Option<AggregateView>,
    failure: Option<FailureView>,
    /// The stored report as JSON, for a report this version cannot read.
    report_json: String,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawReportParams {
    page: Option<String>,
}

/// The first [`NOTES_SHOWN`] of `notes` as text, and how many are not listed: the rest of
/// them and the `omitted` ones the parser only counted.
fn listed_notes<T: ToString>(notes: &[T], omitted: u64) -> (Vec<String>, u64) {
    let shown = notes.iter().take(NOTES_SHOWN).map(ToString::to_string);
    (shown.collect(), notes_not_listed(notes.len(), omitted))
}

/// How many of a report's `count` notes (errors or warnings) past the first [`NOTES_SHOWN`],
/// and of the `omitted` ones the parser only counted, its page and API object do not list.
pub(crate) fn notes_not_listed(count: usize, omitted: u64) -> u64 {
    (count.saturating_sub(NOTES_SHOWN) as u64).saturating_add(omitted)
}

fn or_dash(value: Option<&str>) -> String {
    value.filter(|v| !v.is_empty()).unwrap_or("—").to_owned()
}

/// The records page `page` (from 1) of a report of `total` records shows: the page (past the
/// last, the last) and the index of its first record.
fn records_page(total: usize, page: usize) -> (usize, usize) {
    let pages = total.div_ceil(RECORDS_PER_PAGE).max(1);
    let page = page.min(pages);
    (page, (page - 1) * RECORDS_PER_PAGE)
}

/// The view of an aggregate report whose records `shown`, the page `page` of `total`, start
/// at record `first`.
fn aggregate_view(
    id: &str,
    report: &AggregateReport,
    shown: &[Record],
    (page, first): (usize, usize),
    total: usize,
) -> AggregateView {
    let pages = total.div_ceil(RECORDS_PER_PAGE).max(1);
    let page_link = |page: usize| format!("/dmarc/report/{id}?page={page}");
    let (errors, errors_not_listed) =
        listed_notes(&report.metadata.errors, report.metadata.errors_omitted);
    let (warnings, warnings_not_listed) = listed_notes(&report.warnings, report.warnings_omitted);
    AggregateView {
        format: report.format.to_string(),
        org_name: report.metadata.org_name.clone(),
        email: report.metadata.email.clone(),
        policy: report.policy.tags(),
        records: shown
            .iter()
            .map(|record| RecordRow {
                source_ip: record.source_ip.to_string(),
                count: record.count,
                disposition: or_dash(record.policy_evaluated.disposition.map(|d| d.as_str())),
                dkim: or_dash(record.policy_evaluated.dkim.map(|r| r.as_str())),
                spf: or_dash(record.policy_evaluated.spf.map(|r| r.as_str())),
                header_from: record.identifiers.header_from.clone(),
                envelope_from: or_dash(record.identifiers.envelope_from.as_deref()),
                dkim_results: record
                    .auth_results
                    .dkim
                    .iter()
                    .map(|dkim| {
                        let selector = dkim
                            .selector
                            .as_deref()
                            .map(|s| format!(" (s={s})"))
                            .unwrap_or_default();
                        let result = dkim.result.map_or("unknown", |r| r.as_str());
                        format!("{}{selector}: {result}", dkim.domain)
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
                spf_results: record
                    .auth_results
                    .spf
                    .iter()
                    .map(|spf| {
                        let scope = spf.scope.map(|s| format!(" ({s})")).unwrap_or_default();
                        let result = spf.result.map_or("unknown", |r| r.as_str());
                        format!("{}{scope}: {result}", spf.domain)
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
                reasons: record
                    .policy_evaluated
                    .reasons
                    .iter()
                    .map(|reason| {
                        let kind = reason.kind.map_or("unknown", |k| k.as_str());
                        match reason.comment.as_deref().filter(|c| !c.is_empty()) {
                            Some(comment) => format!("{kind} ({comment})"),
                            None => kind.to_owned(),
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            })
            .collect(),
        records_total: total,
        first_shown: if shown.is_empty() { 0 } else { first + 1 },
        last_shown: first + shown.len(),
        previous_page: (page > 1).then(|| page_link(page - 1)),
        next_page: (page < pages).then(|| page_link(page + 1)),
        errors,
        errors_not_listed,
        warnings,
        warnings_not_listed,
    }
}

fn failure_view(report: &FailureReport) -> FailureView {
    let mut fields = Vec::new();
    if let Some(feedback) = &report.feedback {
        let mut put = |name: &str, value: String| {
            if !value.is_empty() {
                fields.push((name.to_owned(), value));
            }
        };
        let joined = |values: &[String]| values.join("; ");
        put(
            "Feedback-Type",
            feedback
                .feedback_type
                .map(|t| t.to_string())
                .unwrap_or_default(),
        );
        put(
            "Auth-Failure",
            feedback
                .auth_failure
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        );
        if let Some(aligned) = &feedback.identity_alignment {
            let aligned: Vec<_> = aligned.iter().map(ToString::to_string).collect();
            put(
                "Identity-Alignment",
                if aligned.is_empty() {
                    "none".to_owned()
                } else {
                    aligned.join(", ")
                },
            );
        }
        put(
            "Delivery-Result",
            feedback
                .delivery_result
                .map(|r| r.to_string())
                .unwrap_or_default(),
        );
        put(
            "Source-IP",
            feedback
                .source_ip
                .map(|ip| ip.to_string())
                .unwrap_or_default(),
        );
        put(
            "Arrival-Date",
            feedback.arrival_date.clone().unwrap_or_default(),
        );
        put(
            "Original-Mail-From",
            feedback.original_mail_from.clone().unwrap_or_default(),
        );
        put("Original-Rcpt-To", joined(&feedback.original_rcpt_to));
        put("Reported-Domain", joined(&feedback.reported_domain));
        put(
            "Authentication-Results",
            joined(&feedback.authentication_results),
        );
        put(
            "DKIM-Domain",
            feedback.dkim_domain.clone().unwrap_or_default(),
        );
        put(
            "DKIM-Identity",
            feedback.dkim_identity.clone().unwrap_or_default(),
        );
        put(
            "DKIM-Selector",
            feedback.dkim_selector.clone().unwrap_or_default(),
        );
        put(
            "DKIM-Selector-DNS",
            feedback.dkim_selector_dns.clone().unwrap_or_default(),
        );
        put(
            "DKIM-Canonicalized-Header",
            feedback
                .dkim_canonicalized_header
                .clone()
                .unwrap_or_default(),
        );
        put("SPF-DNS", joined(&feedback.spf_dns));
        put(
            "Incidents",
            feedback
                .incidents
                .map(|n| n.to_string())
                .unwrap_or_default(),
        );
        put(
            "User-Agent",
            feedback.user_agent.clone().unwrap_or_default(),
        );
        for (name, value) in feedback.other_fields.iter().take(50) {
            fields.push((name.clone(), value.clone()));
        }
    }
    let (warnings, warnings_not_listed) = listed_notes(&report.warnings, report.warnings_omitted);
    FailureView {
        format: report.format.to_string(),
        reporter: or_dash(report.reporter.as_deref()),
        subject: or_dash(report.subject.as_deref()),
        date: report.date.map_or_else(|| "—".to_owned(), date_time),
        fields,
        original_headers: report.original_headers.clone().unwrap_or_default(),
        text: report.text.clone(),
        warnings,
        warnings_not_listed,
    }
}

/// `GET /dmarc/report/{id}`
pub(crate) async fn report_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Result<Query<RawReportParams>, QueryRejection>,
) -> Response {
    let Ok(Query(params)) = params else {
        return malformed_query_page();
    };
    let page = match blank_is_none(&params.page) {
        None => 1,
        Some(text) => match text.parse::<usize>() {
            Ok(page) if page >= 1 => page,
            _ => {
                return bad_request_page(&ParamError::new(
                    "page",
                    format!("page: {:?} is not a page number; use 1, 2, 3…", shown(text)),
                ));
            }
        },
    };
    if !is_result_id(&id) {
        return report_not_found_page();
    }
    let stored: StoredReport = match state.store.get_report(&id).await {
        Ok(Some(stored)) => stored,
        Ok(None) => return report_not_found_page(),
        Err(error) => return store_unavailable_page(&error),
    };
    let parsed: Option<Report> = serde_json::from_value(stored.report.clone()).ok();
    let (aggregate, failure) = match &parsed {
        // Stored before records kept their own details: the records are in the report.
        Some(Report::Aggregate(report)) if !report.records.is_empty() => {
            let total = report.records.len();
            let (page, first) = records_page(total, page);
            let shown = &report.records[first..(first + RECORDS_PER_PAGE).min(total)];
            (
                Some(aggregate_view(&id, report, shown, (page, first), total)),
                None,
            )
        }
        // Only the page shown is read, however many records the report has.
        Some(Report::Aggregate(report)) => {
            let total = usize::try_from(stored.records).unwrap_or(0);
            let (page, first) = records_page(total, page);
            let records = match state
                .store
                .report_records(&id, first as u32, RECORDS_PER_PAGE as u32)
                .await
            {
                Ok(records) => records,
                Err(error) => return store_unavailable_page(&error),
            };
            let shown: Vec<Record> = records
                .into_iter()
                .filter_map(|record| serde_json::from_value(record).ok())
                .collect();
            (
                Some(aggregate_view(&id, report, &shown, (page, first), total)),
                None,
            )
        }
        Some(Report::Failure(report)) => (None, Some(failure_view(report))),
        None => (None, None),
    };
    let report_json = match parsed {
        Some(_) => String::new(),
        None => serde_json::to_string_pretty(&stored.report).unwrap_or_default(),
    };
    let page = ReportPage {
        kind: stored.kind.as_str(),
        domain_link: domain_name(&stored.domain).map(|domain| domain_link(&domain, &[])),
        period: period(stored.date_begin, stored.date_end),
        received: date_time(stored.received_at),
        aggregate,
        failure,
        report_json,
        id: stored.id,
        reporter: stored.reporter,
        report_id: stored.report_id,
        domain: stored.domain,
    };
    render(StatusCode::OK, &page)
}

/// `GET /dmarc/report/{id}/raw`: the report's message or file exactly as received.
pub(crate) async fn raw_report(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    if !is_result_id(&id) {
        return report_not_found_page();
    }
    match state.store.raw_report(&id).await {
        Ok(Some(raw)) => (
            [
                (CONTENT_TYPE, "application/octet-stream".to_owned()),
                (
                    CONTENT_DISPOSITION,
                    format!("attachment; filename=\"dmarc-report-{id}\""),
                ),
            ],
            raw,
        )
            .into_response(),
        Ok(None) => report_not_found_page(),
        Err(error) => store_unavailable_page(&error),
    }
}

// ---------------------------------------------------------------------------------------------
// /dmarc/rejected

struct RejectedRow {
    received: String,
    source: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "dmarc_rejected.html")]
struct RejectedPage {
    rows: Vec<RejectedRow>,
    shown_limit: u32,
}

/// `GET /dmarc/rejected`
pub(crate) async fn rejected_page(State(state): State<AppState>) -> Response {
    let rejected = match state.store.list_rejected_reports(REJECTED_SHOWN).await {
        Ok(rejected) => rejected,
        Err(error) => return store_unavailable_page(&error),
    };
    let page = RejectedPage {
        rows: rejected
            .into_iter()
            .map(|rejected| RejectedRow {
                received: date_time(rejected.received_at),
                source: rejected.source,
                reason: rejected.reason,
            })
            .collect(),
        shown_limit: REJECTED_SHOWN,
    };
    render(StatusCode::OK, &page)
}

// ---------------------------------------------------------------------------------------------
// The result page's note

/// Days before a test that the result page looks back for reports about its sending address.
pub(crate) const SEEN_WINDOW_DAYS: i64 = 30;
/// Domains named in the result page's note.
const SEEN_DOMAINS_SHOWN: u32 = 3;

/// What reporters saw of a test's sending address, for one domain.
pub(crate) struct SeenLine {
    pub(crate) domain: String,
    pub(crate) messages: i64,
    pub(crate) pass_rate: String,
    pub(crate) link: String,
}

/// The days the result page's note counts for a test received on `received_day`, when
/// today is `today`: from [`SEEN_WINDOW_DAYS`] days before the test (reports about its
/// sender's earlier mail) to today (reports about the test itself arrive a day or so after
/// it), at most [`MAX_WINDOW_DAYS`] days, so that the note's link shows on the dashboard the
/// very days it counts.
pub(crate) fn seen_days(received_day: NaiveDate, today: NaiveDate) -> (NaiveDate, NaiveDate) {
    let first_day = received_day - Duration::days(SEEN_WINDOW_DAYS);
    let last_day = today
        .min(first_day + Duration::days(MAX_WINDOW_DAYS - 1))
        .max(received_day);
    (first_day, last_day)
}

/// What reporters saw of `client_ip` on `days` ([`seen_days`]), the domain of `header_from`
/// first; empty when nothing, or when the store cannot say (the result page shows without
/// it).
pub(crate) async fn seen_from_address(
    state: &AppState,
    client_ip: &str,
    header_from_domain: Option<&str>,
    (first_day, last_day): (NaiveDate, NaiveDate),
) -> Vec<SeenLine> {
    let Ok(ip) = client_ip.parse::<IpAddr>() else {
        return Vec::new();
    };
    let seen = match state
        .store
        .dmarc_source_seen(
            &ip.to_string(),
            first_day,
            last_day,
            SEEN_DOMAINS_SHOWN * 10,
        )
        .await
    {
        Ok(seen) => seen,
        Err(error) => {
            tracing::warn!(%error, "web: cannot read what reporters saw of an address");
            return Vec::new();
        }
    };
    let mut lines: Vec<SeenLine> = seen
        .into_iter()
        .map(|seen| SeenLine {
            link: domain_link(
                &seen.domain,
                &[
                    ("from", first_day.to_string()),
                    ("to", last_day.to_string()),
                    ("source", ip.to_string()),
                ],
            ),
            pass_rate: percent(seen.counts.dmarc_pass, seen.counts.messages),
            messages: seen.counts.messages,
            domain: seen.domain,
        })
        .collect();
    if let Some(position) =
        header_from_domain.and_then(|own| lines.iter().position(|line| line.domain == own))
    {
        let line = lines.remove(position);
        lines.insert(0, line);
    }
    lines.truncate(SEEN_DOMAINS_SHOWN as usize);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The headline rate is green only when every message passed, red when most failed.
    #[test]
    fn the_pass_rate_is_coloured_by_how_much_passed() {
        assert_eq!(PassShare::of(0, 0), PassShare::NoMessages);
        assert_eq!(PassShare::of(5, 5), PassShare::All);
        assert_eq!(PassShare::of(99, 100), PassShare::Most);
        assert_eq!(PassShare::of(1, 2), PassShare::Most);
        assert_eq!(PassShare::of(1, 3), PassShare::Minority);
        assert_eq!(PassShare::of(0, 9), PassShare::Minority);
        assert_eq!(PassShare::of(1, 9).css_class(), "result-fail");
    }

    /// Names stored before they were checked get neither a link nor a record to publish.
    #[test]
    fn only_names_stored_as_domain_names_are_linked_and_published() {
        assert_eq!(as_stored_name("example.org"), Some("example.org"));
        assert_eq!(
            as_stored_name("_dmarc-x.example.org"),
            Some("_dmarc-x.example.org")
        );
        for stored in [
            "",
            "Example.org",
            "example.org.",
            "<script>.example",
            "a b.example",
        ] {
            assert_eq!(as_stored_name(stored), None, "{stored:?}");
        }
    }

    fn raw(pairs: &[(&str, &str)]) -> RawDashboardParams {
        let mut params = RawDashboardParams::default();
        for (name, value) in pairs {
            let value = Some((*value).to_owned());
            match *name {
                "from" => params.from = value,
                "to" => params.to = value,
                "reporter" => params.reporter = value,
                "source" => params.source = value,
                "result" => params.result = value,
                _ => unreachable!(),
            }
        }
        params
    }

    fn domain(last: &str) -> DmarcDomain {
        DmarcDomain {
            domain: "example.org".to_owned(),
            first_day: "2020-01-01".parse().unwrap(),
            last_day: last.parse().unwrap(),
            messages: 1,
            reports: 1,
            failure_reports: 0,
        }
    }

    #[test]
    fn without_a_range_a_domain_shows_the_newest_thirty_days_of_its_data() {
        let filter = raw(&[]).check().unwrap().filter(&domain("2022-03-31"));
        assert_eq!(filter.first_day.to_string(), "2022-03-02");
        assert_eq!(filter.last_day.to_string(), "2022-03-31");
        let only_to = raw(&[("to", "2022-02-10")]).check().unwrap();
        assert_eq!(
            only_to.filter(&domain("2022-03-31")).first_day.to_string(),
            "2022-01-12"
        );
    }

    #[test]
    fn bad_filters_name_their_parameter() {
        for (pairs, parameter) in [
            (vec![("from", "2022-13-01")], "from"),
            (vec![("from", "yesterday")], "from"),
            (vec![("from", "2022-03-02"), ("to", "2022-03-01")], "from"),
            (vec![("from", "2020-01-01"), ("to", "2022-01-01")], "to"),
            (vec![("source", "192.0.2.300")], "source"),
            (vec![("source", "<script>")], "source"),
            (vec![("result", "maybe")], "result"),
        ] {
            let error = raw(&pairs).check().unwrap_err();
            assert_eq!(error.parameter, parameter, "{pairs:?}");
            assert!(error.message.starts_with(parameter), "{}", error.message);
        }
        let long = "r".repeat(MAX_REPORTER_LEN + 1);
        assert_eq!(
            raw(&[("reporter", &long)]).check().unwrap_err().parameter,
            "reporter"
        );
        let fine = raw(&[("source", " 2001:DB8::1 "), ("result", "fail"), ("to", "")])
            .check()
            .unwrap();
        assert_eq!(fine.source.unwrap().to_string(), "2001:db8::1");
        assert_eq!(fine.outcome, Some(DmarcOutcome::Fail));
        assert_eq!(fine.to, None);
    }

    #[test]
    fn domain_names_are_lowercased_and_anything_else_refused() {
        assert_eq!(domain_name("Example.ORG.").as_deref(), Some("example.org"));
        assert_eq!(
            domain_name("_dmarc.example.org").as_deref(),
            Some("_dmarc.example.org")
        );
        for bad in [
            "",
            "a b",
            "<script>",
            "ex%41mple.org",
            &"a".repeat(254),
            "exämple.org",
        ] {
            assert_eq!(domain_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_day_of_the_range_is_listed_with_zeros_where_none_was_reported() {
        let filter = raw(&[("from", "2022-03-01"), ("to", "2022-03-04")])
            .check()
            .unwrap()
            .filter(&domain("2022-03-31"));
        let reported = |day: &str, messages| DmarcDay {
            day: day.parse().unwrap(),
            counts: DmarcCounts {
                messages,
                ..DmarcCounts::default()
            },
        };
        let days = every_day(
            &filter,
            &[reported("2022-03-02", 5), reported("2022-03-04", 7)],
        );
        let listed: Vec<_> = days
            .iter()
            .map(|day| (day.day.to_string(), day.counts.messages))
            .collect();
        assert_eq!(
            listed,
            [
                ("2022-03-01".to_owned(), 0),
                ("2022-03-02".to_owned(), 5),
                ("2022-03-03".to_owned(), 0),
                ("2022-03-04".to_owned(), 7),
            ]
        );
    }

    #[test]
    fn rates_are_percentages_with_one_decimal_or_a_dash() {
        assert_eq!(percent(1, 3), "33.3%");
        assert_eq!(percent(0, 0), "—");
        assert_eq!(percent(5, 5), "100.0%");
    }
}
