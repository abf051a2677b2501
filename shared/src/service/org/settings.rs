//! Organisation settings (docs/api.md, "Separation of duties"): for now the default team, where an approval or a review
//! goes when no routing rule and no escalation chain assigns one. One record per organisation,
//! absent until an admin first sets something.

use crate::engine::Reader;
use serde_json::json;

use crate::domain::audit::Actor;
use crate::domain::ids::{OrgId, TeamId};
use crate::domain::org::OrgSettings;
use crate::domain::people::Team;
use crate::domain::permission::Permission;
use crate::engine::plan::Tx;
use crate::error::AppResult;
use crate::layout::{settings_key, team_key};
use crate::service::{Caller, UseCases};

/// A change to the settings; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SettingsPatch {
    /// `Some(None)` clears the default team.
    pub default_team: Option<Option<TeamId>>,
}

impl UseCases {
    /// `GET /v1/settings` (`approvals:read`: reviewers may see where unassigned work goes).
    pub async fn get_settings(&self, caller: &Caller) -> AppResult<OrgSettings> {
        let caller = caller.organiser(Permission::ApprovalsRead)?;
        self.reader().org_settings(&caller.org_id).await
    }

    /// `PATCH /v1/settings` (admin only). The default team must be one of the organisation's.
    pub async fn update_settings(&self, caller: &Caller, patch: SettingsPatch) -> AppResult<OrgSettings> {
        let caller = caller.organiser(Permission::Admin)?;
        let org = &caller.org_id;
        if let Some(Some(team)) = &patch.default_team {
            self.reader().read_owned::<Team>(&team_key(org, team), org).await?;
        }
        let r = self.reader();
        self.engine
            .commit(&r, || async {
                let stored = r.read::<OrgSettings>(&settings_key(org)).await?;
                let mut tx = Tx::new(org, Actor::Key(caller.id.clone()), self.now());
                let mut settings =
                    stored.as_ref().map_or_else(|| OrgSettings::defaults(org.clone()), |s| s.value.clone());
                if let Some(team) = &patch.default_team {
                    settings.default_team = team.clone();
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
                    json!({"defaultTeam": settings.default_team}),
                )?;
                Ok(tx.done(settings))
            })
            .await
    }
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
