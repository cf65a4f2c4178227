//! The results site and JSON API.
//!
//! [`router`] builds every HTTP route of the tester's web side: the server-rendered pages
//! (`/`, `/spf`, `/dkim`, `/check`, the private tests' `/new` and `/t/{token}`, `/r/{id}`, `/r/{id}/raw`, `/r/{id}/eml`, the DMARC report pages
//! under `/dmarc`), the SMTP session log (`/logs`, `/logs/raw`, `/logs/events`), the status
//! page `/status`, the replies page `/replies`, the JSON API under `/api/v1/`, the live feed of new results at `/events` (server-sent events), the static
//! assets and the probes `/livez`, `/readyz` and `/healthz`. Every response carries the
//! security headers of [`security`].

mod api;
mod assets;
mod charts;
mod dmarc;
mod dmarc_api;
mod feed;
mod frame;
mod health;
mod json;
mod live;
mod logs;
mod pages;
mod params;
mod private;
mod replies;
mod security;
mod server;
mod stats;
mod status;
mod view;

use std::sync::Arc;

pub use health::probes;
pub use private::{ClientAddr, PrivateTestsConfig};
pub use replies::RepliesInfo;
pub use server::{HttpLimits, serve};
pub use status::StatusInfo;

use authcheck_store::SharedStore;
use axum::Router;
use axum::routing::get;

/// What the web side needs to know about this tester instance.
#[derive(Clone, Debug)]
pub struct WebConfig {
    /// The tester domains; people write to `spf@`, `dkim@` and `check@` each of them.
    pub domains: Vec<String>,
    /// The site's public base URL, without a trailing slash, e.g. `https://tester.example`.
    pub public_url: String,
    /// The SMTP host name of this instance.
    pub hostname: String,
    /// The self-check's settings and the tester's DKIM record, for `/status`.
    pub status: StatusInfo,
    /// The reply settings, for `/replies`.
    pub replies: RepliesInfo,
    /// Whether the result lists are public; `false` turns off `/spf`, `/dkim`, `/check`, the
    /// front page's lists, `/events`, `/api/v1/results`, the statistics (`/stats`,
    /// `/api/v1/stats`) and the SMTP log (`/logs`, its raw form, its events and
    /// `/api/v1/sessions`).
    pub public_results: bool,
    /// Private test addresses: how long they last and how many may be made.
    pub private_tests: PrivateTestsConfig,
}

/// Shared by every handler of one router.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) store: SharedStore,
    pub(crate) config: Arc<WebConfig>,
    pub(crate) live: Arc<live::LiveFeed>,
    pub(crate) sessions: Arc<logs::SessionFeed>,
    pub(crate) private_feed: Arc<private::PrivateFeed>,
    pub(crate) creations: Arc<private::CreationLimit>,
}

/// The absolute address of a result's page: `<public-url>/r/<id>`.
pub fn result_url(public_url: &str, id: &str) -> String {
    format!("{}/r/{id}", public_url.trim_end_matches('/'))
}

/// Every page, API route and asset of the site, reading results from `store`.
///
/// The live feed's single store poller starts with the first `/events` client and stops once
/// the router (and every clone of it) is dropped.
pub fn router(store: SharedStore, config: WebConfig) -> Router {
    let state = AppState {
        live: Arc::new(live::LiveFeed::new(store.clone())),
        sessions: Arc::new(logs::SessionFeed::new(store.clone())),
        private_feed: Arc::new(private::PrivateFeed::new(store.clone())),
        creations: Arc::new(private::CreationLimit::new(
            config.private_tests.per_client_per_hour,
        )),
        store: store.clone(),
        config: Arc::new(config),
    };
    let router = Router::new()
        .route("/", get(pages::index))
        .route("/spf", get(pages::spf_results))
        .route("/dkim", get(pages::dkim_results))
        .route("/check", get(pages::check_results))
        .route(
            "/new",
            get(private::new_page).post(private::create_from_form),
        )
        .route("/t/{token}", get(private::test_page))
        .route("/t/{token}/events", get(private::test_events))
        .route(
            "/api/v1/tests",
            axum::routing::post(private::create_from_api),
        )
        .route("/r/{id}", get(pages::result_detail))
        .route("/r/{id}/raw", get(pages::raw_message))
        .route("/r/{id}/eml", get(pages::delivered_message))
        .route("/dmarc", get(dmarc::index))
        .route("/dmarc/rejected", get(dmarc::rejected_page))
        .route("/dmarc/report/{id}", get(dmarc::report_page))
        .route("/dmarc/report/{id}/raw", get(dmarc::raw_report))
        .route("/dmarc/{domain}", get(dmarc::domain_page))
        .route("/events", get(live::events))
        .route("/logs", get(logs::logs_page))
        .route("/logs/raw", get(logs::raw_log))
        .route("/logs/events", get(logs::session_events))
        .route("/logs/{id}", get(logs::session_detail))
        .route("/api/v1/sessions", get(logs::list_sessions_json))
        .route("/status", get(status::page))
        .route("/api/v1/status", get(status::json))
        .route("/stats", get(stats::page))
        .route("/api/v1/stats", get(stats::json))
        .route("/api/v1/results", get(api::list_results))
        .route("/api/v1/results/{id}", get(api::get_result))
        .route("/api/v1/results/{id}/reply", get(replies::reply_json))
        .route("/replies", get(replies::page))
        .route("/api/v1/dmarc/domains", get(dmarc_api::domains))
        .route(
            "/api/v1/dmarc/domains/{domain}/daily",
            get(dmarc_api::daily),
        )
        .route(
            "/api/v1/dmarc/domains/{domain}/sources",
            get(dmarc_api::sources),
        )
        .route("/api/v1/dmarc/reports", get(dmarc_api::reports))
        .route("/api/v1/dmarc/reports/{id}", get(dmarc_api::report))
        .route("/static/app.js", get(assets::app_js))
        .route("/static/style.css", get(assets::style_css))
        .route("/static/logs.js", get(assets::logs_js))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            frame::with_frame,
        ))
        .with_state(state);
    with_security_headers(router).merge(probes(store))
}

/// `router` with the site's security headers on every response; for every listener's
/// routes (the site's and the operator endpoints').
pub fn with_security_headers(router: Router) -> Router {
    router.layer(axum::middleware::from_fn(security::add_headers))
}

#[cfg(test)]
mod tests {
    use super::result_url;

    #[test]
    fn result_url_joins_base_and_id_with_one_slash() {
        assert_eq!(
            result_url("https://t.example", "ab12"),
            "https://t.example/r/ab12"
        );
        assert_eq!(
            result_url("https://t.example/", "ab12"),
            "https://t.example/r/ab12"
        );
    }
}
