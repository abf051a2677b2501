//! `/v1/policy-changes` (docs/api.md, "Four-eyes on policy changes"): changes to policies,
//! routing rules and the four-eyes setting that wait for another person, listed, read,
//! approved (applied once) and rejected. The answer a policy, rule or settings change gets
//! (`answer`): the object as applied, or 202 with the pending change.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::extract::{Auth, Body, Ids, Params};
use super::wire::{self, deleted, optional_text, respond};
use super::AppState;
use crate::domain::ids::PolicyChangeId;
use crate::domain::input::{InputError, MAX_NOTE_CHARS};
use crate::domain::permission::Permission;
use crate::domain::policy_change::{ChangeActor, ChangeKind, ChangeStatus, ChangeTarget, FieldChange, PolicyChange};
use crate::error::{AppError, AppResult};
use crate::service::{Applied, ChangeFilter, ChangeRequest, Page, Submitted};

/// A policy change as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PolicyChange)]
pub struct PolicyChangeView {
    pub id: PolicyChangeId,
    /// The same id, under the name the 202 answer of a change gives it.
    pub change_id: PolicyChangeId,
    pub kind: ChangeKind,
    pub status: ChangeStatus,
    pub target: ChangeTarget,
    /// The request body as received (it passed validation), applied as sent on approval.
    #[schema(value_type = Object)]
    pub request: Value,
    /// Per field: `{field, before, after}`, against the object when the change was requested.
    pub diff: Vec<FieldChange>,
    pub requested_by: ChangeActor,
    pub requested_at: DateTime<Utc>,
    pub decided_by: Option<ChangeActor>,
    pub decided_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    /// Once applied: the policy's or rule's id (the organisation's for the settings).
    pub result: Option<String>,
    /// The stored version of the object the change was requested against (its `diff` is against
    /// it); approving once it has moved on is 409 `POLICY_CHANGE_STALE`. Null for a creation.
    pub target_version: Option<u64>,
    /// Until when it may be approved (7 days after it was requested); approving later is 409
    /// `POLICY_CHANGE_EXPIRED`, rejecting still works. Null on changes requested before deadlines.
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<PolicyChange> for PolicyChangeView {
    fn from(c: PolicyChange) -> Self {
        PolicyChangeView {
            id: c.id.clone(),
            change_id: c.id,
            kind: c.kind,
            status: c.status,
            target: c.target,
            request: c.request,
            diff: c.diff,
            requested_by: c.requested_by,
            requested_at: c.requested_at,
            decided_by: c.decided_by,
            decided_at: c.decided_at,
            reason: c.reason,
            result: c.result,
            target_version: c.target_version,
            expires_at: c.expires_at,
        }
    }
}

/// What a policy, routing-rule or settings change answers: the object as applied (`status`,
/// or `{"id", "deleted": true}` for a deletion), or 202 with the pending change.
pub(super) fn answer(status: StatusCode, submitted: Submitted) -> Response {
    match submitted {
        Submitted::Pending(change) => respond(StatusCode::ACCEPTED, &PolicyChangeView::from(change)),
        Submitted::Applied(Applied::PolicyDeleted(id)) => deleted(id).into_response(),
        Submitted::Applied(Applied::RuleDeleted(id)) => deleted(id).into_response(),
        Submitted::Applied(applied) => respond(status, &applied),
    }
}

/// A stored change's request, read back with the parsers of the direct calls.
pub(crate) fn parse_change(change: &PolicyChange) -> AppResult<ChangeRequest> {
    let t = &change.target;
    let corrupt = || AppError::Corrupt(format!("policy change {} lacks its target", change.id));
    let wallet = || t.wallet_id.clone().ok_or_else(corrupt);
    let policy = || t.policy_id.clone().ok_or_else(corrupt);
    let rule = || t.rule_id.clone().ok_or_else(corrupt);
    let body = change.request.clone();
    Ok(match change.kind {
        ChangeKind::PolicyCreate => {
            ChangeRequest::PolicyCreate { wallet: wallet()?, patch: super::policies::create_patch(body)? }
        }
        ChangeKind::PolicyUpdate => ChangeRequest::PolicyUpdate {
            wallet: wallet()?,
            policy: policy()?,
            patch: super::policies::update_patch(body)?,
        },
        ChangeKind::PolicyDelete => ChangeRequest::PolicyDelete { wallet: wallet()?, policy: policy()? },
        ChangeKind::RoutingRuleCreate => ChangeRequest::RuleCreate(super::people::rule_create(body)?),
        ChangeKind::RoutingRuleUpdate => {
            ChangeRequest::RuleUpdate { rule: rule()?, patch: super::people::rule_patch(body)? }
        }
        ChangeKind::RoutingRuleDelete => ChangeRequest::RuleDelete { rule: rule()? },
        ChangeKind::SettingsUpdate => ChangeRequest::Settings(super::settings::settings_patch(body)?),
    })
}

/// `POST /v1/policy-changes/{id}/reject` as sent.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PolicyChangeRejectBody)]
pub struct RejectBody {
    /// Why (at most 1,000 characters); optional.
    reason: Option<String>,
}

/// `POST /v1/policy-changes/{id}/approve` takes no fields (an empty body or `{}`).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PolicyChangeApproveBody)]
pub struct ApproveBody {}

fn change_id(ids: &Ids) -> AppResult<PolicyChangeId> {
    ids.parse("id", PolicyChangeId::parse, "policy change")
}

/// `GET /v1/policy-changes?status=pending|applied|rejected` (`wallets:read`).
pub async fn list(State(s): State<AppState>, Auth(c): Auth, p: Params) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::WalletsRead)?;
    let status = p
        .get("status")
        .map(|text| {
            ChangeStatus::parse(text)
                .ok_or_else(|| InputError::invalid("status", "must be one of pending, applied, rejected"))
        })
        .transpose()?;
    let page: Page<PolicyChange> = s.list_policy_changes(&c, &ChangeFilter { status }, &p.page()?).await?;
    Ok(Json(page.map(PolicyChangeView::from)))
}

pub async fn get(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::WalletsRead)?;
    Ok(Json(PolicyChangeView::from(s.get_policy_change(&c, &change_id(&ids)?).await?)))
}

/// `POST /v1/policy-changes/{id}/approve` (`policies:write`, another person than the requester).
pub async fn approve(
    State(s): State<AppState>,
    Auth(c): Auth,
    ids: Ids,
    Body(b): Body,
) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::PoliciesWrite)?;
    let id = change_id(&ids)?;
    wire::parse::<ApproveBody>(b)?;
    Ok(Json(PolicyChangeView::from(s.approve_policy_change(&c, &id, parse_change).await?)))
}

/// `POST /v1/policy-changes/{id}/reject {"reason"?}` (`policies:write`; the requester may withdraw).
pub async fn reject(State(s): State<AppState>, Auth(c): Auth, ids: Ids, Body(b): Body) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::PoliciesWrite)?;
    let id = change_id(&ids)?;
    let body = wire::parse::<RejectBody>(b)?;
    let reason = optional_text("reason", body.reason.as_deref(), MAX_NOTE_CHARS)?;
    Ok(Json(PolicyChangeView::from(s.reject_policy_change(&c, &id, reason).await?)))
}
