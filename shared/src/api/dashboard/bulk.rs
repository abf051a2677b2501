//! `POST /dashboard/approvals/bulk`: the queue's "Approve selected" and "Reject selected". The
//! same use case as `POST /v1/approvals/bulk`, as the signed-in reviewer: each approval decided
//! on its own with every rule; the results page says what happened to each (its status, or the
//! refusal with the API's error code).

use axum::extract::State;
use axum::http::StatusCode;

use super::auth::Reviewer;
use super::form::Form;
use super::page::{html, readable, DashError, Reply};
use super::views::{BulkPage, BulkRow};
use crate::api::bulk::approval_ids;
use crate::api::wire::optional_text;
use crate::api::AppState;
use crate::domain::approval::VoteDecision;
use crate::domain::input::MAX_NOTE_CHARS;
use crate::error::AppError;
use crate::service::{BulkOutcome, DecideRequest, MAX_BULK_IDS};

/// One approval's row: its status after the vote, or the refusal as the dashboard words every
/// refusal (the API's message and error code).
fn row(outcome: BulkOutcome) -> BulkRow {
    let (ok, outcome_text) = match &outcome.result {
        Ok(decided) => (true, decided.approval.status.as_str().to_string()),
        Err(e) => {
            let (status, message) = readable(e);
            if status.is_server_error() {
                tracing::error!(error = %e, approval = %outcome.id, "bulk decision failed");
            }
            (false, message)
        }
    };
    BulkRow {
        href: format!("/dashboard/approvals/{}", outcome.id),
        id: outcome.id.to_string(),
        ok,
        outcome: outcome_text,
    }
}

pub async fn decide(State(s): State<AppState>, reviewer: Reviewer, form: Form) -> Reply {
    reviewer.check_form(&form)?;
    let (decision, label) = match form.get("action") {
        Some("approve") => (VoteDecision::Approve, "approve"),
        Some("reject") => (VoteDecision::Reject, "reject"),
        _ => return Err(DashError::bad_request("Press Approve selected or Reject selected.")),
    };
    let selected = form.list("ids");
    if selected.is_empty() {
        return Err(DashError::bad_request("Select at least one approval in the queue first."));
    }
    if selected.len() > MAX_BULK_IDS {
        return Err(DashError::bad_request(format!("Select at most {MAX_BULK_IDS} approvals at once.")));
    }
    let ids = approval_ids(selected)?;
    let note = optional_text("note", form.get("note"), MAX_NOTE_CHARS).map_err(AppError::from)?;
    let outcomes = s.decide_approvals(reviewer.caller(), &ids, &DecideRequest::new(decision, note)).await?;
    let rows: Vec<BulkRow> = outcomes.into_iter().map(row).collect();
    let decided = rows.iter().filter(|r| r.ok).count();
    let page = BulkPage { chrome: reviewer.chrome(), decision: label, refused: rows.len() - decided, decided, rows };
    Ok(html(StatusCode::OK, &page))
}
