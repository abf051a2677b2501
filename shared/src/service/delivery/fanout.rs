//! Webhook fan-out and delivery: one delivery per (event, subscription), signed, POSTed with a
//! short timeout, retried with backoff through the queue, then dead-lettered.

use std::time::Duration;

use chrono::{Duration as ChronoDuration, Utc};
use futures::stream::{self, StreamExt};
use rand::Rng;

use crate::domain::delivery::{Delivery, DeliveryStatus};
use crate::domain::event::Event;
use crate::domain::ids::DeliveryId;
use crate::domain::webhook::{sign, Webhook};
use crate::error::{AppError, AppResult};
use crate::layout::{self, delivery_key, webhook_key, Stored, DUE_DELIVERIES};
use crate::ports::{HttpOutcome, Index, Query, QueueMessage, SendError, StoreError};
use crate::service::Countersign;

/// Deliveries of one event (or one batch) worked on at once; a slow endpoint holds only its
/// own slots (`endpoints`).
pub const DELIVERY_CONCURRENCY: usize = 32;
/// How long a delivery whose endpoint has no free slot waits in the queue before trying again;
/// doubled for each bounce in a row, up to `BUSY_ENDPOINT_MAX_DELAY` (a hanging endpoint's
/// deliveries come round less and less often).
const BUSY_ENDPOINT_DELAY: Duration = Duration::from_secs(2);
const BUSY_ENDPOINT_MAX_DELAY: Duration = Duration::from_secs(60);
const MAX_ERROR_CHARS: usize = 500;
/// How long a claimed attempt may take before the sweep may hand it to another worker.
const CLAIM_LEASE: Duration = Duration::from_secs(60);
/// How late a pending delivery's attempt may be before the sweep assumes its message was lost.
const REQUEUE_GRACE: Duration = Duration::from_secs(300);
/// Pending deliveries read per shard of the due index to count those waiting for a retry.
const PENDING_COUNT_PER_SHARD: usize = 100;

/// The body subscribers receive: `{"id", "type", "createdAt", "data"}`.
pub(crate) fn envelope(event: &Event) -> serde_json::Value {
    serde_json::json!({"id": event.id, "type": event.kind, "createdAt": event.created_at, "data": event.data})
}

/// The queue message for a delivery's next attempt.
pub(crate) fn retry_message(delivery: &Delivery) -> QueueMessage {
    QueueMessage::Delivery {
        webhook_id: delivery.webhook_id.clone(),
        delivery_id: delivery.id.clone(),
        attempt: Some(delivery.attempts),
    }
}

/// What to do for one subscription once an event's deliveries are committed.
pub(crate) enum NextSend {
    /// Send this first attempt (claimed when its delivery was created).
    Claimed { delivery: Box<Delivery>, version: u64, webhook: Webhook },
    /// The delivery existed already (a re-published event): the retry path decides.
    Existing(DeliveryId),
}

/// The wait before trying a delivery again after `bounces` bounces in a row, with jitter so
/// the deliveries a busy endpoint turned away do not all come back at once.
fn busy_delay(bounces: u32) -> Duration {
    let raw = BUSY_ENDPOINT_DELAY.saturating_mul(1u32 << bounces.min(8));
    raw.mul_f64(rand::rng().random_range(0.75..=1.25)).min(BUSY_ENDPOINT_MAX_DELAY)
}

/// An error as a delivery log keeps it: its first `MAX_ERROR_CHARS` characters.
pub(crate) fn short(text: &str) -> String {
    text.chars().take(MAX_ERROR_CHARS).collect()
}

impl Countersign {
    /// Handles one queue message. An error means "retry this message later" (the queue redelivers);
    /// fan-out is idempotent because delivery ids derive from (event, webhook).
    pub async fn handle_message(&self, message: &QueueMessage) -> AppResult<()> {
        match message {
            QueueMessage::Event { event } => {
                // Both run, whatever the other did; either failing has the message handled again
                // (each is idempotent).
                let (webhooks, notifications) = futures::join!(self.fan_out(event), self.notify(event));
                webhooks.and(notifications)
            }
            QueueMessage::Delivery { delivery_id, attempt, .. } => self.deliver_due(delivery_id, *attempt).await,
            QueueMessage::Notification { subject, notification_id, attempt } => {
                self.notification_due(subject, notification_id, *attempt).await
            }
        }
    }

    async fn fan_out(&self, event: &Event) -> AppResult<()> {
        let webhooks = self.reader().list_all_webhooks(&event.org_id).await?;
        self.fan_out_to(event, &webhooks).await
    }

    /// Fans `event` out to those of its organisation's `webhooks` (read after it committed)
    /// that want it: commits their deliveries, then sends them.
    pub(crate) async fn fan_out_to(&self, event: &Event, webhooks: &[Webhook]) -> AppResult<()> {
        let (next, failed) = self.commit_deliveries(event, webhooks).await;
        let sent = self.send_all(next).await;
        failed.map_or(sent, Err)
    }

    /// Commits the deliveries of `event` to those of `webhooks` that want it, each with its first
    /// attempt claimed. Returns what to send next, and an error if a delivery could not be
    /// written (the event must be handled again: fan-out is idempotent).
    pub(crate) async fn commit_deliveries(
        &self,
        event: &Event,
        webhooks: &[Webhook],
    ) -> (Vec<NextSend>, Option<AppError>) {
        let targets: Vec<Webhook> = webhooks.iter().filter(|w| w.wants(event)).cloned().collect();
        let results: Vec<AppResult<NextSend>> = stream::iter(targets)
            .map(|webhook| async move {
                // Creating the delivery claims its first attempt. A duplicate message (or one
                // redelivered after a worker died) finds it made and hands it to the retry path,
                // which sends it once its attempt is due and unclaimed.
                Ok(match self.create_delivery(event, &webhook).await? {
                    Some((delivery, version)) => NextSend::Claimed { delivery: Box::new(delivery), version, webhook },
                    None => NextSend::Existing(DeliveryId::for_event(&event.id, &webhook.id)),
                })
            })
            .buffer_unordered(DELIVERY_CONCURRENCY)
            .collect()
            .await;
        let mut failed = None;
        let next = results.into_iter().filter_map(|r| r.map_err(|e| failed = Some(e)).ok()).collect();
        (next, failed)
    }

    /// Sends committed deliveries, each when its endpoint has a free slot (else it goes back to
    /// the queue for a little later).
    pub(crate) async fn send_all(&self, next: Vec<NextSend>) -> AppResult<()> {
        let results: Vec<AppResult<()>> =
            stream::iter(next).map(|n| self.send_next(n)).buffer_unordered(DELIVERY_CONCURRENCY).collect().await;
        results.into_iter().collect()
    }

    async fn send_next(&self, next: NextSend) -> AppResult<()> {
        match next {
            NextSend::Claimed { delivery, version, webhook } => {
                match self.endpoints.slot(&webhook.org_id, &webhook.url).await {
                    Some(_slot) => self.send_claimed(*delivery, version, webhook).await,
                    None => self.hand_back(*delivery, version).await,
                }
            }
            NextSend::Existing(id) => self.deliver_due(&id, None).await,
        }
    }

    /// Gives back a claimed attempt whose endpoint is busy, its attempt not spent.
    async fn hand_back(&self, mut delivery: Delivery, version: u64) -> AppResult<()> {
        delivery.attempts = delivery.attempts.saturating_sub(1);
        self.bounce(delivery, version).await
    }

    /// Sends a delivery whose endpoint is busy back to the queue for a little later. Its next
    /// attempt moves forward in a version-checked write, so the sweep does not take it for a
    /// lost message and queue another; only the worker whose write wins enqueues, so a bounce
    /// replaces the message it handles and the count never grows while the endpoint hangs. An
    /// enqueue that fails after the write is an error: the queue redelivers the message in hand
    /// (a relay send has none: the sweep re-queues the overdue delivery).
    async fn bounce(&self, mut delivery: Delivery, version: u64) -> AppResult<()> {
        let delay = busy_delay(delivery.busy_bounces);
        delivery.busy_bounces = delivery.busy_bounces.saturating_add(1);
        delivery.updated_at = self.now();
        delivery.next_attempt_at = delivery.updated_at + ChronoDuration::from_std(delay).unwrap_or_default();
        match self.store().transact(vec![layout::update(&delivery, version)?]).await {
            Ok(()) => {}
            // Another worker moved it on (sent it, or bounced it and queued its message).
            Err(StoreError::ConditionFailed | StoreError::Conflict) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        self.wiring.queue.send(&retry_message(&delivery), delay.min(self.wiring.queue.max_delay())).await?;
        Ok(())
    }

    /// Creates the one delivery of `event` to `webhook` with its first attempt claimed; `None`
    /// when it exists already (another worker has it; if that one died, the sweep re-queues it).
    async fn create_delivery(&self, event: &Event, webhook: &Webhook) -> AppResult<Option<(Delivery, u64)>> {
        let now = self.now();
        let delivery = Delivery {
            id: DeliveryId::for_event(&event.id, &webhook.id),
            org_id: event.org_id.clone(),
            webhook_id: webhook.id.clone(),
            event: self.webhook_body(event),
            event_id: event.id.to_string(),
            event_type: event.kind.clone(),
            status: DeliveryStatus::Pending,
            attempts: 1,
            last_error: None,
            last_status_code: None,
            last_latency_ms: None,
            next_attempt_at: now + ChronoDuration::from_std(CLAIM_LEASE).unwrap_or_default(),
            busy_bounces: 0,
            created_at: now,
            updated_at: now,
            delivered_at: None,
        };
        match self.store().transact(vec![layout::create(&delivery)?]).await {
            Ok(()) => Ok(Some((delivery, 1))),
            Err(StoreError::ConditionFailed) => Ok(None),
            // A colliding write may fail too: have the queue redeliver the message.
            Err(StoreError::Conflict) => Err(AppError::Contention),
            Err(e) => Err(e.into()),
        }
    }

    async fn deliver_due(&self, id: &DeliveryId, attempt: Option<u32>) -> AppResult<()> {
        let Some(stored) = self.reader().read::<Delivery>(&delivery_key(id)).await? else {
            return Ok(()); // discarded or never created: nothing to do
        };
        if stored.value.status != DeliveryStatus::Pending || attempt.is_some_and(|a| a != stored.value.attempts) {
            return Ok(()); // done, or a duplicate of a message another attempt already answered
        }
        let wait = (stored.value.next_attempt_at - self.now()).to_std().unwrap_or_default();
        if wait > Duration::from_secs(1) {
            // Longer than the queue's delay limit: wait again.
            let delay = wait.min(self.wiring.queue.max_delay());
            self.wiring.queue.send(&retry_message(&stored.value), delay).await?;
            return Ok(());
        }
        self.attempt(stored, None).await
    }

    /// One attempt: claim it, sign, POST, record the outcome; schedule the next attempt or
    /// dead-letter. The claim (the attempt count raised by a conditional write before the POST)
    /// lets exactly one of several workers holding the same message send it.
    async fn attempt(&self, stored: Stored<Delivery>, webhook: Option<Webhook>) -> AppResult<()> {
        let mut delivery = stored.value;
        let webhook = match webhook {
            Some(w) => Some(w),
            None => self
                .reader()
                .read::<Webhook>(&webhook_key(&delivery.org_id, &delivery.webhook_id))
                .await?
                .map(|s| s.value),
        };
        let now = self.now();
        let Some(webhook) = webhook.filter(|w| w.enabled) else {
            delivery.status = DeliveryStatus::Discarded;
            delivery.last_error = Some("webhook disabled or deleted".into());
            delivery.updated_at = now;
            return self.save_delivery(&delivery, stored.version).await;
        };
        let Some(_slot) = self.endpoints.slot(&webhook.org_id, &webhook.url).await else {
            // The endpoint is busy: try again a little later, nothing claimed or spent.
            return self.bounce(delivery, stored.version).await;
        };
        delivery.attempts += 1;
        delivery.busy_bounces = 0;
        delivery.updated_at = now;
        // If this worker dies mid-attempt, the sweep re-queues the delivery once the lease is over.
        delivery.next_attempt_at = now + ChronoDuration::from_std(CLAIM_LEASE).unwrap_or_default();
        match self.store().transact(vec![layout::update(&delivery, stored.version)?]).await {
            Ok(()) => {}
            Err(StoreError::ConditionFailed | StoreError::Conflict) => return Ok(()), // claimed elsewhere
            Err(e) => return Err(e.into()),
        }
        self.send_claimed(delivery, stored.version + 1, webhook).await
    }

    /// Sends an attempt this worker has claimed (stored at `version`) and records the outcome.
    async fn send_claimed(&self, mut delivery: Delivery, version: u64, webhook: Webhook) -> AppResult<()> {
        let outcome = self.post_signed(&webhook, &delivery.event_id, &delivery.event).await;
        delivery.updated_at = self.now();
        match outcome {
            Ok(HttpOutcome { status, latency_ms }) if (200..300).contains(&status) => {
                delivery.status = DeliveryStatus::Delivered;
                delivery.delivered_at = Some(delivery.updated_at);
                delivery.last_status_code = Some(status);
                delivery.last_latency_ms = Some(latency_ms);
                delivery.last_error = None;
            }
            failed => {
                match failed {
                    Ok(HttpOutcome { status, latency_ms }) => {
                        delivery.last_status_code = Some(status);
                        delivery.last_latency_ms = Some(latency_ms);
                        delivery.last_error = Some(format!("endpoint answered HTTP {status}"));
                    }
                    Err(e) => {
                        delivery.last_status_code = None;
                        delivery.last_error = Some(short(&e.to_string()));
                    }
                }
                match self.settings.retry.next_delay(delivery.attempts) {
                    Some(delay) => {
                        delivery.next_attempt_at =
                            delivery.updated_at + ChronoDuration::from_std(delay).unwrap_or_default();
                        // Enqueue before saving: a lost save leaves a harmless extra message (its
                        // attempt number is still due), a lost enqueue would strand the delivery.
                        let delay = delay.min(self.wiring.queue.max_delay());
                        self.wiring.queue.send(&retry_message(&delivery), delay).await?;
                    }
                    None => delivery.status = DeliveryStatus::Failed,
                }
            }
        }
        self.save_delivery(&delivery, version).await
    }

    async fn save_delivery(&self, delivery: &Delivery, version: u64) -> AppResult<()> {
        match self.store().transact(vec![layout::update(delivery, version)?]).await {
            // Another worker handled the same delivery (a duplicate message): its outcome stands.
            Ok(()) | Err(StoreError::ConditionFailed | StoreError::Conflict) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn post_signed(
        &self,
        webhook: &Webhook,
        message_id: &str,
        body: &serde_json::Value,
    ) -> Result<HttpOutcome, SendError> {
        let bytes = serde_json::to_vec(body).map_err(|e| SendError::Failed(e.to_string()))?;
        // Transport time, not business time: receivers check it against their own clocks.
        let headers = sign(&webhook.secret, message_id, Utc::now().timestamp(), &bytes);
        self.wiring.client.post(&webhook.url, &headers, bytes).await
    }

    /// Re-queues pending deliveries whose next attempt is overdue by more than
    /// `REQUEUE_GRACE` (their queue message was lost: a failed send, a crash between commit and
    /// send, a worker that died mid-attempt). Duplicate messages are harmless: each carries its
    /// attempt number and an attempt is claimed before it is sent.
    pub(crate) async fn requeue_phase(
        &self,
        page: usize,
        time_left: &(dyn Fn() -> bool + Sync),
    ) -> AppResult<(usize, bool)> {
        let cutoff = self.now() - ChronoDuration::from_std(REQUEUE_GRACE).unwrap_or_default();
        self.requeue_due_before(cutoff, page, time_left).await
    }

    /// Re-queues, each for when its attempt is due, every pending delivery a process that died
    /// may have claimed or been about to send (due before a claim lease from now). A queue
    /// worker calls it as it starts: the sends of the process before it (the local relay sends
    /// right after committing, with no queue message behind them) died with it.
    pub async fn requeue_after_restart(&self) -> AppResult<usize> {
        let cutoff = self.now() + ChronoDuration::from_std(CLAIM_LEASE + Duration::from_secs(1)).unwrap_or_default();
        Ok(self.requeue_due_before(cutoff, 100, &|| true).await?.0)
    }

    /// Webhook deliveries waiting for a retry (pending, after a failed attempt), for the
    /// `DeliveriesPending` metric. Read from the sparse due index, which holds pending deliveries
    /// only: one query per shard of at most `PENDING_COUNT_PER_SHARD` items, so the sweep's
    /// minute costs the same bounded reads however large a backlog grows, and nothing else
    /// pays (a counter item would be one more write, on a hot item, in every attempt). The
    /// count so saturates at 100 per shard (1,700): a backlog that size has set off the alarm.
    pub(crate) async fn deliveries_pending(&self) -> AppResult<usize> {
        let counts: Vec<AppResult<usize>> = stream::iter(layout::due_partitions(DUE_DELIVERIES))
            .map(|partition| async move {
                let mut query = Query::new(Index::Due, partition, PENDING_COUNT_PER_SHARD);
                query.newest_first = false;
                let items = self.store().query(query).await?;
                Ok(items
                    .into_iter()
                    .filter_map(|item| layout::decode::<Delivery>(item).ok())
                    .filter(|d| d.value.status == DeliveryStatus::Pending && d.value.last_error.is_some())
                    .count())
            })
            .buffer_unordered(4)
            .collect()
            .await;
        counts.into_iter().sum()
    }

    async fn requeue_due_before(
        &self,
        cutoff: chrono::DateTime<Utc>,
        page: usize,
        time_left: &(dyn Fn() -> bool + Sync),
    ) -> AppResult<(usize, bool)> {
        let cutoff = format!("{}#~", layout::sort_time(cutoff));
        let cutoff = &cutoff;
        self.each_due_page(DUE_DELIVERIES, page, time_left, move |partition, after| async move {
            let (due, read, last) = self.due_page(&partition, cutoff, page, after).await?;
            let mut requeued = 0;
            for item in due {
                let Ok(delivery) = layout::decode::<Delivery>(item) else { continue };
                let wait = (delivery.value.next_attempt_at - self.now()).to_std().unwrap_or_default();
                self.wiring
                    .queue
                    .send(&retry_message(&delivery.value), wait.min(self.wiring.queue.max_delay()))
                    .await?;
                requeued += 1;
            }
            Ok((requeued, read, last))
        })
        .await
    }
}
