//! The transactional outbox: events commit with their change, then go to the bus; the sweep
//! re-publishes any left behind (a function that died between commit and publish).

use std::time::Duration;

use chrono::Duration as ChronoDuration;

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::event::Event;
use crate::domain::metric::Metric;
use crate::error::AppResult;
use crate::layout::{self, sort_time, Stored, DUE_OUTBOX};
use crate::ports::{Clock, Index, Query, Store};
use crate::service::{Countersign, Wiring};

/// Events the sweep considers stuck once they are this old and still unpublished.
pub const DEFAULT_REPUBLISH_AFTER: Duration = Duration::from_secs(60);

/// Outbox marks written in one request (DynamoDB transactions hold up to 100 items).
const MARKS_PER_REQUEST: usize = 25;

/// Publishes committed events to the bus and marks them in the outbox.
pub(crate) struct Publisher {
    store: Arc<dyn Store>,
    wiring: Wiring,
    clock: Arc<dyn Clock>,
}

#[async_trait]
impl crate::engine::Outbox for Publisher {
    /// Publishes freshly committed events and marks the published ones; failures only log, the
    /// events stay in the outbox for the sweep.
    async fn published(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        // Just created: each event's stored version is 1.
        let events = events.into_iter().map(|value| Stored { value, version: 1 }).collect();
        if let Err(e) = self.publish_and_mark(events).await {
            tracing::warn!(error = %e, "publishing after commit failed; the sweep will retry");
        }
    }
}

impl Publisher {
    pub fn new(store: Arc<dyn Store>, wiring: Wiring, clock: Arc<dyn Clock>) -> Self {
        Publisher { store, wiring, clock }
    }
    /// Publishes, then records each event's fate: published ones marked, refused ones counted
    /// (and parked at `MAX_PUBLISH_FAILURES`, with a metric), unreported ones left for the sweep.
    /// Returns how many were published.
    async fn publish_and_mark(&self, events: Vec<Stored<Event>>) -> AppResult<usize> {
        let plain: Vec<Event> = events.iter().map(|e| e.value.clone()).collect();
        let report = self.wiring.bus.publish(&plain).await?;
        let now = self.clock.now();
        let mut marks = Vec::new();
        let mut parked = 0;
        for stored in events {
            let mut event = stored.value;
            if report.accepted.contains(&event.id) {
                event.published_at = Some(now);
            } else if let Some((_, reason)) = report.refused.iter().find(|(id, _)| *id == event.id) {
                if event.refused(reason, now) {
                    parked += 1;
                    tracing::error!(event = %event.id, kind = %event.kind, %reason, "outbox event parked after repeated refusals");
                } else {
                    tracing::warn!(event = %event.id, failures = event.publish_failures, %reason, "bus refused event");
                }
            } else {
                continue;
            }
            marks.push(layout::update(&event, stored.version)?);
        }
        if parked > 0 {
            self.wiring.metrics.record(Metric::OutboxEventsParked, parked as f64);
        }
        // All marks in one request; when that loses a race (another publisher marked one of
        // them first), the rest must not be held up, so each is written alone, all at once.
        if (2..=MARKS_PER_REQUEST).contains(&marks.len()) && self.store.transact(marks.clone()).await.is_ok() {
            return Ok(report.accepted.len());
        }
        futures::future::join_all(marks.into_iter().map(|mark| async {
            if let Err(e) = self.store.transact(vec![mark]).await {
                tracing::debug!(error = %e, "event already marked");
            }
        }))
        .await;
        Ok(report.accepted.len())
    }
}

impl Countersign {
    /// Publishes freshly committed events (as the engine does after each commit).
    #[cfg(all(test, feature = "local"))]
    pub(crate) async fn publish_committed(&self, events: Vec<Event>) {
        use crate::engine::Outbox as _;
        Publisher::new(self.store().clone(), self.wiring.clone(), self.engine.clock()).published(events).await
    }

    /// When the oldest event still waiting in the outbox was created (`None`: none waits), for
    /// the `OutboxUnpublishedAge` metric. The sparse due index holds unpublished events only,
    /// oldest first in each shard: one item read per shard, so it costs the same however many
    /// wait, and it reads the store alone, so it is measured while the bus is down too.
    pub(crate) async fn oldest_unpublished(&self) -> AppResult<Option<chrono::DateTime<chrono::Utc>>> {
        let firsts = futures::future::join_all(layout::due_partitions(DUE_OUTBOX).into_iter().map(|partition| async {
            let mut query = Query::new(Index::Due, partition, 1);
            query.newest_first = false;
            let items = self.store().query(query).await?;
            Ok::<_, crate::error::AppError>(
                items
                    .into_iter()
                    .filter_map(|item| layout::decode::<Event>(item).ok())
                    .map(|e| e.value.created_at)
                    .next(),
            )
        }))
        .await;
        let mut oldest = None;
        for first in firsts {
            oldest = match (oldest, first?) {
                (Some(a), Some(b)) => Some(std::cmp::min(a, b)),
                (a, b) => a.or(b),
            };
        }
        Ok(oldest)
    }

    /// Re-publishes events unpublished for longer than the threshold, oldest first, every shard
    /// page by page after its own cursor: refused events are passed over (and counted), so they
    /// never hold up the ones behind them.
    pub(crate) async fn republish_phase(
        &self,
        page: usize,
        time_left: &(dyn Fn() -> bool + Sync),
    ) -> AppResult<(usize, bool)> {
        let cutoff = self.now()
            - ChronoDuration::from_std(self.settings.republish_after).unwrap_or_else(|_| ChronoDuration::seconds(60));
        let cutoff = format!("{}#~", sort_time(cutoff));
        let cutoff = &cutoff;
        self.each_due_page(DUE_OUTBOX, page, time_left, move |partition, after| async move {
            let (stuck, read, last) = self.due_page(&partition, cutoff, page, after).await?;
            let events = stuck
                .into_iter()
                .filter_map(|item| {
                    let pk = item.key.pk.clone();
                    layout::decode::<Event>(item)
                        .map_err(|e| tracing::error!(item = %pk, error = %e, "unreadable outbox event; skipped"))
                        .ok()
                })
                .collect::<Vec<_>>();
            let published = if events.is_empty() {
                0
            } else {
                Publisher::new(self.store().clone(), self.wiring.clone(), self.engine.clock())
                    .publish_and_mark(events)
                    .await?
            };
            Ok((published, read, last))
        })
        .await
    }
}
