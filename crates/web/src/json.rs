//! The JSON forms of results, shared by the API and the live feed.
//!
//! Field names are part of the public API. Every result has `id`, `received_at`, `mailbox`,
//! `client_ip`, `helo`, `mail_from`, `header_from`, `subject`, `verdict`, `prefixed_subject`,
//! `spf`, `dkim`, `dkim_not_listed`, `dmarc`, `arc`, `authentication_results`, `diagnosis`,
//! `session` and `url`; `dkim_not_listed` counts the signatures `dkim` leaves out. A full
//! check's result (`mailbox` `check`) has both verdicts in `verdict`, SPF first, separated by
//! one space, and also apart as `verdicts: {"spf", "dkim"}`.
//!
//! One result ([`result_json`], `/api/v1/results/{id}`) copies its verification parts from
//! the stored report as they are, so fields the verifier adds appear there too. A listed
//! result ([`listed_json`], in `/api/v1/results` and the live feed) takes them from the
//! report's bounded summary ([`ReportSummary`]), stored beside it, so that a page of results
//! stays small whatever the messages held: the same paths with fewer fields, at most
//! [`MAX_SUMMARY_SIGNATURES`](authcheck_verifier::summary::MAX_SUMMARY_SIGNATURES) signatures
//! and [`MAX_SUMMARY_FINDINGS`](authcheck_verifier::summary::MAX_SUMMARY_FINDINGS) findings
//! (`dkim_total` and `diagnosis_total` count them all), text cut short.

use authcheck_store::{Mailbox, ResultSummary, SessionFacts};
use authcheck_verifier::{ReportSummary, shown_verdicts};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::result_url;
use crate::view::clip_listed;

/// The report parts of a result, in the order the API shows them.
const REPORT_PARTS: [&str; 6] = [
    "spf",
    "dkim",
    "dmarc",
    "arc",
    "authentication_results",
    "diagnosis",
];

/// The API object for a listed result: its text cut to the listings' bound, its report parts
/// from the stored summary; `public_url` makes its absolute `url`.
pub(crate) fn listed_json(result: &ResultSummary, public_url: &str) -> Value {
    let summary = ReportSummary::from_stored(&result.report_summary)
        .and_then(|summary| serde_json::to_value(summary).ok());
    let parts = REPORT_PARTS
        .iter()
        .chain(&["dkim_total", "diagnosis_total"])
        .map(|&part| {
            let value = summary.as_ref().and_then(|summary| summary.get(part));
            (part, value.cloned().unwrap_or(Value::Null))
        });
    let not_listed = summary.as_ref().map_or(0, |summary| {
        let total = summary["dkim_total"].as_u64().unwrap_or(0);
        let listed = summary["dkim"].as_array().map_or(0, Vec::len) as u64;
        total.saturating_sub(listed)
    });
    let parts = parts.chain([("dkim_not_listed", json!(not_listed))]);
    let listed = |text: &str| clip_listed(text);
    let session = &result.session;
    let shown = ResultSummary {
        id: result.id.clone(),
        seq: result.seq,
        mailbox: result.mailbox,
        received_at: result.received_at,
        session: SessionFacts {
            client_ptr: session.client_ptr.as_deref().map(listed),
            helo: listed(&session.helo),
            mail_from: listed(&session.mail_from),
            recipient: listed(&session.recipient),
            ..session.clone()
        },
        header_from: result.header_from.as_deref().map(listed),
        subject: result.subject.as_deref().map(listed),
        verdict: result.verdict.clone(),
        prefixed_subject: listed(&result.prefixed_subject),
        report_summary: Value::Null,
        private_test: result.private_test,
    };
    result_object(&shown, parts, public_url)
}

/// The API object for one result, its report parts copied from `report`.
pub(crate) fn result_json(result: &ResultSummary, report: &Value, public_url: &str) -> Value {
    let parts = REPORT_PARTS.iter().map(|&part| {
        let value = match (report.get(part), part) {
            (Some(value), _) => value.clone(),
            // Reports stored before diagnosis existed have none.
            (None, "diagnosis") => json!([]),
            (None, _) => Value::Null,
        };
        (part, value)
    });
    // Reports stored before signatures were capped list them all.
    let not_listed = report
        .get("dkim_not_listed")
        .cloned()
        .unwrap_or_else(|| json!(0));
    let parts = parts.chain([("dkim_not_listed", not_listed)]);
    result_object(result, parts, public_url)
}

fn result_object<'a>(
    result: &ResultSummary,
    report_parts: impl Iterator<Item = (&'a str, Value)>,
    public_url: &str,
) -> Value {
    let session = &result.session;
    let mut object = Map::new();
    let mut put = |name: &str, value: Value| {
        object.insert(name.to_owned(), value);
    };
    put("id", json!(result.id));
    put(
        "received_at",
        json!(
            result
                .received_at
                .to_rfc3339_opts(SecondsFormat::Micros, true)
        ),
    );
    put("mailbox", json!(result.mailbox.as_str()));
    put("client_ip", json!(session.client_ip));
    put("helo", json!(session.helo));
    put("mail_from", json!(session.mail_from));
    put("header_from", json!(result.header_from));
    put("subject", json!(result.subject));
    put("verdict", json!(result.verdict));
    if result.mailbox == Mailbox::Check
        && let Some([spf, dkim]) = shown_verdicts(&result.verdict).as_deref()
    {
        put("verdicts", json!({ "spf": spf, "dkim": dkim }));
    }
    put("prefixed_subject", json!(result.prefixed_subject));
    for (name, value) in report_parts {
        put(name, value);
    }
    put("session", json!(session));
    put("url", json!(result_url(public_url, &result.id)));
    Value::Object(object)
}

/// `seconds` since the epoch as the API writes every time: RFC 3339 in UTC, to the second.
pub(crate) fn epoch_time_json(seconds: i64) -> Value {
    DateTime::<Utc>::from_timestamp(seconds, 0).map_or(Value::Null, |at| {
        json!(at.to_rfc3339_opts(SecondsFormat::Secs, true))
    })
}
