//! The local server (`countersign serve`, release binary) under load at a fixed concurrency:
//! held intake, approve, and auto-executed payments from one hot wallet, beside their floors:
//! the same server's `/health` with the same client, and raw SQLite on the same disk.

use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use serde_json::json;

use crate::figures::{Figure, Figures, Run};

pub const CONCURRENCY: usize = 16;
const HEALTH_REQUESTS: usize = 20_000;
const PAYMENTS: usize = 6_000;
const HOT_PAYMENTS: usize = 6_000;

/// `BENCH_SCALE` (default 1.0) scales the request counts, for quick looks.
fn scaled(n: usize) -> usize {
    let scale: f64 = std::env::var("BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    ((n as f64 * scale) as usize).max(16)
}
pub const OPERATOR_KEY: &str = "bench-operator-key-0123456789";
const SECTION: &str = "Local server (SQLite, synchronous=FULL), concurrency 16";

pub struct Server {
    child: std::process::Child,
    pub base: String,
    pub dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub async fn start(binary: &str, http: &reqwest::Client) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let dir = std::env::temp_dir().join(format!("countersign-bench-{port}"));
    let child = std::process::Command::new(binary)
        .args(["serve", "--addr", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(&dir)
        .env("COUNTERSIGN_ADMIN_KEY", OPERATOR_KEY)
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("start countersign");
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if http.get(format!("{base}/health")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server { child, base, dir }
}

pub async fn post(http: &reqwest::Client, url: String, key: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    match http.post(url).bearer_auth(key).json(&body).send().await {
        Ok(res) => {
            let status = res.status().as_u16();
            (status, res.json().await.unwrap_or(serde_json::Value::Null))
        }
        Err(e) => (599, json!({"transport": e.to_string()})),
    }
}

/// Runs `requests` at `concurrency`; each returns its status and a value to keep.
pub async fn load<T, F, Fut>(n: usize, concurrency: usize, request: F) -> (Run, Vec<T>)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = (u16, T)>,
{
    let started = Instant::now();
    let results: Vec<(u16, T, Duration)> = stream::iter(0..n)
        .map(|i| {
            let fut = request(i);
            async move {
                let t = Instant::now();
                let (status, kept) = fut.await;
                (status, kept, t.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let wall = started.elapsed();
    let errors = results.iter().filter(|r| r.0 >= 500).count();
    let latencies = results.iter().map(|r| r.2).collect();
    (Run::new(latencies, wall, errors), results.into_iter().map(|r| r.1).collect())
}

pub struct Org {
    pub agent: String,
    pub reviewer: String,
    pub held_from: String,
    pub hot: String,
    pub to: String,
}

pub async fn setup(http: &reqwest::Client, base: &str) -> Org {
    let (_, org) = post(http, format!("{base}/v1/organizations"), OPERATOR_KEY, json!({"name": "bench"})).await;
    let admin = org["adminKey"]["secret"].as_str().expect("admin").to_string();
    let key = |perms: serde_json::Value| {
        post(http, format!("{base}/v1/api-keys"), &admin, json!({"name": "k", "permissions": perms}))
    };
    let agent = key(json!(["payments:write"])).await.1["secret"].as_str().expect("agent").to_string();
    let reviewer =
        key(json!(["approvals:write", "approvals:read"])).await.1["secret"].as_str().expect("reviewer").to_string();
    let wallet = |name: &'static str| post(http, format!("{base}/v1/wallets"), &admin, json!({"name": name}));
    let held_from = wallet("held").await.1["id"].as_str().expect("w").to_string();
    let hot = wallet("hot").await.1["id"].as_str().expect("w").to_string();
    let to = wallet("to").await.1["id"].as_str().expect("w").to_string();
    for w in [&held_from, &hot] {
        post(http, format!("{base}/v1/wallets/{w}/fund"), &admin, json!({"amount": "100000000.00"})).await;
    }
    post(
        http,
        format!("{base}/v1/wallets/{held_from}/policies"),
        &admin,
        json!({"name": "hold", "requireHumanApproval": true, "autoApproveBelow": "5.00"}),
    )
    .await;
    Org { agent, reviewer, held_from, hot, to }
}

/// The HTTP floor: `/health` on the same server with the same client and concurrency.
pub async fn health_floor(http: &reqwest::Client, base: &str) -> Run {
    let url = format!("{base}/health");
    load(scaled(HEALTH_REQUESTS), CONCURRENCY, |_| {
        let req = http.get(&url);
        async move {
            match req.send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let _ = r.bytes().await;
                    (status, ())
                }
                Err(_) => (599, ()),
            }
        }
    })
    .await
    .0
}

pub async fn server_throughput(binary: &str, sqlite: &crate::floors::SqliteFloor, figures: &Figures) {
    let http = reqwest::Client::builder().pool_max_idle_per_host(CONCURRENCY * 2).build().expect("client");
    let server = start(binary, &http).await;
    let base = server.base.clone();
    let org = setup(&http, &base).await;
    println!("== local server ({binary}), {PAYMENTS} payments per run, concurrency {CONCURRENCY}");

    let health = health_floor(&http, &base).await;
    let floor_rate = ("/health rate".to_string(), health.rate());
    let floor_p50 = ("/health p50".to_string(), health.p50());
    let floor_p99 = ("/health p99".to_string(), health.p99());
    let sqlite_rate = ("raw SQLite fsynced tx/s, 1 writer".to_string(), sqlite.rate);
    let f = |name: &str, value: f64, unit: &'static str, target: &'static str, floor: Option<&(String, f64)>| Figure {
        section: SECTION,
        name: name.to_string(),
        value,
        unit,
        target,
        floor: floor.cloned(),
    };
    figures.add(f("/health rate (HTTP floor)", health.rate(), "req/s", "", None));
    figures.add(f("/health p50", health.p50(), "ms", "", None));
    figures.add(f("/health p99", health.p99(), "ms", "", None));

    let hot_body = json!({"from": org.hot, "to": org.to, "amount": "1.00"});
    let (hot, _) = load(scaled(HOT_PAYMENTS), CONCURRENCY, |_| {
        let fut = post(&http, format!("{base}/v1/payments"), &org.agent, hot_body.clone());
        async move { (fut.await.0, ()) }
    })
    .await;
    figures.add(f("hot wallet auto-executed rate", hot.rate(), "req/s", ">= 2000", Some(&floor_rate)));
    figures.add(f("hot wallet auto-executed p50", hot.p50(), "ms", "", Some(&floor_p50)));
    figures.add(f("hot wallet auto-executed p99", hot.p99(), "ms", "<= 25", Some(&floor_p99)));
    figures.add(f("hot wallet auto-executed 5xx", hot.server_errors as f64, "count", "0", None));
    // Let the background work of the run before (webhook fan-out of its events) settle.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let held_body = json!({"from": org.held_from, "to": org.to, "amount": "10.00"});
    let (held, approvals) = load(scaled(PAYMENTS), CONCURRENCY, |_| {
        let fut = post(&http, format!("{base}/v1/payments"), &org.agent, held_body.clone());
        async move {
            let (status, body) = fut.await;
            (status, if status == 202 { body["approvalId"].as_str().map(str::to_string) } else { None })
        }
    })
    .await;
    figures.add(f("held intake rate", held.rate(), "req/s", ">= 5000", Some(&floor_rate)));
    figures.add(f("held intake rate vs raw SQLite", held.rate(), "req/s", ">= 5000", Some(&sqlite_rate)));
    figures.add(f("held intake p50", held.p50(), "ms", "", Some(&floor_p50)));
    figures.add(f("held intake p99", held.p99(), "ms", "<= 10", Some(&floor_p99)));
    figures.add(f("held intake 5xx", held.server_errors as f64, "count", "0", None));

    let approvals: Vec<String> = approvals.into_iter().flatten().collect();
    let (approved, _) = load(approvals.len(), CONCURRENCY, |i| {
        let url = format!("{base}/v1/approvals/{}/approve", approvals[i]);
        let fut = post(&http, url, &org.reviewer, json!({}));
        async move { (fut.await.0, ()) }
    })
    .await;
    figures.add(f("approve rate (one wallet)", approved.rate(), "req/s", ">= 2000", Some(&floor_rate)));
    figures.add(f("approve p50", approved.p50(), "ms", "", Some(&floor_p50)));
    figures.add(f("approve p99", approved.p99(), "ms", "", Some(&floor_p99)));
    figures.add(f("approve 5xx", approved.server_errors as f64, "count", "0", None));
}
