//! The HTTP API (README "API (v1)"; docs/api.md), one axum router served by the Lambda functions and the local server.
//! A door: each resource module holds its wire request types (`try_into_domain` turns one into a
//! domain request or a field error), its handlers, and its response shapes. Status codes are
//! picked here and nowhere else; errors map to statuses in `error.rs`.

mod approvals;
mod audit;
mod backtest;
mod bulk;
mod comments;
mod dashboard;
mod error;
mod extract;
mod integrations;
mod keys;
#[cfg(feature = "mcp")]
mod mcp;
mod openapi;
mod payments;
mod people;
mod policies;
mod policy_changes;
mod proofs;
mod refunds;
mod reviews;
mod settings;
mod stats;
mod strict_json;
mod wallets;
mod webhooks;
mod wire;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};

use crate::domain::input::InputError;
use crate::error::AppError;
use crate::service::Countersign;

pub use error::ErrorBody;
pub use openapi::document as openapi_document;

/// Largest request body accepted (413 above).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub use dashboard::{SignInLink, SIGN_IN_LINK_MINUTES};

pub type AppState = Arc<Countersign>;

/// Every route of the public API (and, with the `mcp` feature, the MCP server at `/mcp`).
pub fn router(service: Arc<Countersign>) -> Router {
    #[cfg(feature = "mcp")]
    let mcp = mcp::routes(service.clone());
    #[cfg(not(feature = "mcp"))]
    let mcp = Router::new();
    rest_routes(service).merge(mcp)
}

fn rest_routes(service: Arc<Countersign>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/openapi.json", get(openapi::serve))
        .route("/v1/organizations", post(keys::create_organization))
        .route("/v1/api-keys", post(keys::create).get(keys::list))
        .route("/v1/api-keys/{id}", get(keys::get).patch(keys::update).delete(keys::revoke))
        .route("/v1/api-keys/{id}/freeze", post(keys::freeze))
        .route("/v1/api-keys/{id}/unfreeze", post(keys::unfreeze))
        .route("/v1/api-keys/{id}/budgets", get(keys::budgets))
        .route("/v1/wallets", post(wallets::create).get(wallets::list))
        .route("/v1/wallets/{id}", get(wallets::get).patch(wallets::update))
        .route("/v1/wallets/{id}/balance", get(wallets::balance))
        .route("/v1/wallets/{id}/fund", post(wallets::fund))
        .route("/v1/wallets/{id}/transactions", get(wallets::transactions))
        .route("/v1/wallets/{id}/freeze", post(wallets::freeze))
        .route("/v1/wallets/{id}/unfreeze", post(wallets::unfreeze))
        .route("/v1/wallets/{id}/allow-rules", get(wallets::allow_rules))
        .route("/v1/wallets/{id}/allow-rules/{rid}", delete(wallets::delete_allow_rule))
        .route("/v1/wallets/{id}/policies", post(policies::create).get(policies::list))
        .route("/v1/wallets/{id}/policies/evaluate", post(policies::evaluate))
        .route("/v1/wallets/{id}/policies/backtest", post(backtest::backtest))
        .route("/v1/wallets/{id}/policies/{pid}", get(policies::get).patch(policies::update).delete(policies::delete))
        .route("/v1/wallets/{id}/policies/{pid}/shadow-stats", get(policies::shadow_stats))
        .route("/v1/wallets/{id}/policies/{pid}/versions", get(policies::versions))
        .route("/v1/wallets/{id}/policies/{pid}/versions/{n}", get(policies::version))
        .route("/v1/payments", post(payments::create).get(payments::list))
        .route("/v1/payments/{id}", get(payments::get))
        .route("/v1/payments/{id}/receipt", get(proofs::receipt))
        .route("/v1/approvals", get(approvals::list))
        .route("/v1/approvals/bulk", post(bulk::decide))
        .route("/v1/approvals/{id}", get(approvals::get))
        .route("/v1/approvals/{id}/approve", post(approvals::approve))
        .route("/v1/approvals/{id}/reject", post(approvals::reject))
        .route("/v1/approvals/{id}/modify", post(approvals::modify))
        .route("/v1/approvals/{id}/escalate", post(approvals::escalate))
        .route("/v1/approvals/{id}/comments", post(comments::create).get(comments::list))
        .route("/v1/stats/approvals", get(stats::approvals))
        .route("/v1/audit-logs", get(audit::list))
        .route("/v1/audit-logs/export", get(proofs::export))
        .route("/.well-known/countersign-keys", get(proofs::keys))
        .route("/v1/members", post(people::create_member).get(people::list_members))
        .route("/v1/members/{id}", patch(people::update_member))
        .route("/v1/teams", post(people::create_team).get(people::list_teams))
        .route("/v1/teams/{id}", patch(people::update_team))
        .route("/v1/routing-rules", post(people::create_rule).get(people::list_rules))
        .route("/v1/routing-rules/{id}", patch(people::update_rule).delete(people::delete_rule))
        .route("/routing-rules", post(people::create_rule).get(people::list_rules))
        .route("/routing-rules/{id}", patch(people::update_rule).delete(people::delete_rule))
        .route("/v1/settings", get(settings::get).patch(settings::update))
        .route("/v1/policy-changes", get(policy_changes::list))
        .route("/v1/policy-changes/{id}", get(policy_changes::get))
        .route("/v1/policy-changes/{id}/approve", post(policy_changes::approve))
        .route("/v1/policy-changes/{id}/reject", post(policy_changes::reject))
        .route("/v1/integrations/slack", get(integrations::get).put(integrations::put).delete(integrations::delete))
        .route("/integrations/slack/interactions", post(integrations::slack_interactions))
        .route("/v1/notifications/deliveries", get(integrations::deliveries))
        .route("/v1/refunds", post(refunds::create).get(refunds::list))
        .route("/v1/refunds/{id}", get(refunds::get))
        .route("/reviews", post(reviews::create).get(reviews::list))
        .route("/reviews/{id}", get(reviews::get))
        .route("/reviews/{id}/decide", post(reviews::decide))
        .route("/reviews/{id}/escalate", post(reviews::escalate))
        .route("/reviews/{id}/decision", get(reviews::decision))
        .route("/v1/webhooks", post(webhooks::create).get(webhooks::list))
        .route("/v1/webhooks/dlq", get(webhooks::dead_letters))
        .route("/v1/webhooks/dlq/{id}/retry", post(webhooks::retry_dead_letter))
        .route("/v1/webhooks/dlq/{id}/discard", post(webhooks::discard_dead_letter))
        .route("/v1/webhooks/{id}", get(webhooks::get).patch(webhooks::update).delete(webhooks::delete))
        .route("/v1/webhooks/{id}/test", post(webhooks::test))
        .route("/v1/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .merge(dashboard::routes())
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(service)
}

/// `GET /health`: `{"status": "ok"}` without touching the store. `?deep=1` also reads the store
/// once: `{"status": "ok", "store": "ok"}`, or 503 `SERVICE_UNAVAILABLE` when it cannot be reached.
async fn health(State(service): State<AppState>, params: extract::Params) -> Result<Json<serde_json::Value>, AppError> {
    let deep = match params.get("deep") {
        None | Some("0") | Some("false") => false,
        Some("1") | Some("true") => true,
        Some(_) => return Err(InputError::invalid("deep", "must be 1 or 0").into()),
    };
    if !deep {
        return Ok(Json(serde_json::json!({"status": "ok"})));
    }
    service.check_store().await?;
    Ok(Json(serde_json::json!({"status": "ok", "store": "ok"})))
}

async fn route_not_found() -> AppError {
    AppError::RouteNotFound
}

async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}
