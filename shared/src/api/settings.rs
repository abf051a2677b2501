//! `/v1/settings`: the organisation's settings (docs/api.md, "Separation of duties"): its default team, and
//! four-eyes on policy changes (docs/api.md, "Four-eyes on policy changes").

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use super::extract::{Auth, Body};
use super::policy_changes::answer;
use super::wire::{self, present};
use super::AppState;
use crate::domain::ids::TeamId;
use crate::domain::input::InputError;
use crate::domain::permission::Permission;
use crate::error::AppResult;
use crate::service::{ChangeRequest, SettingsPatch};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SettingsPatchBody {
    /// A team id (`team_…`), or `null` to clear it; absent: unchanged.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    default_team: Option<Value>,
    /// Four-eyes on policy and routing-rule changes. Turning it on applies at once; turning it
    /// off while it is on answers 202: another person must approve that too.
    policy_changes_need_approval: Option<bool>,
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
        Ok(SettingsPatch { default_team, policy_changes_need_approval: self.policy_changes_need_approval })
    }
}

/// `GET /v1/settings` → `{orgId, defaultTeam, policyChangesNeedApproval, updatedAt}`.
pub async fn get(State(s): State<AppState>, Auth(c): Auth) -> AppResult<impl IntoResponse> {
    c.organiser(Permission::ApprovalsRead)?;
    Ok(Json(s.get_settings(&c).await?))
}

/// `PATCH /v1/settings` as a settings change.
pub(super) fn settings_patch(body: Value) -> AppResult<SettingsPatch> {
    Ok(wire::parse::<SettingsPatchBody>(body)?.try_into_domain()?)
}

/// `PATCH /v1/settings {"defaultTeam"?: "team_…" | null, "policyChangesNeedApproval"?: bool}`
/// (admin): 200 with the settings, or 202 with the pending change (turning four-eyes off).
pub async fn update(State(s): State<AppState>, Auth(c): Auth, Body(b): Body) -> AppResult<Response> {
    c.organiser(Permission::Admin)?;
    let patch = settings_patch(b.clone())?;
    Ok(answer(StatusCode::OK, s.submit_change(&c, ChangeRequest::Settings(patch), b).await?))
}
