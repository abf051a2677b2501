//! The local server's composition: SQLite store, the outbox relay as bus, the store-backed queue
//! for delivery retries, the real webhook client, and the background loops that stand in for
//! EventBridge schedules and SQS.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub mod first_run;
mod relay;

pub use relay::OutboxRelay;

use tokio::sync::{mpsc, Semaphore};

use crate::adapters::local_queue::{Received, StoreQueue};
use crate::adapters::sqlite::SqliteStore;
use crate::config::{settings_from_env, webhook_client, ConfigError};
use crate::ports::{Clock, Store, SystemClock};
use crate::service::{Countersign, Settings, Wiring};

/// Most messages claimed per poll of the local queue (and acknowledged in one transaction).
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
    wire_with(store, clock, settings, |_| {})
}

/// `wire`, with the outbound wiring (Slack's Web API, a mailer) then changed by `customize`.
pub fn wire_with(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: Settings,
    customize: impl FnOnce(&mut Wiring),
) -> Result<(Arc<Countersign>, StoreQueue), ConfigError> {
    let queue = StoreQueue::new(store.clone());
    let relay = Arc::new(OutboxRelay::new(store.clone()));
    let mut wiring = Wiring {
        bus: relay.clone(),
        queue: Arc::new(queue.clone()),
        client: Arc::new(webhook_client(&settings)?),
        ..Wiring::default()
    };
    crate::config::notify_wiring(&mut wiring)?;
    customize(&mut wiring);
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

/// Messages the worker handles at once. A message holds its place only for one attempt, and
/// an organisation's sends hold at most `PLACES_PER_ORG` places for longer than a moment (its lines' slots
/// and waiting are bounded per organisation, the rest bounce back to the queue at once:
/// `service::endpoints`), so organisations whose endpoints hang hold a share, never all.
const IN_FLIGHT: usize = 256;

/// Works the local queue forever: claim due messages, handle each on its own task (so one slow
/// message never holds the others back), acknowledge the ones handled, many in one transaction.
/// Unacknowledged ones come back after their lease (as SQS redelivers). First, the deliveries
/// a previous process claimed are queued again for when their claims run out.
pub async fn run_queue_worker(service: Arc<Countersign>, queue: StoreQueue, poll: Duration) {
    let (handled, to_ack) = mpsc::channel(IN_FLIGHT);
    tokio::spawn(acknowledge(queue.clone(), to_ack));
    match service.requeue_after_restart().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(deliveries = n, "re-queued the deliveries a previous process had claimed"),
        Err(e) => tracing::warn!(error = %e, "re-queueing claimed deliveries failed; the sweep will"),
    }
    let places = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        // Wait for a free place, then claim as many messages as there are places.
        let Ok(first) = places.clone().acquire_owned().await else { return };
        let room = (places.available_permits() + 1).min(BATCH);
        let batch = match queue.receive(room).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::error!(error = %e, "local queue receive failed");
                Vec::new()
            }
        };
        let full = batch.len() == room;
        let mut first = Some(first);
        for received in batch {
            let Some(place) = first.take().or_else(|| places.clone().try_acquire_owned().ok()) else { break };
            let (service, handled) = (service.clone(), handled.clone());
            tokio::spawn(async move {
                let _place = place;
                match service.handle_message(&received.message).await {
                    Ok(()) => {
                        let _ = handled.send(received).await;
                    }
                    Err(e) => tracing::warn!(error = %e, "message failed; it will be retried"),
                }
            });
        }
        drop(first);
        if !full {
            tokio::time::sleep(poll).await;
        }
    }
}

/// Acknowledges handled messages, whatever has arrived meanwhile in one transaction.
async fn acknowledge(queue: StoreQueue, mut handled: mpsc::Receiver<Received>) {
    while let Some(first) = handled.recv().await {
        let mut done = vec![first];
        while done.len() < BATCH {
            match handled.try_recv() {
                Ok(more) => done.push(more),
                Err(_) => break,
            }
        }
        if let Err(e) = queue.ack_all(&done.iter().collect::<Vec<_>>()).await {
            tracing::warn!(error = %e, "local queue ack failed");
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
