//! The local server's durable queue, kept in the same store: queued messages survive a restart.
//! It is also the local "event bus": publishing an event enqueues it, as EventBridge's rule does
//! with the SQS queue in AWS.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::domain::event::Event;
use crate::ports::{
    BusError, DeliveryQueue, EventBus, Expect, Index, IndexKeys, Item, Key, Published, Query, QueueError, QueueMessage,
    Store, Write,
};

const PARTITION: &str = "QUEUE";
/// A claimed message becomes visible again after this long if its worker never acknowledged it.
const LEASE: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct StoreQueue {
    store: Arc<dyn Store>,
}

/// A received message and what acknowledging it needs.
pub struct Received {
    pub message: QueueMessage,
    key: Key,
    version: u64,
}

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl StoreQueue {
    pub fn new(store: Arc<dyn Store>) -> Self {
        StoreQueue { store }
    }

    fn item(key: Key, version: u64, message: &QueueMessage, visible_at: DateTime<Utc>) -> Result<Item, String> {
        let id = key.pk.trim_start_matches("QUEUE#").to_string();
        Ok(Item {
            key,
            version,
            indexes: IndexKeys {
                due: Some((PARTITION.into(), format!("{}#{id}", at(visible_at)))),
                ..Default::default()
            },
            expires_at_epoch: None,
            body: serde_json::to_value(message).map_err(|e| e.to_string())?,
        })
    }

    /// Claims up to `max` visible messages (each hidden for the lease while it is worked on).
    pub async fn receive(&self, max: usize) -> Result<Vec<Received>, QueueError> {
        let now = Utc::now();
        let mut query = Query::new(Index::Due, PARTITION, max.max(1));
        query.newest_first = false;
        query.sk_at_most = Some(format!("{}#~", at(now)));
        let due = self.store.query(query).await.map_err(|e| QueueError(e.to_string()))?;
        let mut claimed = Vec::new();
        for item in due {
            let Ok(message) = serde_json::from_value::<QueueMessage>(item.body.clone()) else {
                // Unreadable: drop it rather than loop on it forever.
                let _ = self
                    .store
                    .transact(vec![Write::Delete { key: item.key.clone(), expect: Expect::Version(item.version) }])
                    .await;
                continue;
            };
            let lease = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
            let Ok(next) = Self::item(item.key.clone(), item.version + 1, &message, lease) else { continue };
            if self.store.transact(vec![Write::Put { item: next, expect: Expect::Version(item.version) }]).await.is_ok()
            {
                claimed.push(Received { message, key: item.key, version: item.version + 1 });
            }
        }
        Ok(claimed)
    }

    /// Removes a message whose work is done.
    pub async fn ack(&self, received: &Received) -> Result<(), QueueError> {
        self.store
            .transact(vec![Write::Delete { key: received.key.clone(), expect: Expect::Version(received.version) }])
            .await
            .map_err(|e| QueueError(e.to_string()))
    }
}

#[async_trait]
impl DeliveryQueue for StoreQueue {
    fn max_delay(&self) -> Duration {
        Duration::from_secs(365 * 24 * 3600)
    }

    async fn send(&self, message: &QueueMessage, delay: Duration) -> Result<(), QueueError> {
        let key = Key::new(format!("QUEUE#{}", ulid::Ulid::new()), "QUEUE");
        let visible = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
        let item = Self::item(key, 1, message, visible).map_err(QueueError)?;
        self.store
            .transact(vec![Write::Put { item, expect: Expect::Absent }])
            .await
            .map_err(|e| QueueError(e.to_string()))
    }
}

#[async_trait]
impl EventBus for StoreQueue {
    async fn publish(&self, events: &[Event]) -> Result<Published, BusError> {
        let mut report = Published::default();
        for event in events {
            let message = QueueMessage::Event { event: event.clone() };
            match self.send(&message, Duration::ZERO).await {
                Ok(()) => report.accepted.push(event.id.clone()),
                // The store is the queue: unreachable, not a refusal of the event.
                Err(e) => tracing::warn!(error = %e, "local publish failed"),
            }
        }
        Ok(report)
    }
}
