//! EventBridge publisher: PutEvents in batches of ten, failed entries retried.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_eventbridge::error::DisplayErrorContext;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;

use crate::domain::event::Event;
use crate::domain::ids::EventId;
use crate::ports::{BusError, EventBus};

/// `source` of every event Countersign puts on the bus (the rule matches on it).
pub const EVENT_SOURCE: &str = "countersign";
/// The IAM actions this adapter's requests need, on the bus (compared with each function's policy
/// in `infra/template.yaml` by `tests/tests/iam.rs`): `publish` is PutEvents.
pub const IAM_ACTIONS: &[&str] = &["events:PutEvents"];
const BATCH: usize = 10;
const ATTEMPTS: u32 = 3;

pub struct EventBridgeBus {
    client: Client,
    bus_name: String,
}

impl EventBridgeBus {
    pub fn new(client: Client, bus_name: impl Into<String>) -> Self {
        EventBridgeBus { client, bus_name: bus_name.into() }
    }

    fn entry(&self, event: &Event) -> Result<PutEventsRequestEntry, BusError> {
        let detail = serde_json::to_string(event).map_err(|e| BusError(e.to_string()))?;
        Ok(PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus_name)
            .source(EVENT_SOURCE)
            .detail_type(&event.kind)
            .detail(detail)
            .build())
    }
}

#[async_trait]
impl EventBus for EventBridgeBus {
    async fn publish(&self, events: &[Event]) -> Result<Vec<EventId>, BusError> {
        let mut published = Vec::new();
        for batch in events.chunks(BATCH) {
            let mut pending: Vec<&Event> = batch.iter().collect();
            for attempt in 0..ATTEMPTS {
                if pending.is_empty() {
                    break;
                }
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
                let entries = pending.iter().map(|e| self.entry(e)).collect::<Result<Vec<_>, _>>()?;
                let out = match self.client.put_events().set_entries(Some(entries)).send().await {
                    Ok(out) => out,
                    Err(e) if attempt + 1 == ATTEMPTS => return Err(BusError(DisplayErrorContext(e).to_string())),
                    Err(_) => continue,
                };
                // Result entries line up with request entries; failed ones carry an error code.
                let results = out.entries.unwrap_or_default();
                let mut failed = Vec::new();
                for (i, event) in pending.iter().enumerate() {
                    match results.get(i) {
                        Some(r) if r.error_code.is_none() && r.event_id.is_some() => published.push(event.id.clone()),
                        _ => failed.push(*event),
                    }
                }
                pending = failed;
            }
        }
        Ok(published)
    }
}
