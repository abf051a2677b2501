//! The transactional outbox: events commit with their change, then go to the bus; the sweep
//! re-publishes any left behind (a function that died between commit and publish).

use std::time::Duration;

use chrono::Duration as ChronoDuration;

use super::records::{self, sort_time, Stored, DUE_OUTBOX};
use super::Countersign;
use crate::domain::event::Event;
use crate::error::AppResult;
use crate::ports::{Index, Query};

/// Events the sweep considers stuck once they are this old and still unpublished.
pub const DEFAULT_REPUBLISH_AFTER: Duration = Duration::from_secs(60);

impl Countersign {
    /// Publishes freshly committed events and marks the published ones; failures only log, the
    /// events stay in the outbox for the sweep.
    pub(crate) async fn publish_committed(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        // Just created: each event's stored version is 1.
        let events = events.into_iter().map(|value| Stored { value, version: 1 }).collect();
        if let Err(e) = self.publish_and_mark(events).await {
            tracing::warn!(error = %e, "publishing after commit failed; the sweep will retry");
        }
    }

    async fn publish_and_mark(&self, events: Vec<Stored<Event>>) -> AppResult<usize> {
        let plain: Vec<Event> = events.iter().map(|e| e.value.clone()).collect();
        let published = self.wiring.bus.publish(&plain).await?;
        let now = self.now();
        let mut marks = Vec::new();
        for stored in events.into_iter().filter(|e| published.contains(&e.value.id)) {
            let mut event = stored.value;
            event.published_at = Some(now);
            marks.push(records::update(&event, stored.version)?);
        }
        // Marks are independent; one lost race (another publisher marked first) must not block
        // the others, so write them one by one and count only those that landed.
        let mut count = 0;
        for mark in marks {
            match self.store.transact(vec![mark]).await {
                Ok(()) => count += 1,
                Err(e) => tracing::debug!(error = %e, "event already marked published"),
            }
        }
        Ok(count)
    }

    /// Re-publishes up to `limit` events unpublished for longer than the threshold, oldest first.
    pub async fn republish_stuck(&self, limit: usize) -> AppResult<usize> {
        let cutoff = self.now()
            - ChronoDuration::from_std(self.settings.republish_after).unwrap_or_else(|_| ChronoDuration::seconds(60));
        let mut query = Query::new(Index::Due, DUE_OUTBOX, limit.max(1));
        query.newest_first = false;
        query.sk_at_most = Some(format!("{}#~", sort_time(cutoff)));
        let stuck = self.store.query(query).await?;
        if stuck.is_empty() {
            return Ok(0);
        }
        let events = stuck
            .into_iter()
            .filter_map(|item| {
                let pk = item.key.pk.clone();
                records::decode::<Event>(item)
                    .map_err(|e| tracing::error!(item = %pk, error = %e, "unreadable outbox event; skipped"))
                    .ok()
            })
            .collect();
        self.publish_and_mark(events).await
    }
}
