//! `/v1/refunds` (docs/api.md, "Refunds"): ask for a refund of a completed payment, read and list refunds.
//! A held refund's approval is decided through `/v1/approvals` (or `/reviews`).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use super::extract::{Auth, Body, Ids, Params};
use super::wire::{self, intake_reply, optional_text, risk_score, wallet_field};
use super::AppState;
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::ids::{PaymentId, RefundId};
use crate::domain::input::{InputError, MAX_DESCRIPTION_CHARS};
use crate::domain::money::Amount;
use crate::domain::permission::Permission;
use crate::domain::refund::{NewRefund, RefundStatus};
use crate::error::AppResult;
use crate::service::{RefundFilter, RefundOutcome};

/// `POST /v1/refunds` as sent.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RefundBody {
    payment_id: Option<String>,
    #[schema(value_type = Option<String>, pattern = r"^[0-9]+(\.[0-9]+)?$", example = "150.00")]
    amount: Option<Value>,
    reason: Option<String>,
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 100)]
    risk_score: Option<Value>,
    idempotency_key: Option<String>,
}

impl RefundBody {
    pub fn try_into_domain(self, idempotency: Option<IdempotencyKey>) -> Result<NewRefund, InputError> {
        let payment_id = self.payment_id.as_deref().ok_or(InputError::Missing { field: "paymentId" })?;
        let payment_id =
            PaymentId::parse(payment_id).ok_or_else(|| InputError::invalid("paymentId", "is not a payment id"))?;
        let amount = self
            .amount
            .as_ref()
            .map(|v| Amount::parse_json(v).map_err(|source| InputError::Amount { field: "amount", source }))
            .transpose()?;
        Ok(NewRefund {
            payment_id,
            amount,
            reason: optional_text("reason", self.reason.as_deref(), MAX_DESCRIPTION_CHARS)?,
            risk_score: risk_score("riskScore", self.risk_score.as_ref())?,
            idempotency,
        })
    }
}

/// 201 when the refund executed (`approved`), 202 when it is held (`pending`, `approvalId`).
pub async fn create(
    State(s): State<AppState>,
    Auth(c): Auth,
    headers: HeaderMap,
    Body(b): Body,
) -> AppResult<Response> {
    c.authorize(Permission::RefundsWrite)?;
    let wire: RefundBody = wire::parse(b.clone())?;
    let idempotency = wire::idempotency(wire.idempotency_key.as_deref(), &headers, &b)?;
    let request = wire.try_into_domain(idempotency)?;
    let committed = s.metered_intake(s.create_refund(&c, request)).await?;
    let held = matches!(committed.outcome, RefundOutcome::Held { .. });
    Ok(intake_reply(held, committed.outcome.refund(), committed.replayed))
}

pub async fn get(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::PaymentsRead)?;
    let id = ids.parse("id", RefundId::parse, "refund")?;
    Ok(Json(s.get_refund(&c, &id).await?))
}

/// `GET /v1/refunds?walletId=&status=&paymentId=`.
pub async fn list(State(s): State<AppState>, Auth(c): Auth, p: Params) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::PaymentsRead)?;
    let status = p
        .get("status")
        .map(|s| {
            RefundStatus::parse(s).ok_or_else(|| {
                InputError::invalid("status", "must be one of pending, approved, rejected, escalated, expired, failed")
            })
        })
        .transpose()?;
    let wallet_id = p.get("walletId").map(|w| wallet_field("walletId", w)).transpose()?;
    let payment_id = p
        .get("paymentId")
        .map(|id| PaymentId::parse(id).ok_or_else(|| InputError::invalid("paymentId", "is not a payment id")))
        .transpose()?;
    let filter = RefundFilter { wallet_id, status, payment_id };
    Ok(Json(s.list_refunds(&c, &filter, &p.page()?).await?))
}
