//! Event wiring for tests: the local queue (as the local server runs it) or real EventBridge and
//! SQS in ministack with the webhooks Lambda handler polling the queue; and a real webhook
//! receiver (Python, verifying with the `standardwebhooks` library).

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::config::{Credentials, Region};
use countersign_core::adapters::eventbridge::{EventBridgeBus, EVENT_SOURCE};
use countersign_core::adapters::sqs::SqsQueue;
use countersign_core::domain::event::Event;
use countersign_core::ports::{BusError, DeliveryQueue, EventBus, Published};
use countersign_core::service::{Countersign, Wiring};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

pub const MINISTACK_ENV: &str = "COUNTERSIGN_TEST_MINISTACK_ENDPOINT";
pub const PYTHON_ENV: &str = "COUNTERSIGN_TEST_PYTHON";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStack {
    /// The local server's store-backed queue and worker.
    Local,
    /// EventBridge bus → rule → SQS queue in ministack, drained by the webhooks Lambda handler.
    Aws,
}

/// A bus that can be told to fail, to inject a crash between commit and publish.
pub struct SwitchableBus {
    inner: Arc<dyn EventBus>,
    pub failing: AtomicBool,
}

#[async_trait]
impl EventBus for SwitchableBus {
    async fn publish(&self, events: &[Event]) -> Result<Published, BusError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(BusError("injected publisher failure".into()));
        }
        self.inner.publish(events).await
    }
}

async fn aws_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "countersign-tests"))
        .load()
        .await
}

/// Builds the event wiring for `stack` and starts its consumer; returns the wiring and the
/// switchable bus.
pub async fn wire_events(
    stack: EventStack,
    store: Arc<dyn countersign_core::ports::Store>,
    client: Arc<dyn countersign_core::ports::WebhookClient>,
    service_slot: Arc<tokio::sync::OnceCell<Arc<Countersign>>>,
) -> (Wiring, Arc<SwitchableBus>) {
    match stack {
        EventStack::Local => {
            let queue = countersign_core::adapters::local_queue::StoreQueue::new(store);
            let bus = Arc::new(SwitchableBus { inner: Arc::new(queue.clone()), failing: AtomicBool::new(false) });
            let worker_queue = queue.clone();
            tokio::spawn(async move {
                let service = service_of(&service_slot).await;
                countersign_core::local::run_queue_worker(service, worker_queue, Duration::from_millis(20)).await;
            });
            (Wiring { bus: bus.clone(), queue: Arc::new(queue), client, ..Wiring::default() }, bus)
        }
        EventStack::Aws => {
            let endpoint = std::env::var(MINISTACK_ENV)
                .unwrap_or_else(|_| panic!("{MINISTACK_ENV} is not set: start ministack (scripts/test does)"));
            let config = aws_config(&endpoint).await;
            let eb = aws_sdk_eventbridge::Client::new(&config);
            let sqs = aws_sdk_sqs::Client::new(&config);
            let name = format!("cs-test-{}", ulid::Ulid::new().to_string().to_lowercase());
            eb.create_event_bus().name(&name).send().await.expect("create bus");
            let queue_url =
                sqs.create_queue().queue_name(&name).send().await.expect("create queue").queue_url.expect("url");
            let attrs = sqs
                .get_queue_attributes()
                .queue_url(&queue_url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .send()
                .await
                .expect("queue arn");
            let arn = attrs
                .attributes
                .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn).cloned())
                .expect("arn");
            eb.put_rule()
                .name(&name)
                .event_bus_name(&name)
                .event_pattern(template_event_pattern())
                .send()
                .await
                .expect("rule");
            eb.put_targets()
                .rule(&name)
                .event_bus_name(&name)
                .targets(aws_sdk_eventbridge::types::Target::builder().id("webhooks").arn(arn).build().expect("target"))
                .send()
                .await
                .expect("target");
            let bus = Arc::new(SwitchableBus {
                inner: Arc::new(EventBridgeBus::new(eb, &name)),
                failing: AtomicBool::new(false),
            });
            let queue: Arc<dyn DeliveryQueue> = Arc::new(SqsQueue::new(sqs.clone(), &queue_url));
            tokio::spawn(poll_sqs(sqs, queue_url, service_slot));
            (Wiring { bus: bus.clone(), queue, client, ..Wiring::default() }, bus)
        }
    }
}

/// The rule's event pattern as `infra/template.yaml` defines it (the template is the single
/// source); it must select what the publisher sends.
fn template_event_pattern() -> String {
    let template: serde_yaml_ng::Value = serde_yaml_ng::from_str(crate::template::TEMPLATE).expect("template");
    let pattern = &template["Resources"]["EventsToWebhookQueueRule"]["Properties"]["EventPattern"];
    let pattern: Value = serde_json::to_value(pattern).expect("pattern as JSON");
    assert_eq!(pattern["source"], json!([EVENT_SOURCE]), "the template's rule must match the publisher's source");
    pattern.to_string()
}

/// The service, once the test app has built it (consumers start before it exists).
async fn service_of(slot: &tokio::sync::OnceCell<Arc<Countersign>>) -> Arc<Countersign> {
    loop {
        if let Some(service) = slot.get() {
            return service.clone();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Stands in for Lambda's SQS event source: receive, hand the batch to the webhooks handler,
/// delete what it did not report as failed.
async fn poll_sqs(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    service_slot: Arc<tokio::sync::OnceCell<Arc<Countersign>>>,
) {
    let service = service_of(&service_slot).await;
    loop {
        let Ok(out) =
            sqs.receive_message().queue_url(&queue_url).max_number_of_messages(10).wait_time_seconds(1).send().await
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            continue;
        }
        let records: Vec<Value> = messages
            .iter()
            .map(|m| json!({"messageId": m.message_id, "receiptHandle": m.receipt_handle, "body": m.body, "eventSource": "aws:sqs"}))
            .collect();
        let event: aws_lambda_events::sqs::SqsEvent =
            serde_json::from_value(json!({"Records": records})).expect("sqs event");
        let response = countersign_webhooks::handler::handle(&service, event).await;
        let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        for m in &messages {
            if !failed.contains(&m.message_id.as_deref().unwrap_or_default()) {
                if let Some(handle) = &m.receipt_handle {
                    let _ = sqs.delete_message().queue_url(&queue_url).receipt_handle(handle).send().await;
                }
            }
        }
    }
}

/// The Python receiver process.
pub struct Receiver {
    pub base: String,
    http: reqwest::Client,
    _child: tokio::process::Child,
}

impl Receiver {
    pub async fn start() -> Self {
        let python = std::env::var(PYTHON_ENV).unwrap_or_else(|_| {
            panic!("{PYTHON_ENV} is not set: point it at a Python with standardwebhooks (scripts/test does)")
        });
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/receiver/receiver.py");
        let mut child = tokio::process::Command::new(python)
            .arg(script)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start receiver");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("receiver start timeout")
            .expect("read")
            .expect("receiver printed nothing");
        let port = line.strip_prefix("READY ").expect("READY line").trim().to_string();
        Receiver { base: format!("http://127.0.0.1:{port}"), http: reqwest::Client::new(), _child: child }
    }

    pub fn url(&self, name: &str) -> String {
        format!("{}/hook/{name}", self.base)
    }

    pub async fn control(&self, name: &str, secret: &str, mode: &str) {
        self.http
            .post(format!("{}/_control/{name}", self.base))
            .json(&json!({"secret": secret, "mode": mode}))
            .send()
            .await
            .expect("control");
    }

    pub async fn received(&self, name: &str) -> Vec<Value> {
        self.http
            .get(format!("{}/_received/{name}", self.base))
            .send()
            .await
            .expect("received")
            .json()
            .await
            .expect("json")
    }

    /// Waits until `name` has received at least `n` deliveries (panics after `timeout`).
    pub async fn wait_for(&self, name: &str, n: usize, timeout: Duration) -> Vec<Value> {
        self.wait_for_where(name, n, timeout, |_| true).await
    }

    /// Waits until `name` has received at least `n` deliveries that `keep` keeps, and returns
    /// those (panics after `timeout`).
    pub async fn wait_for_where(
        &self,
        name: &str,
        n: usize,
        timeout: Duration,
        keep: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let got: Vec<Value> = self.received(name).await.into_iter().filter(|d| keep(d)).collect();
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name}: {} of {n} deliveries after {timeout:?}: {got:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
