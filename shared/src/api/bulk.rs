//! `POST /v1/approvals/bulk`: one vote on up to 100 approvals. The body is checked whole first
//! (a malformed id names its place, `ids[3]`, and nothing is decided); then each id is decided
//! on its own and its row says what the single approve or reject route would have answered:
//! its status, or the same error code and message (`AppError::parts`, the one mapping).

use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::extract::{Auth, Body};
use super::wire::{self, optional_text};
use super::AppState;
use crate::domain::approval::{ApprovalStatus, VoteDecision};
use crate::domain::ids::ApprovalId;
use crate::domain::input::{InputError, MAX_NOTE_CHARS};
use crate::domain::permission::Permission;
use crate::error::{AppError, AppResult};
use crate::service::{BulkOutcome, DecideRequest, MAX_BULK_IDS};

/// `{"decision": "approve" | "reject", "ids": ["apr_…"], "note"?}`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkDecideBody {
    decision: VoteDecision,
    /// 1 to 100 approval ids, decided in this order; an id given twice gets a second answer.
    #[schema(min_items = 1, max_items = 100)]
    ids: Vec<String>,
    /// Recorded with each vote (the reason, for reject); up to 1,000 characters.
    note: Option<String>,
}

impl BulkDecideBody {
    pub fn try_into_domain(self) -> AppResult<(Vec<ApprovalId>, DecideRequest)> {
        if self.ids.is_empty() || self.ids.len() > MAX_BULK_IDS {
            let message = format!("must list 1 to {MAX_BULK_IDS} approval ids");
            return Err(InputError::invalid("ids", message).into());
        }
        let ids = approval_ids(&self.ids)?;
        let note = optional_text("note", self.note.as_deref(), MAX_NOTE_CHARS)?;
        Ok((ids, DecideRequest::new(self.decision, note)))
    }
}

/// Each text as an approval id; the first that is not one is refused, named by its place.
pub fn approval_ids(texts: &[String]) -> AppResult<Vec<ApprovalId>> {
    texts
        .iter()
        .enumerate()
        .map(|(at, text)| {
            ApprovalId::parse(text).ok_or_else(|| {
                let shown: String = text.chars().take(64).collect();
                let field = format!("ids[{at}]");
                AppError::BodyField { message: format!("{field}: {shown:?} is not an approval id"), field }
            })
        })
        .collect()
}

/// `{"code", "message"}`: what the single route's error envelope would say.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BulkError {
    code: String,
    message: String,
}

/// One id's outcome: `ok` with the approval's status after the vote, or the error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BulkResult {
    #[schema(value_type = String)]
    id: ApprovalId,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<ApprovalStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<BulkError>,
}

impl From<BulkOutcome> for BulkResult {
    fn from(outcome: BulkOutcome) -> Self {
        match outcome.result {
            Ok(decided) => BulkResult { id: outcome.id, ok: true, status: Some(decided.approval.status), error: None },
            Err(e) => {
                let (status, code, message, _) = e.parts();
                if status.is_server_error() {
                    // Internal text goes to the log, never to the client.
                    tracing::error!(error = %e, code = %code, approval = %outcome.id, "bulk decision failed");
                }
                BulkResult { id: outcome.id, ok: false, status: None, error: Some(BulkError { code, message }) }
            }
        }
    }
}

/// `{"results": [...]}`, in the order the ids were given.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BulkResults {
    results: Vec<BulkResult>,
}

impl BulkResults {
    pub fn of(outcomes: Vec<BulkOutcome>) -> Self {
        BulkResults { results: outcomes.into_iter().map(BulkResult::from).collect() }
    }
}

pub async fn decide(State(s): State<AppState>, Auth(c): Auth, Body(b): Body) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::ApprovalsWrite)?;
    let (ids, request) = wire::parse::<BulkDecideBody>(b)?.try_into_domain()?;
    Ok(Json(BulkResults::of(s.decide_approvals(&c, &ids, &request).await?)))
}
