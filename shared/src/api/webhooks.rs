//! `/v1/webhooks`: subscriptions, their delivery log and the dead-letter list.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::extract::{Auth, Body, Ids, Params};
use super::wire::{self, deleted, respond, whole_list};
use super::AppState;
use crate::domain::delivery::Delivery;
use crate::domain::ids::{DeliveryId, WebhookId};
use crate::domain::input::InputError;
use crate::domain::permission::Permission;
use crate::domain::ssrf::TargetError;
use crate::domain::webhook::EVENT_TYPES;
use crate::error::{AppError, AppResult};
use crate::service::{NewWebhook, TestResult, WebhookPatch};

const MAX_URL_CHARS: usize = 2048;
const MAX_DLQ_OFFSET: usize = 1000;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookBody {
    url: String,
    events: Vec<String>,
    enabled: Option<bool>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatchBody {
    url: Option<String>,
    events: Option<Vec<String>>,
    enabled: Option<bool>,
}

/// Known event types (or `*`), at least one, each once.
fn event_list(events: &[String]) -> Result<Vec<String>, InputError> {
    if events.is_empty() {
        return Err(InputError::invalid("events", "must list at least one event type (or \"*\")"));
    }
    let mut out: Vec<String> = Vec::new();
    for e in events {
        if e != "*" && !EVENT_TYPES.contains(&e.as_str()) {
            return Err(InputError::invalid(
                "events",
                format!("unknown event type {e:?}; known: {}", EVENT_TYPES.join(", ")),
            ));
        }
        if !out.contains(e) {
            out.push(e.clone());
        }
    }
    Ok(out)
}

/// The URL's syntax; whether it may be a target is the service's check (it needs DNS).
fn url(raw: &str) -> AppResult<url::Url> {
    if raw.chars().count() > MAX_URL_CHARS {
        return Err(InputError::invalid("url", format!("must be at most {MAX_URL_CHARS} characters")).into());
    }
    url::Url::parse(raw).map_err(|_| AppError::WebhookTarget(TargetError::Malformed))
}

impl WebhookBody {
    pub fn try_into_domain(self) -> AppResult<NewWebhook> {
        let events = event_list(&self.events)?;
        Ok(NewWebhook { url: url(&self.url)?, events, enabled: self.enabled })
    }
}

impl WebhookPatchBody {
    pub fn try_into_domain(self) -> AppResult<WebhookPatch> {
        let events = self.events.as_deref().map(event_list).transpose()?;
        Ok(WebhookPatch { url: self.url.as_deref().map(url).transpose()?, events, enabled: self.enabled })
    }
}

/// What `POST /v1/webhooks/{id}/test` answers.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = WebhookTest)]
pub(super) struct TestView {
    /// The test event's id.
    id: String,
    delivered: bool,
    status_code: Option<u16>,
    duration_ms: Option<u64>,
    error: Option<String>,
}

impl From<TestResult> for TestView {
    fn from(r: TestResult) -> Self {
        TestView {
            id: r.id,
            delivered: r.delivered,
            status_code: r.status_code,
            duration_ms: r.duration_ms,
            error: r.error,
        }
    }
}

fn webhook_id(ids: &Ids) -> AppResult<WebhookId> {
    ids.parse("id", WebhookId::parse, "webhook")
}

fn delivery_id(ids: &Ids) -> AppResult<DeliveryId> {
    ids.parse("id", DeliveryId::parse, "delivery")
}

/// 201 with the signing secret, shown this once.
pub async fn create(State(s): State<AppState>, Auth(c): Auth, Body(b): Body) -> AppResult<Response> {
    c.authorize(Permission::WebhooksWrite)?;
    let request = wire::parse::<WebhookBody>(b)?.try_into_domain()?;
    Ok(respond(StatusCode::CREATED, &s.create_webhook(&c, request).await?.view(true)))
}

pub async fn list(State(s): State<AppState>, Auth(c): Auth) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::WebhooksWrite)?;
    Ok(whole_list(s.list_webhooks(&c).await?.iter().map(|w| w.view(false)).collect()))
}

pub async fn get(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::WebhooksWrite)?;
    Ok(Json(s.get_webhook(&c, &webhook_id(&ids)?).await?.view(false)))
}

pub async fn update(State(s): State<AppState>, Auth(c): Auth, ids: Ids, Body(b): Body) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::WebhooksWrite)?;
    let id = webhook_id(&ids)?;
    let patch = wire::parse::<WebhookPatchBody>(b)?.try_into_domain()?;
    Ok(Json(s.update_webhook(&c, &id, patch).await?.view(false)))
}

pub async fn delete(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::WebhooksWrite)?;
    Ok(deleted(s.delete_webhook(&c, &webhook_id(&ids)?).await?))
}

pub async fn test(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::WebhooksWrite)?;
    Ok(Json(TestView::from(s.test_webhook(&c, &webhook_id(&ids)?).await?)))
}

pub async fn deliveries(State(s): State<AppState>, Auth(c): Auth, ids: Ids, p: Params) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::WebhooksWrite)?;
    Ok(Json(s.list_deliveries(&c, &webhook_id(&ids)?, &p.page()?).await?))
}

pub async fn dead_letters(State(s): State<AppState>, Auth(c): Auth, p: Params) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::WebhooksWrite)?;
    let offset = match p.get("offset") {
        None => 0,
        Some(o) => o.parse::<usize>().ok().filter(|o| *o <= MAX_DLQ_OFFSET).ok_or_else(|| {
            InputError::invalid("offset", format!("must be a whole number from 0 to {MAX_DLQ_OFFSET}"))
        })?,
    };
    Ok(Json(s.list_dead_letters(&c, &p.page()?, offset).await?))
}

fn resolved(delivery: Delivery) -> Json<serde_json::Value> {
    Json(json!({"id": delivery.id, "webhookId": delivery.webhook_id, "status": delivery.status}))
}

pub async fn retry_dead_letter(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::WebhooksWrite)?;
    Ok(resolved(s.retry_dead_letter(&c, &delivery_id(&ids)?).await?))
}

pub async fn discard_dead_letter(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::WebhooksWrite)?;
    Ok(resolved(s.discard_dead_letter(&c, &delivery_id(&ids)?).await?))
}
