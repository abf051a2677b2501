//! Event benchmarks: the sweep's reads with many pending and few due approvals (DynamoDB Local),
//! fan-out throughput to a local receiver, and a healthy endpoint's latency while another hangs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use chrono::Utc;
use countersign_core::adapters::http_client::HttpWebhookClient;
use countersign_core::adapters::local_queue::StoreQueue;
use countersign_core::adapters::sqlite::SqliteStore;
use countersign_core::domain::approval::Approval;
use countersign_core::domain::event::Event;
use countersign_core::domain::ids::{ApiKeyId, OrgId, WalletId};
use countersign_core::domain::money::Amount;
use countersign_core::domain::money::Currency;
use countersign_core::domain::payment::{NewPayment, Payment};
use countersign_core::domain::policy::{Decision, Outcome};
use countersign_core::layout;
use countersign_core::ports::{QueueMessage, Store, SystemClock};
use countersign_core::service::{Countersign, Settings, Wiring};
use countersign_tests::{Backend, TestStore};

use crate::figures::{Figure, Figures};

const SECTION: &str = "Events: sweep, fan-out, isolation";
use futures::stream::{self, StreamExt};
use serde_json::json;

/// A held payment and its pending approval, due now or in a day.
fn held(org: &OrgId, due: bool) -> (Payment, Approval) {
    let request = NewPayment::new(WalletId::generate(), WalletId::generate(), Amount::parse("1.00").expect("amount"));
    let decision = Decision {
        outcome: Outcome::Hold,
        rule: "bench".into(),
        reason: "bench".into(),
        policy_id: None,
        approval_ttl_seconds: None,
        required_approvals: 1,
        escalation_chain: vec![],
        on_timeout: Default::default(),
    };
    let amount = request.amount.in_currency(Currency::USD).expect("usd");
    let now = Utc::now();
    let mut payment = Payment::new(org.clone(), &request, amount, decision, ApiKeyId::generate(), now);
    let approval =
        if due { payment.hold(1, now - chrono::Duration::seconds(10)) } else { payment.hold(24 * 3600, now) }
            .expect("pending");
    (payment, approval)
}

/// Seeds `total` pending approvals, every `due_every`-th one due (with its payment).
async fn seed_pending(store: &Arc<dyn Store>, total: usize, due_every: usize) {
    let org = OrgId::generate();
    let mut writes = Vec::new();
    for i in 0..total {
        let due = i % due_every == 0;
        let (payment, approval) = held(&org, due);
        if due {
            writes.push(layout::create(&payment).expect("payment"));
        }
        writes.push(layout::create(&approval).expect("approval"));
        if writes.len() >= 98 {
            store.transact(std::mem::take(&mut writes)).await.expect("seed");
        }
    }
    if !writes.is_empty() {
        store.transact(writes).await.expect("seed");
    }
}

/// A backlog of 5,000 due approvals: consecutive scheduled runs, each with the expiry Lambda's
/// 55 s budget, drain it without running out of time.
pub async fn sweep_backlog(figures: &Figures) {
    let ts = TestStore::new(Backend::Dynamo).await;
    let store = ts.store();
    seed_pending(&store, 5_000, 1).await;
    let service = Countersign::new(store, Arc::new(SystemClock), Settings::default());
    println!("== sweep backlog: 5,000 due approvals (DynamoDB Local), runs with a 55 s deadline");
    let started = Instant::now();
    for run in 1..=10 {
        let t = Instant::now();
        let summary = service.sweep(Some(Utc::now() + chrono::Duration::seconds(55)), 100).await.expect("sweep");
        println!(
            "run {run}: expired {}   skipped {}   out of time: {}   {:.1} s ({:.0} expirations/s)",
            summary.approvals_expired,
            summary.approvals_skipped,
            summary.out_of_time,
            t.elapsed().as_secs_f64(),
            summary.approvals_expired as f64 / t.elapsed().as_secs_f64()
        );
        if summary.approvals_read == 0 {
            break;
        }
    }
    let drained = started.elapsed().as_secs_f64();
    println!("backlog drained in {drained:.1} s");
    figures.plain(SECTION, "sweep backlog: 5,000 due approvals expired per second", 5_000.0 / drained, "items/s");
}

/// 10,000 pending approvals, 100 of them due: how many items does one sweep read?
pub async fn sweep_reads(figures: &Figures) {
    let ts = TestStore::new(Backend::Dynamo).await;
    let TestStore::Dynamo { store: dynamo, .. } = &ts else { unreachable!() };
    let store = ts.store();
    seed_pending(&store, 10_000, 100).await;
    let service = Countersign::new(store, Arc::new(SystemClock), Settings::default());
    let before = dynamo.request_count();
    let started = Instant::now();
    let summary = service.sweep(Some(Utc::now() + chrono::Duration::seconds(60)), 100).await.expect("sweep");
    println!("== sweep: 10,000 pending approvals, 100 due (DynamoDB Local)");
    println!(
        "due-index items read: {}   expiry attempts: {}   DynamoDB requests: {}   time: {:.0} ms",
        summary.approvals_read,
        summary.approvals_expired + summary.approvals_skipped,
        dynamo.request_count() - before,
        started.elapsed().as_secs_f64() * 1e3
    );
    figures.add(Figure {
        section: SECTION,
        name: "sweep: due-index items read per due item (10,000 pending, 100 due)".into(),
        value: summary.approvals_read as f64 / 100.0,
        unit: "items",
        target: "1",
        floor: Some(("one read per due item".into(), 1.0)),
    });
}

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

async fn receiver(arrivals: Arrivals) -> String {
    let ok = {
        let arrivals = arrivals.clone();
        move |headers: axum::http::HeaderMap| {
            let arrivals = arrivals.clone();
            async move {
                if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) {
                    arrivals.lock().expect("lock").insert(id.to_string(), Instant::now());
                }
                axum::http::StatusCode::NO_CONTENT
            }
        }
    };
    let hang = || async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        axum::http::StatusCode::OK
    };
    let app = axum::Router::new().route("/ok/{n}", post(ok)).route("/hang", post(hang));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn local_service(timeout: Duration) -> (Arc<Countersign>, Arc<dyn Store>) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().expect("store"));
    let queue = StoreQueue::new(store.clone());
    let settings = Settings { allow_private_webhooks: true, ..Settings::default() };
    let client = Arc::new(HttpWebhookClient::new(true, timeout).expect("client"));
    let wiring = Wiring { bus: Arc::new(queue.clone()), queue: Arc::new(queue), client, ..Wiring::default() };
    (Arc::new(Countersign::new(store.clone(), Arc::new(SystemClock), settings).with_wiring(wiring)), store)
}

async fn subscribe(store: &Arc<dyn Store>, org: &OrgId, url: String) {
    let now = Utc::now();
    let hook = countersign_core::domain::webhook::Webhook {
        id: countersign_core::domain::ids::WebhookId::generate(),
        org_id: org.clone(),
        url,
        events: vec!["*".into()],
        enabled: true,
        wallet_ids: vec![],
        secret: countersign_core::domain::webhook::new_secret(),
        created_at: now,
        updated_at: now,
    };
    store.transact(vec![layout::create(&hook).expect("hook")]).await.expect("subscribe");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Fan-out throughput: events × subscriptions delivered to a local receiver.
pub async fn fanout_throughput(figures: &Figures) {
    let arrivals: Arrivals = Arc::default();
    let base = receiver(arrivals.clone()).await;
    let (service, store) = local_service(Duration::from_secs(5)).await;
    let org = OrgId::generate();
    const HOOKS: usize = 10;
    const EVENTS: usize = 200;
    for n in 0..HOOKS {
        subscribe(&store, &org, format!("{base}/ok/{n}")).await;
    }
    let started = Instant::now();
    stream::iter(0..EVENTS)
        .for_each_concurrent(8, |_| {
            let service = service.clone();
            let org = org.clone();
            async move {
                let event = Event::new(&org, "approval.created", json!({"n": 1}), Utc::now());
                service.handle_message(&QueueMessage::Event { event }).await.expect("fan-out");
            }
        })
        .await;
    let elapsed = started.elapsed();
    println!("== fan-out to a local receiver (SQLite store, {HOOKS} subscriptions, {EVENTS} events, 8 events at once)");
    println!("deliveries: {}", EVENTS * HOOKS);
    figures.plain(
        SECTION,
        "fan-out rate (10 subscriptions, 8 events at once)",
        (EVENTS * HOOKS) as f64 / elapsed.as_secs_f64(),
        "deliveries/s",
    );
}

/// A healthy endpoint's delivery latency (p50, p99, healthy deliveries, wall time), with or
/// without another subscription of the same events that hangs.
async fn healthy_latency(hanging_peer: bool) -> (Duration, Duration, usize, Duration) {
    let arrivals: Arrivals = Arc::default();
    let base = receiver(arrivals.clone()).await;
    let (service, store) = local_service(HANG_TIMEOUT).await;
    let org = OrgId::generate();
    subscribe(&store, &org, format!("{base}/ok/0")).await;
    if hanging_peer {
        subscribe(&store, &org, format!("{base}/hang")).await;
    }
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let started = Instant::now();
    stream::iter(0..HANG_EVENTS)
        .for_each_concurrent(HANG_EVENTS, |_| {
            let (service, org, sent) = (service.clone(), org.clone(), sent.clone());
            async move {
                let event = Event::new(&org, "approval.created", json!({}), Utc::now());
                sent.lock().expect("lock").insert(event.id.to_string(), Instant::now());
                let _ = service.handle_message(&QueueMessage::Event { event }).await;
            }
        })
        .await;
    let arrivals = arrivals.lock().expect("lock");
    let sent = sent.lock().expect("lock");
    let mut latencies: Vec<Duration> =
        sent.iter().filter_map(|(id, t)| arrivals.get(id).map(|a| a.duration_since(*t))).collect();
    latencies.sort();
    (percentile(&latencies, 0.5), percentile(&latencies, 0.99), latencies.len(), started.elapsed())
}

const HANG_TIMEOUT: Duration = Duration::from_secs(2);
const HANG_EVENTS: usize = 100;

/// Hanging-peer isolation: the healthy endpoint's latency beside another that hangs, read
/// against the same run without the hanging one.
pub async fn healthy_latency_with_hanging_peer(figures: &Figures) {
    let (_, alone_p99, _, _) = healthy_latency(false).await;
    let (p50, p99, delivered, wall) = healthy_latency(true).await;
    println!("== healthy endpoint while another hangs (timeout {HANG_TIMEOUT:?}, {HANG_EVENTS} events at once)");
    println!(
        "healthy deliveries: {delivered}/{HANG_EVENTS}   p50: {:.1} ms   batch wall time: {:.1} s (bounded by the hanging peer's timeout)",
        p50.as_secs_f64() * 1e3,
        wall.as_secs_f64()
    );
    figures.add(Figure {
        section: SECTION,
        name: "hanging-peer isolation: healthy endpoint p99 beside a hanging one".into(),
        value: p99.as_secs_f64() * 1e3,
        unit: "ms",
        target: "",
        floor: Some(("same, no hanging peer".into(), alone_p99.as_secs_f64() * 1e3)),
    });
    figures.plain(SECTION, "hanging-peer isolation: healthy deliveries", delivered as f64, "of 100");
}

/// Events for the hanging organisation before the other's one is timed.
const HANGING_ORG_EVENTS: usize = 200;

/// Organisation isolation on the local server's wiring (outbox relay, store-backed queue and its
/// worker, the real client with its 5 s timeout, a SQLite file): org A's endpoint accepts
/// connections and never answers, with 200 events for it; the time until org B's next event
/// reaches B's endpoint (issue 21 asks for under 5 s).
pub async fn other_org_while_one_hangs(figures: &Figures) {
    use countersign_tests::{ManualClock, TestApp, OPERATOR_KEY};
    let store = TestStore::new(Backend::Sqlite).await;
    let settings = Settings {
        operator_key_hash: Some(countersign_core::domain::org::hash_secret(OPERATOR_KEY)),
        allow_private_webhooks: true,
        ..Settings::default()
    };
    let (service, queue) =
        countersign_core::local::wire(store.store(), Arc::new(SystemClock), settings).expect("local wiring");
    tokio::spawn(countersign_core::local::run_queue_worker(service.clone(), queue, Duration::from_millis(100)));
    let app = TestApp::serve(store, ManualClock::new(), (*service).clone()).await;

    let hanging = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let hanging_url = format!("http://{}/hook", hanging.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hanging.accept().await {
            held.push(socket);
        }
    });
    let arrivals: Arrivals = Arc::default();
    let base = receiver(arrivals.clone()).await;

    let a = app.scenario("1000000.00").await;
    let (status, _) = app.post("/v1/webhooks", &a.admin, json!({"url": hanging_url, "events": ["*"]})).await;
    assert_eq!(status, 201);
    let b = app.scenario("10000.00").await;
    let (status, _) = app.post("/v1/webhooks", &b.admin, json!({"url": format!("{base}/ok/b"), "events": ["*"]})).await;
    assert_eq!(status, 201);
    // The floor, in the same run: org B's delivery while nothing else is queued.
    let alone = time_one_delivery(&app, &b, &arrivals).await;
    for _ in 0..HANGING_ORG_EVENTS {
        app.held_payment(&a, "1500.00").await;
    }
    let delivered = time_one_delivery(&app, &b, &arrivals).await;
    println!("== another organisation's delivery while one endpoint hangs ({HANGING_ORG_EVENTS} events to it)");
    let ms = |t: Option<Duration>| t.map_or(60_000.0, |t| t.as_secs_f64() * 1e3);
    match delivered {
        Some(t) => println!("org B's event delivered after {:.1} ms (HTTP commit included)", t.as_secs_f64() * 1e3),
        None => println!("org B's event not delivered within 60 s"),
    }
    figures.add(Figure {
        section: SECTION,
        name: format!("org isolation: other org's delivery while one endpoint hangs ({HANGING_ORG_EVENTS} events)"),
        value: ms(delivered),
        unit: "ms",
        target: "< 5000",
        floor: Some(("org B's delivery with nothing else queued".into(), ms(alone))),
    });
}

/// Submits one held payment for `org` (whose webhook records its arrivals) and waits up to 60 s
/// for its first delivery; how long that took, HTTP commit included.
async fn time_one_delivery(
    app: &countersign_tests::TestApp,
    org: &countersign_tests::Scenario,
    arrivals: &Arrivals,
) -> Option<Duration> {
    arrivals.lock().expect("lock").clear();
    let started = Instant::now();
    app.held_payment(org, "1500.00").await;
    loop {
        if let Some(at) = arrivals.lock().expect("lock").values().next().copied() {
            return Some(at.duration_since(started));
        }
        if started.elapsed() > Duration::from_secs(60) {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
