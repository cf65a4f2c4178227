//! Replies by mail as the site shows them: `/replies`, which explains when authcheck replies by
//! mail and when it does not (every [`NoReply`] reason, the rate limits in force); the "Reply
//! by mail" section of a result's page (the reason there is none, or the reply's state and each
//! delivery attempt); and `/api/v1/results/{id}/reply`, the same as JSON.

use askama::Template;
use authcheck_store::{NoReply, OutgoingState, OutgoingStatus, ReplyDecision};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use serde::Serialize;
use serde_json::Value;

use crate::AppState;
use crate::api::{error_json, store_unavailable_json};
use crate::json::epoch_time_json;
use crate::params::is_result_id;
use crate::view::utc_time;

/// What the site knows of the reply settings.
#[derive(Clone, Debug)]
pub struct RepliesInfo {
    /// Which mailboxes get replies, in words: `off`, `check@ only`, ...
    pub scope: String,
    /// The rate limits, in words (`1 per 10m`, `no limit`).
    pub per_address: String,
    pub per_domain: String,
    pub per_client: String,
}

impl Default for RepliesInfo {
    fn default() -> RepliesInfo {
        RepliesInfo {
            scope: "off".to_owned(),
            per_address: String::new(),
            per_domain: String::new(),
            per_client: String::new(),
        }
    }
}

/// `secs` since the epoch as the site writes times.
fn time(secs: i64) -> String {
    DateTime::from_timestamp(secs, 0)
        .map(|at| utc_time(&at))
        .unwrap_or_default()
}

/// One delivery attempt as a page shows it.
pub(crate) struct AttemptView {
    pub(crate) at: String,
    pub(crate) ok: bool,
    pub(crate) server: String,
    pub(crate) step: String,
    pub(crate) detail: String,
    pub(crate) tls: String,
    /// The attempt's outbound session in the SMTP session log, when it reached a server.
    pub(crate) session_link: Option<String>,
}

/// The "Reply by mail" section of a result's page.
pub(crate) struct ReplyView {
    /// Why there is no reply, as a sentence.
    pub(crate) no_reply: Option<String>,
    pub(crate) recipient: String,
    pub(crate) state: &'static str,
    /// When the next attempt is due, while queued.
    pub(crate) next_attempt: Option<String>,
    pub(crate) attempts: Vec<AttemptView>,
}

impl ReplyView {
    pub(crate) fn of(decision: &ReplyDecision) -> ReplyView {
        let reply = decision.reply.as_ref();
        ReplyView {
            no_reply: decision.no_reply.map(|reason| reason.to_string()),
            recipient: reply
                .map(|reply| reply.recipient.clone())
                .unwrap_or_default(),
            state: reply.map_or("", |reply| match reply.state {
                OutgoingState::Queued => "queued",
                OutgoingState::Sent => "sent",
                OutgoingState::Failed => "failed",
            }),
            next_attempt: reply
                .filter(|reply| reply.state == OutgoingState::Queued)
                .map(|reply| time(reply.next_attempt_at)),
            attempts: reply
                .map(|reply| {
                    reply
                        .attempts
                        .iter()
                        .map(|attempt| AttemptView {
                            at: time(attempt.at),
                            ok: attempt.ok,
                            server: attempt.server.clone(),
                            step: attempt.step.clone().unwrap_or_default(),
                            detail: attempt.detail.clone(),
                            tls: attempt.tls.clone().unwrap_or_else(|| "none".to_owned()),
                            session_link: attempt
                                .session_id
                                .as_deref()
                                .filter(|id| crate::params::is_result_id(id))
                                .map(|id| format!("/logs/{id}")),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// The decision for the result `id`, for its page: `None` when there is none or the store
/// cannot say (the page shows the result anyway).
pub(crate) async fn reply_view(state: &AppState, id: &str) -> Option<ReplyView> {
    match state.store.reply_decision(id).await {
        Ok(decision) => decision.as_ref().map(ReplyView::of),
        Err(error) => {
            tracing::warn!(%error, id, "cannot read the reply decision of a result");
            None
        }
    }
}

#[derive(Serialize)]
struct ReplyJson<'a> {
    result_id: &'a str,
    decided_at: Value,
    /// `null` when a reply was queued.
    no_reply: Option<NoReplyJson>,
    reply: Option<Value>,
}

/// The queued reply as the API gives it: its times in RFC 3339, as everywhere in the API.
fn reply_status_json(status: &OutgoingStatus) -> Value {
    let mut reply = serde_json::to_value(status).unwrap_or(Value::Null);
    for time in ["created_at", "next_attempt_at", "give_up_at"] {
        if let Some(seconds) = reply[time].as_i64() {
            reply[time] = epoch_time_json(seconds);
        }
    }
    if let Some(attempts) = reply["attempts"].as_array_mut() {
        for attempt in attempts {
            if let Some(seconds) = attempt["at"].as_i64() {
                attempt["at"] = epoch_time_json(seconds);
            }
        }
    }
    reply
}

#[derive(Serialize)]
struct NoReplyJson {
    code: &'static str,
    text: String,
}

/// `GET /api/v1/results/{id}/reply`: 404 when the result has no reply decision (replies were
/// off, or the id is unknown).
pub(crate) async fn reply_json(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let not_found = || {
        error_json(
            StatusCode::NOT_FOUND,
            &format!("no reply decision for result {id}"),
        )
    };
    if !is_result_id(&id) {
        return not_found();
    }
    match state.store.reply_decision(&id).await {
        Ok(Some(decision)) => Json(ReplyJson {
            result_id: &id,
            decided_at: epoch_time_json(decision.decided_at),
            no_reply: decision.no_reply.map(|reason| NoReplyJson {
                code: reason.as_str(),
                text: reason.to_string(),
            }),
            reply: decision.reply.as_ref().map(reply_status_json),
        })
        .into_response(),
        Ok(None) => not_found(),
        Err(error) => store_unavailable_json(&error),
    }
}

#[derive(Template)]
#[template(path = "replies.html")]
struct RepliesPage<'a> {
    info: &'a RepliesInfo,
    reasons: Vec<(&'static str, String)>,
}

/// `GET /replies`
pub(crate) async fn page(State(state): State<AppState>) -> Response {
    let page = RepliesPage {
        info: &state.config.replies,
        reasons: NoReply::ALL
            .iter()
            .map(|reason| (reason.as_str(), reason.to_string()))
            .collect(),
    };
    crate::pages::render(StatusCode::OK, &page)
}
