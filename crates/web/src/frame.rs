//! What the frame around every page (`templates/base.html`: the navigation and the footer)
//! says about this site: whether it serves the public result lists. The frame links to those
//! lists, and says results sent to the tester mailboxes are public, only when it does.
//!
//! Pages are rendered in many places from the templates' own structs, none of which carries
//! the site's settings; so the one setting the frame needs is set for each request by
//! [`with_frame`] and read by the frame through [`public_lists`].

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::AppState;

tokio::task_local! {
    static PUBLIC_LISTS: bool;
}

/// Whether the page being rendered belongs to a site with public result lists; `true` outside
/// a request, as by default.
pub(crate) fn public_lists() -> bool {
    PUBLIC_LISTS.try_with(|public| *public).unwrap_or(true)
}

/// Runs the request's handler knowing whether this site serves the public lists.
pub(crate) async fn with_frame(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    PUBLIC_LISTS
        .scope(state.config.public_results, next.run(request))
        .await
}
