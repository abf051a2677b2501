//! What each tool does: the REST route's steps in the REST route's order (the key's permission
//! first, then the arguments through the REST wire type's `try_into_domain`, then the same
//! service call), so a tool refuses exactly what its route refuses.

use std::time::Duration;

use axum::http::HeaderMap;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use super::args;
use crate::api::approvals::{DecideBody, EscalateBody};
use crate::api::comments::CommentBody;
use crate::api::payments::PaymentBody;
use crate::api::refunds::RefundBody;
use crate::api::reviews::{DecisionView, ReviewBody, ReviewView};
use crate::api::wire::{self, wallet_field};
use crate::domain::approval::{Approval, ApprovalStatus, VoteDecision};
use crate::domain::ids::ApprovalId;
use crate::domain::input::InputError;
use crate::domain::money::{Amount, Currency};
use crate::domain::payment::PaymentOutcome;
use crate::domain::payment_review::{ReviewEntry, ReviewRef};
use crate::domain::permission::Permission;
use crate::error::{AppError, AppResult};
use crate::service::{ApprovalFilter, Caller, Countersign, PageRequest, RefundOutcome, WhyRequest};

/// The longest `wait_for_decision`: below API Gateway's 29 s with room for the MCP exchange.
pub const MAX_WAIT_SECONDS: u64 = 25;

/// The arguments as the tool's type, or VALIDATION_ERROR naming the argument.
fn parse<T: DeserializeOwned>(arguments: Map<String, Value>) -> AppResult<T> {
    wire::parse(Value::Object(arguments))
}

fn approval_id(text: &str) -> AppResult<ApprovalId> {
    ApprovalId::parse(text).ok_or(AppError::NotFound("approval"))
}

/// `POST /v1/payments`: executed at once, or held for a human (REST's 202).
pub async fn request_payment(s: &Countersign, c: &Caller, arguments: Map<String, Value>) -> AppResult<Value> {
    c.authorize(Permission::PaymentsWrite)?;
    let body = parse::<args::RequestPayment>(arguments)?.into_rest_body();
    let wire: PaymentBody = wire::parse(body.clone())?;
    let key = body.get("idempotencyKey").and_then(Value::as_str);
    let idempotency = wire::idempotency(key, &HeaderMap::new(), &body)?;
    let committed = s.metered_intake(s.create_payment(c, wire.try_into_domain(idempotency)?)).await?;
    Ok(match &committed.outcome {
        PaymentOutcome::Executed { payment } => {
            json!({"held": false, "replayed": committed.replayed, "payment": payment})
        }
        PaymentOutcome::Held { payment, approval } => {
            json!({"held": true, "replayed": committed.replayed, "payment": payment, "approval": approval})
        }
    })
}

/// `POST /reviews` (never blocking).
pub async fn request_review(s: &Countersign, c: &Caller, arguments: Map<String, Value>) -> AppResult<Value> {
    c.authorize(Permission::ReviewsWrite)?;
    let body = parse::<args::RequestReview>(arguments)?.into_rest_body();
    let (request, _) = wire::parse::<ReviewBody>(body)?.try_into_domain()?;
    let review = s.create_review(c, request).await?;
    Ok(json!(ReviewView::from(&ReviewEntry::Review(review))))
}

/// `GET /v1/approvals/{id}`.
pub async fn get_approval(s: &Countersign, c: &Caller, arguments: Map<String, Value>) -> AppResult<Value> {
    c.authorize(Permission::ApprovalsRead)?;
    let id = approval_id(&parse::<args::GetApproval>(arguments)?.approval_id)?;
    Ok(json!(s.get_approval(c, &id).await?))
}

/// `GET /reviews/{id}/decision?wait=N`, returning the whole approval (or review) as it stands.
pub async fn wait_for_decision(s: &Countersign, c: &Caller, arguments: Map<String, Value>) -> AppResult<Value> {
    let a = parse::<args::WaitForDecision>(arguments)?;
    let target = ReviewRef::parse(&a.approval_id).ok_or(AppError::NotFound("approval"))?;
    let seconds = a.timeout_seconds.unwrap_or(MAX_WAIT_SECONDS);
    if seconds > MAX_WAIT_SECONDS {
        let message = format!("must be a whole number from 0 to {MAX_WAIT_SECONDS}");
        return Err(InputError::invalid("timeout_seconds", message).into());
    }
    let entry = s.await_review(c, &target, Duration::from_secs(seconds)).await.map_err(|e| match (&target, e) {
        (ReviewRef::Payment(_), AppError::NotFound("review")) => AppError::NotFound("approval"),
        (_, e) => e,
    })?;
    let pending = entry.is_open();
    let decision = entry.decision().map(DecisionView::from);
    Ok(match &entry {
        ReviewEntry::Payment(held) => {
            let mut view = json!({
                "pending": pending,
                "status": held.approval.status,
                "decision": decision,
                "approval": held.approval,
                "payment": held.payment,
            });
            // A refund's approval: the refund too, for a key that may read refunds.
            let refund = match held.approval.subject() {
                crate::domain::approval::ApprovalSubject::Refund { refund, .. } => Some(refund),
                crate::domain::approval::ApprovalSubject::Payment(_) => None,
            };
            if let (Some(id), Ok(_)) = (refund, c.authorize(Permission::PaymentsRead)) {
                view["refund"] = json!(s.get_refund(c, id).await?);
            }
            view
        }
        ReviewEntry::Review(review) => json!({
            "pending": pending,
            "status": review.status,
            "decision": decision,
            "review": ReviewView::from(&entry),
        }),
    })
}

/// `GET /v1/approvals?status=PENDING` and `?status=ESCALATED`, merged newest first: both wait
/// for a decision.
pub async fn list_pending_approvals(s: &Countersign, c: &Caller, arguments: Map<String, Value>) -> AppResult<Value> {
    c.authorize(Permission::ApprovalsRead)?;
    let a = parse::<args::ListPendingApprovals>(arguments)?;
    let wallet_id = a.wallet_id.as_deref().map(|w| wallet_field("wallet_id", w)).transpose()?;
    let page = PageRequest::parse(a.limit.map(|n| n.to_string()).as_deref(), None)?;
    let mut open: Vec<Approval> = Vec::new();
    let mut has_more = false;
    for status in [ApprovalStatus::Pending, ApprovalStatus::Escalated] {
        let filter = ApprovalFilter { wallet_id: wallet_id.clone(), status: Some(status), ..ApprovalFilter::default() };
        let listed = s.list_approvals(c, &filter, &page).await?;
        has_more |= listed.has_more;
        open.extend(listed.data);
    }
    open.sort_by_key(|a| std::cmp::Reverse(a.created_at));
    has_more |= open.len() > page.limit;
    open.truncate(page.limit);
    Ok(json!({"approvals": open, "has_more": has_more}))
}

/// `POST /v1/approvals/{id}/approve` or `/reject`.
pub async fn decide_approval(s: &Countersign, c: &Caller, arguments: Map<String, Value>) -> AppResult<Value> {
    c.authorize(Permission::ApprovalsWrite)?;
    let a = parse::<args::DecideApproval>(arguments)?;
    let id = approval_id(&a.approval_id)?;
    let decision = match a.decision.as_str() {
        "approve" => VoteDecision::Approve,
        "reject" => VoteDecision::Reject,
        _ => return Err(InputError::invalid("decision", "must be approve or reject").into()),
    };
    let request = wire::parse::<DecideBody>(json!({"note": a.note}))?.try_into_domain(decision)?;
    let decided = s.decide_approval(c, &id, request).await?;
    let mut view = json!({"approval": decided.approval, "payment": decided.payment});
    if let Some(refund) = decided.refund {
        view["refund"] = json!(refund);
    }
    Ok(view)
}

/// `POST /v1/approvals/{id}/escalate`.
pub async fn escalate_approval(s: &Countersign, c: &Caller, arguments: Map<String, Value>) -> AppResult<Value> {
    c.authorize(Permission::ApprovalsWrite)?;
    let a = parse::<args::EscalateApproval>(arguments)?;
    let id = approval_id(&a.approval_id)?;
    let request = wire::parse::<EscalateBody>(json!({"note": a.note, "toTeam": a.to_team_id}))?.try_into_domain()?;
    Ok(json!(s.escalate_approval(c, &id, request).await?))
}

/// `POST /v1/refunds`: executed at once, or held for a human (REST's 202).
pub async fn request_refund(s: &Countersign, c: &Caller, arguments: Map<String, Value>) -> AppResult<Value> {
    c.authorize(Permission::RefundsWrite)?;
    let body = parse::<args::RequestRefund>(arguments)?.into_rest_body();
    let wire: RefundBody = wire::parse(body.clone())?;
    let key = body.get("idempotencyKey").and_then(Value::as_str);
    let idempotency = wire::idempotency(key, &HeaderMap::new(), &body)?;
    let committed = s.metered_intake(s.create_refund(c, wire.try_into_domain(idempotency)?)).await?;
    Ok(match &committed.outcome {
        RefundOutcome::Executed { refund } => json!({"held": false, "replayed": committed.replayed, "refund": refund}),
        RefundOutcome::Held { refund, approval } => {
            json!({"held": true, "replayed": committed.replayed, "refund": refund, "approval": approval})
        }
    })
}

/// `GET /v1/api-keys/{own id}/budgets`: the calling key's budgets as they stand.
pub async fn get_budget(s: &Countersign, c: &Caller, arguments: Map<String, Value>) -> AppResult<Value> {
    let key = c.key()?;
    parse::<args::GetBudget>(arguments)?;
    Ok(json!({"budgets": s.key_budget_standing(c, &key.id).await?}))
}

/// Intake's verdict on a payment as it was sent, written nowhere.
pub async fn why_denied(s: &Countersign, c: &Caller, arguments: Map<String, Value>) -> AppResult<Value> {
    c.authorize(Permission::PaymentsWrite)?;
    let a = parse::<args::WhyDenied>(arguments)?;
    let request = WhyRequest {
        from: wallet_field("from", &a.from)?,
        to: wallet_field("to", &a.to)?,
        amount: Amount::parse_json(&a.amount).map_err(|source| InputError::Amount { field: "amount", source })?,
        currency: a
            .currency
            .as_deref()
            .map(Currency::parse)
            .transpose()
            .map_err(|source| InputError::Amount { field: "currency", source })?,
    };
    Ok(json!(s.why_denied(c, request).await?))
}

/// `POST /v1/approvals/{id}/comments`: by a reviewer or the key that requested the approval
/// (the service decides who; anyone else gets APPROVAL_NOT_FOUND).
pub async fn add_comment(s: &Countersign, c: &Caller, arguments: Map<String, Value>) -> AppResult<Value> {
    c.key()?;
    let a = parse::<args::AddComment>(arguments)?;
    let id = approval_id(&a.approval_id)?;
    let request = wire::parse::<CommentBody>(json!({"body": a.body}))?.try_into_domain()?;
    Ok(json!(s.add_comment(c, &id, request).await?))
}

/// `GET /v1/approvals/{id}/comments`: the first 100, oldest first.
pub async fn list_comments(s: &Countersign, c: &Caller, arguments: Map<String, Value>) -> AppResult<Value> {
    c.key()?;
    let id = approval_id(&parse::<args::ListComments>(arguments)?.approval_id)?;
    let page = PageRequest::parse(Some("100"), None)?;
    let listed = s.list_comments(c, &id, &page).await?;
    Ok(json!({"comments": listed.data, "has_more": listed.has_more}))
}
