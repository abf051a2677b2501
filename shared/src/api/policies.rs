//! `/v1/wallets/{id}/policies`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::extract::{Auth, Body, Ids, Params};
use super::policy_changes::answer;
use super::wire::{self, present, risk_score, wallet_field, whole_list};
use super::AppState;
use crate::domain::ids::{PolicyId, TeamId, WalletId};
use crate::domain::input::{self, InputError, MAX_ID_LIST};
use crate::domain::money::Amount;
use crate::domain::permission::Permission;
use crate::domain::policy::{ActionKind, Decision, OnTimeout, Outcome, PolicyMode, PolicyPatch};
use crate::domain::policy_version::parse_version;
use crate::error::AppResult;
use crate::service::{ChangeRequest, EvaluateRequest, MAX_APPROVAL_TTL_SECONDS};

const MAX_REQUIRED_APPROVALS: u32 = 10;

/// Every field optional: creation fills defaults (and needs `name`), PATCH changes only what is
/// sent. A JSON `null` clears an optional limit.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyBody {
    name: Option<String>,
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]+(\.[0-9]+)?$", example = "150.00")]
    max_transaction_amount: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]+(\.[0-9]+)?$", example = "150.00")]
    daily_spending_limit: Option<Value>,
    approved_recipients: Option<Vec<String>>,
    blocked_recipients: Option<Vec<String>>,
    require_human_approval: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]+(\.[0-9]+)?$", example = "150.00")]
    auto_approve_below: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]+(\.[0-9]+)?$", example = "150.00")]
    require_review_above: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]+(\.[0-9]+)?$", example = "150.00")]
    auto_reject_above: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]+(\.[0-9]+)?$", example = "500.00")]
    step_up_above: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 100)]
    risk_score_threshold: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, minimum = 1)]
    approval_ttl_seconds: Option<Value>,
    required_approvals: Option<u32>,
    escalation_chain: Option<Vec<String>>,
    on_timeout: Option<String>,
    applies_to: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 1)]
    max_payments_per_hour: Option<Value>,
    /// `enforce` (the default) or `shadow`: evaluated and recorded on each payment, never enforced.
    #[schema(value_type = Option<PolicyMode>)]
    mode: Option<String>,
}

const MAX_PAYMENTS_PER_HOUR: u64 = 1_000_000;

/// `["payment"]`, `["refund"]` or both, each once.
fn kinds(names: &[String]) -> Result<Vec<ActionKind>, InputError> {
    let mut out = Vec::new();
    for name in names {
        let kind = ActionKind::parse(name)
            .ok_or_else(|| InputError::invalid("appliesTo", format!("{name:?} is not one of payment, refund")))?;
        if out.contains(&kind) {
            return Err(InputError::invalid("appliesTo", "lists a kind twice"));
        }
        out.push(kind);
    }
    if out.is_empty() {
        return Err(InputError::invalid("appliesTo", "must name payment, refund or both"));
    }
    Ok(out)
}

/// `Some(None)` for an explicit null (clear), `Some(Some(_))` for a limit.
fn limit(field: &'static str, value: Option<&Value>) -> Result<Option<Option<Amount>>, InputError> {
    value
        .map(|v| match v {
            Value::Null => Ok(None),
            v => Amount::parse_json(v).map(Some).map_err(|source| InputError::Amount { field, source }),
        })
        .transpose()
}

fn recipients(field: &'static str, ids: Option<&[String]>) -> Result<Option<Vec<WalletId>>, InputError> {
    let Some(ids) = ids else { return Ok(None) };
    if ids.len() > MAX_ID_LIST {
        return Err(InputError::invalid(field, format!("must list at most {MAX_ID_LIST} wallets")));
    }
    ids.iter().map(|id| wallet_field(field, id)).collect::<Result<_, _>>().map(Some)
}

impl PolicyBody {
    pub fn try_into_domain(self) -> Result<PolicyPatch, InputError> {
        let name = self.name.as_deref().map(|n| input::name("name", n)).transpose()?;
        let risk_score_threshold =
            self.risk_score_threshold.as_ref().map(|v| risk_score("riskScoreThreshold", Some(v))).transpose()?;
        let approval_ttl_seconds = self
            .approval_ttl_seconds
            .as_ref()
            .map(|v| match v {
                Value::Null => Ok(None),
                v => v.as_u64().filter(|s| (1..=MAX_APPROVAL_TTL_SECONDS).contains(s)).map(Some).ok_or_else(|| {
                    InputError::invalid(
                        "approvalTtlSeconds",
                        format!("must be a whole number of seconds from 1 to {MAX_APPROVAL_TTL_SECONDS}"),
                    )
                }),
            })
            .transpose()?;
        if self.required_approvals.is_some_and(|n| !(1..=MAX_REQUIRED_APPROVALS).contains(&n)) {
            return Err(InputError::invalid(
                "requiredApprovals",
                format!("must be from 1 to {MAX_REQUIRED_APPROVALS}"),
            ));
        }
        let max_payments_per_hour = self
            .max_payments_per_hour
            .as_ref()
            .map(|v| match v {
                Value::Null => Ok(None),
                v => v
                    .as_u64()
                    .filter(|n| (1..=MAX_PAYMENTS_PER_HOUR).contains(n))
                    .and_then(|n| u32::try_from(n).ok())
                    .map(Some)
                    .ok_or_else(|| {
                        InputError::invalid(
                            "maxPaymentsPerHour",
                            format!("must be a whole number from 1 to {MAX_PAYMENTS_PER_HOUR}"),
                        )
                    }),
            })
            .transpose()?;
        Ok(PolicyPatch {
            applies_to: self.applies_to.as_deref().map(kinds).transpose()?,
            max_payments_per_hour,
            mode: self
                .mode
                .as_deref()
                .map(|m| PolicyMode::parse(m).ok_or_else(|| InputError::invalid("mode", "must be enforce or shadow")))
                .transpose()?,
            name,
            enabled: self.enabled,
            max_transaction_amount: limit("maxTransactionAmount", self.max_transaction_amount.as_ref())?,
            daily_spending_limit: limit("dailySpendingLimit", self.daily_spending_limit.as_ref())?,
            approved_recipients: recipients("approvedRecipients", self.approved_recipients.as_deref())?,
            blocked_recipients: recipients("blockedRecipients", self.blocked_recipients.as_deref())?,
            require_human_approval: self.require_human_approval,
            auto_approve_below: limit("autoApproveBelow", self.auto_approve_below.as_ref())?,
            require_review_above: limit("requireReviewAbove", self.require_review_above.as_ref())?,
            auto_reject_above: limit("autoRejectAbove", self.auto_reject_above.as_ref())?,
            step_up_above: limit("stepUpAbove", self.step_up_above.as_ref())?,
            risk_score_threshold,
            approval_ttl_seconds,
            required_approvals: self.required_approvals,
            escalation_chain: self.escalation_chain.as_deref().map(teams).transpose()?,
            on_timeout: self
                .on_timeout
                .as_deref()
                .map(|t| {
                    OnTimeout::parse(t)
                        .ok_or_else(|| InputError::invalid("onTimeout", "must be one of expire, reject, escalate"))
                })
                .transpose()?,
        })
    }
}

/// Escalation tiers: team ids, each once, at most ten.
fn teams(ids: &[String]) -> Result<Vec<TeamId>, InputError> {
    if ids.len() > 10 {
        return Err(InputError::invalid("escalationChain", "must list at most 10 teams"));
    }
    let mut out: Vec<TeamId> = Vec::new();
    for id in ids {
        let team = TeamId::parse(id)
            .ok_or_else(|| InputError::invalid("escalationChain", format!("{id:?} is not a team id")))?;
        if out.contains(&team) {
            return Err(InputError::invalid("escalationChain", "lists a team twice"));
        }
        out.push(team);
    }
    Ok(out)
}

/// `POST /v1/wallets/{id}/policies/evaluate` as sent.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EvaluateBody {
    kind: Option<String>,
    #[schema(value_type = Option<String>, pattern = r"^[0-9]+(\.[0-9]+)?$", example = "150.00")]
    amount: Option<Value>,
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 100)]
    risk_score: Option<Value>,
    to: Option<String>,
}

impl EvaluateBody {
    pub fn try_into_domain(self) -> Result<EvaluateRequest, InputError> {
        let kind = match self.kind.as_deref() {
            None => ActionKind::Payment,
            Some(k) => ActionKind::parse(k).ok_or_else(|| InputError::invalid("kind", "must be payment or refund"))?,
        };
        let amount = self.amount.as_ref().ok_or(InputError::Missing { field: "amount" })?;
        Ok(EvaluateRequest {
            kind,
            amount: Amount::parse_json(amount).map_err(|source| InputError::Amount { field: "amount", source })?,
            risk_score: risk_score("riskScore", self.risk_score.as_ref())?,
            to: self.to.as_deref().map(|t| wallet_field("to", t)).transpose()?,
        })
    }
}

/// RefundKit's words for an outcome.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum EvaluationStatus {
    Approved,
    RequiresReview,
    Denied,
}

/// What `evaluate` answers: the decision, with RefundKit's word for its outcome.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = PolicyEvaluation)]
pub(super) struct Evaluation<'a> {
    status: EvaluationStatus,
    #[serde(flatten)]
    decision: &'a Decision,
}

/// `POST /v1/wallets/{id}/policies/evaluate`: what would happen, written nowhere.
pub async fn evaluate(State(s): State<AppState>, Auth(c): Auth, ids: Ids, Body(b): Body) -> AppResult<Response> {
    c.authorize(Permission::WalletsRead)?;
    let wallet = wallet_id(&ids)?;
    let request = wire::parse::<EvaluateBody>(b)?.try_into_domain()?;
    let decision = s.evaluate_policies(&c, &wallet, request).await?;
    let status = match decision.outcome {
        Outcome::Execute => EvaluationStatus::Approved,
        Outcome::Hold => EvaluationStatus::RequiresReview,
        Outcome::Deny => EvaluationStatus::Denied,
    };
    Ok(Json(Evaluation { status, decision: &decision }).into_response())
}

fn wallet_id(ids: &Ids) -> AppResult<WalletId> {
    ids.parse("id", WalletId::parse, "wallet")
}

fn policy_id(ids: &Ids) -> AppResult<PolicyId> {
    ids.parse("pid", PolicyId::parse, "policy")
}

/// `POST /v1/wallets/{id}/policies` as a policy: it must name the policy.
pub(super) fn create_patch(body: Value) -> AppResult<PolicyPatch> {
    let patch = wire::parse::<PolicyBody>(body)?.try_into_domain()?;
    if patch.name.is_none() {
        return Err(InputError::Missing { field: "name" }.into());
    }
    Ok(patch)
}

/// `PATCH /v1/wallets/{id}/policies/{pid}` as a policy change.
pub(super) fn update_patch(body: Value) -> AppResult<PolicyPatch> {
    Ok(wire::parse::<PolicyBody>(body)?.try_into_domain()?)
}

/// 201 with the policy, or 202 with the pending change while four-eyes is on.
pub async fn create(State(s): State<AppState>, Auth(c): Auth, ids: Ids, Body(b): Body) -> AppResult<Response> {
    c.authorize(Permission::PoliciesWrite)?;
    let wallet = wallet_id(&ids)?;
    let patch = create_patch(b.clone())?;
    let submitted = s.submit_change(&c, ChangeRequest::PolicyCreate { wallet, patch }, b).await?;
    Ok(answer(StatusCode::CREATED, submitted))
}

pub async fn list(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::WalletsRead)?;
    Ok(whole_list(s.list_policies(&c, &wallet_id(&ids)?).await?))
}

pub async fn get(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::WalletsRead)?;
    Ok(Json(s.get_policy(&c, &wallet_id(&ids)?, &policy_id(&ids)?).await?))
}

/// 200 with the policy, or 202 with the pending change while four-eyes is on.
pub async fn update(State(s): State<AppState>, Auth(c): Auth, ids: Ids, Body(b): Body) -> AppResult<Response> {
    c.authorize(Permission::PoliciesWrite)?;
    let (wallet, policy) = (wallet_id(&ids)?, policy_id(&ids)?);
    let patch = update_patch(b.clone())?;
    let submitted = s.submit_change(&c, ChangeRequest::PolicyUpdate { wallet, policy, patch }, b).await?;
    Ok(answer(StatusCode::OK, submitted))
}

/// 200 `{"id", "deleted": true}`, or 202 with the pending change while four-eyes is on.
pub async fn delete(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<Response> {
    c.authorize(Permission::PoliciesWrite)?;
    let (wallet, policy) = (wallet_id(&ids)?, policy_id(&ids)?);
    let submitted = s.submit_change(&c, ChangeRequest::PolicyDelete { wallet, policy }, serde_json::json!({})).await?;
    Ok(answer(StatusCode::OK, submitted))
}

/// What a shadow policy would have decided, counted (`GET …/policies/{pid}/shadow-stats`).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ShadowStatsView {
    policy_id: PolicyId,
    /// The policy's mode now: an enforcing policy answers what it counted while in shadow.
    mode: PolicyMode,
    /// Payments and refunds it was evaluated on.
    evaluated: u64,
    would_have: WouldHave,
    /// How many times what it would have decided differed from the real decision.
    differed: u64,
    /// When its first evaluation was counted; null before any.
    since: Option<chrono::DateTime<chrono::Utc>>,
}

/// How many it would have executed, held and denied.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct WouldHave {
    executed: u64,
    held: u64,
    denied: u64,
}

/// `GET /v1/wallets/{id}/policies/{pid}/shadow-stats`.
pub async fn shadow_stats(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::WalletsRead)?;
    let found = s.shadow_stats(&c, &wallet_id(&ids)?, &policy_id(&ids)?).await?;
    let stats = found.stats.as_ref();
    let count = |f: fn(&crate::domain::shadow::ShadowStats) -> u64| stats.map_or(0, f);
    Ok(Json(ShadowStatsView {
        policy_id: found.policy.id.clone(),
        mode: found.policy.mode,
        evaluated: count(|s| s.evaluated),
        would_have: WouldHave {
            executed: count(|s| s.would_execute),
            held: count(|s| s.would_hold),
            denied: count(|s| s.would_deny),
        },
        differed: count(|s| s.differed),
        since: stats.map(|s| s.since),
    }))
}

/// `GET /v1/wallets/{id}/policies/{pid}/versions`: a page of the policy's versions, oldest first.
pub async fn versions(State(s): State<AppState>, Auth(c): Auth, ids: Ids, p: Params) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::WalletsRead)?;
    let (wallet, policy) = (wallet_id(&ids)?, policy_id(&ids)?);
    Ok(Json(s.list_policy_versions(&c, &wallet, &policy, &p.page()?).await?))
}

/// `GET /v1/wallets/{id}/policies/{pid}/versions/{n}`: one version (a number from 1; anything
/// else names no version).
pub async fn version(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::WalletsRead)?;
    let (wallet, policy) = (wallet_id(&ids)?, policy_id(&ids)?);
    let n = ids.parse("n", parse_version, "policy version")?;
    Ok(Json(s.get_policy_version(&c, &wallet, &policy, n).await?))
}
