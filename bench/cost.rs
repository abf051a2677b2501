//! Cost per operation (issue "Cost, measured"; DESIGN §2.10): the DynamoDB capacity each
//! operation consumes on DynamoDB Local, table and each index, reads and writes apart, and its
//! on-demand price per 1M operations at list prices ([`price`]), with the Lambda, API Gateway,
//! EventBridge and SQS requests it makes.
//!
//! Capacity comes from the store's meter (`DynamoStore::capacity`): writes as DynamoDB Local
//! reports them (`ReturnConsumedCapacity: INDEXES`), reads computed from the items returned by
//! AWS's rules, because DynamoDB Local reports an empty Query and a missing key as free
//! (`shared/src/adapters/capacity.rs`). Each operation runs [`RUNS`] times; figures are the
//! average. An operation's figure includes what follows its commit in the same invocation: the
//! outbox marks after its events are published (the bus here accepts every event, as EventBridge
//! does), so the request is measured whole.
//!
//! The Lambda part is the function's configured memory (`infra/template.yaml`, Globals) × the
//! operation's median wall time measured here (the real router on a loopback port, DynamoDB Local
//! on this machine; no TLS, no PutEvents round trip), rounded up to the millisecond.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use countersign_core::adapters::capacity::{Consumed, Units, TABLE};
use countersign_core::adapters::dynamodb::INDEXES;
use countersign_core::domain::event::Event;
use countersign_core::domain::org::hash_secret;
use countersign_core::ports::{BusError, EventBus, Published, QueueMessage};
use countersign_core::service::{Countersign, Settings, Wiring};
use countersign_tests::{ManualClock, TestApp, TestStore, OPERATOR_KEY};
use serde_json::json;

use crate::figures::Figures;

pub const SECTION: &str = "Cost per operation";
/// Each operation's runs (figures are their average; durations their median).
const RUNS: usize = 5;

/// List prices, us-east-1, as AWS's pricing pages give them (checked 2026-12-06). Estimates of a
/// bill, never money the service holds: `f64` is fine here.
pub mod price {
    pub const REGION: &str = "us-east-1";
    pub const CHECKED: &str = "2026-12-06";
    /// DynamoDB on-demand, Standard table class, per million write request units (since the
    /// 1 November 2024 price cut, half the earlier $1.25).
    pub const DYNAMODB_WRITE_UNITS_PER_M: f64 = 0.625;
    /// DynamoDB on-demand, per million read request units (earlier $0.25).
    pub const DYNAMODB_READ_UNITS_PER_M: f64 = 0.125;
    /// Lambda on Arm (Graviton), per GB-second (the first 7.5 billion GB-s of a month).
    pub const LAMBDA_ARM_GB_SECOND: f64 = 0.000_013_333_4;
    /// Lambda, per million invocations (either architecture).
    pub const LAMBDA_REQUESTS_PER_M: f64 = 0.20;
    /// API Gateway HTTP API (the template's `AWS::ApiGatewayV2::Api`, `ProtocolType: HTTP`), per
    /// million requests of up to 512 KB (the first 300 million a month).
    pub const HTTP_API_PER_M: f64 = 1.00;
    /// EventBridge, per million custom events published (64 KB chunks); delivery by a rule to an
    /// SQS queue of the same account adds nothing.
    pub const EVENTBRIDGE_EVENTS_PER_M: f64 = 1.00;
    /// SQS standard queue, per million requests (64 KB chunks): the rule's SendMessage, and
    /// Lambda's ReceiveMessage and DeleteMessage for each batch.
    pub const SQS_REQUESTS_PER_M: f64 = 0.40;
}

/// What one operation asks of the services besides DynamoDB.
#[derive(Clone, Copy, Default)]
struct Requests {
    /// HTTP API requests.
    api: f64,
    /// Lambda invocations.
    lambdas: f64,
    /// SQS requests other than the rule's SendMessage per event (counted from the events).
    sqs: f64,
}

/// One operation's measured figures, averaged over its runs.
struct Measured {
    consumed: Consumed,
    events: f64,
    /// Median billed Lambda milliseconds per operation (all its invocations).
    lambda_ms: f64,
}

/// Stands in for EventBridge: accepts every event (so the outbox marks that follow are written)
/// and counts them, keeping the last ones for the fan-out runs.
#[derive(Default)]
struct CountingBus {
    events: Mutex<Vec<Event>>,
}

impl CountingBus {
    fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().expect("events"))
    }
}

#[async_trait]
impl EventBus for CountingBus {
    async fn publish(&self, events: &[Event]) -> Result<Published, BusError> {
        self.events.lock().expect("events").extend(events.iter().cloned());
        Ok(Published { accepted: events.iter().map(|e| e.id.clone()).collect(), refused: vec![] })
    }
}

/// The function memory (MB) and architectures of `infra/template.yaml`'s Globals.
fn lambda_memory_mb() -> f64 {
    let template = countersign_tests::template::template();
    let function = &template["Globals"]["Function"];
    let archs = format!("{:?}", function["Architectures"]);
    assert!(archs.contains("arm64"), "the price constants are Arm's; the template says {archs}");
    function["MemorySize"].as_f64().expect("Globals.Function.MemorySize")
}

/// A webhook receiver on a loopback port answering 204; counts what arrives.
async fn receiver() -> (String, Arc<Mutex<usize>>) {
    let arrived = Arc::new(Mutex::new(0usize));
    let count = arrived.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let count = count.clone();
            async move {
                *count.lock().expect("count") += 1;
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), arrived)
}

struct Run<'a> {
    dynamo: &'a countersign_core::adapters::dynamodb::DynamoStore,
    bus: &'a CountingBus,
}

/// What an operation's runs consumed so far.
#[derive(Default)]
struct Tally {
    total: Consumed,
    events: usize,
    times: Vec<f64>,
}

impl Tally {
    /// The average per run, and the median time.
    fn finish(mut self) -> Measured {
        let runs = self.times.len().max(1);
        self.times.sort_by(f64::total_cmp);
        Measured {
            consumed: self.total.per(runs),
            events: self.events as f64 / runs as f64,
            lambda_ms: self.times.get(runs / 2).copied().unwrap_or_default(),
        }
    }
}

impl Run<'_> {
    /// Waits until the store has been quiet for a while (work after the answer, if any, done).
    async fn settle(&self) {
        let mut last = self.dynamo.request_count();
        loop {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let now = self.dynamo.request_count();
            if now == last {
                return;
            }
            last = now;
        }
    }

    /// Starts counting from a quiet store.
    async fn begin(&self) -> Tally {
        self.settle().await;
        self.dynamo.capacity().take();
        self.bus.take();
        Tally::default()
    }

    /// One run done in `ms` (its Lambda milliseconds): adds what it consumed once settled.
    async fn ran(&self, tally: &mut Tally, ms: f64) {
        self.settle().await;
        let consumed = self.dynamo.capacity().take();
        for (mine, theirs) in
            [(&mut tally.total.reported, consumed.reported), (&mut tally.total.computed, consumed.computed)]
        {
            for (target, units) in theirs {
                let entry = mine.entry(target).or_default();
                entry.read += units.read;
                entry.write += units.write;
            }
        }
        tally.events += self.bus.take().len();
        tally.times.push(ms);
    }
}

/// Milliseconds an invocation is billed for `took` (rounded up to the millisecond).
fn billed_ms(took: Duration) -> f64 {
    (took.as_secs_f64() * 1e3).ceil()
}

/// POSTs `body` to `path` with `key`, expecting `want`; the billed milliseconds and the answer.
async fn timed(app: &TestApp, path: &str, key: &str, body: serde_json::Value, want: u16) -> (f64, serde_json::Value) {
    let t = Instant::now();
    let (st, answer) = app.post(path, key, body).await;
    assert_eq!(st, want, "{path}: {answer}");
    (billed_ms(t.elapsed()), answer)
}

/// The webhooks function handling `event` as one SQS message; its billed milliseconds.
async fn fan_out(service: &Countersign, event: Event) -> f64 {
    let t = Instant::now();
    service.handle_message(&QueueMessage::Event { event }).await.expect("fan-out");
    billed_ms(t.elapsed())
}

pub async fn cost_per_operation(figures: &Figures) {
    let memory_mb = lambda_memory_mb();
    let store = TestStore::metered_dynamo().await;
    let TestStore::Dynamo { store: dynamo, .. } = &store else { unreachable!("dynamo") };
    let dynamo = dynamo.clone();
    let bus = Arc::new(CountingBus::default());
    let settings = Settings {
        operator_key_hash: Some(hash_secret(OPERATOR_KEY)),
        allow_private_webhooks: true,
        // As every deployment: receipts signed, audit sealed, stored secrets sealed.
        audit_signer: Some(Arc::new(countersign_core::proof::signing::AuditSigner::generate())),
        encryption_key: Some(Arc::new(
            countersign_core::domain::encryption::EncryptionKey::parse(
                &countersign_core::domain::encryption::EncryptionKey::generate_text(),
            )
            .expect("a fresh key parses"),
        )),
        ..Settings::default()
    };
    let client = Arc::new(
        countersign_core::adapters::http_client::HttpWebhookClient::new(true, Duration::from_secs(5)).expect("client"),
    );
    let wiring = Wiring { bus: bus.clone(), client, ..Wiring::default() };
    let clock = ManualClock::new();
    let service = Countersign::new(store.store(), clock.clone(), settings).with_wiring(wiring).without_record_locks();
    let app = TestApp::serve(store.clone(), clock, service).await;
    let run = Run { dynamo: &dynamo, bus: &bus };

    // One organisation: an agent, a reviewer, a wallet every payment of which is held (policy:
    // human approval), one whose payments execute at once, and their payee.
    let admin = app.org("cost").await;
    let agent = app.key(&admin, &["payments:write", "payments:read", "refunds:write"]).await;
    let reviewer = app.key(&admin, &["approvals:read", "approvals:write"]).await;
    let (held_from, auto_from, to) =
        (app.wallet(&admin, "USD").await, app.wallet(&admin, "USD").await, app.wallet(&admin, "USD").await);
    for w in [&held_from, &auto_from] {
        app.fund(&admin, w, "1000000.00").await;
    }
    app.policy(&admin, &held_from, json!({"name": "hold", "requireHumanApproval": true})).await;
    let pay = |from: &str, amount: &str| json!({"from": from, "to": to, "amount": amount});
    // Every key used once first: their once-a-minute lastUsedAt refresh is not counted.
    let (st, warm) = app.post("/v1/payments", &agent, pay(&held_from, "1.00")).await;
    assert_eq!(st, 202, "{warm}");
    let warm = warm["approvalId"].as_str().expect("approval").to_string();
    let (st, _) = app.post(&format!("/v1/approvals/{warm}/approve"), &reviewer, json!({})).await;
    assert_eq!(st, 200);
    let mut rows: Vec<(&str, Measured, Requests)> = Vec::new();
    println!("== cost per operation (DynamoDB Local, {RUNS} runs each; capacity per operation, averaged)");

    let mut tally = run.begin().await;
    for _ in 0..RUNS {
        let (ms, _) = timed(&app, "/v1/payments", &agent, pay(&auto_from, "1.00"), 201).await;
        run.ran(&mut tally, ms).await;
    }
    rows.push(("auto intake", tally.finish(), Requests { api: 1.0, lambdas: 1.0, sqs: 0.0 }));

    let mut tally = run.begin().await;
    for _ in 0..RUNS {
        let (intake_ms, held) = timed(&app, "/v1/payments", &agent, pay(&held_from, "10.00"), 202).await;
        let approval = held["approvalId"].as_str().expect("approval");
        let path = format!("/v1/approvals/{approval}/approve");
        let (approve_ms, _) = timed(&app, &path, &reviewer, json!({}), 200).await;
        run.ran(&mut tally, intake_ms + approve_ms).await;
    }
    rows.push(("held intake + approve", tally.finish(), Requests { api: 2.0, lambdas: 2.0, sqs: 0.0 }));

    // Refunds of auto-executed payments, executed at once (the payee's wallet has no refund rules).
    let mut refundable = Vec::new();
    for _ in 0..RUNS {
        let (_, p) = timed(&app, "/v1/payments", &agent, pay(&auto_from, "2.00"), 201).await;
        refundable.push(p["id"].as_str().expect("payment").to_string());
    }
    let mut tally = run.begin().await;
    for payment in &refundable {
        let body = json!({"paymentId": payment, "amount": "1.00"});
        let (ms, _) = timed(&app, "/v1/refunds", &agent, body, 201).await;
        run.ran(&mut tally, ms).await;
    }
    rows.push(("refund", tally.finish(), Requests { api: 1.0, lambdas: 1.0, sqs: 0.0 }));

    // Fan-out: the webhooks function handling one event of a payment, as its SQS batch hands it
    // (batches of one: the worst case for SQS and Lambda requests), first for an organisation
    // without webhooks, then with one subscription delivering to a real receiver.
    let mut events = Vec::new();
    for _ in 0..2 * RUNS {
        run.settle().await;
        bus.take();
        timed(&app, "/v1/payments", &agent, pay(&auto_from, "1.00"), 201).await;
        run.settle().await;
        events.push(bus.take().into_iter().next().expect("an event per payment"));
    }
    let (without, with) = events.split_at(RUNS);
    let mut tally = run.begin().await;
    for event in without {
        let ms = fan_out(&app.service, event.clone()).await;
        run.ran(&mut tally, ms).await;
    }
    rows.push(("event fan-out, no subscription", tally.finish(), Requests { api: 0.0, lambdas: 1.0, sqs: 2.0 }));
    let (url, arrived) = receiver().await;
    let (st, hook) = app.post("/v1/webhooks", &admin, json!({"url": url, "events": ["*"]})).await;
    assert_eq!(st, 201, "{hook}");
    let mut tally = run.begin().await;
    for event in with {
        let ms = fan_out(&app.service, event.clone()).await;
        run.ran(&mut tally, ms).await;
    }
    assert_eq!(*arrived.lock().expect("count"), RUNS, "one delivery per event");
    rows.push(("webhook fan-out per delivery", tally.finish(), Requests { api: 0.0, lambdas: 1.0, sqs: 2.0 }));

    // The expiry function's minute when nothing is due: its whole sweep (expiry, stuck outbox
    // events, overdue deliveries and notifications, audit sealing). One sweep first, unmeasured,
    // seals what the runs above wrote to the audit log.
    let deadline = || Some(Utc::now() + chrono::Duration::seconds(55));
    app.service.sweep(deadline(), 100).await.expect("sweep");
    let mut tally = run.begin().await;
    for _ in 0..RUNS {
        let t = Instant::now();
        app.service.sweep(deadline(), 100).await.expect("sweep");
        run.ran(&mut tally, billed_ms(t.elapsed())).await;
    }
    rows.push(("idle sweep minute", tally.finish(), Requests { api: 0.0, lambdas: 1.0, sqs: 0.0 }));

    report(figures, &rows, memory_mb);
    wallet_item(figures, &store, &auto_from).await;
}

/// The hot-wallet arithmetic's input (docs/cost.md): the size of the wallet item every payment
/// from it rewrites, and what one transactional write of it costs, on the table and in each index
/// that holds it.
async fn wallet_item(figures: &Figures, store: &TestStore, wallet: &str) {
    let TestStore::Dynamo { client, table, .. } = store else { unreachable!("dynamo") };
    let id = countersign_core::domain::ids::WalletId::parse(wallet).expect("wallet id");
    let key = countersign_core::layout::wallet_key(&id);
    let out = client
        .get_item()
        .table_name(table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(key.pk))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(key.sk))
        .consistent_read(true)
        .send()
        .await
        .expect("wallet item");
    let item = out.item.expect("the wallet exists");
    let bytes = countersign_core::adapters::capacity::item_bytes(&item) as f64;
    let indexed = INDEXES.iter().filter(|(_, _, pk, _)| item.contains_key(*pk)).count() as f64;
    let wcu = countersign_core::adapters::capacity::write_units(
        bytes as u64,
        countersign_core::adapters::capacity::WriteKind::Transactional,
    );
    f_plain(figures, "wallet item", "size (bytes)", bytes, "bytes");
    f_plain(figures, "wallet item", "one transactional rewrite, table (WCU)", wcu, "WCU");
    f_plain(
        figures,
        "wallet item",
        "indexes holding it (each rewritten with it under an ALL projection)",
        indexed,
        "indexes",
    );
}

fn f_plain(figures: &Figures, op: &str, column: &str, value: f64, unit: &'static str) {
    figures.plain(SECTION, format!("{op} · {column}"), value, unit);
}

fn report(figures: &Figures, rows: &[(&str, Measured, Requests)], memory_mb: f64) {
    use price::*;
    let targets: Vec<&str> = std::iter::once(TABLE).chain(INDEXES.iter().map(|(_, name, ..)| *name)).collect();
    let f = |op: &str, column: &str, value: f64, unit: &'static str| {
        figures.plain(SECTION, format!("{op} · {column}"), value, unit);
    };
    for (op, m, req) in rows {
        let billed: BTreeMap<String, Units> = m.consumed.billed();
        for (kind, unit) in [("RCU", "RCU"), ("WCU", "WCU")] {
            for target in &targets {
                let units = billed.get(*target).copied().unwrap_or_default();
                f(op, &format!("{kind} {target}"), if kind == "RCU" { units.read } else { units.write }, unit);
            }
            let total = Consumed::total(&billed);
            f(op, &format!("{kind} total"), if kind == "RCU" { total.read } else { total.write }, unit);
        }
        let reported = Consumed::total(&m.consumed.reported);
        f(op, "RCU as DynamoDB Local reports them", reported.read, "RCU");
        f(op, "events published", m.events, "events");
        f(op, "Lambda invocations", req.lambdas, "invocations");
        f(op, "Lambda ms (median, all invocations)", m.lambda_ms, "ms");
        let total = Consumed::total(&billed);
        let dynamodb = total.read * DYNAMODB_READ_UNITS_PER_M + total.write * DYNAMODB_WRITE_UNITS_PER_M;
        let gb_seconds = memory_mb / 1024.0 * m.lambda_ms / 1e3;
        // Per 1M operations: a per-million price times the count per operation.
        let lambda = req.lambdas * LAMBDA_REQUESTS_PER_M + gb_seconds * 1e6 * LAMBDA_ARM_GB_SECOND;
        let api = req.api * HTTP_API_PER_M;
        let eventbridge = m.events * EVENTBRIDGE_EVENTS_PER_M;
        // The rule's SendMessage for each event, and the batch's receive and delete.
        let sqs = (m.events + req.sqs) * SQS_REQUESTS_PER_M;
        for (column, value) in [
            ("$ per 1M: DynamoDB", dynamodb),
            ("$ per 1M: Lambda", lambda),
            ("$ per 1M: API Gateway", api),
            ("$ per 1M: EventBridge", eventbridge),
            ("$ per 1M: SQS", sqs),
            ("$ per 1M: total", dynamodb + lambda + api + eventbridge + sqs),
        ] {
            f(op, column, value, "USD");
        }
    }
    let p = |name: &str, value: f64, unit: &'static str| f("price", name, value, unit);
    p(
        &format!("list prices, {REGION}, checked {CHECKED}: DynamoDB on-demand write request units"),
        DYNAMODB_WRITE_UNITS_PER_M,
        "USD/1M",
    );
    p("DynamoDB on-demand read request units", DYNAMODB_READ_UNITS_PER_M, "USD/1M");
    p("Lambda Arm GB-second", LAMBDA_ARM_GB_SECOND, "USD");
    p("Lambda invocations", LAMBDA_REQUESTS_PER_M, "USD/1M");
    p("Lambda memory (infra/template.yaml)", memory_mb, "MB");
    p("API Gateway HTTP API requests", HTTP_API_PER_M, "USD/1M");
    p("EventBridge custom events", EVENTBRIDGE_EVENTS_PER_M, "USD/1M");
    p("SQS standard requests", SQS_REQUESTS_PER_M, "USD/1M");
}
