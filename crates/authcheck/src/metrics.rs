//! `/metrics` in the Prometheus text format, served on the operators' listener
//! (`metrics_listen`) beside the `/livez` and `/readyz` probes, never on the public site.
//!
//! The crates record through the `metrics` facade (the verifier its DNS timings, the SMTP
//! listener its replies and connections, [`crate::delivery`] messages, verification time and
//! store errors, [`crate::dmarc`] the DMARC reports kept); this module installs the one recorder and serves what it has gathered.

use authcheck_store::SharedStore;
use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets for every `*_seconds` histogram: DNS answers in milliseconds up to SPF's 20 s limit.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
];

/// Installs the process-wide recorder. Call once, before anything records.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)?
        .install_recorder()?;
    describe();
    start_error_counters_at_zero();
    Ok(handle)
}

/// A counter appears in `/metrics` only once something records it; error counters are shown
/// at 0 from the start so that alerts on them work before the first error.
fn start_error_counters_at_zero() {
    metrics::counter!("authcheck_store_errors_total").increment(0);
    metrics::counter!("authcheck_self_check_failures_total").increment(0);
    // Duplicates and rejected reports are what an operator watches for.
    for outcome in ["stored", "duplicate", "rejected"] {
        metrics::counter!("authcheck_dmarc_reports_total", "outcome" => outcome).increment(0);
    }
    metrics::counter!("authcheck_session_log_dropped_total").increment(0);
    for record_type in ["TXT", "A", "AAAA", "MX", "PTR"] {
        metrics::counter!("authcheck_dns_failures_total", "type" => record_type).increment(0);
    }
}

fn describe() {
    metrics::describe_counter!(
        "authcheck_messages_total",
        "Test results stored, by mailbox and verdict"
    );
    metrics::describe_counter!(
        "authcheck_dmarc_reports_total",
        "DMARC reports received or imported, by outcome: stored, duplicate (already stored) or rejected (kept with the reason)"
    );
    metrics::describe_histogram!(
        "authcheck_verification_seconds",
        "Time to verify one message"
    );
    metrics::describe_histogram!(
        "authcheck_dns_query_seconds",
        "Time of one DNS query, by record type"
    );
    metrics::describe_counter!(
        "authcheck_dns_failures_total",
        "DNS queries that failed temporarily"
    );
    metrics::describe_counter!(
        "authcheck_store_errors_total",
        "Results that could not be stored"
    );
    metrics::describe_counter!(
        "authcheck_session_log_dropped_total",
        "SMTP sessions left out of the session log: its queue was full or the store failed"
    );
    metrics::describe_counter!(
        "authcheck_self_check_failures_total",
        "Self-checks that failed (an SMTP step, or the result not read back)"
    );
    metrics::describe_gauge!(
        "authcheck_self_check_last_success_timestamp_seconds",
        "When the last successful self-check started, in seconds since the epoch"
    );
    metrics::describe_gauge!(
        "authcheck_self_check_duration_seconds",
        "The last self-check's time from sending to its stored result (or to its failure)"
    );
    metrics::describe_counter!("authcheck_smtp_replies_total", "SMTP replies sent, by code");
    metrics::describe_gauge!(
        "authcheck_smtp_connections_open",
        "SMTP connections open now"
    );
}

/// The operators' routes: `/metrics`, and the site's probes (`/livez`, `/readyz`, `/healthz`)
/// so that one scraper address answers both; with the site's security headers.
pub fn router(handle: PrometheusHandle, store: SharedStore) -> Router {
    let metrics =
        Router::new().route(
            "/metrics",
            get(move || {
                let body = handle.render();
                async move {
                    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
                }
            }),
        );
    authcheck_web::with_security_headers(metrics).merge(authcheck_web::probes(store))
}
