//! The local server's durable queue, kept in the same store: queued messages survive a restart.
//! It is also the local "event bus": publishing an event enqueues it, as EventBridge's rule does
//! with the SQS queue in AWS.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::domain::event::Event;
use crate::ports::{
    Body, BusError, DeliveryQueue, EventBus, Expect, Index, IndexKeys, Item, Key, Published, Query, QueueError,
    QueueMessage, Store, Write,
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
            body: Body::encode(message).map_err(|e| e.to_string())?,
            counters: &[],
            compact: false,
        })
    }

    /// The write that enqueues `message`, visible after `delay` (for a caller that commits it
    /// with other writes).
    pub fn message_write(message: &QueueMessage, delay: Duration) -> Result<Write, QueueError> {
        let key = Key::new(format!("QUEUE#{}", ulid::Ulid::new()), "QUEUE");
        let visible = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
        let item = Self::item(key, 1, message, visible).map_err(QueueError)?;
        Ok(Write::Put { item, expect: Expect::Absent })
    }

    /// Claims up to `max` visible messages (each hidden for the lease while it is worked on).
    pub async fn receive(&self, max: usize) -> Result<Vec<Received>, QueueError> {
        let now = Utc::now();
        let mut query = Query::new(Index::Due, PARTITION, max.max(1));
        query.newest_first = false;
        query.sk_at_most = Some(format!("{}#~", at(now)));
        let due = self.store.query(query).await.map_err(|e| QueueError(e.to_string()))?;
        let lease = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
        let mut claims = Vec::new();
        let mut unreadable = Vec::new();
        for item in due {
            let Ok(message) = item.body.decode::<QueueMessage>() else {
                // Unreadable: drop it rather than loop on it forever.
                unreadable.push(Write::Delete { key: item.key.clone(), expect: Expect::Version(item.version) });
                continue;
            };
            let Ok(next) = Self::item(item.key.clone(), item.version + 1, &message, lease) else { continue };
            claims.push((Write::Put { item: next, expect: Expect::Version(item.version) }, message));
        }
        if !unreadable.is_empty() {
            let _ = self.store.transact(unreadable).await;
        }
        // All claims in one transaction; if another worker took one of them, each on its own.
        let all: Vec<Write> = claims.iter().map(|(w, _)| w.clone()).collect();
        let taken = if all.is_empty() || self.store.transact(all).await.is_ok() {
            claims
        } else {
            let mut taken = Vec::new();
            for (write, message) in claims {
                if self.store.transact(vec![write.clone()]).await.is_ok() {
                    taken.push((write, message));
                }
            }
            taken
        };
        Ok(taken
            .into_iter()
            .filter_map(|(write, message)| match write {
                Write::Put { item, .. } => Some(Received { message, key: item.key, version: item.version }),
                _ => None,
            })
            .collect())
    }

    /// Removes messages whose work is done, in one transaction (each on its own if that fails).
    pub async fn ack_all(&self, received: &[&Received]) -> Result<(), QueueError> {
        let deletes: Vec<Write> =
            received.iter().map(|r| Write::Delete { key: r.key.clone(), expect: Expect::Version(r.version) }).collect();
        if deletes.is_empty() || self.store.transact(deletes).await.is_ok() {
            return Ok(());
        }
        for r in received {
            self.ack(r).await?;
        }
        Ok(())
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
        let write = Self::message_write(message, delay)?;
        self.store.transact(vec![write]).await.map_err(|e| QueueError(e.to_string()))
    }
}

#[async_trait]
impl EventBus for StoreQueue {
    async fn publish(&self, events: &[Event]) -> Result<Published, BusError> {
        // One transaction for all of them: one commit instead of one per event.
        let mut writes = Vec::with_capacity(events.len());
        let mut report = Published::default();
        for event in events {
            match Self::message_write(&QueueMessage::Event { event: event.clone() }, Duration::ZERO) {
                Ok(write) => {
                    writes.push(write);
                    report.accepted.push(event.id.clone());
                }
                Err(e) => report.refused.push((event.id.clone(), e.to_string())),
            }
        }
        if writes.is_empty() {
            return Ok(report);
        }
        match self.store.transact(writes).await {
            Ok(()) => Ok(report),
            // The store is the queue: unreachable, not a refusal of the events.
            Err(e) => {
                tracing::warn!(error = %e, "local publish failed");
                Ok(Published { accepted: vec![], refused: report.refused })
            }
        }
    }
}
