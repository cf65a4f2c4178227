//! The static assets, compiled into the binary so the site needs no files at run time.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;

const APP_JS: &str = include_str!("../../../templates/static/app.js");
const LOGS_JS: &str = include_str!("../../../templates/static/logs.js");
const STYLE_CSS: &str = include_str!("../../../templates/static/style.css");

/// Assets change only with a new release; an hour keeps pages fast without stale deploys.
const ASSET_CACHE: &str = "public, max-age=3600";

pub(crate) async fn app_js() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, ASSET_CACHE),
        ],
        APP_JS,
    )
}

pub(crate) async fn style_css() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, ASSET_CACHE),
        ],
        STYLE_CSS,
    )
}

pub(crate) async fn logs_js() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, ASSET_CACHE),
        ],
        LOGS_JS,
    )
}
