//! EventBridge publisher: PutEvents in batches of at most ten entries and 256 KB, failed entries
//! retried; each batch stands alone, so one refused event or batch never holds up the rest.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_eventbridge::error::{DisplayErrorContext, SdkError};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;

use crate::domain::event::Event;
use crate::ports::{BusError, EventBus, Published};

/// `source` of every event Countersign puts on the bus (the rule matches on it).
pub const EVENT_SOURCE: &str = "countersign";
/// The IAM actions this adapter's requests need, on the bus (compared with each function's policy
/// in `infra/template.yaml` by `tests/tests/iam.rs`): `publish` is PutEvents.
pub const IAM_ACTIONS: &[&str] = &["events:PutEvents"];
const BATCH: usize = 10;
/// PutEvents' limit on one request's entries, summed as EventBridge sizes them.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
const ATTEMPTS: u32 = 3;

/// An entry's size as EventBridge counts it: source, detail type and detail (UTF-8 bytes).
fn entry_size(detail: &str, kind: &str) -> usize {
    EVENT_SOURCE.len() + kind.len() + detail.len()
}

/// Splits `events` into batches of at most `BATCH` entries and `MAX_BATCH_BYTES`; an event too
/// large to send at all is refused on its own.
fn batches(events: &[(&Event, String)]) -> (Vec<Vec<usize>>, Vec<usize>) {
    let (mut batches, mut oversized) = (Vec::new(), Vec::new());
    let (mut current, mut bytes) = (Vec::new(), 0);
    for (i, (event, detail)) in events.iter().enumerate() {
        let size = entry_size(detail, &event.kind);
        if size > MAX_BATCH_BYTES {
            oversized.push(i);
            continue;
        }
        if current.len() == BATCH || bytes + size > MAX_BATCH_BYTES {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(i);
        bytes += size;
    }
    if !current.is_empty() {
        batches.push(current);
    }
    (batches, oversized)
}

pub struct EventBridgeBus {
    client: super::OnFirstUse<Client>,
    bus_name: String,
}

impl EventBridgeBus {
    pub fn new(client: Client, bus_name: impl Into<String>) -> Self {
        EventBridgeBus { client: super::OnFirstUse::new(Box::new(move || client)), bus_name: bus_name.into() }
    }

    /// The bus with its client built from `aws` by the first use (`OnFirstUse`).
    pub fn on_first_use(aws: aws_config::SdkConfig, bus_name: impl Into<String>) -> Self {
        EventBridgeBus {
            client: super::OnFirstUse::new(Box::new(move || Client::new(&aws))),
            bus_name: bus_name.into(),
        }
    }

    fn entry(&self, kind: &str, detail: &str) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus_name)
            .source(EVENT_SOURCE)
            .detail_type(kind)
            .detail(detail)
            .build()
    }

    /// Sends one batch with retries for its failed entries; records each event's fate. A call
    /// the bus refuses as a whole (a 4xx) refuses the batch; one it cannot be reached for leaves
    /// the batch unreported (retried by the sweep).
    async fn send_batch(&self, batch: &[&(&Event, String)], report: &mut Published) {
        let mut pending: Vec<&(&Event, String)> = batch.to_vec();
        let mut last_error = String::new();
        for attempt in 0..ATTEMPTS {
            if pending.is_empty() {
                return;
            }
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
            let entries = pending.iter().map(|(e, detail)| self.entry(&e.kind, detail)).collect::<Vec<_>>();
            let out = match self.client.put_events().set_entries(Some(entries)).send().await {
                Ok(out) => out,
                Err(SdkError::ServiceError(e)) if e.raw().status().is_client_error() => {
                    let reason = DisplayErrorContext(&e.into_err()).to_string();
                    report.refused.extend(pending.iter().map(|(ev, _)| (ev.id.clone(), reason.clone())));
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %DisplayErrorContext(&e), "PutEvents failed");
                    continue;
                }
            };
            // Result entries line up with request entries; failed ones carry an error code.
            let results = out.entries.unwrap_or_default();
            let mut failed = Vec::new();
            for (i, item) in pending.iter().enumerate() {
                match results.get(i) {
                    Some(r) if r.error_code.is_none() && r.event_id.is_some() => {
                        report.accepted.push(item.0.id.clone())
                    }
                    other => {
                        last_error = other
                            .and_then(|r| r.error_code.clone().zip(r.error_message.clone()))
                            .map_or_else(|| "no result entry".into(), |(c, m)| format!("{c}: {m}"));
                        failed.push(*item);
                    }
                }
            }
            pending = failed;
        }
        // Sent every time and refused every time: the sweep counts it against the event.
        report.refused.extend(pending.iter().map(|(ev, _)| (ev.id.clone(), last_error.clone())));
    }
}

#[async_trait]
impl EventBus for EventBridgeBus {
    async fn publish(&self, events: &[Event]) -> Result<Published, BusError> {
        let mut report = Published::default();
        let mut details = Vec::with_capacity(events.len());
        for event in events {
            match serde_json::to_string(event) {
                Ok(detail) => details.push((event, detail)),
                Err(e) => report.refused.push((event.id.clone(), e.to_string())),
            }
        }
        let (batches, oversized) = batches(&details);
        for i in oversized {
            let reason = format!("event is larger than PutEvents' {MAX_BATCH_BYTES} bytes");
            report.refused.push((details[i].0.id.clone(), reason));
        }
        for batch in batches {
            let batch: Vec<&(&Event, String)> = batch.iter().map(|i| &details[*i]).collect();
            self.send_batch(&batch, &mut report).await;
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::OrgId;

    #[test]
    fn batches_respect_count_and_size_and_set_oversized_events_apart() {
        let org = OrgId::generate();
        let now = chrono::Utc::now();
        let event = Event::new(&org, "payment.completed", serde_json::json!({}), now);
        let small: Vec<(&Event, String)> = (0..25).map(|_| (&event, "x".repeat(100))).collect();
        let (b, o) = batches(&small);
        assert_eq!((b.iter().map(Vec::len).collect::<Vec<_>>(), o.len()), (vec![10, 10, 5], 0));
        let big: Vec<(&Event, String)> = vec![
            (&event, "x".repeat(100 * 1024)),
            (&event, "x".repeat(100 * 1024)),
            (&event, "x".repeat(100 * 1024)),
            (&event, "x".repeat(300 * 1024)),
        ];
        let (b, o) = batches(&big);
        assert_eq!((b, o), (vec![vec![0, 1], vec![2]], vec![3]));
    }
}
