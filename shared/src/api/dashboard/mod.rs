//! The reviewer dashboard (docs/api.md, "Dashboard pages"): server-rendered HTML at `/dashboard`, a door over the
//! same service as the API. Pages work without JavaScript; `static/app.js` adds live refresh and
//! keyboard shortcuts. Sign-in takes an API key and keeps a server-side session (`auth`,
//! `tokens`); every form carries a CSRF token; every page has a strict Content-Security-Policy
//! and escapes every value (askama templates, `templates/`). Review links from webhooks land on
//! a confirm page (`link`). The sign-in link `countersign serve` prints on a new
//! data directory lands on one too (`start`). Errors are readable pages, never JSON.

mod assets;
mod auth;
mod bulk;
mod detail;
mod form;
mod link;
mod page;
mod passkeys;
mod policy_changes;
mod queue;
mod sign_in;
mod start;
mod stats;
mod tokens;
mod views;

use axum::routing::{any, get, post, MethodRouter};
use axum::Router;

pub use start::{SignInLink, SIGN_IN_LINK_MINUTES};

use super::AppState;
use page::DashError;

async fn not_found() -> DashError {
    DashError::not_found()
}

async fn method_not_allowed() -> DashError {
    DashError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "Not here",
        "This address does not take that kind of request. Use the dashboard's own links and buttons.",
    )
}

/// Readable pages for wrong methods too.
fn html_405(route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    route.fallback(method_not_allowed)
}

/// Every dashboard route.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard", html_405(get(queue::show)))
        .route("/dashboard/pulse", html_405(get(queue::pulse)))
        .route("/dashboard/sign-in", html_405(get(sign_in::form).post(sign_in::submit)))
        .route("/dashboard/sign-out", html_405(post(sign_in::sign_out)))
        .route("/dashboard/approvals/bulk", html_405(post(bulk::decide)))
        .route("/dashboard/approvals/{id}", html_405(get(detail::approval)))
        .route("/dashboard/approvals/{id}/comments", html_405(post(detail::comment)))
        .route("/dashboard/approvals/{id}/decide", html_405(post(detail::decide_approval)))
        .route("/dashboard/approvals/{id}/step-up", html_405(post(passkeys::step_up)))
        .route("/dashboard/passkeys", html_405(get(passkeys::list).post(passkeys::register)))
        .route("/dashboard/passkeys/options", html_405(post(passkeys::options)))
        .route("/dashboard/passkeys/{id}/delete", html_405(post(passkeys::delete)))
        .route("/dashboard/policy-changes", html_405(get(policy_changes::list)))
        .route("/dashboard/policy-changes/{id}/decide", html_405(post(policy_changes::decide_change)))
        .route("/dashboard/reviews/{id}", html_405(get(detail::review)))
        .route("/dashboard/reviews/{id}/decide", html_405(post(detail::decide_review)))
        .route("/dashboard/stats", html_405(get(stats::show)))
        .route("/dashboard/start/{token}", html_405(get(start::confirm).post(start::sign_in)))
        .route("/dashboard/r/{token}", html_405(get(link::confirm).post(link::decide)))
        .route("/dashboard/static/app.css", html_405(get(assets::css)))
        .route("/dashboard/static/app.js", html_405(get(assets::js)))
        .route("/dashboard/static/passkeys.js", html_405(get(assets::passkeys_js)))
        .route("/dashboard/static/icon.svg", html_405(get(assets::icon)))
        .route("/dashboard/", any(not_found))
        .route("/dashboard/{*rest}", any(not_found))
}
