//! One approval or review: its page, and the decisions on it. Decisions call the same service
//! methods as the API, so the same rules hold (separation of duties, team assignment, quorum,
//! expiry); a refusal shows the API's error on the page, with what the reviewer typed kept.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;

use super::auth::Reviewer;
use super::form::{Form, PathParam};
use super::page::{html, readable, see_other, DashError, Reply};
use super::views::{own_part_in_approval, own_part_in_review, ApprovalPage, ReviewPage};
use crate::api::wire::optional_text;
use crate::api::AppState;
use crate::domain::allow_rule::{AlwaysAllow, MAX_EXPIRES_IN_DAYS};
use crate::domain::approval::VoteDecision;
use crate::domain::comment::comment_body;
use crate::domain::ids::{ApprovalId, ReviewId, TeamId};
use crate::domain::input::{InputError, MAX_NOTE_CHARS};
use crate::domain::money::Amount;
use crate::domain::payment_review::ReviewRef;
use crate::domain::review::DecisionType;
use crate::domain::step_up::StepUpProof;
use crate::error::AppError;
use crate::service::{DecideRequest, EscalateRequest, NewComment, ReviewDecide, ReviewEscalate};

const MAX_ACTION_CHARS: usize = 4_000;

fn note(form: &Form) -> Result<Option<String>, AppError> {
    Ok(optional_text("note", form.get("note"), MAX_NOTE_CHARS)?)
}

pub async fn approval(State(s): State<AppState>, reviewer: Reviewer, PathParam(id): PathParam) -> Reply {
    let id = ApprovalId::parse(&id).ok_or_else(DashError::not_found)?;
    let detail = s.approval_detail(reviewer.caller(), &id).await?;
    let mut page = ApprovalPage::of(&detail, reviewer.chrome(), Utc::now());
    let viewer = reviewer.caller().key()?;
    page.flash = own_part_in_approval(&detail.approval, &detail.history, viewer);
    Ok(html(StatusCode::OK, &page))
}

/// The passkey assertion `static/passkeys.js` adds to the form, when it ran the step-up.
fn step_up_proof(form: &Form) -> Option<StepUpProof> {
    Some(StepUpProof {
        nonce: form.get("step_up_nonce")?.to_string(),
        credential_id: form.get("step_up_credential")?.to_string(),
        authenticator_data: form.get("step_up_authenticator_data")?.to_string(),
        client_data_json: form.get("step_up_client_data")?.to_string(),
        signature: form.get("step_up_signature")?.to_string(),
    })
}

/// The "always allow" cap a decide form asks for (its box ticked, `allow_max` filled in).
pub(super) fn allow_cap(form: &Form) -> Result<Option<Amount>, AppError> {
    if form.get("action") != Some("approve") || form.get("always_allow").is_none() {
        return Ok(None);
    }
    let text = form.get("allow_max").ok_or_else(|| InputError::invalid("alwaysAllow.maxAmount", "is required"))?;
    let cap =
        Amount::parse(text.trim()).map_err(|source| InputError::Amount { field: "alwaysAllow.maxAmount", source })?;
    Ok(Some(cap))
}

/// The "always allow" rule a decide form asks for.
fn always_allow(form: &Form) -> Result<Option<AlwaysAllow>, AppError> {
    let Some(max_amount) = allow_cap(form)? else { return Ok(None) };
    let expires_in_days = match form.get("allow_days").map(str::trim).filter(|d| !d.is_empty()) {
        None => None,
        Some(text) => {
            Some(text.parse::<u32>().ok().filter(|d| (1..=MAX_EXPIRES_IN_DAYS).contains(d)).ok_or_else(|| {
                InputError::invalid("alwaysAllow.expiresInDays", format!("must be 1 to {MAX_EXPIRES_IN_DAYS} days"))
            })?)
        }
    };
    Ok(Some(AlwaysAllow { max_amount, expires_in_days }))
}

/// The decision a form asks for, made through the service.
async fn decide(s: &AppState, reviewer: &Reviewer, id: &ApprovalId, form: &Form) -> Result<(), AppError> {
    let caller = reviewer.caller();
    let note = note(form)?;
    let amount = form.get("amount");
    let step_up = step_up_proof(form);
    let vote = |decision, modify_to| DecideRequest {
        modify_to,
        step_up: step_up.clone(),
        ..DecideRequest::new(decision, note.clone())
    };
    match form.get("action") {
        Some("approve") if amount.is_some() => Err(InputError::invalid(
            "amount",
            "is only for Modify: clear it to approve the amount asked for, or press Modify to approve it",
        )
        .into()),
        Some("approve") => {
            let request = DecideRequest { always_allow: always_allow(form)?, ..vote(VoteDecision::Approve, None) };
            s.decide_approval(caller, id, request).await.map(|_| ())
        }
        Some("reject") => s.decide_approval(caller, id, vote(VoteDecision::Reject, None)).await.map(|_| ()),
        Some("modify") => {
            let text = amount.ok_or_else(|| InputError::invalid("amount", "is required for Modify"))?;
            let lower = Amount::parse(text.trim()).map_err(|source| InputError::Amount { field: "amount", source })?;
            s.decide_approval(caller, id, vote(VoteDecision::Approve, Some(lower))).await.map(|_| ())
        }
        Some("escalate") => {
            let to_team = form
                .get("to_team")
                .map(|t| TeamId::parse(t).ok_or_else(|| InputError::invalid("toTeam", "is not a team id")))
                .transpose()?;
            s.escalate_approval(caller, id, EscalateRequest { note, to_team }).await.map(|_| ())
        }
        _ => Err(InputError::invalid("action", "must be approve, reject, escalate or modify").into()),
    }
}

pub async fn decide_approval(
    State(s): State<AppState>,
    reviewer: Reviewer,
    PathParam(id): PathParam,
    form: Form,
) -> Reply {
    reviewer.check_form(&form)?;
    let id = ApprovalId::parse(&id).ok_or_else(DashError::not_found)?;
    match decide(&s, &reviewer, &id, &form).await {
        Ok(()) => Ok(see_other(&format!("/dashboard/approvals/{id}"), vec![])),
        Err(e) => {
            refused_page(&s, &reviewer, &id, e, "Refused", |page| {
                page.note = form.get("note").unwrap_or_default().to_string();
                page.amount = form.get("amount").unwrap_or_default().to_string();
            })
            .await
        }
    }
}

/// A form on the detail page refused: the page again, saying why (`what: message`) and keeping
/// what was typed (`kept`); the error page when the refusal is not the visitor's to mend or the
/// approval cannot be shown.
async fn refused_page(
    s: &AppState,
    reviewer: &Reviewer,
    id: &ApprovalId,
    e: AppError,
    what: &str,
    kept: impl FnOnce(&mut ApprovalPage),
) -> Reply {
    let (status, message) = readable(&e);
    let detail = match s.approval_detail(reviewer.caller(), id).await {
        Ok(detail) if status.is_client_error() => detail,
        _ => return Err(e.into()),
    };
    let mut page = ApprovalPage::of(&detail, reviewer.chrome(), Utc::now());
    page.error = Some(format!("{what}: {message}"));
    kept(&mut page);
    Ok(html(status, &page))
}

/// `POST /dashboard/approvals/{id}/comments`: the detail page's comment form. Refused (a blank
/// or too long comment): the page again with the error and what was typed.
pub async fn comment(State(s): State<AppState>, reviewer: Reviewer, PathParam(id): PathParam, form: Form) -> Reply {
    reviewer.check_form(&form)?;
    let id = ApprovalId::parse(&id).ok_or_else(DashError::not_found)?;
    let added = match comment_body("comment", form.get("body").unwrap_or_default()) {
        Ok(body) => s.add_comment(reviewer.caller(), &id, NewComment { body }).await.map(|_| ()),
        Err(e) => Err(e.into()),
    };
    match added {
        Ok(()) => Ok(see_other(&format!("/dashboard/approvals/{id}#comments"), vec![])),
        Err(e) => {
            refused_page(&s, &reviewer, &id, e, "Comment refused", |page| {
                page.comment = form.get("body").unwrap_or_default().to_string();
            })
            .await
        }
    }
}

pub async fn review(State(s): State<AppState>, reviewer: Reviewer, PathParam(id): PathParam) -> Reply {
    let id = ReviewId::parse(&id).ok_or_else(DashError::not_found)?;
    let detail = s.review_detail(reviewer.caller(), &id).await?;
    let mut page = ReviewPage::of(&detail, reviewer.chrome(), Utc::now());
    let viewer = reviewer.caller().key()?;
    page.flash = own_part_in_review(&detail.review, &detail.history, viewer);
    Ok(html(StatusCode::OK, &page))
}

async fn decide_on_review(s: &AppState, reviewer: &Reviewer, id: &ReviewId, form: &Form) -> Result<(), AppError> {
    let notes = note(form)?;
    let modified_action = optional_text("modified_action", form.get("modified_action"), MAX_ACTION_CHARS)?;
    let target = ReviewRef::Review(id.clone());
    let decision_type = match form.get("action") {
        Some("approve") => DecisionType::Approve,
        Some("reject") => DecisionType::Reject,
        Some("modify") => DecisionType::Modify,
        Some("escalate") => {
            let to_team = form
                .get("to_team")
                .map(|t| TeamId::parse(t).ok_or_else(|| InputError::invalid("to_team", "is not a team id")))
                .transpose()?
                .ok_or_else(|| InputError::invalid("to_team", "is required: pick the team under Escalate to"))?;
            let request = ReviewEscalate { to_team: Some(to_team), notes };
            s.escalate_review(reviewer.caller(), &target, request).await?;
            return Ok(());
        }
        _ => return Err(InputError::invalid("action", "must be approve, reject, modify or escalate").into()),
    };
    if decision_type == DecisionType::Modify && modified_action.is_none() {
        return Err(InputError::invalid("modified_action", "is required for Modify").into());
    }
    let modified_action = modified_action.filter(|_| decision_type == DecisionType::Modify);
    let request = ReviewDecide { decision_type, modified_action, notes, modified_amount: None };
    s.decide_review(reviewer.caller(), &target, request).await?;
    Ok(())
}

pub async fn decide_review(
    State(s): State<AppState>,
    reviewer: Reviewer,
    PathParam(id): PathParam,
    form: Form,
) -> Reply {
    reviewer.check_form(&form)?;
    let id = ReviewId::parse(&id).ok_or_else(DashError::not_found)?;
    match decide_on_review(&s, &reviewer, &id, &form).await {
        Ok(()) => Ok(see_other(&format!("/dashboard/reviews/{id}"), vec![])),
        Err(e) => {
            let (status, message) = readable(&e);
            let detail = match s.review_detail(reviewer.caller(), &id).await {
                Ok(detail) if status.is_client_error() => detail,
                _ => return Err(e.into()),
            };
            let mut page = ReviewPage::of(&detail, reviewer.chrome(), Utc::now());
            page.error = Some(format!("Refused: {message}"));
            page.note = form.get("note").unwrap_or_default().to_string();
            page.modified_action = form.get("modified_action").unwrap_or_default().to_string();
            Ok(html(status, &page))
        }
    }
}
