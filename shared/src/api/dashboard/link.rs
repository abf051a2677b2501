//! `/dashboard/r/{token}`: where a webhook's `reviewUrl` lands. A GET only shows a confirm page
//! (mail and chat link scanners fetch links; nothing they fetch decides); the POST from that
//! page decides, once per link, as the signed-in reviewer, under every rule the API applies.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;

use super::auth::Reviewer;
use super::form::{Form, PathParam};
use super::page::{html, readable, DashError, Reply};
use super::views::{flash, ConfirmPage};
use crate::api::wire::optional_text;
use crate::api::AppState;
use crate::domain::approval::VoteDecision;
use crate::domain::input::{InputError, MAX_NOTE_CHARS};
use crate::domain::review_link::ReviewLink;
use crate::error::AppError;
use crate::service::DecideRequest;

fn verify(reviewer: &Reviewer, token: &str) -> Result<ReviewLink, DashError> {
    ReviewLink::verify(reviewer.secret(), token, Utc::now()).map_err(DashError::link)
}

pub async fn confirm(State(s): State<AppState>, reviewer: Reviewer, PathParam(token): PathParam) -> Reply {
    let link = verify(&reviewer, &token)?;
    let detail = s.approval_detail(reviewer.caller(), &link.approval_id).await?;
    let mut page = ConfirmPage::of(&detail, &token, reviewer.chrome(), Utc::now());
    page.used = s.review_link_used(&ReviewLink::fingerprint(&token)).await?;
    Ok(html(StatusCode::OK, &page))
}

fn request(form: &Form) -> Result<(DecideRequest, &'static str), AppError> {
    let note = optional_text("note", form.get("note"), MAX_NOTE_CHARS)?;
    let (decision, action) = match form.get("action") {
        Some("approve") => (VoteDecision::Approve, "approve"),
        Some("reject") => (VoteDecision::Reject, "reject"),
        _ => return Err(InputError::invalid("action", "must be approve or reject").into()),
    };
    Ok((DecideRequest::new(decision, note), action))
}

pub async fn decide(State(s): State<AppState>, reviewer: Reviewer, PathParam(token): PathParam, form: Form) -> Reply {
    reviewer.check_form(&form)?;
    let link = verify(&reviewer, &token)?;
    let key = reviewer.caller().key()?.clone();
    // Only someone who may see the approval may use (and so spend) its link.
    s.get_approval(reviewer.caller(), &link.approval_id).await?;
    let fingerprint = ReviewLink::fingerprint(&token);
    let outcome = match request(&form) {
        Err(e) => Err(e),
        Ok((request, action)) => {
            if s.claim_review_link(&link, &fingerprint, &key.org_id, &key.id).await? {
                let decided = s.decide_approval(reviewer.caller(), &link.approval_id, request).await;
                if decided.is_err() {
                    s.release_review_link(&fingerprint).await;
                }
                decided.map(|_| Some(action))
            } else {
                Ok(None)
            }
        }
    };
    let detail = s.approval_detail(reviewer.caller(), &link.approval_id).await?;
    let mut page = ConfirmPage::of(&detail, &token, reviewer.chrome(), Utc::now());
    match outcome {
        Ok(Some(action)) => {
            page.done = flash(Some(action));
            Ok(html(StatusCode::OK, &page))
        }
        Ok(None) => {
            page.used = true;
            Ok(html(StatusCode::CONFLICT, &page))
        }
        Err(e) => {
            let (status, message) = readable(&e);
            if !status.is_client_error() {
                return Err(e.into());
            }
            page.error = Some(format!("Refused: {message}"));
            page.note = form.get("note").unwrap_or_default().to_string();
            Ok(html(status, &page))
        }
    }
}
