//! The metrics and the dashboard: the dashboard in `infra/template.yaml` graphs only what the
//! code emits, and the code emits every metric `domain::metric` lists. "Emits" is observed, not
//! declared: one scenario drives the real router (intake, approvals), the webhooks function's
//! handler and the expiry function's sweep on the embedded store, with a metrics sink that keeps
//! what it is given, through every decision and failure the metrics describe.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsEvent;
use countersign_core::adapters::emf::NAMESPACE;
use countersign_core::adapters::local_queue::StoreQueue;
use countersign_core::domain::email::EmailContent;
use countersign_core::domain::event::{Event, MAX_PUBLISH_FAILURES};
use countersign_core::domain::metric::{Metric, Outcome};
use countersign_core::domain::ssrf::TargetError;
use countersign_core::domain::webhook::SignedHeaders;
use countersign_core::ports::notify::{MailError, Mailer};
use countersign_core::ports::{
    BusError, EventBus, HttpOutcome, Metrics, Published, QueueMessage, SendError, WebhookClient,
};
use countersign_tests::template::template;
use countersign_tests::{Backend, TestApp};
use serde_json::{json, Value};
use serde_yaml_ng::Value as Yaml;

/// Keeps every value recorded.
#[derive(Default)]
struct Captured(Mutex<Vec<(Metric, f64)>>);

impl Metrics for Captured {
    fn record(&self, metric: Metric, value: f64) {
        self.0.lock().expect("metrics").push((metric, value));
    }
}

impl Captured {
    fn values(&self, metric: Metric) -> Vec<f64> {
        self.0.lock().expect("metrics").iter().filter(|(m, _)| *m == metric).map(|(_, v)| *v).collect()
    }

    /// (name, dimension) of everything recorded so far.
    fn emitted(&self) -> BTreeSet<Graphed> {
        self.0.lock().expect("metrics").iter().map(|(m, _)| graphed(*m)).collect()
    }
}

/// A metric as a dashboard names it: namespace, name, and its dimension (name, value) if any.
type Graphed = (String, String, Option<(String, String)>);

fn graphed(metric: Metric) -> Graphed {
    let dimension = metric.dimension().map(|(n, v)| (n.to_string(), v.to_string()));
    (NAMESPACE.to_string(), metric.name().to_string(), dimension)
}

/// What the bus does with what it is given.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum BusMode {
    /// Accepts and keeps every event.
    #[default]
    Up,
    /// Unreachable: publishing fails, events wait in the outbox.
    Down,
    /// Refuses every event for what it is (as EventBridge refuses a malformed entry).
    Refusing,
}

#[derive(Default)]
struct Bus {
    events: Mutex<Vec<Event>>,
    mode: Mutex<BusMode>,
}

impl Bus {
    fn set(&self, mode: BusMode) {
        *self.mode.lock().expect("bus") = mode;
    }
}

#[async_trait]
impl EventBus for Bus {
    async fn publish(&self, events: &[Event]) -> Result<Published, BusError> {
        let ids = events.iter().map(|e| e.id.clone());
        match *self.mode.lock().expect("bus") {
            BusMode::Down => Err(BusError("down for the test".into())),
            BusMode::Refusing => {
                Ok(Published { accepted: Vec::new(), refused: ids.map(|id| (id, "refused".into())).collect() })
            }
            BusMode::Up => {
                self.events.lock().expect("bus").extend(events.iter().cloned());
                Ok(Published { accepted: ids.collect(), refused: Vec::new() })
            }
        }
    }
}

/// Every webhook endpoint answers 503.
struct Unavailable;

#[async_trait]
impl WebhookClient for Unavailable {
    async fn check_host(&self, _: &str, _: u16) -> Result<(), TargetError> {
        Ok(())
    }

    async fn post(&self, _: &str, _: &SignedHeaders, _: Vec<u8>) -> Result<HttpOutcome, SendError> {
        Ok(HttpOutcome { status: 503, latency_ms: 1 })
    }
}

/// A mail server that refuses every recipient for good.
struct Refusing;

#[async_trait]
impl Mailer for Refusing {
    async fn send(&self, _: &str, _: &EmailContent) -> Result<(), MailError> {
        Err(MailError::Rejected("550 no such mailbox".into()))
    }
}

/// A vote (or an escalation) through the REST API; it must succeed.
async fn decide(app: &TestApp, key: &str, approval: &str, action: &str, body: Value) {
    let (status, answer) = app.post(&format!("/v1/approvals/{approval}/{action}"), key, body).await;
    assert_eq!(status, 200, "{action}: {answer}");
}

/// Message bodies as one SQS batch the webhooks function receives.
fn sqs_batch(bodies: &[String]) -> SqsEvent {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| json!({"messageId": format!("m{i}"), "body": body, "eventSource": "aws:sqs"}))
        .collect();
    serde_json::from_value(json!({"Records": records})).expect("SQS event")
}

/// An event as the bus rule hands it to the queue: the EventBridge envelope.
fn envelope(event: &Event) -> String {
    json!({
        "version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718", "detail-type": event.kind,
        "source": countersign_core::adapters::eventbridge::EVENT_SOURCE, "account": "123456789012",
        "time": event.created_at, "region": "us-east-1", "resources": [], "detail": event
    })
    .to_string()
}

/// Runs messages through the webhooks function's handler; none may fail.
async fn webhooks_function(app: &TestApp, bodies: Vec<String>) {
    let response = countersign_webhooks::handler::handle(&app.service, sqs_batch(&bodies)).await;
    assert!(response.batch_item_failures.is_empty(), "{:?}", response.batch_item_failures);
}

/// Drives every metric: intake executed, held and denied; approvals approved, modified,
/// rejected, escalated and expired; a webhook delivery failing into its retry; an email given
/// up on; events stuck in the outbox while the bus is down, then parked when it refuses them.
/// Returns the sink.
async fn scenario() -> (TestApp, Arc<Captured>) {
    let metrics = Arc::new(Captured::default());
    let bus = Arc::new(Bus::default());
    let queue_slot: Arc<Mutex<Option<StoreQueue>>> = Arc::default();
    let app = {
        let (metrics, bus, slot) = (metrics.clone(), bus.clone(), queue_slot.clone());
        TestApp::spawn_wired(
            Backend::Sqlite,
            |_| {},
            move |w, store| {
                let queue = StoreQueue::new(store);
                *slot.lock().expect("slot") = Some(queue.clone());
                w.queue = Arc::new(queue);
                w.metrics = metrics;
                w.bus = bus;
                w.client = Arc::new(Unavailable);
                w.mailer = Some(Arc::new(Refusing));
            },
        )
        .await
    };
    let queue = queue_slot.lock().expect("slot").clone().expect("the queue");
    let s = app.scenario("100000.00").await;
    let policy = json!({"name": "refuse huge", "autoRejectAbove": "50000.00"});
    app.policy(&s.admin, &s.from, policy).await;
    // A person who may decide: held payments' emails go to her (no team is assigned).
    let rita = app.member(&s.admin, "rita").await;
    let reviewer = app.key_for(&s.admin, Some(&rita), &["approvals:read", "approvals:write"]).await;
    let desk = app.team(&s.admin, "desk", &[&rita]).await;
    let body = json!({"url": "https://hooks.example.com/countersign", "events": ["approval.created"]});
    let (status, webhook) = app.post("/v1/webhooks", &s.admin, body).await;
    assert_eq!(status, 201, "{webhook}");

    // Intake: executed, denied, and held five times.
    let pay = |amount: &str| json!({"from": s.from, "to": s.to, "amount": amount});
    let (status, body) = app.post("/v1/payments", &s.agent, pay("10.00")).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app.post("/v1/payments", &s.agent, pay("60000.00")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("POLICY_DENIED")), "{body}");
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(app.held_payment(&s, "2000.00").await.1);
    }
    assert_eq!(metrics.values(Metric::IntakeLatency).len(), 7, "every decided intake is timed");

    // People decide, half a minute after the approvals were made.
    app.clock.advance(chrono::Duration::seconds(30));
    decide(&app, &reviewer, &held[0], "approve", json!({})).await;
    decide(&app, &reviewer, &held[1], "modify", json!({"amount": "1500.00"})).await;
    decide(&app, &reviewer, &held[2], "reject", json!({"reason": "not ours"})).await;
    decide(&app, &s.admin, &held[3], "escalate", json!({"toTeam": desk})).await;
    assert_eq!(metrics.values(Metric::TimeToDecision), [30.0, 30.0, 30.0], "approve, modify, reject");

    // The webhooks function, given the approval.created of the one still pending: its webhook
    // endpoint answers 503 (the delivery waits for a retry), its request email is refused.
    let created = bus
        .events
        .lock()
        .expect("bus")
        .iter()
        .find(|e| e.kind == "approval.created" && e.data["approvalId"].as_str() == Some(held[4].as_str()))
        .cloned()
        .expect("the pending approval's approval.created");
    webhooks_function(&app, vec![envelope(&created)]).await;
    let due: Vec<String> = queue
        .receive(32)
        .await
        .expect("queue")
        .into_iter()
        .filter(|r| matches!(r.message, QueueMessage::Notification { .. }))
        .map(|r| serde_json::to_string(&r.message).expect("message"))
        .collect();
    assert_eq!(due.len(), 1, "the request email to rita is queued");
    webhooks_function(&app, due).await;
    assert_eq!(metrics.values(Metric::NotificationsFailed), [1.0], "the refused email is counted");

    // The expiry function: the sweep after the window has closed expires what is left, and
    // sees the delivery waiting for its retry.
    app.clock.advance(chrono::Duration::hours(25));
    app.service.sweep(None, 100).await.expect("sweep");
    assert_eq!(metrics.values(Metric::DeliveriesPending), [1.0]);
    assert_eq!(metrics.values(Metric::OutboxUnpublishedAge), [0.0], "the bus took every event");

    // The bus goes down: a held payment's events wait in the outbox, and the sweep says how long.
    bus.set(BusMode::Down);
    app.held_payment(&s, "2000.00").await;
    app.clock.advance(chrono::Duration::seconds(120));
    app.service.sweep(None, 100).await.expect("sweep");
    assert_eq!(metrics.values(Metric::OutboxUnpublishedAge), [0.0, 120.0]);

    // Back, but refusing those events: the sweeps re-publish them until they are parked, and
    // then nothing waits.
    bus.set(BusMode::Refusing);
    for _ in 0..MAX_PUBLISH_FAILURES {
        app.service.sweep(None, 100).await.expect("sweep");
    }
    assert!(!metrics.values(Metric::OutboxEventsParked).is_empty(), "the parked events are counted");
    assert_eq!(metrics.values(Metric::OutboxUnpublishedAge).last(), Some(&0.0));
    (app, metrics)
}

/// What the dashboard graphs: (namespace, name, dimension) of every metric in every widget.
/// Entries are `[namespace, name, dim, value, ..., {options}]`; `"."` repeats the entry above.
fn dashboard_metrics() -> BTreeSet<Graphed> {
    let template = template();
    let dashboards: Vec<&Yaml> = template["Resources"]
        .as_mapping()
        .expect("Resources")
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::CloudWatch::Dashboard"))
        .collect();
    assert_eq!(dashboards.len(), 1, "one dashboard");
    let Yaml::Tagged(sub) = &dashboards[0]["Properties"]["DashboardBody"] else {
        panic!("DashboardBody is a !Sub string")
    };
    // `${...}` are CloudFormation's (region, alarm ARNs): any string stands in for them.
    let text = sub.value.as_str().expect("the body");
    let body: Value = serde_json::from_str(&substituted(text)).expect("the dashboard body is JSON");
    let mut graphed = BTreeSet::new();
    for widget in body["widgets"].as_array().expect("widgets") {
        let Some(entries) = widget["properties"]["metrics"].as_array() else { continue };
        let mut previous: Vec<String> = Vec::new();
        for entry in entries {
            let parts: Vec<String> = entry
                .as_array()
                .expect("a metric entry")
                .iter()
                .filter_map(|p| p.as_str().map(str::to_string))
                .enumerate()
                .map(|(i, p)| if p == "." { previous.get(i).cloned().expect("a '.' under an entry") } else { p })
                .collect();
            assert!(
                parts.len() >= 2 && parts.len().is_multiple_of(2),
                "namespace, name, then dimension pairs: {entry}"
            );
            let dimensions: Vec<(String, String)> =
                parts[2..].chunks(2).map(|pair| (pair[0].clone(), pair[1].clone())).collect();
            assert!(dimensions.len() <= 1, "our metrics have one dimension at most: {entry}");
            graphed.insert((parts[0].clone(), parts[1].clone(), dimensions.into_iter().next()));
            previous = parts;
        }
    }
    graphed
}

/// `text` with each `${...}` replaced by a plain word.
fn substituted(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("a closed ${...}") + start;
        out.push_str("substituted");
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_graphs_only_what_the_code_emits_and_the_code_emits_every_listed_metric() {
    let (_app, metrics) = scenario().await;
    let emitted = metrics.emitted();
    let on_dashboard = dashboard_metrics();
    let never: Vec<_> = on_dashboard.difference(&emitted).collect();
    assert!(never.is_empty(), "the dashboard graphs metrics the code never emitted: {never:?}");
    let listed: BTreeSet<Graphed> = Metric::all().into_iter().map(graphed).collect();
    let silent: Vec<_> = listed.difference(&emitted).collect();
    assert!(silent.is_empty(), "listed in domain::metric but never emitted by the scenario: {silent:?}");
    let unlisted: Vec<_> = emitted.difference(&listed).collect();
    assert!(unlisted.is_empty(), "emitted but not in Metric::all(): {unlisted:?}");
    // Not required for soundness, but a metric nobody can see is a metric nobody reads.
    let unseen: Vec<_> = listed.difference(&on_dashboard).collect();
    assert!(unseen.is_empty(), "emitted but not on the dashboard: {unseen:?}");
    for outcome in Outcome::ALL {
        assert!(!metrics.values(Metric::Decisions(outcome)).is_empty(), "{outcome:?}");
    }
}

#[test]
fn the_dashboard_shows_every_alarm_of_the_template() {
    let template = template();
    let alarms: BTreeSet<String> = template["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::CloudWatch::Alarm"))
        .map(|(id, _)| format!("${{{}.Arn}}", id.as_str().expect("id")))
        .collect();
    let dashboard = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"].clone();
    let Yaml::Tagged(sub) = dashboard else { panic!("DashboardBody is a !Sub string") };
    let text = sub.value.as_str().expect("the body").to_string();
    let body: Value = serde_json::from_str(&text.replace("${AWS::Region}", "eu-west-1")).expect("JSON");
    let shown: BTreeSet<String> = body["widgets"]
        .as_array()
        .expect("widgets")
        .iter()
        .filter(|w| w["type"] == "alarm")
        .flat_map(|w| w["properties"]["alarms"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    assert_eq!(shown, alarms, "the alarm widget lists every alarm, by its ARN");
}
