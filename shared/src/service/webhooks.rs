//! Webhook subscriptions, their delivery log and the dead-letter list.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::parse;
use super::commit::{Plan, Reply, ReplyStatus};
use super::fanout::envelope;
use super::paging::{Page, PageRequest};
use super::records::{self, dead_letter_partition, deliveries_partition, delivery_key, webhook_key, webhook_partition};
use super::{require, Caller, Countersign};
use crate::domain::audit::AuditEntry;
use crate::domain::delivery::{Delivery, DeliveryStatus};
use crate::domain::event::Event;
use crate::domain::ids::{DeliveryId, WebhookId};
use crate::domain::input::InputError;
use crate::domain::permission::Permission;
use crate::domain::ssrf::{self, TargetError};
use crate::domain::webhook::{new_secret, Webhook, EVENT_TYPES};
use crate::error::{AppError, AppResult};
use crate::ports::{Expect, Index, Query, QueueMessage, Write};

const MAX_URL_CHARS: usize = 2048;
const MAX_WEBHOOKS: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewWebhook {
    url: String,
    events: Vec<String>,
    enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookPatch {
    url: Option<String>,
    events: Option<Vec<String>>,
    enabled: Option<bool>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestResult {
    pub id: String,
    pub delivered: bool,
    pub status_code: Option<u16>,
    pub duration_ms: Option<u64>,
    pub error: Option<String>,
}

fn parse_webhook_id(id: &str) -> AppResult<WebhookId> {
    WebhookId::parse(id).ok_or(AppError::NotFound("webhook"))
}

fn parse_delivery_id(id: &str) -> AppResult<DeliveryId> {
    DeliveryId::parse(id).ok_or(AppError::NotFound("delivery"))
}

fn event_list(events: &[String]) -> AppResult<Vec<String>> {
    if events.is_empty() {
        return Err(InputError::invalid("events", "must list at least one event type (or \"*\")").into());
    }
    let mut out: Vec<String> = Vec::new();
    for e in events {
        if e != "*" && !EVENT_TYPES.contains(&e.as_str()) {
            return Err(InputError::invalid(
                "events",
                format!("unknown event type {e:?}; known: {}", EVENT_TYPES.join(", ")),
            )
            .into());
        }
        if !out.contains(e) {
            out.push(e.clone());
        }
    }
    Ok(out)
}

impl Countersign {
    /// Checks a webhook URL: https, no credentials, and every address it resolves to public
    /// (unless the operator allows private targets).
    async fn checked_url(&self, raw: &str) -> AppResult<String> {
        if raw.chars().count() > MAX_URL_CHARS {
            return Err(InputError::invalid("url", format!("must be at most {MAX_URL_CHARS} characters")).into());
        }
        let url = url::Url::parse(raw).map_err(|_| TargetError::Malformed)?;
        let allow = self.settings.allow_private_webhooks;
        if let Some(host) = ssrf::check_url(&url, allow)? {
            if !allow {
                let port = url.port_or_known_default().unwrap_or(443);
                let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), port))
                    .await
                    .map_err(|_| TargetError::Unresolvable)?
                    .collect();
                if addrs.is_empty() {
                    return Err(TargetError::Unresolvable.into());
                }
                for addr in addrs {
                    ssrf::guard(addr.ip(), allow)?;
                }
            }
        }
        Ok(url.to_string())
    }

    pub async fn create_webhook(&self, caller: &Caller, body: &serde_json::Value) -> AppResult<Reply> {
        let caller = caller.key()?;
        require(caller, Permission::WebhooksWrite)?;
        let request: NewWebhook = parse(body)?;
        let events = event_list(&request.events)?;
        let url = self.checked_url(&request.url).await?;
        let existing = self.list_all_webhooks(caller).await?;
        if existing.len() >= MAX_WEBHOOKS {
            return Err(InputError::invalid(
                "url",
                format!("an organisation may have at most {MAX_WEBHOOKS} webhooks"),
            )
            .into());
        }
        let now = self.now();
        let webhook = Webhook {
            id: WebhookId::generate(),
            org_id: caller.org_id.clone(),
            url,
            events,
            enabled: request.enabled.unwrap_or(true),
            secret: new_secret(),
            created_at: now,
            updated_at: now,
        };
        let audit = AuditEntry::new(
            &webhook.org_id,
            "webhook.created",
            "webhook",
            webhook.id.as_str(),
            caller.id.as_str(),
            json!({"url": webhook.url, "events": webhook.events}),
            now,
        );
        let writes = vec![records::create(&webhook)?, records::create(&audit)?];
        let reply = Reply::new(ReplyStatus::Created, &webhook.view(true))?;
        self.commit_new(&webhook.org_id, writes, reply).await
    }

    async fn list_all_webhooks(&self, caller: &crate::domain::org::ApiKey) -> AppResult<Vec<Webhook>> {
        let mut query = Query::new(Index::Primary, webhook_partition(&caller.org_id), MAX_WEBHOOKS + 1);
        query.newest_first = false;
        self.store.query(query).await?.into_iter().map(|i| records::decode::<Webhook>(i).map(|s| s.value)).collect()
    }

    pub async fn list_webhooks(&self, caller: &Caller) -> AppResult<Vec<crate::domain::webhook::WebhookView>> {
        let caller = caller.key()?;
        require(caller, Permission::WebhooksWrite)?;
        Ok(self.list_all_webhooks(caller).await?.iter().map(|w| w.view(false)).collect())
    }

    async fn owned_webhook(
        &self,
        caller: &crate::domain::org::ApiKey,
        id: &str,
    ) -> AppResult<records::Stored<Webhook>> {
        let id = parse_webhook_id(id)?;
        self.read_owned::<Webhook>(&webhook_key(&caller.org_id, &id), &caller.org_id).await
    }

    pub async fn get_webhook(&self, caller: &Caller, id: &str) -> AppResult<crate::domain::webhook::WebhookView> {
        let caller = caller.key()?;
        require(caller, Permission::WebhooksWrite)?;
        Ok(self.owned_webhook(caller, id).await?.value.view(false))
    }

    pub async fn update_webhook(&self, caller: &Caller, id: &str, body: &serde_json::Value) -> AppResult<Reply> {
        let caller = caller.key()?;
        require(caller, Permission::WebhooksWrite)?;
        let patch: WebhookPatch = parse(body)?;
        let events = patch.events.as_deref().map(event_list).transpose()?;
        let url = match &patch.url {
            Some(u) => Some(self.checked_url(u).await?),
            None => None,
        };
        self.commit(&caller.org_id, None, || async {
            let stored = self.owned_webhook(caller, id).await?;
            let mut webhook = stored.value;
            if let Some(u) = &url {
                webhook.url = u.clone();
            }
            if let Some(e) = &events {
                webhook.events = e.clone();
            }
            if let Some(enabled) = patch.enabled {
                webhook.enabled = enabled;
            }
            let now = self.now();
            webhook.updated_at = now;
            let audit = AuditEntry::new(
                &webhook.org_id,
                "webhook.updated",
                "webhook",
                webhook.id.as_str(),
                caller.id.as_str(),
                json!({"url": webhook.url, "events": webhook.events, "enabled": webhook.enabled}),
                now,
            );
            Ok(Plan {
                writes: vec![records::update(&webhook, stored.version)?, records::create(&audit)?],
                reply: Reply::new(ReplyStatus::Ok, &webhook.view(false))?,
            })
        })
        .await
    }

    pub async fn delete_webhook(&self, caller: &Caller, id: &str) -> AppResult<Reply> {
        let caller = caller.key()?;
        require(caller, Permission::WebhooksWrite)?;
        self.commit(&caller.org_id, None, || async {
            let stored = self.owned_webhook(caller, id).await?;
            let now = self.now();
            let audit = AuditEntry::new(
                &caller.org_id,
                "webhook.deleted",
                "webhook",
                stored.value.id.as_str(),
                caller.id.as_str(),
                json!({}),
                now,
            );
            Ok(Plan {
                writes: vec![
                    Write::Delete { key: records::Record::key(&stored.value), expect: Expect::Version(stored.version) },
                    records::create(&audit)?,
                ],
                reply: Reply::new(ReplyStatus::Ok, &json!({"id": stored.value.id, "deleted": true}))?,
            })
        })
        .await
    }

    /// `POST /v1/webhooks/{id}/test`: one signed `webhook.test` event, sent now, not retried.
    pub async fn test_webhook(&self, caller: &Caller, id: &str) -> AppResult<TestResult> {
        let caller = caller.key()?;
        require(caller, Permission::WebhooksWrite)?;
        let webhook = self.owned_webhook(caller, id).await?.value;
        let event = Event::new(&webhook.org_id, "webhook.test", json!({"webhookId": webhook.id}), self.now());
        let outcome = self.post_signed(&webhook, event.id.as_str(), &envelope(&event)).await;
        Ok(match outcome {
            Ok(o) => TestResult {
                id: event.id.to_string(),
                delivered: (200..300).contains(&o.status),
                status_code: Some(o.status),
                duration_ms: Some(o.latency_ms),
                error: None,
            },
            Err(e) => TestResult {
                id: event.id.to_string(),
                delivered: false,
                status_code: None,
                duration_ms: None,
                error: Some(e.to_string()),
            },
        })
    }

    /// `GET /v1/webhooks/{id}/deliveries`: newest first.
    pub async fn list_deliveries(&self, caller: &Caller, id: &str, page: &PageRequest) -> AppResult<Page<Delivery>> {
        let caller = caller.key()?;
        require(caller, Permission::WebhooksWrite)?;
        let webhook = self.owned_webhook(caller, id).await?.value;
        let query = Query::new(Index::ByWallet, deliveries_partition(&caller.org_id, &webhook.id), page.limit);
        self.page(query, page, |_| true).await
    }

    /// `GET /v1/webhooks/dlq`: deliveries that ran out of attempts, newest first. `offset` (the
    /// wallgent SDK's paging) skips entries; `cursor` is cheaper.
    pub async fn list_dead_letters(
        &self,
        caller: &Caller,
        page: &PageRequest,
        offset: usize,
    ) -> AppResult<Page<Delivery>> {
        let caller = caller.key()?;
        require(caller, Permission::WebhooksWrite)?;
        let query = Query::new(Index::ByStatus, dead_letter_partition(&caller.org_id), page.limit);
        let request = PageRequest { limit: page.limit + offset, after: page.after.clone() };
        let mut result = self.page(query, &request, |_| true).await?;
        result.data.drain(..offset.min(result.data.len()));
        Ok(result)
    }

    /// `POST /v1/webhooks/dlq/{id}/retry`: a fresh round of attempts, same event id.
    pub async fn retry_dead_letter(&self, caller: &Caller, id: &str) -> AppResult<Reply> {
        self.resolve_dead_letter(caller, id, DeliveryStatus::Pending).await
    }

    /// `POST /v1/webhooks/dlq/{id}/discard`.
    pub async fn discard_dead_letter(&self, caller: &Caller, id: &str) -> AppResult<Reply> {
        self.resolve_dead_letter(caller, id, DeliveryStatus::Discarded).await
    }

    async fn resolve_dead_letter(&self, caller: &Caller, id: &str, to: DeliveryStatus) -> AppResult<Reply> {
        let caller = caller.key()?;
        require(caller, Permission::WebhooksWrite)?;
        let id = parse_delivery_id(id)?;
        let reply = self
            .commit(&caller.org_id, None, || async {
                let stored = self.read_owned::<Delivery>(&delivery_key(&id), &caller.org_id).await?;
                let mut delivery = stored.value;
                if delivery.status != DeliveryStatus::Failed {
                    return Err(InputError::invalid(
                        "id",
                        format!("delivery is {}, not in the dead-letter list", delivery.status.as_str()),
                    )
                    .into());
                }
                let now = self.now();
                delivery.status = to;
                delivery.updated_at = now;
                if to == DeliveryStatus::Pending {
                    delivery.attempts = 0;
                    delivery.next_attempt_at = now;
                }
                let action =
                    if to == DeliveryStatus::Pending { "webhook.dlq.retried" } else { "webhook.dlq.discarded" };
                let audit = AuditEntry::new(
                    &delivery.org_id,
                    action,
                    "delivery",
                    delivery.id.as_str(),
                    caller.id.as_str(),
                    json!({"eventId": delivery.event_id}),
                    now,
                );
                Ok(Plan {
                    writes: vec![records::update(&delivery, stored.version)?, records::create(&audit)?],
                    reply: Reply::new(
                        ReplyStatus::Ok,
                        &json!({"id": delivery.id, "webhookId": delivery.webhook_id, "status": delivery.status}),
                    )?,
                })
            })
            .await?;
        let webhook = reply.body["webhookId"].as_str().and_then(WebhookId::parse);
        // Enqueued only once the retry is committed, so the worker finds it PENDING; if this send
        // fails, the sweep re-queues the overdue pending delivery.
        if let (DeliveryStatus::Pending, Some(webhook_id)) = (to, webhook) {
            let message = QueueMessage::Delivery { webhook_id, delivery_id: id.clone() };
            if let Err(e) = self.wiring.queue.send(&message, std::time::Duration::ZERO).await {
                tracing::warn!(error = %e, "dead-letter retry not enqueued; the sweep will re-queue it");
            }
        }
        Ok(reply)
    }
}
