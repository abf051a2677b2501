//! The one place where core errors become HTTP statuses and error codes.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::json;

use crate::domain::escalation::EscalationError;
use crate::domain::input::InputError;
use crate::domain::permission::Permission;
use crate::error::AppError;

/// `{"error": {"code", "message", "details"}}`
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable, e.g. `VALIDATION_ERROR`, `POLICY_DENIED`.
    pub code: String,
    pub message: String,
    /// Context: `field` for input errors, `rule`/`policyId` for denials, ...
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

fn not_found_code(resource: &str) -> String {
    format!("{}_NOT_FOUND", resource.to_uppercase().replace(' ', "_"))
}

impl AppError {
    /// Status, code, client-safe message and details.
    pub(crate) fn parts(&self) -> (StatusCode, String, String, serde_json::Value) {
        use AppError::*;
        let plain = |status: StatusCode, code: &str| (status, code.to_string(), self.to_string(), json!({}));
        match self {
            Input(e @ InputError::Amount { field, .. }) => {
                (StatusCode::BAD_REQUEST, "INVALID_AMOUNT".into(), e.to_string(), json!({"field": field}))
            }
            Input(e) => {
                (StatusCode::BAD_REQUEST, "VALIDATION_ERROR".into(), e.to_string(), json!({"field": e.field()}))
            }
            MalformedBody(_) => plain(StatusCode::BAD_REQUEST, "VALIDATION_ERROR"),
            BodyField { field, .. } => {
                (StatusCode::BAD_REQUEST, "VALIDATION_ERROR".into(), self.to_string(), json!({"field": field}))
            }
            CurrencyMismatch { .. } => plain(StatusCode::BAD_REQUEST, "VALIDATION_ERROR"),
            PayloadTooLarge => plain(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
            Unauthorized => plain(StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
            ApiKeyRevoked => plain(StatusCode::UNAUTHORIZED, "API_KEY_REVOKED"),
            KeyFrozen => plain(StatusCode::FORBIDDEN, "KEY_FROZEN"),
            WalletFrozen { wallet, at_execution } => {
                let status = if *at_execution { StatusCode::CONFLICT } else { StatusCode::FORBIDDEN };
                (status, "WALLET_FROZEN".into(), self.to_string(), json!({"walletId": wallet}))
            }
            BudgetExceeded(refusal) => (
                StatusCode::FORBIDDEN,
                "BUDGET_EXCEEDED".into(),
                self.to_string(),
                serde_json::to_value(&refusal.budget).unwrap_or_else(|_| json!({})),
            ),
            OwnControls(_) => plain(StatusCode::FORBIDDEN, "PERMISSION_DENIED"),
            AlwaysAllowRefused(_) => plain(StatusCode::CONFLICT, "ALWAYS_ALLOW_REFUSED"),
            PermissionDenied(p) => (
                StatusCode::FORBIDDEN,
                "PERMISSION_DENIED".into(),
                format!("this key lacks the {} permission", p.as_str()),
                json!({"required": p}),
            ),
            OperatorOnly | PermissionEscalation => plain(StatusCode::FORBIDDEN, "PERMISSION_DENIED"),
            WalletNotAllowed => plain(StatusCode::FORBIDDEN, "WALLET_NOT_ALLOWED"),
            NotAssigned => plain(StatusCode::FORBIDDEN, "NOT_ASSIGNED"),
            PayloadMismatch => plain(StatusCode::CONFLICT, "PAYLOAD_MISMATCH"),
            NoEscalationTarget => plain(StatusCode::CONFLICT, "NO_ESCALATION_TARGET"),
            Escalation(e) => escalation_parts(e),
            NotFound(resource) => (StatusCode::NOT_FOUND, not_found_code(resource), self.to_string(), json!({})),
            RouteNotFound => plain(StatusCode::NOT_FOUND, "NOT_FOUND"),
            MethodNotAllowed => plain(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED"),
            PolicyDenied { reason, rule, policy_id } => (
                StatusCode::FORBIDDEN,
                "POLICY_DENIED".into(),
                format!("payment denied by policy: {reason}"),
                json!({"rule": rule, "policyId": policy_id, "reason": reason}),
            ),
            InsufficientFunds { balance, requested, currency } => (
                StatusCode::PAYMENT_REQUIRED,
                "INSUFFICIENT_FUNDS".into(),
                self.to_string(),
                json!({"balance": balance, "requested": requested, "currency": currency}),
            ),
            IdempotencyKeyReuse => plain(StatusCode::CONFLICT, "IDEMPOTENCY_KEY_REUSE"),
            ApprovalNotPending(status) => (
                StatusCode::CONFLICT,
                "APPROVAL_NOT_PENDING".into(),
                format!("approval is {}, not PENDING", status.as_str()),
                json!({"status": status}),
            ),
            ApprovalExpired => plain(StatusCode::CONFLICT, "APPROVAL_EXPIRED"),
            ReviewNotPending(status) => {
                (StatusCode::CONFLICT, "REVIEW_NOT_PENDING".into(), self.to_string(), json!({"status": status}))
            }
            ReviewExpired => plain(StatusCode::CONFLICT, "REVIEW_EXPIRED"),
            PaymentNotPending(status) => {
                (StatusCode::CONFLICT, "PAYMENT_NOT_PENDING".into(), self.to_string(), json!({"status": status}))
            }
            PaymentNotRefundable(status) => {
                (StatusCode::CONFLICT, "PAYMENT_NOT_REFUNDABLE".into(), self.to_string(), json!({"status": status}))
            }
            RefundExceedsPayment { remaining, currency } => (
                StatusCode::CONFLICT,
                "REFUND_EXCEEDS_PAYMENT".into(),
                self.to_string(),
                json!({"remaining": remaining, "currency": currency, "field": "amount"}),
            ),
            RefundNotPending(status) => {
                (StatusCode::CONFLICT, "REFUND_NOT_PENDING".into(), self.to_string(), json!({"status": status}))
            }
            RefundNotModifiable => plain(StatusCode::CONFLICT, "REFUND_NOT_MODIFIABLE"),
            SelfApprovalForbidden | PolicyChangeSelfApproval => plain(StatusCode::FORBIDDEN, "SELF_APPROVAL_FORBIDDEN"),
            PolicyChangeNotPending(status) => {
                (StatusCode::CONFLICT, "POLICY_CHANGE_NOT_PENDING".into(), self.to_string(), json!({"status": status}))
            }
            PolicyChangeStale => plain(StatusCode::CONFLICT, "POLICY_CHANGE_STALE"),
            PolicyChangeExpired => plain(StatusCode::CONFLICT, "POLICY_CHANGE_EXPIRED"),
            AlreadyVoted => plain(StatusCode::CONFLICT, "ALREADY_VOTED"),
            TooManyWaits { limit, retry_after_seconds } => (
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMIT_EXCEEDED".into(),
                self.to_string(),
                json!({"limit": limit, "retryAfterSeconds": retry_after_seconds}),
            ),
            WebhookTarget(e) => {
                (StatusCode::BAD_REQUEST, "VALIDATION_ERROR".into(), format!("url: {e}"), json!({"field": "url"}))
            }
            Contention | Store(_) | Bus(_) | Queue(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE".into(),
                "temporarily unavailable; retry shortly".into(),
                json!({}),
            ),
            StepUpRequired { url, step_up_above } => (
                StatusCode::FORBIDDEN,
                "STEP_UP_REQUIRED".into(),
                self.to_string(),
                json!({"url": url, "stepUpAbove": step_up_above}),
            ),
            StepUpRefused(fault) => {
                (StatusCode::FORBIDDEN, "STEP_UP_REFUSED".into(), self.to_string(), json!({"reason": fault.code()}))
            }
            SigningKeyMissing => plain(StatusCode::SERVICE_UNAVAILABLE, "SIGNING_KEY_MISSING"),
            EncryptionKeyMissing => plain(StatusCode::SERVICE_UNAVAILABLE, "ENCRYPTION_KEY_MISSING"),
            SlackUserTaken => plain(StatusCode::CONFLICT, "SLACK_USER_TAKEN"),
            Corrupt(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR".into(), "internal error".into(), json!({}))
            }
        }
    }
}

/// Escalations that do not move forward: the submitter's (403 `SELF_APPROVAL_FORBIDDEN`), a team
/// named by a non-admin (403 `PERMISSION_DENIED`), a team it had (409 `NO_ESCALATION_TARGET`
/// naming it), or none left (409 `NO_ESCALATION_TARGET`).
fn escalation_parts(e: &EscalationError) -> (StatusCode, String, String, serde_json::Value) {
    let (status, code, details) = match e {
        EscalationError::BySubmitter => (StatusCode::FORBIDDEN, "SELF_APPROVAL_FORBIDDEN", json!({})),
        EscalationError::NamedTeamNeedsAdmin => {
            (StatusCode::FORBIDDEN, "PERMISSION_DENIED", json!({"required": Permission::Admin}))
        }
        EscalationError::AlreadyAssigned(team) => {
            (StatusCode::CONFLICT, "NO_ESCALATION_TARGET", json!({"toTeam": team}))
        }
        EscalationError::ChainEnded => (StatusCode::CONFLICT, "NO_ESCALATION_TARGET", json!({})),
    };
    (status, code.to_string(), e.to_string(), details)
}

#[cfg(feature = "mcp")]
impl AppError {
    /// The status and the error envelope, for doors other than a JSON response (MCP tool errors).
    pub(super) fn envelope(&self) -> (StatusCode, ErrorBody) {
        let (status, code, message, details) = self.parts();
        (status, ErrorBody { error: ErrorDetail { code, message, details } })
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code, message, details) = self.parts();
        if status.is_server_error() {
            // Internal text goes to the log, never to the client.
            tracing::error!(error = %self, code = %code, "request failed");
        } else {
            tracing::debug!(code = %code, "request refused");
        }
        let mut response = (status, Json(ErrorBody { error: ErrorDetail { code, message, details } })).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let AppError::TooManyWaits { retry_after_seconds, .. } = self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
        }
        response
    }
}
