//! The local server's composition: SQLite store, the outbox relay as bus, the store-backed queue
//! for delivery retries, the real webhook client, and the background loops that stand in for
//! EventBridge schedules and SQS.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

mod relay;

pub use relay::OutboxRelay;

use crate::adapters::local_queue::StoreQueue;
use crate::adapters::sqlite::SqliteStore;
use crate::config::{settings_from_env, webhook_client, ConfigError};
use crate::ports::{Clock, Store, SystemClock};
use crate::service::{Countersign, Settings, Wiring};

/// Messages claimed per poll of the local queue.
const BATCH: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open the data directory: {0}")]
    Store(#[from] crate::ports::StoreError),
}

/// The service over any store: committed events fanned out by the outbox relay
/// (`OutboxRelay`), the store-backed queue for delivery retries, and a real webhook client.
pub fn wire(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: Settings,
) -> Result<(Arc<Countersign>, StoreQueue), ConfigError> {
    let queue = StoreQueue::new(store.clone());
    let relay = Arc::new(OutboxRelay::new(store.clone()));
    let wiring = Wiring {
        bus: relay.clone(),
        queue: Arc::new(queue.clone()),
        client: Arc::new(webhook_client(&settings)?),
        ..Wiring::default()
    };
    let service = Arc::new(Countersign::new(store, clock, settings).with_wiring(wiring));
    relay.attach(&service);
    Ok((service, queue))
}

/// The local server's service on `dir/countersign.db`, settings from the environment.
pub fn open(dir: &Path) -> Result<(Arc<Countersign>, StoreQueue), LocalError> {
    open_with(dir, settings_from_env()?)
}

/// The local server's service on `dir/countersign.db` with `settings`.
pub fn open_with(dir: &Path, settings: Settings) -> Result<(Arc<Countersign>, StoreQueue), LocalError> {
    let store = SqliteStore::open_dir(dir)?;
    Ok(wire(Arc::new(store), Arc::new(SystemClock), settings)?)
}

/// Works the local queue forever: claim due messages, handle them concurrently, acknowledge the
/// ones handled. Unacknowledged ones come back after their lease (as SQS redelivers).
pub async fn run_queue_worker(service: Arc<Countersign>, queue: StoreQueue, poll: Duration) {
    loop {
        let batch = match queue.receive(BATCH).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::error!(error = %e, "local queue receive failed");
                Vec::new()
            }
        };
        let full = batch.len() == BATCH;
        // At most BATCH at once: the batch is that long.
        let handled = futures::future::join_all(batch.iter().map(|received| {
            let service = &service;
            async move {
                match service.handle_message(&received.message).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(error = %e, "message failed; it will be retried");
                        false
                    }
                }
            }
        }))
        .await;
        let done: Vec<_> = batch.iter().zip(handled).filter_map(|(r, ok)| ok.then_some(r)).collect();
        if let Err(e) = queue.ack_all(&done).await {
            tracing::warn!(error = %e, "local queue ack failed");
        }
        if !full {
            tokio::time::sleep(poll).await;
        }
    }
}

/// Runs the scheduled sweep every `every`, as the EventBridge schedule does in AWS.
pub async fn run_sweeper(service: Arc<Countersign>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        match service.sweep(None, 100).await {
            Ok(summary) if summary.approvals_expired + summary.events_republished > 0 => {
                tracing::info!(?summary, "sweep");
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "sweep failed"),
        }
    }
}
