//! Benchmarks that print figures (never assertions):
//! 1. held-payment intake and approve throughput with p50/p99 on the real local server binary
//!    (`--server <path>`), at a fixed concurrency;
//! 2. DynamoDB requests per operation against DynamoDB Local
//!    (`COUNTERSIGN_TEST_DYNAMODB_ENDPOINT`), counted at the adapter.

mod events;

use std::time::{Duration, Instant};

use countersign_tests::{Backend, TestApp, TestStore};
use futures::stream::{self, StreamExt};
use serde_json::json;

const CONCURRENCY: usize = 16;
const PAYMENTS: usize = 2000;
const OPERATOR_KEY: &str = "bench-operator-key-0123456789";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn report(name: &str, mut latencies: Vec<Duration>, wall: Duration) {
    latencies.sort();
    println!(
        "{name:<22} n={:<5} concurrency={CONCURRENCY:<3} throughput={:>8.1} req/s  p50={:>7.2} ms  p99={:>7.2} ms",
        latencies.len(),
        latencies.len() as f64 / wall.as_secs_f64(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
    );
}

async fn post(
    http: &reqwest::Client,
    url: String,
    key: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value, Duration) {
    let started = Instant::now();
    let res = http.post(url).bearer_auth(key).json(&body).send().await.expect("request");
    let status = res.status().as_u16();
    let body = res.json().await.unwrap_or(serde_json::Value::Null);
    (status, body, started.elapsed())
}

async fn setup_org(http: &reqwest::Client, base: &str) -> (String, String, String, String) {
    let (_, org, _) = post(http, format!("{base}/v1/organizations"), OPERATOR_KEY, json!({"name": "bench"})).await;
    let admin = org["adminKey"]["secret"].as_str().expect("admin").to_string();
    let key = |perms: serde_json::Value| {
        post(http, format!("{base}/v1/api-keys"), &admin, json!({"name": "k", "permissions": perms}))
    };
    let agent = key(json!(["payments:write"])).await.1["secret"].as_str().expect("agent").to_string();
    let reviewer =
        key(json!(["approvals:write", "approvals:read"])).await.1["secret"].as_str().expect("reviewer").to_string();
    let from = post(http, format!("{base}/v1/wallets"), &admin, json!({"name": "from"})).await.1["id"]
        .as_str()
        .expect("w")
        .to_string();
    let to = post(http, format!("{base}/v1/wallets"), &admin, json!({"name": "to"})).await.1["id"]
        .as_str()
        .expect("w")
        .to_string();
    post(http, format!("{base}/v1/wallets/{from}/fund"), &admin, json!({"amount": "100000000.00"})).await;
    post(
        http,
        format!("{base}/v1/wallets/{from}/policies"),
        &admin,
        json!({"name": "hold", "requireHumanApproval": true, "autoApproveBelow": "5.00"}),
    )
    .await;
    (agent, reviewer, from, to)
}

async fn local_server_throughput(server: &str) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let dir = std::env::temp_dir().join(format!("countersign-bench-{port}"));
    let mut child = std::process::Command::new(server)
        .args(["serve", "--addr", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(&dir)
        .env("COUNTERSIGN_ADMIN_KEY", OPERATOR_KEY)
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("start countersign");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().pool_max_idle_per_host(CONCURRENCY * 2).build().expect("client");
    for _ in 0..200 {
        if http.get(format!("{base}/health")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (agent, reviewer, from, to) = setup_org(&http, &base).await;

    println!("== local server ({server}), SQLite store with full fsync, {PAYMENTS} payments");
    let started = Instant::now();
    let held: Vec<(String, Duration)> = stream::iter(0..PAYMENTS)
        .map(|_| {
            let (http, base, agent) = (&http, &base, &agent);
            let body = json!({"from": from, "to": to, "amount": "10.00"});
            async move {
                let (status, body, took) = post(http, format!("{base}/v1/payments"), agent, body).await;
                assert_eq!(status, 202, "{body}");
                (body["approvalId"].as_str().expect("approval").to_string(), took)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    report("held intake", held.iter().map(|h| h.1).collect(), started.elapsed());

    let started = Instant::now();
    let approvals: Vec<Duration> = stream::iter(held.iter().map(|h| h.0.clone()))
        .map(|id| {
            let (http, base, reviewer) = (&http, &base, &reviewer);
            async move {
                let (status, body, took) =
                    post(http, format!("{base}/v1/approvals/{id}/approve"), reviewer, json!({})).await;
                assert_eq!(status, 200, "{body}");
                took
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    report("approve", approvals, started.elapsed());
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir);
}

async fn dynamodb_requests_per_operation() {
    let app = TestApp::spawn(Backend::Dynamo).await;
    let TestStore::Dynamo { store, .. } = &app.store else { unreachable!("dynamo backend") };
    let s = app.scenario("100000.00").await;
    println!("== DynamoDB requests per operation (DynamoDB Local, counted at the adapter; includes the auth read)");
    let measure = |name: &'static str, before: u64, after: u64| println!("{name:<28} {:>3} requests", after - before);
    // Warm every key once so the once-a-minute lastUsedAt refresh is not counted.
    for k in [&s.admin, &s.agent, &s.reviewer] {
        app.get("/v1/wallets", k).await;
    }
    let pay = |amount: &str| json!({"from": s.from, "to": s.to, "amount": amount});
    let n = store.request_count();
    let (st, _) = app.post("/v1/payments", &s.agent, pay("10.00")).await;
    assert_eq!(st, 201);
    measure("auto-executed intake", n, store.request_count());
    let n = store.request_count();
    let (st, held) = app.post("/v1/payments", &s.agent, pay("5000.00")).await;
    assert_eq!(st, 202);
    measure("held intake", n, store.request_count());
    let n = store.request_count();
    let mut with_key = pay("10.00");
    with_key["idempotencyKey"] = json!("bench-1");
    app.post("/v1/payments", &s.agent, with_key.clone()).await;
    measure("intake with idempotency key", n, store.request_count());
    let n = store.request_count();
    app.post("/v1/payments", &s.agent, with_key).await;
    measure("idempotent replay", n, store.request_count());
    let n = store.request_count();
    let (st, _) = app
        .post(&format!("/v1/approvals/{}/approve", held["approvalId"].as_str().expect("id")), &s.reviewer, json!({}))
        .await;
    assert_eq!(st, 200);
    measure("approve (executes payment)", n, store.request_count());
    let n = store.request_count();
    let (st, _) = app.get("/v1/approvals?limit=20", &s.reviewer).await;
    assert_eq!(st, 200);
    measure("list approvals (one page)", n, store.request_count());
    let n = store.request_count();
    app.service.expire_due(100).await.expect("sweep");
    measure("expiry sweep, nothing due", n, store.request_count());
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut server = None;
    while let Some(arg) = args.next() {
        if arg == "--server" {
            server = args.next();
        }
    }
    match server {
        Some(path) => local_server_throughput(&path).await,
        None => eprintln!("--server <path to countersign> not given: skipping the local-server benchmark"),
    }
    dynamodb_requests_per_operation().await;
    events::sweep_reads().await;
    events::sweep_backlog().await;
    events::fanout_throughput().await;
    events::healthy_latency_with_hanging_peer().await;
}
