//! `/v1/payments`: the wire request, its checks, and the intake routes.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use super::extract::{Auth, Bearer, Body, Ids, Params};
use super::wire::{self, confidence_score, intake_reply, optional_text, risk_score, wallet_field};
use super::AppState;
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::ids::PaymentId;
use crate::domain::input::{self, InputError, MAX_DESCRIPTION_CHARS};
use crate::domain::money::{Amount, Currency};
use crate::domain::payment::{NewPayment, PaymentOutcome, PaymentStatus, Urgency};
use crate::domain::permission::Permission;
use crate::error::{AppError, AppResult};
use crate::service::PaymentFilter;

const MAX_REASONING_CHARS: usize = 4_000;

/// `POST /v1/payments` as sent.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PaymentBody {
    from: String,
    to: String,
    #[schema(value_type = String, pattern = r"^[0-9]+(\.[0-9]+)?$", example = "150.00")]
    amount: Value,
    currency: Option<String>,
    description: Option<String>,
    idempotency_key: Option<String>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 100)]
    risk_score: Option<Value>,
    agent_reasoning: Option<String>,
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 1)]
    confidence_score: Option<Value>,
    urgency: Option<String>,
}

impl PaymentBody {
    /// Every check that needs no stored state; the currency's minor units are checked here when
    /// the request names a currency, otherwise once the wallet's currency is known.
    pub fn try_into_domain(self, idempotency: Option<IdempotencyKey>) -> Result<NewPayment, InputError> {
        let from = wallet_field("from", &self.from)?;
        let to = wallet_field("to", &self.to)?;
        if from == to {
            return Err(InputError::invalid("to", "must differ from `from`"));
        }
        let currency = self
            .currency
            .as_deref()
            .map(Currency::parse)
            .transpose()
            .map_err(|e| InputError::invalid("currency", e.to_string()))?;
        let amount =
            Amount::parse_json(&self.amount).map_err(|source| InputError::Amount { field: "amount", source })?;
        if let Some(c) = currency {
            amount.in_currency(c).map_err(|source| InputError::Amount { field: "amount", source })?;
        }
        let risk_score = risk_score("riskScore", self.risk_score.as_ref())?;
        let confidence_score = confidence_score("confidenceScore", self.confidence_score.as_ref())?;
        let urgency = self
            .urgency
            .as_deref()
            .map(|u| {
                Urgency::parse(u)
                    .ok_or_else(|| InputError::invalid("urgency", "must be one of low, medium, high, critical"))
            })
            .transpose()?;
        Ok(NewPayment {
            from,
            to,
            amount,
            currency,
            description: optional_text("description", self.description.as_deref(), MAX_DESCRIPTION_CHARS)?,
            metadata: input::metadata(self.metadata.as_ref())?,
            risk_score,
            confidence_score,
            agent_reasoning: optional_text("agentReasoning", self.agent_reasoning.as_deref(), MAX_REASONING_CHARS)?,
            urgency,
            idempotency,
        })
    }
}

/// 201 when the payment executed, 202 when it is held for approval.
pub async fn create(
    State(s): State<AppState>,
    Bearer(bearer): Bearer,
    headers: HeaderMap,
    body: Result<Body, AppError>,
) -> AppResult<Response> {
    // The key is checked with intake's first reads; a body error waits for it (401/403 first).
    let request = body.and_then(|Body(b)| {
        let wire: PaymentBody = wire::parse(b.clone())?;
        let idempotency = wire::idempotency(wire.idempotency_key.as_deref(), &headers, &b)?;
        Ok(wire.try_into_domain(idempotency)?)
    });
    let committed = s.metered_intake(s.create_payment_from(bearer.as_deref(), request)).await?;
    let held = matches!(committed.outcome, PaymentOutcome::Held { .. });
    Ok(intake_reply(held, committed.outcome.payment(), committed.replayed))
}

pub async fn get(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::PaymentsRead)?;
    let id = ids.parse("id", PaymentId::parse, "payment")?;
    Ok(Json(s.get_payment(&c, &id).await?))
}

pub async fn list(State(s): State<AppState>, Auth(c): Auth, p: Params) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::PaymentsRead)?;
    let status = p
        .get("status")
        .map(|s| {
            PaymentStatus::parse(s).ok_or_else(|| {
                InputError::invalid("status", "must be one of COMPLETED, PENDING_APPROVAL, REJECTED, EXPIRED, FAILED")
            })
        })
        .transpose()?;
    let wallet_id = p.get("walletId").map(|w| wallet_field("walletId", w)).transpose()?;
    let filter = PaymentFilter { wallet_id, status };
    Ok(Json(s.list_payments(&c, &filter, &p.page()?).await?))
}
