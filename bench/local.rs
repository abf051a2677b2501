//! The local server (`countersign serve`, `local-release` binary) under wrk at 16 connections: held
//! intake, approve, and auto-executed payments from one hot wallet, beside their floors: the
//! same server's `/health` under the same wrk, and raw SQLite on the same disk.

use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use serde_json::json;

use crate::figures::{Figure, Figures, Run};
use crate::wrk;

pub const CONCURRENCY: usize = 16;
/// Approvals made ready per second of the approve run: more than it can approve.
const APPROVALS_PER_SECOND: usize = 6_000;

/// `BENCH_SCALE` (default 1.0) scales the run times, for quick looks.
fn scale() -> f64 {
    std::env::var("BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0)
}
pub const OPERATOR_KEY: &str = "bench-operator-key-0123456789";
const SECTION: &str = "Local server (SQLite, synchronous=FULL), concurrency 16";

/// A process's CPU seconds so far and bytes it has written to storage (Linux `/proc`; the
/// WAL, the checkpoints and the database file).
#[derive(Clone, Copy)]
struct Usage {
    cpu_seconds: f64,
    disk_bytes: f64,
}

fn usage(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    let written = io.lines().find_map(|l| l.strip_prefix("write_bytes: "))?.trim().parse().ok()?;
    Some(Usage { cpu_seconds: ticks / clock_ticks_per_second(), disk_bytes: written })
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

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
        // `BENCH_SERVER_LOG` sets the server's RUST_LOG (e.g. the writer's batch stats at debug).
        .env("RUST_LOG", std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()))
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

pub async fn server_throughput(binary: &str, sqlite: &crate::floors::SqliteFloor, figures: &Figures) {
    assert!(wrk::available(), "wrk is not installed (bench/run installs it)");
    let http = reqwest::Client::builder().pool_max_idle_per_host(CONCURRENCY * 2).build().expect("client");
    let server = start(binary, &http).await;
    let base = server.base.clone();
    let org = setup(&http, &base).await;
    let scratch = server.dir.join("wrk");
    std::fs::create_dir_all(&scratch).expect("scratch");
    let seconds = Duration::from_secs_f64(5.0 * scale());
    println!("== local server ({binary}), wrk: {} connections, {seconds:?} per run", wrk::CONNECTIONS);
    let pid = server.child.id();
    let run = |url: String, script: wrk::Script<'_>, duration: Duration| {
        let before = usage(pid);
        let mut result = tokio::task::block_in_place(|| wrk::run(&scratch, &url, script, duration));
        let requests = result.requests.max(1) as f64;
        result.server = before.zip(usage(pid)).map(|(b, a)| wrk::ServerCost {
            cpu_us: (a.cpu_seconds - b.cpu_seconds) * 1e6 / requests,
            disk_kb: (a.disk_bytes - b.disk_bytes) / 1024.0 / requests,
        });
        println!("({} requests to {url})", result.requests);
        result
    };

    let health = run(format!("{base}/health"), wrk::Script::Get, seconds);
    let floor_rate = ("/health rate".to_string(), health.rate);
    let floor_p50 = ("/health p50".to_string(), health.p50_ms);
    let floor_p99 = ("/health p99".to_string(), health.p99_ms);
    let sqlite_rate = ("raw SQLite fsynced tx/s, 1 writer".to_string(), sqlite.rate);
    let f = |name: &str, value: f64, unit: &'static str, target: &'static str, floor: Option<&(String, f64)>| {
        figures.add(Figure { section: SECTION, name: name.to_string(), value, unit, target, floor: floor.cloned() })
    };
    f("/health rate (HTTP floor)", health.rate, "req/s", "", None);
    f("/health p50", health.p50_ms, "ms", "", None);
    f("/health p99", health.p99_ms, "ms", "", None);

    let report = |what: &str, r: &wrk::WrkRun, rate_target: &'static str, p99_target: &'static str| {
        f(&format!("{what} rate"), r.rate, "req/s", rate_target, Some(&floor_rate));
        f(&format!("{what} p50"), r.p50_ms, "ms", "", Some(&floor_p50));
        f(&format!("{what} p99"), r.p99_ms, "ms", p99_target, Some(&floor_p99));
        f(&format!("{what} 5xx"), r.server_errors as f64, "count", "0", None);
        if let Some(cost) = r.server {
            f(&format!("{what}: server CPU per request"), cost.cpu_us, "µs", "", None);
            f(&format!("{what}: bytes written to disk per request"), cost.disk_kb, "KB", "", None);
        }
        if r.other_non_2xx > 0 {
            f(&format!("{what} other non-2xx"), r.other_non_2xx as f64, "count", "", None);
        }
    };

    // One wallet, every payment executed at once: they all rewrite the same wallet.
    let hot_body = json!({"from": org.hot, "to": org.to, "amount": "1.00"}).to_string();
    let hot = run(
        format!("{base}/v1/payments"),
        wrk::Script::PostSame { body: &hot_body, key: &org.agent, keep_ids: None },
        seconds,
    );
    report("hot wallet (one wallet) auto-executed", &hot, ">= 2000", "<= 25");
    // Let the background work of the run before (the relay and fan-out of its events) settle.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let held_body = json!({"from": org.held_from, "to": org.to, "amount": "10.00"}).to_string();
    let ids = scratch.join("approvals");
    // Measured without keeping the approval ids: writing one per answer costs wrk (which shares
    // this machine's two cores with the server) 15-20 % of the rate. The approve run's ids come
    // from the unmeasured runs below.
    let held = run(
        format!("{base}/v1/payments"),
        wrk::Script::PostSame { body: &held_body, key: &org.agent, keep_ids: None },
        seconds,
    );
    report("held intake", &held, ">= 5000", "<= 10");
    f("held intake rate vs raw SQLite", held.rate, "req/s", ">= 5000", Some(&sqlite_rate));

    // Enough held payments that the approve run cannot run out (more intake, not measured, ids kept).
    let needed = (APPROVALS_PER_SECOND as f64 * seconds.as_secs_f64()) as usize;
    while wrk::gather_ids(&ids) < needed {
        run(
            format!("{base}/v1/payments"),
            wrk::Script::PostSame { body: &held_body, key: &org.agent, keep_ids: Some(&ids) },
            seconds,
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Each held payment approved once (all from one wallet: they take turns on it).
    let approved =
        run(format!("{base}/v1/approvals"), wrk::Script::ApproveEach { key: &org.reviewer, ids: &ids }, seconds);
    report("approve (one wallet)", &approved, ">= 2000", "");
    if approved.ran_out > 0 {
        println!("(the approve run ran out of approvals: its rate undercounts)");
    }
}
