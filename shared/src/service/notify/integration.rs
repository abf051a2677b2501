//! `PUT/GET/DELETE /v1/integrations/slack`: an organisation's Slack app. The bot token and the
//! signing secret are sealed with the deployment's encryption key before they are stored and
//! are never returned; the audit trail records that they changed, not what they are.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use crate::domain::audit::Actor;
use crate::domain::encryption::EncryptionKey;
use crate::domain::ids::OrgId;
use crate::domain::notification::SlackIntegration;
use crate::domain::permission::Permission;
use crate::engine::plan::Tx;
use crate::error::{AppError, AppResult};
use crate::layout::slack_integration_key;
use crate::service::{Caller, UseCases};

/// The path Slack posts button clicks to (its "Interactivity Request URL"), below the public URL.
pub const SLACK_INTERACTIONS_PATH: &str = "/integrations/slack/interactions";

/// `PUT /v1/integrations/slack`, parsed.
#[derive(Clone, PartialEq)]
pub struct SlackSetup {
    pub bot_token: String,
    pub signing_secret: String,
    pub default_channel: Option<String>,
}

impl std::fmt::Debug for SlackSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackSetup").field("default_channel", &self.default_channel).finish_non_exhaustive()
    }
}

/// What the API shows of the integration: never a secret.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlackIntegrationView {
    /// Always `slack`.
    pub provider: &'static str,
    pub configured: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_channel: Option<String>,
    /// The URL to give Slack as the app's Interactivity Request URL (needs `COUNTERSIGN_PUBLIC_URL`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interactions_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// The integration opened for use.
#[derive(Clone)]
pub(crate) struct SlackCredentials {
    pub bot_token: String,
    pub signing_secret: String,
    pub default_channel: Option<String>,
}

impl UseCases {
    fn encryption_key(&self) -> AppResult<&EncryptionKey> {
        self.settings.encryption_key.as_deref().ok_or(AppError::EncryptionKeyMissing)
    }

    fn slack_view(&self, org: &OrgId, stored: Option<&SlackIntegration>) -> SlackIntegrationView {
        let interactions_url = self
            .settings
            .public_url
            .as_ref()
            .filter(|_| stored.is_some())
            .map(|base| format!("{base}{SLACK_INTERACTIONS_PATH}?org={org}"));
        SlackIntegrationView {
            provider: "slack",
            configured: stored.is_some(),
            default_channel: stored.and_then(|s| s.default_channel.clone()),
            interactions_url,
            updated_at: stored.map(|s| s.updated_at),
        }
    }

    /// `PUT /v1/integrations/slack` (an admin key bound to no wallet).
    pub async fn put_slack_integration(&self, caller: &Caller, setup: SlackSetup) -> AppResult<SlackIntegrationView> {
        let caller = caller.organiser(Permission::Admin)?;
        let org = &caller.org_id;
        let key = self.encryption_key()?;
        let bot_token = key
            .seal(&setup.bot_token, &SlackIntegration::owner(org, "botToken"))
            .map_err(|e| AppError::Corrupt(e.to_string()))?;
        let signing_secret = key
            .seal(&setup.signing_secret, &SlackIntegration::owner(org, "signingSecret"))
            .map_err(|e| AppError::Corrupt(e.to_string()))?;
        let r = self.reader();
        let saved = self
            .engine
            .commit(&r, || async {
                let stored = r.read::<SlackIntegration>(&slack_integration_key(org)).await?;
                let mut tx = Tx::new(org, Actor::Key(caller.id.clone()), self.now());
                let integration = SlackIntegration {
                    org_id: org.clone(),
                    bot_token: bot_token.clone(),
                    signing_secret: signing_secret.clone(),
                    default_channel: setup.default_channel.clone(),
                    created_at: stored.as_ref().map_or(tx.now(), |s| s.value.created_at),
                    updated_at: tx.now(),
                };
                match stored {
                    Some(mut stored) => {
                        stored.value = integration.clone();
                        tx.update(&stored)?;
                    }
                    None => tx.create(&integration)?,
                }
                let details = json!({"defaultChannel": integration.default_channel, "secretsChanged": true});
                tx.audit("integration.slack.updated", "organization", org.as_str(), details)?;
                Ok(tx.done(integration))
            })
            .await?;
        Ok(self.slack_view(org, Some(&saved)))
    }

    /// `GET /v1/integrations/slack`.
    pub async fn get_slack_integration(&self, caller: &Caller) -> AppResult<SlackIntegrationView> {
        let caller = caller.organiser(Permission::Admin)?;
        let stored = self.reader().read::<SlackIntegration>(&slack_integration_key(&caller.org_id)).await?;
        Ok(self.slack_view(&caller.org_id, stored.as_ref().map(|s| &s.value)))
    }

    /// `DELETE /v1/integrations/slack`: nothing more goes to Slack, and clicks are refused.
    pub async fn delete_slack_integration(&self, caller: &Caller) -> AppResult<SlackIntegrationView> {
        let caller = caller.organiser(Permission::Admin)?;
        let org = &caller.org_id;
        let r = self.reader();
        self.engine
            .commit(&r, || async {
                let mut tx = Tx::new(org, Actor::Key(caller.id.clone()), self.now());
                if let Some(stored) = r.read::<SlackIntegration>(&slack_integration_key(org)).await? {
                    tx.delete(&stored);
                    tx.audit("integration.slack.deleted", "organization", org.as_str(), json!({}))?;
                }
                Ok(tx.done(()))
            })
            .await?;
        Ok(self.slack_view(org, None))
    }

    /// The organisation's Slack app opened for use, if it has one.
    pub(crate) async fn slack_credentials(&self, org: &OrgId) -> AppResult<Option<SlackCredentials>> {
        let Some(stored) = self.reader().read::<SlackIntegration>(&slack_integration_key(org)).await? else {
            return Ok(None);
        };
        let key = self.encryption_key()?;
        let open = |sealed, field| {
            key.open(sealed, &SlackIntegration::owner(org, field))
                .map_err(|e| AppError::Corrupt(format!("slack {field} of {org}: {e}")))
        };
        Ok(Some(SlackCredentials {
            bot_token: open(&stored.value.bot_token, "botToken")?,
            signing_secret: open(&stored.value.signing_secret, "signingSecret")?,
            default_channel: stored.value.default_channel,
        }))
    }
}
