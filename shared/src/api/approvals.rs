//! `/v1/approvals`: list, read, approve, reject.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::extract::{Auth, Bearer, Body, Ids, Params};
use super::wire::{self, optional_text, wallet_field};
use super::AppState;
use crate::domain::allow_rule::{AllowRule, AlwaysAllow, MAX_EXPIRES_IN_DAYS};
use crate::domain::approval::{Approval, ApprovalStatus, VoteDecision};
use crate::domain::ids::{ApprovalId, TeamId};
use crate::domain::input::{InputError, MAX_NOTE_CHARS};
use crate::domain::money::Amount;
use crate::domain::payment::Payment;
use crate::domain::permission::Permission;
use crate::domain::refund::Refund;
use crate::error::{AppError, AppResult};
use crate::service::{ApprovalFilter, DecideRequest, EscalateRequest};

/// Body of approve (`note`) and reject (`reason`); both optional.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ApprovalDecideBody)]
pub struct DecideBody {
    note: Option<String>,
    reason: Option<String>,
    /// Approve only: later payments from this wallet to this payee up to `maxAmount` execute
    /// without review (deny rules, balance, budgets, velocity and the daily limit still apply).
    #[serde(rename = "alwaysAllow")]
    #[schema(inline)]
    always_allow: Option<AlwaysAllowBody>,
}

/// `{"maxAmount": "50.00", "expiresInDays": 90}` (days: 1-365, default 365).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AlwaysAllowBody {
    #[schema(value_type = String, pattern = r"^[0-9]+(\.[0-9]+)?$", example = "50.00")]
    max_amount: serde_json::Value,
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 365, example = 90)]
    expires_in_days: Option<serde_json::Value>,
}

impl AlwaysAllowBody {
    fn try_into_domain(self) -> Result<AlwaysAllow, InputError> {
        let max_amount = Amount::parse_json(&self.max_amount)
            .map_err(|source| InputError::Amount { field: "alwaysAllow.maxAmount", source })?;
        let expires_in_days = match self.expires_in_days {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .filter(|d| (1..=u64::from(MAX_EXPIRES_IN_DAYS)).contains(d))
                    .and_then(|d| u32::try_from(d).ok())
                    .ok_or_else(|| {
                        InputError::invalid(
                            "alwaysAllow.expiresInDays",
                            format!("must be a whole number of days from 1 to {MAX_EXPIRES_IN_DAYS}"),
                        )
                    })?,
            ),
        };
        Ok(AlwaysAllow { max_amount, expires_in_days })
    }
}

impl DecideBody {
    pub fn try_into_domain(self, decision: VoteDecision) -> Result<DecideRequest, InputError> {
        let note = match (self.note, self.reason) {
            (Some(note), _) => optional_text("note", Some(&note), MAX_NOTE_CHARS)?,
            (None, reason) => optional_text("reason", reason.as_deref(), MAX_NOTE_CHARS)?,
        };
        let always_allow = match (self.always_allow, decision) {
            (None, _) => None,
            (Some(body), VoteDecision::Approve) => Some(body.try_into_domain()?),
            (Some(_), VoteDecision::Reject) => {
                return Err(InputError::invalid("alwaysAllow", "only when approving"));
            }
        };
        Ok(DecideRequest { always_allow, ..DecideRequest::new(decision, note) })
    }
}

/// What approve and reject return: the approval, with the payment as it now stands.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = DecidedApproval)]
pub(super) struct DecidedView<'a> {
    #[serde(flatten)]
    approval: &'a Approval,
    payment: &'a Payment,
    /// The refund, when the approval decided one.
    #[serde(skip_serializing_if = "Option::is_none")]
    refund: Option<&'a Refund>,
    /// The "always allow" rule the approval made or renewed, when it asked for one.
    #[serde(rename = "allowRule", skip_serializing_if = "Option::is_none")]
    allow_rule: Option<&'a AllowRule>,
}

impl<'a> DecidedView<'a> {
    pub(super) fn of(decided: &'a crate::service::Decided) -> Self {
        DecidedView {
            approval: &decided.approval,
            payment: &decided.payment,
            refund: decided.refund.as_ref(),
            allow_rule: decided.allow_rule.as_ref(),
        }
    }
}

pub async fn list(State(s): State<AppState>, Auth(c): Auth, p: Params) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::ApprovalsRead)?;
    let status = p
        .get("status")
        .map(|s| {
            ApprovalStatus::parse(s).ok_or_else(|| {
                InputError::invalid("status", "must be one of PENDING, ESCALATED, APPROVED, REJECTED, EXPIRED")
            })
        })
        .transpose()?;
    let wallet_id = p.get("walletId").map(|w| wallet_field("walletId", w)).transpose()?;
    let team = p
        .get("team")
        .map(|t| TeamId::parse(t).ok_or_else(|| InputError::invalid("team", "is not a team id")))
        .transpose()?;
    let assigned_to_me = match p.get("assignedToMe") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(InputError::invalid("assignedToMe", "must be true or false").into()),
    };
    let filter = ApprovalFilter { wallet_id, status, team, assigned_to_me };
    Ok(Json(s.list_approvals(&c, &filter, &p.page()?).await?))
}

pub async fn get(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::ApprovalsRead)?;
    let id = ids.parse("id", ApprovalId::parse, "approval")?;
    Ok(Json(s.get_approval(&c, &id).await?))
}

/// Body of modify: the lower amount to approve, and an optional note.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModifyBody {
    #[schema(value_type = String, pattern = r"^[0-9]+(\.[0-9]+)?$", example = "150.00")]
    amount: serde_json::Value,
    note: Option<String>,
}

impl ModifyBody {
    pub fn try_into_domain(self) -> Result<DecideRequest, InputError> {
        let amount =
            Amount::parse_json(&self.amount).map_err(|source| InputError::Amount { field: "amount", source })?;
        let note = optional_text("note", self.note.as_deref(), MAX_NOTE_CHARS)?;
        Ok(DecideRequest { modify_to: Some(amount), ..DecideRequest::new(VoteDecision::Approve, note) })
    }
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = ApprovalEscalateBody)]
pub struct EscalateBody {
    note: Option<String>,
    to_team: Option<String>,
}

impl EscalateBody {
    pub fn try_into_domain(self) -> Result<EscalateRequest, InputError> {
        Ok(EscalateRequest {
            note: optional_text("note", self.note.as_deref(), MAX_NOTE_CHARS)?,
            to_team: self
                .to_team
                .as_deref()
                .map(|t| TeamId::parse(t).ok_or_else(|| InputError::invalid("toTeam", "is not a team id")))
                .transpose()?,
        })
    }
}

/// `POST /v1/approvals/{id}/escalate`: forward only, to the next tier of the policy's chain or (admin)
/// to `toTeam`, a team it never had (the service checks; `Approval::escalation_target`).
pub async fn escalate(
    State(s): State<AppState>,
    Auth(c): Auth,
    ids: Ids,
    Body(b): Body,
) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::ApprovalsWrite)?;
    let id = ids.parse("id", ApprovalId::parse, "approval")?;
    let request = wire::parse::<EscalateBody>(b)?.try_into_domain()?;
    Ok(Json(s.escalate_approval(&c, &id, request).await?))
}

/// `POST /v1/approvals/{id}/modify`: approve a lower amount.
pub async fn modify(State(s): State<AppState>, Auth(c): Auth, ids: Ids, Body(b): Body) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::ApprovalsWrite)?;
    let id = ids.parse("id", ApprovalId::parse, "approval")?;
    let request = wire::parse::<ModifyBody>(b)?.try_into_domain()?;
    let decided = s.decide_approval(&c, &id, request).await?;
    Ok(Json(DecidedView::of(&decided)).into_response())
}

pub async fn approve(s: State<AppState>, c: Bearer, ids: Ids, b: Result<Body, AppError>) -> AppResult<Response> {
    decide(s, c, ids, b, VoteDecision::Approve).await
}

pub async fn reject(s: State<AppState>, c: Bearer, ids: Ids, b: Result<Body, AppError>) -> AppResult<Response> {
    decide(s, c, ids, b, VoteDecision::Reject).await
}

async fn decide(
    State(s): State<AppState>,
    Bearer(bearer): Bearer,
    ids: Ids,
    body: Result<Body, AppError>,
    decision: VoteDecision,
) -> AppResult<Response> {
    // The key is checked with the approval's read; an input error waits for it (401/403 first).
    let parsed = ids
        .parse("id", ApprovalId::parse, "approval")
        .and_then(|id| Ok((id, wire::parse::<DecideBody>(body?.0)?.try_into_domain(decision)?)));
    let (id, request) = match parsed {
        Ok((id, request)) => (id, Ok(request)),
        Err(e) => {
            s.authenticate(bearer.as_deref()).await?.authorize(Permission::ApprovalsWrite)?;
            return Err(e);
        }
    };
    let decided = s.decide_approval_from(bearer.as_deref(), &id, request).await?;
    Ok(Json(DecidedView::of(&decided)).into_response())
}
