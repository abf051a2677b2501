//! DynamoDB figures, on DynamoDB Local: requests and sequential round trips per operation as
//! seen on the wire by the counting proxy, and the sustained rate of one hot wallet with
//! requests racing on their conditions as separate Lambda instances would (no in-process lanes).

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use countersign_core::domain::event::Event;
use countersign_core::domain::org::hash_secret;
use countersign_core::ports::{BusError, EventBus, Published, SystemClock};
use countersign_core::service::{Countersign, Settings, Wiring};
use countersign_tests::TestStore;
use serde_json::json;

use crate::figures::{ms, Figure, Figures};
use crate::floors::DynamoFloor;
use crate::local::{load, post, setup, CONCURRENCY, OPERATOR_KEY};
use countersign_tests::proxy::{Cost, Proxy, SplittingBus};

const SECTION_OPS: &str = "DynamoDB per operation (DynamoDB Local, measured at the proxy)";
const SECTION_HOT: &str = "DynamoDB hot wallet (DynamoDB Local, no in-process lanes), concurrency 16";
const HOT_PAYMENTS: usize = 1_000;

/// Stands in for EventBridge: accepts every event, so the outbox marks that follow a publish
/// in Lambda are counted too.
struct AcceptingBus;

#[async_trait]
impl EventBus for AcceptingBus {
    async fn publish(&self, events: &[Event]) -> Result<Published, BusError> {
        Ok(Published { accepted: events.iter().map(|e| e.id.clone()).collect(), refused: vec![] })
    }
}

/// The service as a Lambda wires it (store, a bus), served by the real router on a loopback port.
async fn serve(store: &TestStore, bus: Arc<dyn EventBus>) -> (Arc<Countersign>, String) {
    serve_as(store, bus, Counters::InPlace).await
}

/// How payments write a wallet's counters.
#[derive(Clone, Copy, PartialEq)]
enum Counters {
    /// `ADD` under a condition (as deployed).
    InPlace,
    /// The whole wallet rewritten conditional on the version read (before in-place counters).
    Rewritten,
}

async fn serve_as(store: &TestStore, bus: Arc<dyn EventBus>, counters: Counters) -> (Arc<Countersign>, String) {
    let settings = Settings { operator_key_hash: Some(hash_secret(OPERATOR_KEY)), ..Settings::default() };
    let wiring = Wiring { bus, ..Wiring::default() };
    let mut service =
        Countersign::new(store.store(), Arc::new(SystemClock), settings).with_wiring(wiring).without_record_locks();
    if counters == Counters::Rewritten {
        service = service.rewriting_counters();
    }
    let service = Arc::new(service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = countersign_core::api::router(service.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (service, format!("http://{addr}"))
}

/// A table on DynamoDB Local with one organization (as `setup` makes it), for the Lambda first
/// invokes of `bench/init_time.py`: `{"table", "agentKey", "hotWallet", "toWallet"}`.
pub async fn seeded_table() -> serde_json::Value {
    let store = TestStore::new(countersign_tests::Backend::Dynamo).await;
    let TestStore::Dynamo { table, .. } = &store else { unreachable!("dynamo") };
    let (_, base) = serve(&store, Arc::new(AcceptingBus)).await;
    let org = setup(&reqwest::Client::new(), &base).await;
    json!({"table": table, "agentKey": org.agent, "hotWallet": org.hot, "toWallet": org.to})
}

/// Requests and round trips per operation; returns the auto intake's transaction as sent (the
/// body of its `TransactWriteItems`), for `hot_wallet` to replay alone.
pub async fn requests_per_operation(figures: &Figures, proxy: &Proxy, floor: &DynamoFloor) -> String {
    let store = TestStore::dynamo_at(&proxy.endpoint).await;
    let bus = Arc::new(SplittingBus::new(proxy.clone()));
    let (service, base) = serve(&store, bus.clone()).await;
    let http = reqwest::Client::new();
    let org = setup(&http, &base).await;
    println!("== DynamoDB per operation, on the wire (proxy → DynamoDB Local; auth read included; to the commit, then the outbox marks after publishing, counted apart)");
    let pay = |amount: &str| json!({"from": org.held_from, "to": org.to, "amount": amount});
    // Every key used once first: its once-a-minute lastUsedAt refresh is not counted.
    let (_, held) = post(&http, format!("{base}/v1/payments"), &org.agent, pay("10.00")).await;
    let warm = held["approvalId"].as_str().expect("approval").to_string();
    post(&http, format!("{base}/v1/approvals/{warm}/approve"), &org.reviewer, json!({})).await;

    let record = |name: &str, targets: (&'static str, &'static str), took: f64| {
        let Cost { commit, marks } = bus.cost();
        let f = |name: String, value: f64, unit: &'static str, target: &'static str, floor: Option<(String, f64)>| {
            figures.add(Figure { section: SECTION_OPS, name, value, unit, target, floor })
        };
        f(
            format!("{name}: requests to the commit ({})", commit.targets()),
            commit.requests as f64,
            "requests",
            targets.0,
            None,
        );
        f(format!("{name}: sequential round trips to the commit"), commit.round_trips as f64, "trips", targets.1, None);
        if marks.requests > 0 {
            let what = format!("{name}: after the commit, outbox marks ({}): round trips", marks.targets());
            f(what, marks.round_trips as f64, "trips", "", None);
        }
        f(format!("{name}: latency"), took, "ms", "", Some(("one GetItem p50".into(), floor.get_p50_ms)));
    };

    bus.reset();
    let t = Instant::now();
    let (st, _) = post(&http, format!("{base}/v1/payments"), &org.agent, pay("1.00")).await;
    assert_eq!(st, 201, "auto-executed");
    record("auto intake", ("<= 2", "<= 2"), ms(t.elapsed()));
    let auto_transaction = proxy.last_body("TransactWriteItems").expect("the auto intake's transaction");
    let auto_transaction = String::from_utf8(auto_transaction.to_vec()).expect("JSON");

    bus.reset();
    let t = Instant::now();
    let (st, held) = post(&http, format!("{base}/v1/payments"), &org.agent, pay("10.00")).await;
    assert_eq!(st, 202, "held");
    record("held intake", ("<= 3", "<= 3"), ms(t.elapsed()));

    let mut keyed = pay("1.00");
    keyed["idempotencyKey"] = json!("bench-1");
    bus.reset();
    let t = Instant::now();
    post(&http, format!("{base}/v1/payments"), &org.agent, keyed.clone()).await;
    record("intake with idempotency key", ("<= 2", "<= 2"), ms(t.elapsed()));
    bus.reset();
    let t = Instant::now();
    post(&http, format!("{base}/v1/payments"), &org.agent, keyed).await;
    record("idempotent replay", ("", ""), ms(t.elapsed()));

    let approval = held["approvalId"].as_str().expect("approval");
    bus.reset();
    let t = Instant::now();
    let (st, _) = post(&http, format!("{base}/v1/approvals/{approval}/approve"), &org.reviewer, json!({})).await;
    assert_eq!(st, 200, "approved");
    record("approve (executes payment)", ("<= 5", "<= 3"), ms(t.elapsed()));

    bus.reset();
    let t = Instant::now();
    service.sweep(Some(chrono::Utc::now() + chrono::Duration::seconds(55)), 100).await.expect("sweep");
    record("idle sweep (nothing due)", ("", ""), ms(t.elapsed()));
    auto_transaction
}

/// The hot wallet twice in one run: counters rewritten with the wallet (how payments wrote
/// before, the floor this is measured against), then moved in place; then an executed
/// payment's own transaction (`auto_transaction`, as `requests_per_operation` sent it) replayed
/// alone, committing and failing: the ceiling of any payment that commits that transaction.
pub async fn hot_wallet(figures: &Figures, floor: &DynamoFloor, endpoint: &str, auto_transaction: &str) {
    hot_wallet_as(figures, floor, Counters::Rewritten).await;
    hot_wallet_as(figures, floor, Counters::InPlace).await;
    transaction_alone(figures, endpoint, auto_transaction).await;
}

/// `transaction` sent straight to DynamoDB Local `HOT_PAYMENTS` times, 16 at a time, its ids
/// fresh each time: as it commits (two wallets moved in place, five records created), and as a
/// racer's losing attempt (its first wallet's condition false). DynamoDB Local runs
/// transactions one at a time, so this is the most payments a second any path committing this
/// transaction can make on it; the losing attempt shows what each lost race costs it.
async fn transaction_alone(figures: &Figures, endpoint: &str, transaction: &str) {
    let mut request: serde_json::Value = serde_json::from_str(transaction).expect("JSON");
    if let Some(fields) = request.as_object_mut() {
        fields.remove("ClientRequestToken");
    }
    let committing = request.to_string();
    let losing = {
        let wallet = request["TransactItems"]
            .as_array_mut()
            .and_then(|items| items.iter_mut().find(|i| i.get("Update").is_some()))
            .expect("a wallet update");
        let condition = wallet["Update"]["ConditionExpression"].as_str().expect("condition").to_string();
        wallet["Update"]["ConditionExpression"] = json!(format!("attribute_not_exists(pk) AND ({condition})"));
        request.to_string()
    };
    println!("== DynamoDB Local: an executed payment's transaction alone, {HOT_PAYMENTS} times, {CONCURRENCY} at once");
    let http = reqwest::Client::builder().pool_max_idle_per_host(CONCURRENCY * 2).build().expect("client");
    for (what, body, expect_ok) in
        [("commits", &committing, true), ("fails its wallet condition (a lost race)", &losing, false)]
    {
        let (run, _) = load(HOT_PAYMENTS, CONCURRENCY, |i| {
            let body = fresh_ids(body, &format!("R{i}X"));
            let send = http
                .post(endpoint)
                .header("X-Amz-Target", "DynamoDB_20120810.TransactWriteItems")
                .header("Content-Type", "application/x-amz-json-1.0")
                // DynamoDB Local checks that a request is signed, not the signature.
                .header(
                    "Authorization",
                    "AWS4-HMAC-SHA256 Credential=test/20261207/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
                )
                .body(body)
                .send();
            async move {
                let status = send.await.map(|r| r.status().as_u16()).unwrap_or(599);
                // Counted as a server error when it did not end as this variant should.
                (if (status == 200) == expect_ok { 200 } else { 500 }, ())
            }
        })
        .await;
        figures.add(Figure {
            section: SECTION_HOT,
            name: format!("an executed payment's transaction alone (replayed, fresh ids) that {what}: rate"),
            value: run.rate(),
            unit: "tx/s",
            target: "",
            floor: None,
        });
        figures.add(Figure {
            section: SECTION_HOT,
            name: format!("an executed payment's transaction alone that {what}: not as expected"),
            value: run.server_errors as f64,
            unit: "count",
            target: "0",
            floor: None,
        });
    }
}

/// `body` with every id it creates made new: the first characters of each `pay_`, `ent_`,
/// `evt_`, `aud_` and `txn_` ULID replaced by `tag`.
fn fresh_ids(body: &str, tag: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(at) = ["pay_", "ent_", "evt_", "aud_", "txn_"].iter().filter_map(|p| rest.find(p)).min() {
        let (head, tail) = rest.split_at(at + 4);
        out.push_str(head);
        if tail.len() >= 26 && tag.len() < 26 {
            out.push_str(tag);
            out.push_str(&tail[tag.len()..26]);
            rest = &tail[26..];
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

async fn hot_wallet_as(figures: &Figures, floor: &DynamoFloor, counters: Counters) {
    let store = TestStore::new(countersign_tests::Backend::Dynamo).await;
    let TestStore::Dynamo { store: dynamo, .. } = &store else { unreachable!("dynamo") };
    let (_, base) = serve_as(&store, Arc::new(AcceptingBus), counters).await;
    let how = match counters {
        Counters::InPlace => "counters in place (ADD under a condition)",
        Counters::Rewritten => "wallet rewritten on its version (before)",
    };
    let http = reqwest::Client::builder().pool_max_idle_per_host(CONCURRENCY * 2).build().expect("client");
    let org = setup(&http, &base).await;
    println!(
        "== DynamoDB Local: {HOT_PAYMENTS} auto-executed payments from one wallet, {CONCURRENCY} at once, no lanes, {how}"
    );
    let body = json!({"from": org.hot, "to": org.to, "amount": "1.00"});
    post(&http, format!("{base}/v1/payments"), &org.agent, body.clone()).await;
    let before = dynamo.request_count();
    let (run, _) = load(HOT_PAYMENTS, CONCURRENCY, |_| {
        let fut = post(&http, format!("{base}/v1/payments"), &org.agent, body.clone());
        async move { (fut.await.0, ()) }
    })
    .await;
    let per_payment = (dynamo.request_count() - before) as f64 / HOT_PAYMENTS as f64;
    let f = |name: &str, value: f64, unit: &'static str, target: &'static str, floor: Option<(&str, f64)>| Figure {
        section: SECTION_HOT,
        name: format!("{name}, {how}"),
        value,
        unit,
        target,
        floor: floor.map(|(n, v)| (n.to_string(), v)),
    };
    let rate_floor =
        ("8-item TransactWriteItems (a payment's shape, no item shared), 16 at a time", floor.payment_shaped_rate_16);
    let latency_floor = ("1-item TransactWriteItems p50", floor.transact_p50_ms);
    figures.add(f("hot wallet auto-executed rate", run.rate(), "req/s", "reported", Some(rate_floor)));
    figures.add(f("hot wallet auto-executed p50", run.p50(), "ms", "", Some(latency_floor)));
    figures.add(f("hot wallet auto-executed p99", run.p99(), "ms", "", Some(latency_floor)));
    figures.add(f("hot wallet auto-executed 5xx", run.server_errors as f64, "count", "0", None));
    let target = if counters == Counters::InPlace { "<= 3" } else { "" };
    figures.add(f(
        "hot wallet DynamoDB requests per payment (retries included)",
        per_payment,
        "requests",
        target,
        None,
    ));
}
