//! The status page `/status` and its JSON twin `/api/v1/status`: the overall state computed
//! from the self-checks of the last hour by [`STATE_RULE`], the last 24 hours of self-checks as
//! one line each, per instance host name, a chart of their times to result with a table by hour, the store's and
//! its writer's state, and the DNS record the operator publishes for the tester's DKIM key.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use askama::Template;
use authcheck_store::{SelfCheck, StoreError};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::AppState;
use crate::charts::{self, Series, StackedBars, Tone};
use crate::params::is_result_id;
use crate::view::stored_verdict_class;

/// What the status page knows of the self-check's settings.
#[derive(Clone, Debug, Default)]
pub struct StatusInfo {
    /// `None`: the self-check is off.
    pub interval: Option<Duration>,
    /// The SMTP server it sends to, `HOST:PORT`.
    pub target: String,
    /// `<selector>._domainkey.<domain>`.
    pub dkim_record_name: String,
    /// The TXT record's value, once the key is loaded (or made).
    pub dkim_record: Arc<OnceLock<String>>,
}

/// A check that took longer than this from sending to the stored result counts as slow.
pub const SLOW_CHECK: Duration = Duration::from_secs(10);
/// Consecutive failed checks (newest first, any instance) that make the state unhealthy.
pub const FAILURES_FOR_UNHEALTHY: usize = 3;

/// The rule, as the page and the JSON state it.
pub const STATE_RULE: &str = "unhealthy when the last 3 self-checks all failed or the store \
    cannot commit results; degraded when a self-check in the last hour failed or took longer \
    than 10 s to its stored result; healthy otherwise";

/// The overall state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Healthy,
    Degraded,
    Unhealthy,
}

impl Health {
    fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// The state by [`STATE_RULE`] from `checks` (newest first) at `now`.
pub fn overall_state(checks: &[SelfCheck], writer_ok: bool, now: i64) -> Health {
    let consecutive_failures = checks.iter().take_while(|check| !check.ok).count();
    if !writer_ok || consecutive_failures >= FAILURES_FOR_UNHEALTHY {
        return Health::Unhealthy;
    }
    let slow = |check: &SelfCheck| {
        check
            .duration_ms
            .is_some_and(|ms| ms > SLOW_CHECK.as_millis() as i64)
    };
    let recent_trouble = checks
        .iter()
        .filter(|check| check.started_at >= now - 3600)
        .any(|check| !check.ok || slow(check));
    if recent_trouble {
        Health::Degraded
    } else {
        Health::Healthy
    }
}

/// `2026-11-30 02:10:00 UTC  SELF CHECK  127.0.0.1:2525  0.084 s  - OK`, or
/// `... - FAILED at RCPT TO: 451 4.3.0 ...`.
pub fn status_line(check: &SelfCheck) -> String {
    let time = DateTime::<Utc>::from_timestamp(check.started_at, 0)
        .map(|time| time.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| check.started_at.to_string());
    let took = check.duration_ms.map_or_else(
        || "-".to_owned(),
        |ms| format!("{:.3} s", ms as f64 / 1000.0),
    );
    let outcome = if check.ok {
        "OK".to_owned()
    } else {
        format!(
            "FAILED at {}: {}",
            check.failed_step.as_deref().unwrap_or("?"),
            check.failure.as_deref().unwrap_or("")
        )
    };
    format!("{time}  SELF CHECK  {}  {took}  - {outcome}", check.target)
}

/// One hour's checks, for the latency table.
#[derive(Clone, Debug, Serialize)]
struct HourRow {
    hour: String,
    checks: usize,
    failed: usize,
    fastest_ms: Option<i64>,
    slowest_ms: Option<i64>,
    mean_ms: Option<i64>,
}

fn hourly(checks: &[SelfCheck]) -> Vec<HourRow> {
    let mut hours: BTreeMap<i64, Vec<&SelfCheck>> = BTreeMap::new();
    for check in checks {
        hours
            .entry(check.started_at.div_euclid(3600))
            .or_default()
            .push(check);
    }
    hours
        .into_iter()
        .rev()
        .map(|(hour, checks)| {
            let times: Vec<i64> = checks
                .iter()
                .filter(|check| check.ok)
                .filter_map(|check| check.duration_ms)
                .collect();
            HourRow {
                hour: DateTime::<Utc>::from_timestamp(hour * 3600, 0)
                    .map(|time| time.format("%Y-%m-%d %H:00 UTC").to_string())
                    .unwrap_or_default(),
                checks: checks.len(),
                failed: checks.iter().filter(|check| !check.ok).count(),
                fastest_ms: times.iter().min().copied(),
                slowest_ms: times.iter().max().copied(),
                mean_ms: (!times.is_empty())
                    .then(|| times.iter().sum::<i64>() / times.len() as i64),
            }
        })
        .collect()
}

/// Everything both forms of the status show.
struct Status {
    state: Health,
    store_answers: Result<(), StoreError>,
    writer: Result<(), StoreError>,
    instances: Vec<(String, Vec<SelfCheck>)>,
    hours: Vec<HourRow>,
    checks: Vec<SelfCheck>,
}

async fn gather(state: &AppState) -> Status {
    let now = Utc::now().timestamp();
    let (store_answers, writer, checks) = tokio::join!(
        state.store.ping(),
        state.store.ready(),
        state.store.self_checks_since(now - 86_400)
    );
    let checks = checks.unwrap_or_default();
    let mut by_instance: BTreeMap<String, Vec<SelfCheck>> = BTreeMap::new();
    for check in &checks {
        by_instance
            .entry(check.instance.clone())
            .or_default()
            .push(check.clone());
    }
    Status {
        state: overall_state(&checks, writer.is_ok(), now),
        store_answers,
        writer,
        instances: by_instance.into_iter().collect(),
        hours: hourly(&checks),
        checks,
    }
}

fn problem(result: &Result<(), StoreError>) -> Option<String> {
    result.as_ref().err().map(ToString::to_string)
}

struct InstanceLines {
    host: String,
    lines: Vec<LineRow>,
}

/// One self-check on the page: its line in the seed format, then, for a check that got its
/// result, the verdicts it got (coloured by grade), linked to that result.
struct LineRow {
    line: String,
    ok: bool,
    verdicts: Option<(String, &'static str)>,
    result_link: Option<String>,
}

impl LineRow {
    fn of(check: &SelfCheck) -> LineRow {
        LineRow {
            line: status_line(check),
            ok: check.ok,
            verdicts: check
                .verdicts
                .as_deref()
                .filter(|verdicts| !verdicts.is_empty())
                .map(|verdicts| (verdicts.to_owned(), stored_verdict_class(verdicts))),
            result_link: check
                .result_id
                .as_deref()
                .filter(|id| is_result_id(id))
                .map(|id| format!("/r/{id}")),
        }
    }
}

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage {
    state: &'static str,
    rule: &'static str,
    self_check: String,
    store_problem: Option<String>,
    writer_problem: Option<String>,
    instances: Vec<InstanceLines>,
    hours: Vec<HourRow>,
    chart_svg: Option<String>,
    dkim_record: Option<String>,
}

/// The time to result of each check, oldest first: passed checks green, failed ones (to
/// their failure) red; at most [`charts::MAX_BARS`], the newest.
fn latency_chart(checks: &[SelfCheck]) -> Option<String> {
    if checks.is_empty() {
        return None;
    }
    let oldest_first: Vec<&SelfCheck> = checks.iter().rev().collect();
    let took = |check: &&SelfCheck, ok: bool| {
        if check.ok == ok {
            check.duration_ms.unwrap_or(0)
        } else {
            0
        }
    };
    Some(charts::stacked_bars(&StackedBars {
        title: "Self-check time to stored result, in milliseconds, per check",
        labels: oldest_first
            .iter()
            .map(|check| {
                DateTime::<Utc>::from_timestamp(check.started_at, 0)
                    .map(|time| time.format("%H:%M").to_string())
                    .unwrap_or_default()
            })
            .collect(),
        series: vec![
            Series {
                name: "OK (ms)",
                tone: Tone::Ok,
                values: oldest_first.iter().map(|check| took(check, true)).collect(),
            },
            Series {
                name: "failed (ms)",
                tone: Tone::Problem,
                values: oldest_first
                    .iter()
                    .map(|check| took(check, false))
                    .collect(),
            },
        ],
    }))
}

fn self_check_setting(info: &StatusInfo) -> String {
    match info.interval {
        Some(interval) => format!("every {} to {}", humanize(interval), info.target),
        None => "off (self_check_interval)".to_owned(),
    }
}

fn humanize(interval: Duration) -> String {
    let secs = interval.as_secs();
    match secs {
        s if s % 3600 == 0 && s > 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 && s > 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

fn dns_record(info: &StatusInfo) -> Option<String> {
    info.dkim_record
        .get()
        .map(|value| format!("{} TXT \"{value}\"", info.dkim_record_name))
}

/// `GET /status`
pub(crate) async fn page(State(state): State<AppState>) -> Response {
    let status = gather(&state).await;
    let info = &state.config.status;
    let page = StatusPage {
        state: status.state.as_str(),
        rule: STATE_RULE,
        self_check: self_check_setting(info),
        store_problem: problem(&status.store_answers),
        writer_problem: problem(&status.writer),
        instances: status
            .instances
            .iter()
            .map(|(host, checks)| InstanceLines {
                host: host.clone(),
                lines: checks.iter().map(LineRow::of).collect(),
            })
            .collect(),
        hours: status.hours,
        chart_svg: latency_chart(&status.checks),
        dkim_record: dns_record(info),
    };
    let code = match status.state {
        Health::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::OK,
    };
    crate::pages::render(code, &page)
}

#[derive(Serialize)]
struct CheckJson<'a> {
    #[serde(flatten)]
    check: &'a SelfCheck,
    line: String,
}

/// `GET /api/v1/status`
pub(crate) async fn json(State(state): State<AppState>) -> Response {
    let status = gather(&state).await;
    let info = &state.config.status;
    let instances: Vec<_> = status
        .instances
        .iter()
        .map(|(host, checks)| {
            serde_json::json!({
                "host": host,
                "checks": checks
                    .iter()
                    .map(|check| CheckJson { check, line: status_line(check) })
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    let body = serde_json::json!({
        "state": status.state,
        "rule": STATE_RULE,
        "self_check": {
            "interval_seconds": info.interval.map(|interval| interval.as_secs()),
            "target": info.target,
            "checks_last_24h": status.checks.len(),
        },
        "store": {
            "answers": status.store_answers.is_ok(),
            "problem": problem(&status.store_answers),
        },
        "writer": {
            "commits": status.writer.is_ok(),
            "problem": problem(&status.writer),
        },
        "dkim_record": {
            "name": info.dkim_record_name,
            "type": "TXT",
            "value": info.dkim_record.get(),
        },
        "latency_by_hour": status.hours,
        "instances": instances,
    });
    let code = match status.state {
        Health::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::OK,
    };
    (code, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(started_at: i64, ok: bool, duration_ms: i64) -> SelfCheck {
        SelfCheck {
            instance: "a".into(),
            target: "mx.tester.test:25".into(),
            started_at,
            ok,
            failed_step: (!ok).then(|| "RCPT TO".into()),
            failure: (!ok).then(|| "451 4.3.0 try later".into()),
            tls: None,
            duration_ms: Some(duration_ms),
            result_id: None,
            verdicts: None,
        }
    }

    #[test]
    fn the_state_follows_the_written_rule() {
        let now = 1_800_000_000;
        assert_eq!(overall_state(&[], true, now), Health::Healthy);
        assert_eq!(overall_state(&[], false, now), Health::Unhealthy);
        let fine = [check(now - 60, true, 80), check(now - 660, true, 90)];
        assert_eq!(overall_state(&fine, true, now), Health::Healthy);
        let slow = [check(now - 60, true, 10_001)];
        assert_eq!(overall_state(&slow, true, now), Health::Degraded);
        let failed_long_ago = [check(now - 60, true, 80), check(now - 4000, false, 1)];
        assert_eq!(overall_state(&failed_long_ago, true, now), Health::Healthy);
        let one_failure = [check(now - 60, false, 5), check(now - 660, true, 80)];
        assert_eq!(overall_state(&one_failure, true, now), Health::Degraded);
        let three = [
            check(now - 60, false, 5),
            check(now - 660, false, 5),
            check(now - 1260, false, 5),
        ];
        assert_eq!(overall_state(&three, true, now), Health::Unhealthy);
    }

    #[test]
    fn lines_have_the_seed_format() {
        let ok = check(1_764_468_326, true, 84);
        assert_eq!(
            status_line(&ok),
            "2025-11-30 02:05:26 UTC  SELF CHECK  mx.tester.test:25  0.084 s  - OK"
        );
        assert_eq!(
            status_line(&check(1_764_468_326, false, 5)),
            "2025-11-30 02:05:26 UTC  SELF CHECK  mx.tester.test:25  0.005 s  - FAILED at RCPT TO: 451 4.3.0 try later"
        );
    }
}
