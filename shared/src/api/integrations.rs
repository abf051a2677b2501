//! `/v1/integrations/slack` (an organisation's Slack app), Slack's interactivity endpoint
//! `/integrations/slack/interactions`, and `/v1/notifications/deliveries` (docs/api.md, "Slack
//! and email").

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;

use super::extract::{Auth, Body, Params};
use super::wire;
use super::AppState;
use crate::domain::delivery::DeliveryStatus;
use crate::domain::ids::{ApprovalId, ReviewId};
use crate::domain::input::InputError;
use crate::domain::notification::{is_slack_id, NotificationChannel, NotificationKind};
use crate::domain::permission::Permission;
use crate::domain::slack::{SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::error::AppResult;
use crate::service::{NotificationFilter, SlackClick, SlackSetup};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SlackIntegrationBody {
    /// The app's bot token (`xoxb-…`), with the `chat:write` scope. Stored encrypted, never returned.
    bot_token: String,
    /// The app's signing secret (Basic Information → App Credentials). Stored encrypted, never returned.
    signing_secret: String,
    /// A channel id (`C…`): where requests go when the assigned team has no `slackChannel`.
    default_channel: Option<String>,
}

impl std::fmt::Debug for SlackIntegrationBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackIntegrationBody").field("default_channel", &self.default_channel).finish_non_exhaustive()
    }
}

impl SlackIntegrationBody {
    pub fn try_into_domain(self) -> Result<SlackSetup, InputError> {
        let token = self.bot_token.trim();
        let token_ok = token.starts_with("xox")
            && (10..=256).contains(&token.len())
            && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !token_ok {
            return Err(InputError::invalid("botToken", "must be a Slack bot token (xoxb-…)"));
        }
        let secret = self.signing_secret.trim();
        if !(16..=128).contains(&secret.len()) || !secret.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(InputError::invalid("signingSecret", "must be the app's signing secret (letters and digits)"));
        }
        Ok(SlackSetup {
            bot_token: token.to_string(),
            signing_secret: secret.to_string(),
            default_channel: self.default_channel.as_deref().map(|c| channel("defaultChannel", c)).transpose()?,
        })
    }
}

/// A Slack channel id as the API takes it.
pub fn channel(field: &'static str, text: &str) -> Result<String, InputError> {
    if is_slack_id(text) {
        Ok(text.to_string())
    } else {
        Err(InputError::invalid(field, "must be a Slack channel id (C…, letters and digits)"))
    }
}

/// `PUT /v1/integrations/slack` (admin).
pub async fn put(State(s): State<AppState>, Auth(c): Auth, Body(b): Body) -> AppResult<impl IntoResponse> {
    c.organiser(Permission::Admin)?;
    let setup = wire::parse::<SlackIntegrationBody>(b)?.try_into_domain()?;
    Ok(Json(s.put_slack_integration(&c, setup).await?))
}

/// `GET /v1/integrations/slack` (admin): `configured`, never a secret.
pub async fn get(State(s): State<AppState>, Auth(c): Auth) -> AppResult<impl IntoResponse> {
    c.organiser(Permission::Admin)?;
    Ok(Json(s.get_slack_integration(&c).await?))
}

/// `DELETE /v1/integrations/slack` (admin).
pub async fn delete(State(s): State<AppState>, Auth(c): Auth) -> AppResult<impl IntoResponse> {
    c.organiser(Permission::Admin)?;
    Ok(Json(s.delete_slack_integration(&c).await?))
}

/// `POST /integrations/slack/interactions?org=…`: Slack's form post of a button click. 401 for
/// any signature problem; 200 with no body once handled (the clicker hears back in Slack).
pub async fn slack_interactions(
    State(s): State<AppState>,
    p: Params,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<impl IntoResponse> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let click = SlackClick {
        org: p.get("org"),
        timestamp: header(TIMESTAMP_HEADER),
        signature: header(SIGNATURE_HEADER),
        body: &body,
    };
    s.slack_interaction(click).await?;
    Ok(StatusCode::OK)
}

/// `GET /v1/notifications/deliveries` (admin): `channel`, `kind`, `status`, `approvalId`, `reviewId`, `limit`, `cursor`.
pub async fn deliveries(State(s): State<AppState>, Auth(c): Auth, p: Params) -> AppResult<impl IntoResponse> {
    c.organiser(Permission::Admin)?;
    let channel = p
        .get("channel")
        .map(|t| NotificationChannel::parse(t).ok_or_else(|| InputError::invalid("channel", "must be slack or email")))
        .transpose()?;
    let kind = p
        .get("kind")
        .map(|t| {
            NotificationKind::parse(t)
                .ok_or_else(|| InputError::invalid("kind", "must be request, reminder or outcome"))
        })
        .transpose()?;
    let status = p
        .get("status")
        .map(|t| {
            serde_json::from_value::<DeliveryStatus>(serde_json::Value::String(t.to_string()))
                .map_err(|_| InputError::invalid("status", "must be PENDING, DELIVERED, FAILED or DISCARDED"))
        })
        .transpose()?;
    let approval_id = p
        .get("approvalId")
        .map(|t| ApprovalId::parse(t).ok_or_else(|| InputError::invalid("approvalId", "is not an approval id")))
        .transpose()?;
    let review_id = p
        .get("reviewId")
        .map(|t| ReviewId::parse(t).ok_or_else(|| InputError::invalid("reviewId", "is not a review id")))
        .transpose()?;
    let filter = NotificationFilter { channel, kind, status, approval_id, review_id };
    Ok(Json(s.list_notifications(&c, &filter, &p.page()?).await?))
}
