//! The probes for orchestrators and load balancers: `/livez` (the process serves HTTP) and
//! `/readyz` (it can take messages: the store commits a write the way results are written),
//! with `/healthz` kept as an alias of `/readyz` for existing probes.

use authcheck_store::SharedStore;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The probe routes, answering from `store`; on the site and on the operators' listener.
pub fn probes(store: SharedStore) -> Router {
    let routes = Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/healthz", get(readyz))
        .with_state(store);
    crate::with_security_headers(routes)
}

/// `GET /livez`: `ok` while the process answers HTTP at all; restart it when this fails.
async fn livez() -> Response {
    (StatusCode::OK, "ok").into_response()
}

/// `GET /readyz` and `GET /healthz`: `ok` while the store can commit a result
/// ([`authcheck_store::ResultStore::ready`]), 503 otherwise (the writer has stopped, the disk
/// is full, the server is gone); send no traffic while this fails.
async fn readyz(State(store): State<SharedStore>) -> Response {
    match store.ready().await {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(error) => {
            tracing::warn!(%error, "readyz: the store cannot commit results");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the result database cannot store results now\n",
            )
                .into_response()
        }
    }
}
