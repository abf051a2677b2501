//! `/v1/stats/approvals`: review statistics (docs/api.md, "Review statistics").

use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;

use super::extract::{Auth, Params};
use super::AppState;
use crate::domain::decision_stats::{parse_instant, GroupBy};
use crate::domain::permission::Permission;
use crate::error::AppResult;

/// `?since=&until=&groupBy=team|reviewer|agent`: dates (`2026-12-07`, midnight UTC) or RFC 3339
/// times; `until` defaults to now, `since` to 30 days before `until`, `groupBy` to `team`.
pub async fn approvals(State(s): State<AppState>, Auth(c): Auth, p: Params) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::ApprovalsRead)?;
    let by = p.get("groupBy").map(GroupBy::parse).transpose()?.unwrap_or(GroupBy::Team);
    let since = p.get("since").map(|t| parse_instant("since", t)).transpose()?;
    let until = p.get("until").map(|t| parse_instant("until", t)).transpose()?;
    Ok(Json(s.approval_stats(&c, since, until, by).await?))
}
