//! The HTTP API (DESIGN §2), one axum router served by the Lambda functions and the local server.

mod error;
mod extract;
mod routes;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use crate::service::Countersign;

pub use error::ErrorBody;

/// Largest request body accepted (413 above).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub type AppState = Arc<Countersign>;

/// Every route of the public API.
pub fn router(service: Arc<Countersign>) -> Router {
    use routes::*;
    Router::new()
        .route("/health", get(health))
        .route("/v1/organizations", post(create_organization))
        .route("/v1/api-keys", post(create_api_key).get(list_api_keys))
        .route("/v1/api-keys/{id}", get(get_api_key).patch(update_api_key).delete(revoke_api_key))
        .route("/v1/wallets", post(create_wallet).get(list_wallets))
        .route("/v1/wallets/{id}", get(get_wallet).patch(update_wallet))
        .route("/v1/wallets/{id}/balance", get(wallet_balance))
        .route("/v1/wallets/{id}/fund", post(fund_wallet))
        .route("/v1/wallets/{id}/transactions", get(list_transactions))
        .route("/v1/wallets/{id}/policies", post(create_policy).get(list_policies))
        .route("/v1/wallets/{id}/policies/{pid}", get(get_policy).patch(update_policy).delete(delete_policy))
        .route("/v1/payments", post(create_payment).get(list_payments))
        .route("/v1/payments/{id}", get(get_payment))
        .route("/v1/approvals", get(list_approvals))
        .route("/v1/approvals/{id}", get(get_approval))
        .route("/v1/approvals/{id}/approve", post(approve))
        .route("/v1/approvals/{id}/reject", post(reject))
        .route("/v1/audit-logs", get(list_audit_logs))
        .route("/v1/webhooks", post(create_webhook).get(list_webhooks))
        .route("/v1/webhooks/dlq", get(list_dead_letters))
        .route("/v1/webhooks/dlq/{id}/retry", post(retry_dead_letter))
        .route("/v1/webhooks/dlq/{id}/discard", post(discard_dead_letter))
        .route("/v1/webhooks/{id}", get(get_webhook).patch(update_webhook).delete(delete_webhook))
        .route("/v1/webhooks/{id}/test", post(test_webhook))
        .route("/v1/webhooks/{id}/deliveries", get(list_deliveries))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(service)
}
