//! `/v1/approvals/{id}/comments`: add a comment, list them oldest first. Reviewers and the key
//! that requested the approval; anyone else gets the 404 another organisation's approval gets
//! (the service decides who may).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::extract::{Auth, Body, Ids, Params};
use super::wire;
use super::AppState;
use crate::domain::comment::comment_body;
use crate::domain::ids::ApprovalId;
use crate::domain::input::InputError;
use crate::error::AppResult;
use crate::service::NewComment;

/// `{"body"}`: 1 to 4,000 characters once trimmed.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentBody {
    #[schema(min_length = 1, max_length = 4000, example = "Vendor confirmed the invoice by phone.")]
    body: String,
}

impl CommentBody {
    pub fn try_into_domain(self) -> Result<NewComment, InputError> {
        Ok(NewComment { body: comment_body("body", &self.body)? })
    }
}

pub async fn create(State(s): State<AppState>, Auth(c): Auth, ids: Ids, Body(b): Body) -> AppResult<Response> {
    c.key()?;
    let id = ids.parse("id", ApprovalId::parse, "approval")?;
    let request = wire::parse::<CommentBody>(b)?.try_into_domain()?;
    let comment = s.add_comment(&c, &id, request).await?;
    Ok(wire::respond(StatusCode::CREATED, &comment))
}

pub async fn list(State(s): State<AppState>, Auth(c): Auth, ids: Ids, p: Params) -> AppResult<impl IntoResponse> {
    c.key()?;
    let id = ids.parse("id", ApprovalId::parse, "approval")?;
    Ok(Json(s.list_comments(&c, &id, &p.page()?).await?))
}
