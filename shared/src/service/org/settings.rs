//! Organisation settings (docs/api.md, "Separation of duties"): the default team, where an
//! approval or a review goes when no routing rule and no escalation chain assigns one, and
//! four-eyes on policy changes (docs/api.md, "Four-eyes on policy changes"). One record per
//! organisation, absent until an admin first sets something.

use crate::engine::Reader;
use serde_json::json;

use crate::domain::ids::{OrgId, TeamId};
use crate::domain::org::OrgSettings;
use crate::domain::people::Team;
use crate::domain::permission::Permission;
use crate::engine::plan::{PlanError, Tx};
use crate::error::AppResult;
use crate::layout::{settings_key, team_key};
use crate::service::{Caller, UseCases};

/// A change to the settings; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SettingsPatch {
    /// `Some(None)` clears the default team.
    pub default_team: Option<Option<TeamId>>,
    /// Four-eyes on policy changes. Turning it on applies at once; turning it off while it is on
    /// is itself a change another person must approve (`submit_change`).
    pub policy_changes_need_approval: Option<bool>,
}

impl UseCases {
    /// `GET /v1/settings` (`approvals:read`: reviewers may see where unassigned work goes).
    pub async fn get_settings(&self, caller: &Caller) -> AppResult<OrgSettings> {
        let caller = caller.organiser(Permission::ApprovalsRead)?;
        self.reader().org_settings(&caller.org_id).await
    }
}

/// Plans `patch` on `org`'s settings into `tx` (the default team must be one of `org`'s),
/// audited by `tx`'s actor. Permissions (admin) are the caller's to check.
pub(crate) async fn plan_settings_update(
    r: &Reader,
    tx: &mut Tx,
    org: &OrgId,
    patch: &SettingsPatch,
) -> Result<OrgSettings, PlanError> {
    if let Some(Some(team)) = &patch.default_team {
        r.read_owned::<Team>(&team_key(org, team), org).await?;
    }
    let stored = r.read::<OrgSettings>(&settings_key(org)).await?;
    let mut settings = stored.as_ref().map_or_else(|| OrgSettings::defaults(org.clone()), |s| s.value.clone());
    if let Some(team) = &patch.default_team {
        settings.default_team = team.clone();
    }
    if let Some(on) = patch.policy_changes_need_approval {
        settings.policy_changes_need_approval = on;
    }
    settings.updated_at = Some(tx.now());
    match stored {
        Some(mut stored) => {
            stored.value = settings.clone();
            tx.update(&stored)?;
        }
        None => tx.create(&settings)?,
    }
    tx.audit(
        "settings.updated",
        "organization",
        org.as_str(),
        json!({"defaultTeam": settings.default_team, "policyChangesNeedApproval": settings.policy_changes_need_approval}),
    )?;
    Ok(settings)
}

impl Reader {
    /// The organisation's settings, or the defaults when it never changed them.
    pub(crate) async fn org_settings(&self, org: &OrgId) -> AppResult<OrgSettings> {
        let stored = self.read::<OrgSettings>(&settings_key(org)).await?;
        Ok(stored.map_or_else(|| OrgSettings::defaults(org.clone()), |s| s.value))
    }

    /// `assigned` (by a routing rule or a chain), else the organisation's default team, if any.
    pub(crate) async fn or_default_team(&self, org: &OrgId, assigned: Option<TeamId>) -> AppResult<Option<TeamId>> {
        match assigned {
            Some(team) => Ok(Some(team)),
            None => Ok(self.org_settings(org).await?.default_team),
        }
    }
}
