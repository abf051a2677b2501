//! Webhook subscriptions, their delivery log and the dead-letter list.

use crate::engine::Reader;
use crate::service::org::people::Room;
use serde::Serialize;
use serde_json::json;

use crate::domain::audit::Actor;
use crate::domain::delivery::{Delivery, DeliveryStatus};
use crate::domain::event::Event;
use crate::domain::ids::{DeliveryId, OrgId, WebhookId};
use crate::domain::input::InputError;
use crate::domain::org::ApiKey;
use crate::domain::permission::Permission;
use crate::domain::ssrf;
use crate::domain::webhook::{new_secret, Webhook};
use crate::engine::plan::Tx;
use crate::error::{AppError, AppResult};
use crate::layout::{
    self, dead_letter_partition, deliveries_partition, delivery_key, webhook_key, webhook_partition, Stored,
};
use crate::ports::{Index, Query};
use crate::service::delivery::fanout::{envelope, retry_message};
use crate::service::paging::{Page, PageRequest};
use crate::service::{require, Caller, Countersign};

const MAX_WEBHOOKS: usize = 100;

/// A new subscription; the URL is parsed and the event types known.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWebhook {
    pub url: url::Url,
    pub events: Vec<String>,
    pub enabled: Option<bool>,
}

/// A change to a subscription; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebhookPatch {
    pub url: Option<url::Url>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
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

impl Countersign {
    /// Checks a webhook target: https (http only where private targets are allowed), no
    /// credentials, and every address the host resolves to public unless the operator allows
    /// private targets. The DNS part is the webhook client's (a port).
    async fn check_target(&self, url: &url::Url) -> AppResult<()> {
        let allow = self.settings.allow_private_webhooks;
        if let Some(host) = ssrf::check_url(url, allow)? {
            if !allow {
                let port = url.port_or_known_default().unwrap_or(443);
                self.wiring.client.check_host(&host, port).await?;
            }
        }
        Ok(())
    }

    /// `POST /v1/webhooks`: the secret is in the returned webhook, to be shown this once.
    pub async fn create_webhook(&self, caller: &Caller, request: NewWebhook) -> AppResult<Webhook> {
        let caller = caller.key()?;
        require(caller, Permission::WebhooksWrite)?;
        ensure_may_hear(caller, &request.events)?;
        self.check_target(&request.url).await?;
        let r = self.reader();
        self.engine
            .commit(&r, || async {
                let mut tx = Tx::new(&caller.org_id, Actor::Key(caller.id.clone()), self.now());
                let used = async { Ok(r.list_all_webhooks(&caller.org_id).await?.len()) };
                let room = Room { max: MAX_WEBHOOKS, field: "url", of: "webhooks" };
                r.claim_room(&mut tx, &caller.org_id, room, used).await?;
                let webhook = Webhook {
                    id: WebhookId::generate(),
                    org_id: caller.org_id.clone(),
                    url: request.url.to_string(),
                    events: request.events.clone(),
                    enabled: request.enabled.unwrap_or(true),
                    // A key bound to wallets makes subscriptions that hear only about them.
                    wallet_ids: caller.wallet_ids.clone(),
                    secret: new_secret(),
                    created_at: tx.now(),
                    updated_at: tx.now(),
                };
                tx.create(&webhook)?;
                let details = json!({"url": webhook.url, "events": webhook.events});
                tx.audit("webhook.created", "webhook", webhook.id.as_str(), details)?;
                Ok(tx.done(webhook))
            })
            .await
    }

    pub async fn list_webhooks(&self, caller: &Caller) -> AppResult<Vec<Webhook>> {
        let caller = caller.key()?;
        require(caller, Permission::WebhooksWrite)?;
        Ok(self
            .reader()
            .list_all_webhooks(&caller.org_id)
            .await?
            .into_iter()
            .filter(|w| caller.covers(&w.wallet_ids))
            .collect())
    }

    /// The webhooks a key bound to wallets may see (`None`: every one).
    async fn visible_webhooks(&self, caller: &ApiKey) -> AppResult<Option<Vec<WebhookId>>> {
        if caller.wallet_ids.is_empty() {
            return Ok(None);
        }
        let hooks = self.reader().list_all_webhooks(&caller.org_id).await?;
        Ok(Some(hooks.into_iter().filter(|w| caller.covers(&w.wallet_ids)).map(|w| w.id).collect()))
    }

    pub async fn get_webhook(&self, caller: &Caller, id: &WebhookId) -> AppResult<Webhook> {
        let caller = caller.key()?;
        require(caller, Permission::WebhooksWrite)?;
        Ok(self.reader().owned_webhook(caller, id).await?.value)
    }

    pub async fn update_webhook(&self, caller: &Caller, id: &WebhookId, patch: WebhookPatch) -> AppResult<Webhook> {
        let caller = caller.key()?;
        require(caller, Permission::WebhooksWrite)?;
        if let Some(events) = &patch.events {
            ensure_may_hear(caller, events)?;
        }
        if let Some(url) = &patch.url {
            self.check_target(url).await?;
        }
        let r = self.reader();
        self.engine
            .commit(&r, || async {
                let mut webhook = r.owned_webhook(caller, id).await?;
                let mut tx = Tx::new(&caller.org_id, Actor::Key(caller.id.clone()), self.now());
                let w = &mut webhook.value;
                if let Some(u) = &patch.url {
                    w.url = u.to_string();
                }
                if let Some(e) = &patch.events {
                    w.events = e.clone();
                }
                if let Some(enabled) = patch.enabled {
                    w.enabled = enabled;
                }
                w.updated_at = tx.now();
                let details = json!({"url": w.url, "events": w.events, "enabled": w.enabled});
                tx.audit("webhook.updated", "webhook", w.id.as_str(), details)?;
                tx.update(&webhook)?;
                Ok(tx.done(webhook.value))
            })
            .await
    }

    pub async fn delete_webhook(&self, caller: &Caller, id: &WebhookId) -> AppResult<WebhookId> {
        let caller = caller.key()?;
        require(caller, Permission::WebhooksWrite)?;
        let r = self.reader();
        self.engine
            .commit(&r, || async {
                let webhook = r.owned_webhook(caller, id).await?;
                let mut tx = Tx::new(&caller.org_id, Actor::Key(caller.id.clone()), self.now());
                tx.delete(&webhook);
                tx.audit("webhook.deleted", "webhook", id.as_str(), json!({}))?;
                Ok(tx.done(id.clone()))
            })
            .await
    }

    /// `POST /v1/webhooks/{id}/test`: one signed `webhook.test` event, sent now, not retried.
    pub async fn test_webhook(&self, caller: &Caller, id: &WebhookId) -> AppResult<TestResult> {
        let caller = caller.key()?;
        require(caller, Permission::WebhooksWrite)?;
        let webhook = self.reader().owned_webhook(caller, id).await?.value;
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
    pub async fn list_deliveries(
        &self,
        caller: &Caller,
        id: &WebhookId,
        page: &PageRequest,
    ) -> AppResult<Page<Delivery>> {
        let caller = caller.key()?;
        require(caller, Permission::WebhooksWrite)?;
        let webhook = self.reader().owned_webhook(caller, id).await?.value;
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
        let visible = self.visible_webhooks(caller).await?;
        let shown = |d: &Delivery| visible.as_ref().is_none_or(|v| v.contains(&d.webhook_id));
        let mut result = self.page(query, &request, shown).await?;
        result.data.drain(..offset.min(result.data.len()));
        Ok(result)
    }

    /// `POST /v1/webhooks/dlq/{id}/retry`: a fresh round of attempts, same event id.
    pub async fn retry_dead_letter(&self, caller: &Caller, id: &DeliveryId) -> AppResult<Delivery> {
        let delivery = self.resolve_dead_letter(caller, id, DeliveryStatus::Pending).await?;
        // Enqueued only once the retry is committed, so the worker finds it PENDING; if this send
        // fails, the sweep re-queues the overdue pending delivery.
        if let Err(e) = self.wiring.queue.send(&retry_message(&delivery), std::time::Duration::ZERO).await {
            tracing::warn!(error = %e, "dead-letter retry not enqueued; the sweep will re-queue it");
        }
        Ok(delivery)
    }

    /// `POST /v1/webhooks/dlq/{id}/discard`.
    pub async fn discard_dead_letter(&self, caller: &Caller, id: &DeliveryId) -> AppResult<Delivery> {
        self.resolve_dead_letter(caller, id, DeliveryStatus::Discarded).await
    }

    async fn resolve_dead_letter(&self, caller: &Caller, id: &DeliveryId, to: DeliveryStatus) -> AppResult<Delivery> {
        let caller = caller.key()?;
        require(caller, Permission::WebhooksWrite)?;
        let visible = self.visible_webhooks(caller).await?;
        let r = self.reader();
        self.engine
            .commit(&r, || async {
                let mut stored = r.read_owned::<Delivery>(&delivery_key(id), &caller.org_id).await?;
                if visible.as_ref().is_some_and(|v| !v.contains(&stored.value.webhook_id)) {
                    return Err(AppError::WalletNotAllowed.into());
                }
                let delivery = &mut stored.value;
                if delivery.status != DeliveryStatus::Failed {
                    return Err(InputError::invalid(
                        "id",
                        format!("delivery is {}, not in the dead-letter list", delivery.status.as_str()),
                    )
                    .into());
                }
                let mut tx = Tx::new(&caller.org_id, Actor::Key(caller.id.clone()), self.now());
                delivery.status = to;
                delivery.updated_at = tx.now();
                if to == DeliveryStatus::Pending {
                    delivery.attempts = 0;
                    delivery.next_attempt_at = tx.now();
                }
                let action =
                    if to == DeliveryStatus::Pending { "webhook.dlq.retried" } else { "webhook.dlq.discarded" };
                tx.audit(action, "delivery", delivery.id.as_str(), json!({"eventId": delivery.event_id}))?;
                tx.update(&stored)?;
                Ok(tx.done(stored.value))
            })
            .await
    }
}

/// Approval and review events carry votes, notes, reviewers and decisions: a subscription to
/// them (or to everything) reads what `approvals:read` reads, so it needs that permission too.
/// Otherwise `webhooks:write` alone would read every decision the API keeps from it.
fn ensure_may_hear(caller: &ApiKey, events: &[String]) -> AppResult<()> {
    let hears_decisions = events.iter().any(|e| e == "*" || e.starts_with("approval.") || e.starts_with("review."));
    if hears_decisions {
        require(caller, Permission::ApprovalsRead)?;
    }
    // Policy changes carry the policies and rules they change: what `wallets:read` reads.
    if events.iter().any(|e| e == "*" || e.starts_with("policy.")) {
        require(caller, Permission::WalletsRead)?;
    }
    Ok(())
}

impl Reader {
    /// Every subscription of an organisation, following pages (the cap keeps it small).
    pub(crate) async fn list_all_webhooks(&self, org: &OrgId) -> AppResult<Vec<Webhook>> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let mut query = Query::new(Index::Primary, webhook_partition(org), MAX_WEBHOOKS);
            query.sk_prefix = Some("WEBHOOK#".into());
            query.newest_first = false;
            query.after = after;
            let items = self.query(query).await?;
            let full = items.len() == MAX_WEBHOOKS;
            after = items.last().map(|i| i.position(Index::Primary));
            for item in items {
                all.push(layout::decode::<Webhook>(item)?.value);
            }
            if !full {
                return Ok(all);
            }
        }
    }

    pub(crate) async fn owned_webhook(&self, caller: &ApiKey, id: &WebhookId) -> AppResult<Stored<Webhook>> {
        let webhook = self.read_owned::<Webhook>(&webhook_key(&caller.org_id, id), &caller.org_id).await?;
        if !caller.covers(&webhook.value.wallet_ids) {
            return Err(AppError::WalletNotAllowed);
        }
        Ok(webhook)
    }
}
