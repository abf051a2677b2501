//! `/v1/audit-logs`.

use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;

use super::extract::{Auth, Params};
use super::AppState;
use crate::domain::permission::Permission;
use crate::error::AppResult;
use crate::service::AuditFilter;

pub async fn list(State(s): State<AppState>, Auth(c): Auth, p: Params) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::AuditRead)?;
    let filter =
        AuditFilter { action: p.get("action").map(Into::into), resource_type: p.get("resourceType").map(Into::into) };
    Ok(Json(s.list_audit_logs(&c, &filter, &p.page()?).await?))
}
