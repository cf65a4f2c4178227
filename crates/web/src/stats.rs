//! The statistics page `/stats` and its JSON twin `/api/v1/stats`: for a period (today, the
//! last 7 or 30 days, a month, or a range of days, all in UTC) and a mailbox (or all), a
//! summary, the verdicts per day, the monthly history, the days of the month and of the week,
//! the hours of the day, the top sending hosts and senders, the sessions per day and the 4xx
//! and 5xx replies given with what caused them.
//!
//! Everything comes from the store's rollups in one call ([`authcheck_store::Stats`]), whose
//! lists are capped, so the page costs the same whatever the traffic. Charts are the
//! [`charts`] module's SVG, each with the table of its numbers.

use askama::Template;
use authcheck_store::{Mailbox, Stats, StatsQuery};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{Datelike, Duration, NaiveDate, Utc, Weekday};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::AppState;
use crate::api::{error_json, param_error_json, store_unavailable_json};
use crate::charts::{self, Series, StackedBars, Tone};
use crate::dmarc::{MAX_WINDOW_DAYS, blank_is_none, check_day_range, date_param, percent};
use crate::pages::{bad_request_page, malformed_query_page, render, store_unavailable_page};
use crate::params::ParamError;
// The templates' filters, found by askama as `filters::NAME` next to the templates.
use crate::view::filters;

/// Rows in each top list on the page and in the JSON.
pub(crate) const TOP_ROWS: u32 = 20;

/// The period choices of the form, by their `period` value.
const PERIODS: [(&str, &str); 3] = [
    ("today", "today"),
    ("7d", "the last 7 days"),
    ("30d", "the last 30 days"),
];

/// The query parameters as received; unknown ones are ignored.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawStatsParams {
    period: Option<String>,
    month: Option<String>,
    from: Option<String>,
    to: Option<String>,
    mailbox: Option<String>,
}

/// The period and mailbox asked for, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StatsParams {
    first_day: NaiveDate,
    last_day: NaiveDate,
    mailbox: Option<Mailbox>,
    /// How the period was chosen, for the form: `today`, `7d`, `30d`, `month` or `range`.
    chosen: &'static str,
}

fn shown(text: &str) -> String {
    text.chars().take(64).collect()
}

impl RawStatsParams {
    /// A range (`from`, `to`) wins over a `month`, which wins over a `period`; the default is
    /// the last 7 days, `today` being the UTC day of `today`.
    pub(crate) fn check(&self, today: NaiveDate) -> Result<StatsParams, ParamError> {
        let mailbox = match blank_is_none(&self.mailbox) {
            None | Some("all") => None,
            Some(name) => Some(Mailbox::parse(name).ok_or_else(|| {
                ParamError::new(
                    "mailbox",
                    format!(
                        "mailbox: {:?} is not a mailbox; use spf, dkim, check or all",
                        shown(name)
                    ),
                )
            })?),
        };
        let from = date_param("from", &self.from)?;
        let to = date_param("to", &self.to)?;
        let (first_day, last_day, chosen) = if from.is_some() || to.is_some() {
            let last = to.unwrap_or(today);
            let first = from.unwrap_or(last);
            check_day_range(first, last)?;
            (first, last, "range")
        } else if let Some(month) = blank_is_none(&self.month) {
            let first = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d")
                .ok()
                .filter(|_| month.len() == 7)
                .ok_or_else(|| {
                    ParamError::new(
                        "month",
                        format!(
                            "month: {:?} is not a month; write it as YYYY-MM",
                            shown(month)
                        ),
                    )
                })?;
            let next = first
                .checked_add_months(chrono::Months::new(1))
                .unwrap_or(first);
            (first, next - Duration::days(1), "month")
        } else {
            let (days, chosen) = match blank_is_none(&self.period) {
                Some("today") => (1, "today"),
                None | Some("7d") => (7, "7d"),
                Some("30d") => (30, "30d"),
                Some(other) => {
                    return Err(ParamError::new(
                        "period",
                        format!(
                            "period: {:?} is not a period; use today, 7d or 30d, or give month \
                             (YYYY-MM) or from and to (YYYY-MM-DD)",
                            shown(other)
                        ),
                    ));
                }
            };
            (today - Duration::days(days - 1), today, chosen)
        };
        Ok(StatsParams {
            first_day,
            last_day,
            mailbox,
            chosen,
        })
    }
}

impl StatsParams {
    fn query(&self) -> StatsQuery {
        StatsQuery {
            first_day: self.first_day,
            last_day: self.last_day,
            mailbox: self.mailbox,
            top: TOP_ROWS,
        }
    }

    fn mailbox_name(&self) -> &'static str {
        self.mailbox.map_or("all", Mailbox::as_str)
    }
}

/// What caused a 4xx or 5xx reply, from its code and enhanced status code (RFC 3463) as the
/// listener gives them (the replies are in the SMTP crate's `replies` module).
pub(crate) fn cause(code: u16, status: &str) -> &'static str {
    match (code, status) {
        (550, "5.7.1") => "relay denied: a recipient not at this tester",
        (_, "5.1.1") => "unknown mailbox",
        (_, "5.3.4") => "message too big",
        (_, "4.7.1") => "rate limit: too many messages from the address or sender domain",
        (_, "4.4.2") => "timeout: no command in time, or the session time limit",
        (_, "4.7.0") => "too many connections, or too many refused commands",
        (_, "4.5.3") => "too many recipients",
        (_, "4.3.1") => "server busy, or its disk below the free-space floor",
        (_, "4.4.3") => "the message could not be checked in time",
        (_, "4.3.2") => "server shutting down",
        (_, "4.3.0") => "temporary failure (storage, or a chunk over the size limit)",
        (_, "5.6.0") => "message refused as unreadable",
        (_, status) if status.starts_with("5.5.") => "command out of sequence or bad syntax",
        _ => "other",
    }
}

const WEEKDAYS: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

/// The period's totals.
#[derive(Serialize)]
struct Summary {
    messages: i64,
    ok: i64,
    partial: i64,
    problem: i64,
    sessions: i64,
    refused_sessions: i64,
    refusals: i64,
}

/// What both forms show beyond the store's [`Stats`], computed once from it.
struct Derived {
    summary: Summary,
    /// Every day of the range, zeros included: (day, ok, partial, problem).
    every_day: Vec<(NaiveDate, i64, i64, i64)>,
    days_of_month: Vec<i64>,
    days_of_week: Vec<i64>,
    /// Every day of the range: (day, sessions, refused).
    session_days: Vec<(NaiveDate, i64, i64)>,
}

fn derive(params: &StatsParams, stats: &Stats) -> Derived {
    let range: Vec<NaiveDate> = params
        .first_day
        .iter_days()
        .take_while(|day| *day <= params.last_day)
        .take(MAX_WINDOW_DAYS as usize)
        .collect();
    let mut days_of_month = vec![0; 31];
    let mut days_of_week = vec![0; 7];
    let mut summary = Summary {
        messages: 0,
        ok: 0,
        partial: 0,
        problem: 0,
        sessions: 0,
        refused_sessions: 0,
        refusals: stats.replies.iter().map(|reply| reply.replies).sum(),
    };
    for day in &stats.days {
        summary.messages += day.counts.messages;
        summary.ok += day.counts.ok;
        summary.partial += day.counts.partial;
        summary.problem += day.counts.problem;
        days_of_month[day.day.day0() as usize] += day.counts.messages;
        days_of_week[day.day.weekday().num_days_from_monday() as usize] += day.counts.messages;
    }
    for day in &stats.sessions {
        summary.sessions += day.sessions;
        summary.refused_sessions += day.refused;
    }
    let every_day = range
        .iter()
        .map(|date| {
            let counts = stats
                .days
                .iter()
                .find(|day| day.day == *date)
                .map(|day| day.counts)
                .unwrap_or_default();
            (*date, counts.ok, counts.partial, counts.problem)
        })
        .collect();
    let session_days = range
        .iter()
        .map(|date| {
            stats
                .sessions
                .iter()
                .find(|day| day.day == *date)
                .map_or((*date, 0, 0), |day| (*date, day.sessions, day.refused))
        })
        .collect();
    Derived {
        summary,
        every_day,
        days_of_month,
        days_of_week,
        session_days,
    }
}

async fn gather(
    state: &AppState,
    raw: &RawStatsParams,
) -> Result<(StatsParams, Stats), Result<ParamError, authcheck_store::StoreError>> {
    let params = raw.check(Utc::now().date_naive()).map_err(Ok)?;
    let stats = state.store.stats(&params.query()).await.map_err(Err)?;
    Ok((params, stats))
}

// ---------------------------------------------------------------------------------------------
// The page

struct Row {
    label: String,
    values: Vec<String>,
}

struct Chart {
    id: &'static str,
    title: &'static str,
    note: &'static str,
    svg: String,
    head: Vec<&'static str>,
    rows: Vec<Row>,
}

struct NamedRow {
    name: String,
    extra: Option<String>,
    messages: i64,
    ok: i64,
    partial: i64,
    problem: i64,
    pass_rate: String,
}

struct ReplyRow {
    code: u16,
    status: String,
    cause: &'static str,
    replies: i64,
    sessions: i64,
}

struct FormValues {
    month: String,
    from: String,
    to: String,
    mailbox: &'static str,
}

struct Link {
    label: &'static str,
    href: String,
    current: bool,
}

/// `/stats` with these parameters (empty ones left out).
fn stats_link(params: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        if !value.is_empty() {
            query.append_pair(name, value);
        }
    }
    let query = query.finish();
    if query.is_empty() {
        "/stats".to_owned()
    } else {
        format!("/stats?{query}")
    }
}

/// The period links (keeping the mailbox) and the mailbox links (keeping the period).
fn links(params: &StatsParams) -> (Vec<Link>, Vec<Link>) {
    let mailbox = match params.mailbox_name() {
        "all" => "",
        name => name,
    };
    let periods = PERIODS
        .iter()
        .map(|(value, label)| Link {
            label,
            href: stats_link(&[("period", value), ("mailbox", mailbox)]),
            current: params.chosen == *value,
        })
        .collect();
    let month = params.first_day.format("%Y-%m").to_string();
    let (first, last) = (params.first_day.to_string(), params.last_day.to_string());
    let period: Vec<(&str, &str)> = match params.chosen {
        "month" => vec![("month", month.as_str())],
        "range" => vec![("from", first.as_str()), ("to", last.as_str())],
        chosen => vec![("period", chosen)],
    };
    let mailboxes = std::iter::once("all")
        .chain(Mailbox::ALL.iter().map(|mailbox| mailbox.as_str()))
        .map(|name| {
            let mut query = period.clone();
            if name != "all" {
                query.push(("mailbox", name));
            }
            Link {
                label: name,
                href: stats_link(&query),
                current: params.mailbox_name() == name,
            }
        })
        .collect();
    (periods, mailboxes)
}

#[derive(Template)]
#[template(path = "stats.html")]
struct StatsPage {
    first_day: String,
    last_day: String,
    mailbox: &'static str,
    form: FormValues,
    period_links: Vec<Link>,
    mailbox_links: Vec<Link>,
    summary: Summary,
    verdicts: Vec<(String, i64, String, &'static str)>,
    charts: Vec<Chart>,
    hosts: Vec<NamedRow>,
    /// Sender domains, then addresses: (section id, title, rows).
    senders: Vec<(&'static str, &'static str, Vec<NamedRow>)>,
    replies: Vec<ReplyRow>,
}

fn one_series(
    title: &'static str,
    name: &'static str,
    labels: Vec<String>,
    values: Vec<i64>,
) -> String {
    charts::stacked_bars(&StackedBars {
        title,
        labels,
        series: vec![Series {
            name,
            tone: Tone::Neutral,
            values,
        }],
    })
}

fn graded_row(
    name: String,
    extra: Option<String>,
    counts: &authcheck_store::GradeCounts,
) -> NamedRow {
    NamedRow {
        name,
        extra,
        messages: counts.messages,
        ok: counts.ok,
        partial: counts.partial,
        problem: counts.problem,
        pass_rate: percent(counts.ok + counts.partial, counts.messages),
    }
}

fn sender_rows(senders: &[authcheck_store::StatsSender]) -> Vec<NamedRow> {
    senders
        .iter()
        .map(|sender| graded_row(sender.name.clone(), None, &sender.counts))
        .collect()
}

fn charts_of(stats: &Stats, derived: &Derived) -> Vec<Chart> {
    let number = |n: &i64| n.to_string();
    let day_labels: Vec<String> = derived
        .every_day
        .iter()
        .map(|(day, ..)| day.format("%m-%d").to_string())
        .collect();
    let verdicts_per_day = Chart {
        id: "verdicts-per-day",
        title: "Verdicts per day",
        note: "Each result by its verdict's grade: |OK| pass, |~OK| partial, !! … !! problem.",
        svg: charts::stacked_bars(&StackedBars {
            title: "Results per day (UTC) by grade",
            labels: day_labels.clone(),
            series: vec![
                Series {
                    name: "pass |OK|",
                    tone: Tone::Ok,
                    values: derived.every_day.iter().map(|d| d.1).collect(),
                },
                Series {
                    name: "partial |~OK|",
                    tone: Tone::Partial,
                    values: derived.every_day.iter().map(|d| d.2).collect(),
                },
                Series {
                    name: "problem !!",
                    tone: Tone::Problem,
                    values: derived.every_day.iter().map(|d| d.3).collect(),
                },
            ],
        }),
        head: vec!["Day (UTC)", "Results", "Pass", "Partial", "Problem"],
        rows: derived
            .every_day
            .iter()
            .map(|(day, ok, partial, problem)| Row {
                label: day.to_string(),
                values: [ok + partial + problem, *ok, *partial, *problem]
                    .iter()
                    .map(number)
                    .collect(),
            })
            .collect(),
    };
    let months = Chart {
        id: "months",
        title: "Monthly history",
        note: "Every month the counts are kept for (400 days past the results' retention), whatever the period.",
        svg: one_series(
            "Results per month (UTC)",
            "results",
            stats.months.iter().map(|m| m.month.clone()).collect(),
            stats.months.iter().map(|m| m.counts.messages).collect(),
        ),
        head: vec!["Month", "Results", "Pass", "Partial", "Problem"],
        rows: stats
            .months
            .iter()
            .rev()
            .map(|month| Row {
                label: month.month.clone(),
                values: [
                    month.counts.messages,
                    month.counts.ok,
                    month.counts.partial,
                    month.counts.problem,
                ]
                .iter()
                .map(number)
                .collect(),
            })
            .collect(),
    };
    let days_of_month = Chart {
        id: "days-of-month",
        title: "Days of the month",
        note: "The period's results by day of the month.",
        svg: one_series(
            "Results by day of the month (UTC)",
            "results",
            (1..=31).map(|day| day.to_string()).collect(),
            derived.days_of_month.clone(),
        ),
        head: vec!["Day", "Results"],
        rows: derived
            .days_of_month
            .iter()
            .enumerate()
            .map(|(n, messages)| Row {
                label: (n + 1).to_string(),
                values: vec![messages.to_string()],
            })
            .collect(),
    };
    let days_of_week = Chart {
        id: "days-of-week",
        title: "Days of the week",
        note: "The period's results by day of the week (UTC).",
        svg: one_series(
            "Results by day of the week (UTC)",
            "results",
            WEEKDAYS.iter().map(|day| day.to_string()).collect(),
            derived.days_of_week.clone(),
        ),
        head: vec!["Day", "Results"],
        rows: WEEKDAYS
            .iter()
            .zip(&derived.days_of_week)
            .map(|(day, messages)| Row {
                label: day.to_string(),
                values: vec![messages.to_string()],
            })
            .collect(),
    };
    let hours = Chart {
        id: "hours",
        title: "Hours of the day",
        note: "The period's results by hour, in UTC.",
        svg: one_series(
            "Results by hour of the day (UTC)",
            "results",
            (0..24).map(|hour| format!("{hour:02}")).collect(),
            stats.hours.clone(),
        ),
        head: vec!["Hour (UTC)", "Results"],
        rows: stats
            .hours
            .iter()
            .enumerate()
            .map(|(hour, messages)| Row {
                label: format!("{hour:02}:00"),
                values: vec![messages.to_string()],
            })
            .collect(),
    };
    let sessions = Chart {
        id: "sessions-per-day",
        title: "SMTP sessions per day",
        note: "Every session, whatever it stored; refused: given at least one 4xx or 5xx reply. Sessions belong to no mailbox.",
        svg: charts::stacked_bars(&StackedBars {
            title: "SMTP sessions per day (UTC), refused and not",
            labels: day_labels,
            series: vec![
                Series {
                    name: "not refused",
                    tone: Tone::Neutral,
                    values: derived.session_days.iter().map(|d| d.1 - d.2).collect(),
                },
                Series {
                    name: "refused",
                    tone: Tone::Problem,
                    values: derived.session_days.iter().map(|d| d.2).collect(),
                },
            ],
        }),
        head: vec!["Day (UTC)", "Sessions", "Refused"],
        rows: derived
            .session_days
            .iter()
            .map(|(day, sessions, refused)| Row {
                label: day.to_string(),
                values: vec![sessions.to_string(), refused.to_string()],
            })
            .collect(),
    };
    vec![
        verdicts_per_day,
        months,
        days_of_month,
        days_of_week,
        hours,
        sessions,
    ]
}

/// `GET /stats`
pub(crate) async fn page(
    State(state): State<AppState>,
    params: Result<Query<RawStatsParams>, QueryRejection>,
) -> Response {
    // Top senders and hosts are a public list too.
    if !state.config.public_results {
        return crate::private::lists_off_page();
    }
    let Ok(Query(raw)) = params else {
        return malformed_query_page();
    };
    let (params, stats) = match gather(&state, &raw).await {
        Ok(gathered) => gathered,
        Err(Ok(error)) => return bad_request_page(&error),
        Err(Err(error)) => return store_unavailable_page(&error),
    };
    let derived = derive(&params, &stats);
    let total = derived.summary.messages;
    let (period_links, mailbox_links) = links(&params);
    let page = StatsPage {
        first_day: params.first_day.to_string(),
        last_day: params.last_day.to_string(),
        mailbox: params.mailbox_name(),
        form: FormValues {
            month: if params.chosen == "month" {
                params.first_day.format("%Y-%m").to_string()
            } else {
                String::new()
            },
            from: if params.chosen == "range" {
                params.first_day.to_string()
            } else {
                String::new()
            },
            to: if params.chosen == "range" {
                params.last_day.to_string()
            } else {
                String::new()
            },
            mailbox: params.mailbox_name(),
        },
        period_links,
        mailbox_links,
        verdicts: stats
            .verdicts
            .iter()
            .map(|verdict| {
                (
                    verdict.verdict.clone(),
                    verdict.messages,
                    percent(verdict.messages, total),
                    crate::view::stored_verdict_class(&verdict.verdict),
                )
            })
            .collect(),
        charts: charts_of(&stats, &derived),
        summary: derived.summary,
        hosts: stats
            .hosts
            .iter()
            .map(|host| {
                graded_row(
                    host.client_ip.clone(),
                    host.client_ptr.clone(),
                    &host.counts,
                )
            })
            .collect(),
        senders: vec![
            (
                "sender-domains",
                "Top sender domains",
                sender_rows(&stats.sender_domains),
            ),
            (
                "sender-addresses",
                "Top sender addresses",
                sender_rows(&stats.sender_addresses),
            ),
        ],
        replies: stats
            .replies
            .iter()
            .map(|reply| ReplyRow {
                code: reply.code,
                status: reply.status.clone(),
                cause: cause(reply.code, &reply.status),
                replies: reply.replies,
                sessions: reply.sessions,
            })
            .collect(),
    };
    render(StatusCode::OK, &page)
}

// ---------------------------------------------------------------------------------------------
// The JSON

/// `GET /api/v1/stats`
pub(crate) async fn json(
    State(state): State<AppState>,
    params: Result<Query<RawStatsParams>, QueryRejection>,
) -> Response {
    if !state.config.public_results {
        return crate::private::lists_off_json();
    }
    let Ok(Query(raw)) = params else {
        return error_json(
            StatusCode::BAD_REQUEST,
            "the query string is malformed; see the API documentation in the README",
        );
    };
    let (params, stats) = match gather(&state, &raw).await {
        Ok(gathered) => gathered,
        Err(Ok(error)) => return param_error_json(&error),
        Err(Err(error)) => return store_unavailable_json(&error),
    };
    let derived = derive(&params, &stats);
    let replies: Vec<_> = stats
        .replies
        .iter()
        .map(|reply| {
            json!({
                "code": reply.code,
                "status": reply.status,
                "cause": cause(reply.code, &reply.status),
                "replies": reply.replies,
                "sessions": reply.sessions,
            })
        })
        .collect();
    let body = json!({
        "period": {
            "from": params.first_day.to_string(),
            "to": params.last_day.to_string(),
            "time_zone": "UTC",
            "mailbox": params.mailbox_name(),
        },
        "summary": derived.summary,
        "verdicts": stats.verdicts,
        "days": derived.every_day.iter().map(|(day, ok, partial, problem)| json!({
            "day": day.to_string(),
            "messages": ok + partial + problem,
            "ok": ok,
            "partial": partial,
            "problem": problem,
        })).collect::<Vec<_>>(),
        "months": stats.months,
        "days_of_month": derived.days_of_month,
        "days_of_week": WEEKDAYS.iter().zip(&derived.days_of_week).map(|(day, messages)| json!({
            "day": day.to_string(),
            "messages": messages,
        })).collect::<Vec<_>>(),
        "hours": stats.hours,
        "hosts": stats.hosts,
        "sender_domains": stats.sender_domains,
        "sender_addresses": stats.sender_addresses,
        "sessions": derived.session_days.iter().map(|(day, sessions, refused)| json!({
            "day": day.to_string(),
            "sessions": sessions,
            "refused": refused,
        })).collect::<Vec<_>>(),
        "replies": replies,
    });
    Json(body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawStatsParams {
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        };
        RawStatsParams {
            period: get("period"),
            month: get("month"),
            from: get("from"),
            to: get("to"),
            mailbox: get("mailbox"),
        }
    }

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn periods_months_and_ranges_are_utc_days() {
        let today = date("2026-11-30");
        let check = |pairs: &[(&str, &str)]| {
            let params = raw(pairs).check(today).unwrap();
            (
                params.first_day.to_string(),
                params.last_day.to_string(),
                params.chosen,
            )
        };
        assert_eq!(check(&[]), ("2026-11-24".into(), "2026-11-30".into(), "7d"));
        assert_eq!(
            check(&[("period", "today")]),
            ("2026-11-30".into(), "2026-11-30".into(), "today")
        );
        assert_eq!(
            check(&[("period", "30d")]),
            ("2026-11-01".into(), "2026-11-30".into(), "30d")
        );
        assert_eq!(
            check(&[("month", "2024-02")]),
            ("2024-02-01".into(), "2024-02-29".into(), "month")
        );
        assert_eq!(
            check(&[
                ("month", "2024-02"),
                ("from", "2026-01-02"),
                ("to", "2026-01-05")
            ]),
            ("2026-01-02".into(), "2026-01-05".into(), "range")
        );
        assert_eq!(
            raw(&[("mailbox", "dkim")]).check(today).unwrap().mailbox,
            Some(Mailbox::Dkim)
        );
        assert_eq!(
            raw(&[("mailbox", "all")]).check(today).unwrap().mailbox,
            None
        );
    }

    #[test]
    fn bad_parameters_are_named() {
        let today = date("2026-11-30");
        let error = |pairs: &[(&str, &str)]| raw(pairs).check(today).unwrap_err().parameter;
        assert_eq!(error(&[("period", "forever")]), "period");
        assert_eq!(error(&[("month", "2026-13")]), "month");
        assert_eq!(error(&[("month", "2026-1")]), "month");
        assert_eq!(
            error(&[("from", "2026-02-01"), ("to", "2026-01-01")]),
            "from"
        );
        assert_eq!(error(&[("from", "2020-01-01"), ("to", "2026-01-01")]), "to");
        assert_eq!(error(&[("mailbox", "<script>")]), "mailbox");
        // The message names every mailbox the parameter takes.
        let message = raw(&[("mailbox", "x")]).check(today).unwrap_err().message;
        assert!(message.contains("spf, dkim, check or all"), "{message}");
        assert_eq!(
            raw(&[("mailbox", "check")]).check(today).unwrap().mailbox,
            Some(Mailbox::Check)
        );
    }

    #[test]
    fn refusal_causes_follow_the_enhanced_status() {
        assert_eq!(
            cause(550, "5.7.1"),
            "relay denied: a recipient not at this tester"
        );
        assert_eq!(cause(550, "5.1.1"), "unknown mailbox");
        assert!(cause(450, "4.7.1").starts_with("rate limit"));
        assert!(cause(421, "4.4.2").starts_with("timeout"));
        assert_eq!(cause(503, "5.5.1"), "command out of sequence or bad syntax");
        assert_eq!(cause(999, ""), "other");
    }
}
