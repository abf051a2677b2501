//! `/reviews` (docs/api.md, "Reviews"): Humancheck's reviews API, snake_case, at the root. Create (optionally
//! blocking until a decision or `COUNTERSIGN_REVIEW_WAIT_SECONDS`), list by page, read, decide,
//! and read (or long-poll) the decision.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::extract::{Auth, Body, Ids, Params};
use super::wire::{self, confidence_score, optional_text, respond};
use super::AppState;
use crate::domain::ids::{ApprovalId, PaymentId, RefundId, ReviewDecisionId, TeamId, WalletId};
use crate::domain::input::{self, InputError, MAX_NAME_CHARS, MAX_NOTE_CHARS};
use crate::domain::money::Amount;
use crate::domain::payment::Urgency;
use crate::domain::payment_review::{DecisionSummary, HeldPayment, ReviewEntry, ReviewRef};
use crate::domain::permission::Permission;
use crate::domain::review::{DecisionType, NewReview, ReviewStatus};
use crate::domain::score::Score;
use crate::error::AppResult;
use crate::service::{ReviewDecide, ReviewEscalate, ReviewFilter, MAX_REVIEW_WAIT_SECONDS};

const MAX_ACTION_CHARS: usize = 4_000;
const MAX_REASONING_CHARS: usize = 4_000;
const DEFAULT_PAGE_SIZE: usize = 20;
const MAX_PAGE_SIZE: usize = 100;

/// `POST /reviews` as sent. Required fields are checked in `try_into_domain`, so a missing one
/// is a 400 naming it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    task_type: Option<String>,
    proposed_action: Option<String>,
    agent_reasoning: Option<String>,
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 1)]
    confidence_score: Option<Value>,
    urgency: Option<String>,
    framework: Option<String>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
    blocking: Option<bool>,
}

fn required<'a>(field: &'static str, value: Option<&'a str>) -> Result<&'a str, InputError> {
    value.ok_or_else(|| InputError::invalid(field, "is required"))
}

impl ReviewBody {
    /// The review asked for, and whether to wait for its decision.
    pub fn try_into_domain(self) -> Result<(NewReview, bool), InputError> {
        let task_type = input::name("task_type", required("task_type", self.task_type.as_deref())?)?;
        let proposed_action = required("proposed_action", self.proposed_action.as_deref())?;
        if proposed_action.trim().is_empty() {
            return Err(InputError::invalid("proposed_action", "must not be blank"));
        }
        let proposed_action = input::bounded_text("proposed_action", proposed_action, MAX_ACTION_CHARS)?;
        let urgency = match self.urgency.as_deref() {
            None => Urgency::Medium,
            Some(u) => Urgency::parse(u)
                .ok_or_else(|| InputError::invalid("urgency", "must be one of low, medium, high, critical"))?,
        };
        let review = NewReview {
            task_type,
            proposed_action,
            agent_reasoning: optional_text("agent_reasoning", self.agent_reasoning.as_deref(), MAX_REASONING_CHARS)?,
            confidence_score: confidence_score("confidence_score", self.confidence_score.as_ref())?,
            urgency,
            framework: optional_text("framework", self.framework.as_deref(), MAX_NAME_CHARS)?,
            metadata: input::metadata(self.metadata.as_ref())?,
        };
        Ok((review, self.blocking.unwrap_or(false)))
    }
}

/// `POST /reviews/{id}/decide` as sent.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ReviewDecideBody)]
pub struct DecideBody {
    decision_type: Option<String>,
    modified_action: Option<String>,
    #[schema(value_type = Option<String>, pattern = r"^[0-9]+(\.[0-9]+)?$", example = "150.00")]
    modified_amount: Option<Value>,
    notes: Option<String>,
}

impl DecideBody {
    /// The decision on `target`: a held payment's modify needs `modified_amount` (a decimal
    /// string, lower than asked), which nothing else takes.
    pub fn try_into_domain(self, target: &ReviewRef) -> Result<ReviewDecide, InputError> {
        let decision_type = DecisionType::parse(required("decision_type", self.decision_type.as_deref())?)
            .ok_or_else(|| InputError::invalid("decision_type", "must be one of approve, reject, modify"))?;
        let modified_action = optional_text("modified_action", self.modified_action.as_deref(), MAX_ACTION_CHARS)?
            .filter(|a| !a.trim().is_empty());
        if decision_type == DecisionType::Modify && modified_action.is_none() {
            return Err(InputError::invalid("modified_action", "is required when decision_type is modify"));
        }
        let modified_amount = self
            .modified_amount
            .as_ref()
            .map(|v| Amount::parse_json(v).map_err(|source| InputError::Amount { field: "modified_amount", source }))
            .transpose()?;
        match (target, decision_type, &modified_amount) {
            (ReviewRef::Payment(_), DecisionType::Modify, None) => {
                return Err(InputError::invalid("modified_amount", "is required to modify a payment"));
            }
            (ReviewRef::Review(_), _, Some(_)) => {
                return Err(InputError::invalid(
                    "modified_amount",
                    "applies only to a held payment (task_type payment)",
                ));
            }
            (ReviewRef::Payment(_), DecisionType::Approve | DecisionType::Reject, Some(_)) => {
                return Err(InputError::invalid("modified_amount", "is only for decision_type modify"));
            }
            _ => {}
        }
        Ok(ReviewDecide {
            decision_type,
            modified_action,
            notes: optional_text("notes", self.notes.as_deref(), MAX_NOTE_CHARS)?,
            modified_amount,
        })
    }
}

/// `POST /reviews/{id}/escalate` as sent.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ReviewEscalateBody)]
pub struct EscalateBody {
    to_team_id: Option<String>,
    notes: Option<String>,
}

impl EscalateBody {
    /// A review has no escalation chain, so it names the team; a held payment may leave it to
    /// its policy's chain.
    pub fn try_into_domain(self, target: &ReviewRef) -> Result<ReviewEscalate, InputError> {
        let to_team = self
            .to_team_id
            .as_deref()
            .map(|t| TeamId::parse(t).ok_or_else(|| InputError::invalid("to_team_id", "is not a team id")))
            .transpose()?;
        if to_team.is_none() && matches!(target, ReviewRef::Review(_)) {
            return Err(InputError::invalid("to_team_id", "is required: a review has no escalation chain"));
        }
        Ok(ReviewEscalate { to_team, notes: optional_text("notes", self.notes.as_deref(), MAX_NOTE_CHARS)? })
    }
}

/// A decision on the wire.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ReviewDecision)]
pub(super) struct DecisionView {
    id: ReviewDecisionId,
    review_id: String,
    decision_type: DecisionType,
    modified_action: Option<String>,
    notes: Option<String>,
    reviewer_id: String,
    reviewer_name: String,
    timestamp: DateTime<Utc>,
}

impl From<DecisionSummary> for DecisionView {
    fn from(d: DecisionSummary) -> Self {
        DecisionView {
            id: d.id,
            review_id: d.review_id,
            decision_type: d.decision_type,
            modified_action: d.modified_action,
            notes: d.notes,
            reviewer_id: d.reviewer.to_string(),
            reviewer_name: d.reviewer_name,
            timestamp: d.timestamp,
        }
    }
}

/// A review on the wire (Humancheck's fields; a held payment adds `payment`).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Review)]
pub(super) struct ReviewView<'a> {
    id: &'a str,
    task_type: &'a str,
    proposed_action: String,
    agent_reasoning: Option<&'a str>,
    confidence_score: Option<Score>,
    urgency: Urgency,
    framework: Option<&'a str>,
    #[schema(value_type = Object)]
    metadata: &'a serde_json::Map<String, Value>,
    status: ReviewStatus,
    assigned_team_id: Option<&'a TeamId>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    decision: Option<DecisionView>,
    /// The held payment, when the review is one (`apr_…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    payment: Option<PaymentView<'a>>,
}

/// The payment behind a held-payment review, structured (the text is `proposed_action`).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = HeldPayment)]
pub(super) struct PaymentView<'a> {
    id: &'a PaymentId,
    approval_id: &'a ApprovalId,
    /// Set when the approval decides a refund of this payment (`amount` is then the refund's).
    #[serde(skip_serializing_if = "Option::is_none")]
    refund_id: Option<&'a RefundId>,
    from: &'a WalletId,
    to: &'a WalletId,
    #[schema(pattern = r"^[0-9]+(\.[0-9]+)?$", example = "150.00")]
    amount: String,
    #[schema(example = "USD")]
    currency: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[0-9]+(\.[0-9]+)?$", example = "150.00")]
    original_amount: Option<String>,
    description: Option<&'a str>,
    risk_score: Option<Score>,
    /// Why a policy held it.
    reason: &'a str,
    required_approvals: u32,
    votes: usize,
}

impl<'a> From<&'a HeldPayment> for PaymentView<'a> {
    fn from(h: &'a HeldPayment) -> Self {
        let (a, p) = (&h.approval, &h.payment);
        PaymentView {
            id: &p.id,
            approval_id: &a.id,
            refund_id: a.refund_id.as_ref(),
            from: &p.from,
            to: &p.to,
            amount: a.transaction_details.amount.to_wire(),
            currency: a.transaction_details.amount.currency().code(),
            original_amount: p.original_amount.map(|m| m.to_wire()),
            description: p.description.as_deref(),
            risk_score: p.risk_score,
            reason: &a.reason,
            required_approvals: a.required_approvals,
            votes: a.votes.len(),
        }
    }
}

impl<'a> From<&'a ReviewEntry> for ReviewView<'a> {
    fn from(entry: &'a ReviewEntry) -> Self {
        match entry {
            ReviewEntry::Review(r) => ReviewView {
                id: r.id.as_str(),
                task_type: &r.task_type,
                proposed_action: r.proposed_action.clone(),
                agent_reasoning: r.agent_reasoning.as_deref(),
                confidence_score: r.confidence_score,
                urgency: r.urgency,
                framework: r.framework.as_deref(),
                metadata: &r.metadata,
                status: r.status,
                assigned_team_id: r.assigned_team.as_ref(),
                created_at: r.created_at,
                updated_at: r.updated_at,
                expires_at: r.expires_at,
                decision: entry.decision().map(DecisionView::from),
                payment: None,
            },
            ReviewEntry::Payment(h) => ReviewView {
                id: h.approval.id.as_str(),
                task_type: h.task_type(),
                proposed_action: h.proposed_action(),
                agent_reasoning: h.payment.agent_reasoning.as_deref(),
                confidence_score: h.payment.confidence_score,
                urgency: h.payment.urgency.unwrap_or(Urgency::Medium),
                framework: None,
                metadata: &h.payment.metadata,
                status: h.status(),
                assigned_team_id: h.approval.assigned_team.as_ref(),
                created_at: h.approval.created_at,
                updated_at: h.payment.updated_at,
                expires_at: h.approval.expires_at,
                decision: entry.decision().map(DecisionView::from),
                payment: Some(PaymentView::from(h.as_ref())),
            },
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ReviewList)]
pub(super) struct ListView<'a> {
    reviews: Vec<ReviewView<'a>>,
    /// Exact, unless `total_is_capped`: then at least this many (a listing reads only near its page).
    total: usize,
    total_is_capped: bool,
    page: usize,
    page_size: usize,
}

/// `POST /reviews`: 201 the review; with `blocking: true`, 200 once decided or 202 with
/// `decision: null` when the wait ends first.
pub async fn create(State(s): State<AppState>, Auth(c): Auth, Body(b): Body) -> AppResult<Response> {
    c.authorize(Permission::ReviewsWrite)?;
    let (request, blocking) = wire::parse::<ReviewBody>(b)?.try_into_domain()?;
    // A blocking create takes its wait slot first: refused (429), it writes nothing.
    let slot = if blocking { Some(s.wait_slot(&c, s.settings().review_wait).await?) } else { None };
    let review = s.create_review(&c, request).await?;
    let Some(slot) = slot else {
        return Ok(respond(StatusCode::CREATED, &ReviewView::from(&ReviewEntry::Review(review))));
    };
    let target = ReviewRef::Review(review.id);
    let entry = s.await_review_in(slot, &c, &target, s.settings().review_wait).await?;
    let status = if entry.decision().is_some() { StatusCode::OK } else { StatusCode::ACCEPTED };
    Ok(respond(status, &ReviewView::from(&entry)))
}

fn whole_number(
    p: &Params,
    name: &'static str,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
) -> AppResult<usize> {
    match p.get(name) {
        None => Ok(default),
        Some(text) => text.parse::<usize>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
            InputError::invalid(name, format!("must be a whole number from {} to {}", range.start(), range.end()))
                .into()
        }),
    }
}

/// `GET /reviews?status=&task_type=&page=&page_size=`.
pub async fn list(State(s): State<AppState>, Auth(c): Auth, p: Params) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::ApprovalsRead)?;
    let status = p
        .get("status")
        .map(|v| {
            ReviewStatus::parse(v).ok_or_else(|| {
                InputError::invalid(
                    "status",
                    "must be one of pending, approved, rejected, modified, escalated, expired",
                )
            })
        })
        .transpose()?;
    let task_type = p.get("task_type").map(|t| input::name("task_type", t)).transpose()?;
    let page = whole_number(&p, "page", 1, 1..=1_000_000)?;
    let page_size = whole_number(&p, "page_size", DEFAULT_PAGE_SIZE, 1..=MAX_PAGE_SIZE)?;
    let listed = s.list_reviews(&c, &ReviewFilter { status, task_type }, page, page_size).await?;
    Ok(Json(ListView {
        reviews: listed.reviews.iter().map(ReviewView::from).collect(),
        total: listed.total,
        total_is_capped: listed.total_is_capped,
        page: listed.page,
        page_size: listed.page_size,
    })
    .into_response())
}

fn target(ids: &Ids) -> AppResult<ReviewRef> {
    ids.parse("id", ReviewRef::parse, "review")
}

pub async fn get(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<Response> {
    let entry = s.get_review(&c, &target(&ids)?).await?;
    Ok(Json(ReviewView::from(&entry)).into_response())
}

/// `POST /reviews/{id}/decide` → 200 the decision (on a held payment needing more approvers:
/// this vote, while the review stays pending).
pub async fn decide(State(s): State<AppState>, Auth(c): Auth, ids: Ids, Body(b): Body) -> AppResult<Response> {
    c.authorize(Permission::ApprovalsWrite)?;
    let target = target(&ids)?;
    let request = wire::parse::<DecideBody>(b)?.try_into_domain(&target)?;
    let decision = s.decide_review(&c, &target, request).await?;
    Ok(Json(DecisionView::from(decision)).into_response())
}

/// `POST /reviews/{id}/escalate` → 200 the review, now `escalated` and assigned to the new team.
pub async fn escalate(State(s): State<AppState>, Auth(c): Auth, ids: Ids, Body(b): Body) -> AppResult<Response> {
    c.authorize(Permission::ApprovalsWrite)?;
    let target = target(&ids)?;
    let request = wire::parse::<EscalateBody>(b)?.try_into_domain(&target)?;
    let entry = s.escalate_review(&c, &target, request).await?;
    Ok(Json(ReviewView::from(&entry)).into_response())
}

/// `GET /reviews/{id}/decision?wait=N`: the decision, or `null` while there is none (after
/// waiting up to N seconds, at most 28).
pub async fn decision(State(s): State<AppState>, Auth(c): Auth, ids: Ids, p: Params) -> AppResult<Response> {
    let target = target(&ids)?;
    let max = usize::try_from(MAX_REVIEW_WAIT_SECONDS).unwrap_or(28);
    let wait = whole_number(&p, "wait", 0, 0..=max)?;
    let entry = s.await_review(&c, &target, Duration::from_secs(wait as u64)).await?;
    Ok(Json(entry.decision().map(DecisionView::from)).into_response())
}
