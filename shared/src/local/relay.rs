//! The local server's event bus: the outbox relay. Publishing hands the committed events to a
//! background task that, in one transaction per publish, enqueues each event's message on the
//! store-backed queue and marks the outbox event published, so the request that committed them
//! answers after its own commit alone. Nothing is lost to a crash in between: an event not yet
//! relayed is still unpublished in the outbox, and the sweep re-publishes it.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;

use crate::adapters::local_queue::StoreQueue;
use crate::domain::event::Event;
use crate::ports::{BusError, EventBus, Published, QueueMessage, Store, Write};
use crate::service::records;

pub struct OutboxRelay {
    store: Arc<dyn Store>,
}

impl OutboxRelay {
    pub fn new(store: Arc<dyn Store>) -> Self {
        OutboxRelay { store }
    }
}

/// The queue message and the published mark of one event, applied together or not at all.
/// Every local event is relayed from version 1 (the local bus never refuses one): a second
/// relay of the same event finds it marked and enqueues nothing.
fn relay_writes(event: &Event) -> Option<[Write; 2]> {
    let message = StoreQueue::message_write(&QueueMessage::Event { event: event.clone() }, std::time::Duration::ZERO);
    let marked = Event { published_at: Some(Utc::now()), ..event.clone() };
    match (message, records::update(&marked, 1)) {
        (Ok(message), Ok(mark)) => Some([message, mark]),
        (Err(e), _) => {
            tracing::error!(event = %event.id, error = %e, "event not relayed");
            None
        }
        (_, Err(e)) => {
            tracing::error!(event = %event.id, error = %e, "event not relayed");
            None
        }
    }
}

async fn relay(store: Arc<dyn Store>, events: Vec<Event>) {
    let writes: Vec<Write> = events.iter().filter_map(relay_writes).flatten().collect();
    if writes.is_empty() || store.transact(writes).await.is_ok() || events.len() == 1 {
        return;
    }
    // One of them was relayed already (a re-publish racing this one): the others one by one.
    for event in &events {
        if let Some(writes) = relay_writes(event) {
            if let Err(e) = store.transact(writes.to_vec()).await {
                tracing::debug!(event = %event.id, error = %e, "event already relayed");
            }
        }
    }
}

#[async_trait]
impl EventBus for OutboxRelay {
    /// Reports nothing accepted: the relay marks what it relays, in the same transaction.
    async fn publish(&self, events: &[Event]) -> Result<Published, BusError> {
        if !events.is_empty() {
            tokio::spawn(relay(self.store.clone(), events.to_vec()));
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
    use crate::domain::ids::OrgId;
    use crate::service::records::{decode, Stored};

    async fn queued(store: &SqliteStore) -> usize {
        let queue = StoreQueue::new(Arc::new(store.clone()));
        queue.receive(100).await.expect("receive").len()
    }

    #[tokio::test]
    async fn a_relayed_event_is_queued_once_and_marked_published() {
        let sqlite = SqliteStore::in_memory().expect("store");
        let store: Arc<dyn Store> = Arc::new(sqlite.clone());
        let event = Event::new(&OrgId::generate(), "approval.created", json!({"n": 1}), Utc::now());
        store.transact(vec![records::create(&event).expect("event")]).await.expect("outbox");
        let relay = OutboxRelay::new(store.clone());
        assert_eq!(relay.publish(std::slice::from_ref(&event)).await.expect("publish"), Published::default());
        // A re-publish racing the first (the sweep): nothing more is queued.
        relay.publish(std::slice::from_ref(&event)).await.expect("publish");
        let marked = async {
            loop {
                let item = store.get(&records::Record::key(&event)).await.expect("get").expect("event");
                let stored: Stored<Event> = decode(item).expect("decode");
                if stored.value.published_at.is_some() {
                    return stored.version;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let version = tokio::time::timeout(Duration::from_secs(5), marked).await.expect("relayed");
        assert_eq!(version, 2);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(queued(&sqlite).await, 1, "one message for the event");
    }
}
