//! Adapters that do nothing, for wiring without a bus, a queue or an outbound HTTP client: events
//! wait in the outbox, deliveries are not sent, but webhook targets are still checked.

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::event::Event;
use crate::domain::metric::Metric;
use crate::domain::ssrf::TargetError;
use crate::domain::webhook::SignedHeaders;
use crate::ports::{
    BusError, DeliveryQueue, EventBus, HttpOutcome, Metrics, Published, QueueError, QueueMessage, SendError,
    WebhookClient,
};

/// Publishes nothing: events wait in the outbox for the sweep.
pub struct NoBus;

#[async_trait]
impl EventBus for NoBus {
    async fn publish(&self, _: &[Event]) -> Result<Published, BusError> {
        Ok(Published::default())
    }
}

/// Records nothing but a log line (where no metrics sink is wired: the local server, tests).
pub struct NoMetrics;

impl Metrics for NoMetrics {
    fn record(&self, metric: Metric, value: f64) {
        let (dimension, dimension_value) = metric.dimension().unwrap_or_default();
        tracing::debug!(
            metric = metric.name(),
            dimension,
            dimension_value,
            value,
            unit = metric.unit().as_str(),
            "metric"
        );
    }
}

/// Accepts nothing.
pub struct NoQueue;

#[async_trait]
impl DeliveryQueue for NoQueue {
    fn max_delay(&self) -> Duration {
        Duration::from_secs(900)
    }
    async fn send(&self, _: &QueueMessage, _: Duration) -> Result<(), QueueError> {
        Err(QueueError("no webhook queue configured".into()))
    }
}

/// Sends nothing, but checks targets as the real client does (private targets refused).
pub struct NoClient;

#[async_trait]
impl WebhookClient for NoClient {
    async fn check_host(&self, host: &str, port: u16) -> Result<(), TargetError> {
        super::http_client::check_resolved(host, port, false).await
    }

    async fn post(&self, _: &str, _: &SignedHeaders, _: Vec<u8>) -> Result<HttpOutcome, SendError> {
        Err(SendError::Failed("no webhook client configured".into()))
    }
}

/// Reaches no Slack: every call is `Unavailable` (a service wired without Slack's Web API; the
/// deployments and the local server always wire it, see `config::notify_wiring`).
pub struct NoSlack;

#[async_trait]
impl crate::ports::notify::SlackApi for NoSlack {
    async fn call(
        &self,
        _: &str,
        method: &str,
        _: &serde_json::Value,
    ) -> Result<serde_json::Value, crate::ports::notify::SlackError> {
        Err(crate::ports::notify::SlackError::Unavailable(format!("no Slack Web API is wired for {method}")))
    }
}
