//! The local server's event bus: the outbox relay. Publishing hands the committed events to a
//! background task that commits each one's deliveries to its webhook subscriptions (as the
//! webhooks Lambda does with the queue's messages in AWS), marks it published once they are
//! committed (the marks of many events in one transaction), then sends them. The request that
//! committed the events answers after its own commit alone, and an event costs the store one
//! more write (its mark), not a queue message's three. Nothing is lost to a crash: an event
//! whose deliveries are not yet committed is still unpublished in the outbox, and the sweep
//! re-publishes it; fan-out is idempotent (deliveries are keyed by event and subscription); a
//! committed delivery not yet sent is re-queued by the next queue worker to start
//! (`run_queue_worker`), or else by the sweep. Sends wait only for their own
//! organisation's slots to that host (`service::endpoints`): a subscriber that never answers
//! delays its own organisation's deliveries, never another organisation's.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock, Weak};

use async_trait::async_trait;
use chrono::Utc;
use tokio::sync::{mpsc, Semaphore};

use crate::domain::event::Event;
use crate::domain::ids::OrgId;
use crate::layout;
use crate::ports::{BusError, EventBus, Published, Store, Write};
use crate::service::may_notify;
use crate::service::Countersign;

/// Events waiting for the relay; beyond this, publishes leave them to the sweep.
const WAITING: usize = 8192;
/// Events whose deliveries are being committed at once (their sends are not counted: each
/// waits for its endpoint's slots alone).
const FAN_OUT_AT_ONCE: usize = 64;
/// Most marks in one transaction.
const MARKS_AT_ONCE: usize = 256;

pub struct OutboxRelay {
    store: Arc<dyn Store>,
    /// The service that fans out (set once it is built: it holds this relay as its bus).
    service: OnceLock<Weak<Countersign>>,
    /// The relay task's inbox, started with the first publish (inside the runtime).
    inbox: OnceLock<mpsc::Sender<Event>>,
}

impl OutboxRelay {
    pub fn new(store: Arc<dyn Store>) -> Self {
        OutboxRelay { store, service: OnceLock::new(), inbox: OnceLock::new() }
    }

    /// Connects the service that fans the relayed events out.
    pub fn attach(&self, service: &Arc<Countersign>) {
        let _ = self.service.set(Arc::downgrade(service));
    }

    fn inbox(&self) -> &mpsc::Sender<Event> {
        self.inbox.get_or_init(|| {
            let (tx, rx) = mpsc::channel(WAITING);
            let service = self.service.get().cloned().unwrap_or_default();
            tokio::spawn(run(self.store.clone(), service, rx));
            tx
        })
    }
}

/// Fans each event out on its own task (a bounded number committing at once): its deliveries
/// committed, it goes to the marker, then its deliveries are sent.
/// The events that arrived together share one read of each organisation's subscriptions (made
/// after they committed, as each event's own read would be); an event no subscription wants
/// goes straight to the marker. Stops when the relay (and so the service) is dropped.
async fn run(store: Arc<dyn Store>, service: Weak<Countersign>, mut inbox: mpsc::Receiver<Event>) {
    let (marks, marker_inbox) = mpsc::channel(WAITING);
    tokio::spawn(mark(store, marker_inbox));
    let at_once = Arc::new(Semaphore::new(FAN_OUT_AT_ONCE));
    while let Some(first) = inbox.recv().await {
        let arrived = with_waiting(first, &mut inbox, FAN_OUT_AT_ONCE);
        let Some(service) = service.upgrade() else { return };
        let mut by_org: HashMap<OrgId, Vec<Event>> = HashMap::new();
        for event in arrived {
            by_org.entry(event.org_id.clone()).or_default().push(event);
        }
        for (org, events) in by_org {
            let webhooks = match service.reader().list_all_webhooks(&org).await {
                Ok(webhooks) => Arc::new(webhooks),
                Err(e) => {
                    // Left unpublished: the sweep re-publishes them.
                    tracing::warn!(org = %org, error = %e, "fan-out failed; the sweep will retry");
                    continue;
                }
            };
            for event in events {
                if !webhooks.iter().any(|w| w.wants(&event)) && !may_notify(&event.kind) {
                    let _ = marks.send(event).await;
                    continue;
                }
                let Ok(permit) = at_once.clone().acquire_owned().await else { return };
                let (service, webhooks, marks) = (service.clone(), webhooks.clone(), marks.clone());
                tokio::spawn(async move {
                    let (next, failed) = service.commit_deliveries(&event, &webhooks).await;
                    let notifications = service.commit_notifications(&event, true).await;
                    match (failed.as_ref(), notifications.as_ref().err()) {
                        (None, None) => {
                            let _ = marks.send(event).await;
                        }
                        // Left unpublished: the sweep re-publishes it (both steps are idempotent).
                        (Some(e), _) | (None, Some(e)) => {
                            tracing::warn!(event = %event.id, error = %e, "fan-out failed; the sweep will retry")
                        }
                    }
                    drop(permit);
                    if let Err(e) = service.send_all(next).await {
                        tracing::warn!(error = %e, "delivery failed; the sweep will re-queue it");
                    }
                    if let Err(e) = service.send_notifications(notifications.unwrap_or_default()).await {
                        tracing::warn!(error = %e, "notification failed; it is retried");
                    }
                });
            }
        }
    }
}

/// `first` and whatever else is already waiting in `inbox`, `most` at most.
fn with_waiting(first: Event, inbox: &mut mpsc::Receiver<Event>, most: usize) -> Vec<Event> {
    let mut events = vec![first];
    while events.len() < most {
        match inbox.try_recv() {
            Ok(more) => events.push(more),
            Err(_) => break,
        }
    }
    events
}

/// Marks fanned-out events published, everything that arrived meanwhile in one transaction.
async fn mark(store: Arc<dyn Store>, mut inbox: mpsc::Receiver<Event>) {
    while let Some(first) = inbox.recv().await {
        let mut events = with_waiting(first, &mut inbox, MARKS_AT_ONCE);
        // One transaction touches each key once: a re-published event's second mark goes.
        let mut seen = HashSet::new();
        events.retain(|e| seen.insert(e.id.clone()));
        let marks: Vec<Write> = events.iter().filter_map(published).collect();
        if marks.is_empty() || store.transact(marks).await.is_ok() || events.len() == 1 {
            continue;
        }
        // One of them was marked already (a re-publish): the others one by one.
        for event in &events {
            if let Some(write) = published(event) {
                if let Err(e) = store.transact(vec![write]).await {
                    tracing::debug!(event = %event.id, error = %e, "event already marked");
                }
            }
        }
    }
}

/// The event's published mark. Every local event is published from version 1 (the local bus
/// never refuses one).
fn published(event: &Event) -> Option<Write> {
    let marked = Event { published_at: Some(Utc::now()), ..event.clone() };
    layout::update(&marked, 1).map_err(|e| tracing::error!(event = %event.id, error = %e, "event not marked")).ok()
}

#[async_trait]
impl EventBus for OutboxRelay {
    /// Reports nothing accepted: the relay marks what it has fanned out.
    async fn publish(&self, events: &[Event]) -> Result<Published, BusError> {
        for event in events {
            if self.inbox().try_send(event.clone()).is_err() {
                tracing::warn!(event = %event.id, "outbox relay backlogged; the sweep will re-publish");
            }
        }
        Ok(Published::default())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::adapters::sqlite::SqliteStore;
    use crate::domain::ids::{DeliveryId, OrgId, WebhookId};
    use crate::domain::webhook::Webhook;
    use crate::layout::{decode, Stored};
    use crate::ports::SystemClock;
    use crate::service::Settings;

    async fn stored_event(store: &Arc<dyn Store>, event: &Event) -> Stored<Event> {
        let item = store.get(&layout::Record::key(event)).await.expect("get").expect("event");
        decode(item).expect("decode")
    }

    async fn until_marked(store: &Arc<dyn Store>, event: &Event) -> u64 {
        let marked = async {
            loop {
                let stored = stored_event(store, event).await;
                if stored.value.published_at.is_some() {
                    return stored.version;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), marked).await.expect("marked")
    }

    #[tokio::test]
    async fn an_event_a_webhook_wants_gets_its_delivery_before_it_is_marked() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().expect("store"));
        let (service, _queue) =
            crate::local::wire(store.clone(), Arc::new(SystemClock), Settings::default()).expect("wire");
        let org = OrgId::generate();
        let webhook = Webhook {
            id: WebhookId::generate(),
            org_id: org.clone(),
            // Nothing listens there: the delivery's first attempt fails and is retried later.
            url: "http://127.0.0.1:9/hook".into(),
            events: vec!["approval.created".into()],
            enabled: true,
            wallet_ids: vec![],
            secret: crate::domain::webhook::new_secret(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        let wanted = Event::new(&org, "approval.created", json!({"n": 1}), Utc::now());
        let unwanted = Event::new(&org, "payment.executed", json!({"n": 2}), Utc::now());
        let writes = [&wanted, &unwanted].map(|e| layout::create(e).expect("event")).into_iter();
        store.transact(writes.chain([layout::create(&webhook).expect("webhook")]).collect()).await.expect("write");
        service.publish_committed(vec![wanted.clone(), unwanted.clone()]).await;
        assert_eq!(until_marked(&store, &wanted).await, 2);
        assert_eq!(until_marked(&store, &unwanted).await, 2);
        let delivery = layout::delivery_key(&DeliveryId::for_event(&wanted.id, &webhook.id));
        assert!(store.get(&delivery).await.expect("get").is_some(), "fanned out before it was marked");
        let other = layout::delivery_key(&DeliveryId::for_event(&unwanted.id, &webhook.id));
        assert!(store.get(&other).await.expect("get").is_none(), "the webhook does not want this kind");
    }

    /// The SQLite store, except that its queries fail (the webhook listing among them).
    struct QueriesFail(SqliteStore);

    #[async_trait]
    impl Store for QueriesFail {
        async fn get(&self, key: &crate::ports::Key) -> Result<Option<crate::ports::Item>, crate::ports::StoreError> {
            self.0.get(key).await
        }
        async fn apply(
            &self,
            writes: &[Write],
            token: Option<&crate::ports::TxToken>,
        ) -> Result<(), crate::ports::StoreError> {
            self.0.apply(writes, token).await
        }
        async fn query(&self, _: crate::ports::Query) -> Result<Vec<crate::ports::Item>, crate::ports::StoreError> {
            Err(crate::ports::StoreError::Unavailable("queries fail here".into()))
        }
    }

    #[tokio::test]
    async fn events_whose_subscriptions_cannot_be_read_stay_unpublished_for_the_sweep() {
        let store: Arc<dyn Store> = Arc::new(QueriesFail(SqliteStore::in_memory().expect("store")));
        let (service, _queue) =
            crate::local::wire(store.clone(), Arc::new(SystemClock), Settings::default()).expect("wire");
        let event = Event::new(&OrgId::generate(), "approval.created", json!({"n": 1}), Utc::now());
        store.transact(vec![layout::create(&event).expect("event")]).await.expect("outbox");
        service.publish_committed(vec![event.clone()]).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stored = stored_event(&store, &event).await;
        assert_eq!((stored.version, stored.value.published_at), (1, None), "not marked: the sweep re-publishes it");
    }

    #[tokio::test]
    async fn a_relayed_event_is_fanned_out_and_marked_published_once() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().expect("store"));
        let (service, _queue) =
            crate::local::wire(store.clone(), Arc::new(SystemClock), Settings::default()).expect("wire");
        let event = Event::new(&OrgId::generate(), "approval.created", json!({"n": 1}), Utc::now());
        store.transact(vec![layout::create(&event).expect("event")]).await.expect("outbox");
        service.publish_committed(vec![event.clone()]).await;
        // A re-publish racing the first (the sweep).
        service.publish_committed(vec![event.clone()]).await;
        let marked = async {
            loop {
                let item = store.get(&layout::Record::key(&event)).await.expect("get").expect("event");
                let stored: Stored<Event> = decode(item).expect("decode");
                if stored.value.published_at.is_some() {
                    return stored.version;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        assert_eq!(tokio::time::timeout(Duration::from_secs(5), marked).await.expect("marked"), 2);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let item = store.get(&layout::Record::key(&event)).await.expect("get").expect("event");
        assert_eq!(item.version, 2, "marked once");
    }
}
