//! `/v1/settings`: the organisation's settings (docs/api.md, "Separation of duties"), for now its default team.

use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use super::extract::{Auth, Body};
use super::wire::{self, present};
use super::AppState;
use crate::domain::ids::TeamId;
use crate::domain::input::InputError;
use crate::domain::permission::Permission;
use crate::error::AppResult;
use crate::service::SettingsPatch;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SettingsPatchBody {
    /// A team id (`team_…`), or `null` to clear it; absent: unchanged.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    default_team: Option<Value>,
}

impl SettingsPatchBody {
    pub fn try_into_domain(self) -> Result<SettingsPatch, InputError> {
        let default_team = match self.default_team {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(text)) => {
                Some(Some(TeamId::parse(&text).ok_or_else(|| InputError::invalid("defaultTeam", "is not a team id"))?))
            }
            Some(_) => return Err(InputError::invalid("defaultTeam", "must be a team id or null")),
        };
        Ok(SettingsPatch { default_team })
    }
}

/// `GET /v1/settings` → `{orgId, defaultTeam, updatedAt}`.
pub async fn get(State(s): State<AppState>, Auth(c): Auth) -> AppResult<impl IntoResponse> {
    c.organiser(Permission::ApprovalsRead)?;
    Ok(Json(s.get_settings(&c).await?))
}

/// `PATCH /v1/settings {"defaultTeam": "team_…" | null}` (admin).
pub async fn update(State(s): State<AppState>, Auth(c): Auth, Body(b): Body) -> AppResult<impl IntoResponse> {
    c.organiser(Permission::Admin)?;
    let patch = wire::parse::<SettingsPatchBody>(b)?.try_into_domain()?;
    Ok(Json(s.update_settings(&c, patch).await?))
}
