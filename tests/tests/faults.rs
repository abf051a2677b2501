//! Faults mid-load, with six clients running intakes (executed at once and held), approvals,
//! rejections and funds:
//!
//! - DynamoDB Local stopped for 15 s in the middle of the run, then started again on the same
//!   data file: while it is down every answer is 503 `SERVICE_UNAVAILABLE` with `Retry-After`
//!   (never a 500, never a refusal that is not one); once it answers again, requests succeed.
//! - The local server (`countersign serve`) killed with SIGKILL in the middle of the run, then
//!   started again on the same data directory: requests cut by the kill fail at the connection
//!   level, and nothing that answers is ever a 500.
//!
//! Afterwards every request answered 503 or cut off is resent (intakes and funds with their
//! idempotency key, decisions as they were) until it is answered, and the invariant checker
//! (`countersign_tests::invariants`) must find every invariant holding: balances equal their
//! ledgers, one debit and one credit per executed payment, statuses agree, every decision
//! audited once, and no event lost (outbox items in the table; deliveries at a verifying webhook
//! receiver for the local server). Every payment a client was told about exists; only intakes
//! without an idempotency key that went unanswered may have left a payment nobody was told about.
//!
//! Each test runs its own emulator or server process on a free loopback port (killed on drop),
//! with a bounded number of requests and bounded waits; each prints its figures (run with
//! `--nocapture` to see them).

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use countersign_tests::events::Receiver;
use countersign_tests::invariants::{self, Api, ObservedEvent, Reply, Snapshot};
use countersign_tests::{dynamo_client_at, TestApp, TestStore, OPERATOR_KEY};
use serde_json::{json, Value};

/// Where DynamoDB Local's jar is (`DynamoDBLocal.jar`, `DynamoDBLocal_lib/`); scripts/test sets it.
const DYNAMODB_LOCAL_DIR_ENV: &str = "COUNTERSIGN_TEST_DYNAMODB_LOCAL_DIR";
/// The `countersign` binary; scripts/test builds it and sets this.
const BIN_ENV: &str = "COUNTERSIGN_BIN";

/// Concurrent clients.
const WORKERS: usize = 6;
/// Hard bound on requests per test (the phases below end well before it, normally).
const MAX_REQUESTS: usize = 2000;
/// Requests to complete before the fault, and after recovery.
const REQUESTS_BEFORE: usize = 80;
const REQUESTS_AFTER: usize = 80;
/// The store outage: longer than the core's 8 s of resending an ambiguous commit plus the SDK's
/// own retries, so every request that reached the store before the kill has answered before the
/// store is back.
const DYNAMODB_OUTAGE: Duration = Duration::from_secs(15);
/// How long the local server stays dead.
const SERVER_DOWN: Duration = Duration::from_secs(1);
/// Each request's own limit (an outage request takes up to ~12 s to give up).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Lost events come back through the sweep (unpublished after 60 s) or the queue lease (60 s).
const EVENTS_WAIT: Duration = Duration::from_secs(150);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("countersign-{name}-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn log_file(path: &std::path::Path) -> Stdio {
    Stdio::from(std::fs::OpenOptions::new().create(true).append(true).open(path).expect("log file"))
}

// ---------------------------------------------------------------------------------------------
// The organisation and the load.

struct Org {
    admin: String,
    agent: String,
    reviewer: String,
    /// Three payers, each holding payments above 1000.00 for approval; the last is poor, so
    /// some intakes are refused (402) and some approvals fail the payment (FAILED).
    payers: Vec<String>,
    payee: String,
}

async fn expect_created(api: &Api, path: &str, key: &str, body: Value) -> Value {
    let reply = api.send("POST", path, key, Some(&body)).await.unwrap_or_else(|e| panic!("POST {path}: {e}"));
    assert_eq!(reply.status, 201, "POST {path}: {}", reply.body);
    reply.body
}

async fn setup(api: &Api) -> Org {
    let org = expect_created(api, "/v1/organizations", OPERATOR_KEY, json!({"name": "faults"})).await;
    let admin = org["adminKey"]["secret"].as_str().expect("admin secret").to_string();
    let key = |permissions: Value| {
        let (api, admin) = (api.clone(), admin.clone());
        async move {
            let body = json!({"name": "k", "permissions": permissions});
            expect_created(&api, "/v1/api-keys", &admin, body).await["secret"].as_str().expect("secret").to_string()
        }
    };
    let agent = key(json!(["payments:write", "payments:read"])).await;
    let reviewer = key(json!(["approvals:read", "approvals:write"])).await;
    let mut payers = Vec::new();
    for funds in ["100000.00", "100000.00", "3000.00"] {
        let wallet = expect_created(api, "/v1/wallets", &admin, json!({"name": "payer"})).await;
        let id = wallet["id"].as_str().expect("id").to_string();
        expect_created(api, &format!("/v1/wallets/{id}/fund"), &admin, json!({"amount": funds})).await;
        let policy = json!({"name": "review large", "maxTransactionAmount": "1000.00", "requireHumanApproval": true});
        expect_created(api, &format!("/v1/wallets/{id}/policies"), &admin, policy).await;
        payers.push(id);
    }
    let payee = expect_created(api, "/v1/wallets", &admin, json!({"name": "payee"})).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    Org { admin, agent, reviewer, payers, payee }
}

#[derive(Debug, Clone)]
enum Op {
    /// `POST /v1/payments`; `keyed` when the body carries an idempotency key.
    Pay {
        body: Value,
        keyed: bool,
    },
    Decide {
        approval: String,
        approve: bool,
    },
    /// `POST /v1/wallets/{id}/fund`, always with an idempotency key.
    Fund {
        wallet: String,
        body: Value,
    },
}

impl Op {
    fn request<'a>(&self, org: &'a Org) -> (String, &'a str, Value) {
        match self {
            Op::Pay { body, .. } => ("/v1/payments".into(), &org.agent, body.clone()),
            Op::Decide { approval, approve } => {
                let verb = if *approve { "approve" } else { "reject" };
                (format!("/v1/approvals/{approval}/{verb}"), &org.reviewer, json!({}))
            }
            Op::Fund { wallet, body } => (format!("/v1/wallets/{wallet}/fund"), &org.admin, body.clone()),
        }
    }

    /// Whether `reply` is an answer this request may get when the service is healthy.
    fn expected(&self, reply: &Reply, settling: bool) -> bool {
        let (status, body) = (reply.status, &reply.body);
        match self {
            Op::Pay { .. } => {
                (status == 201 && body["status"] == "COMPLETED")
                    || (status == 202 && body["status"] == "PENDING_APPROVAL" && body["approvalId"].is_string())
                    || (status == 402 && body["error"]["code"] == "INSUFFICIENT_FUNDS")
            }
            Op::Decide { .. } => {
                (status == 200 && (body["status"] == "APPROVED" || body["status"] == "REJECTED"))
                    // Only a resend of a decision answered 503 may find it already taken.
                    || (settling && status == 409 && body["error"]["code"] == "APPROVAL_NOT_PENDING")
            }
            Op::Fund { .. } => status == 201 && body["transactionId"].is_string(),
        }
    }
}

fn is_unavailable(reply: &Reply) -> bool {
    reply.status == 503 && reply.body["error"]["code"] == "SERVICE_UNAVAILABLE" && reply.retry_after.is_some()
}

struct Record {
    op: Op,
    started: Instant,
    ended: Instant,
    outcome: Result<Reply, String>,
}

struct Load {
    api: Api,
    org: Org,
    stop: AtomicBool,
    seq: AtomicUsize,
    pending: Mutex<VecDeque<String>>,
    records: Mutex<Vec<Record>>,
}

impl Load {
    fn next_op(&self, n: usize) -> Op {
        let from = &self.org.payers[n % self.org.payers.len()];
        let pay = |amount: String| {
            let keyed = !n.is_multiple_of(5);
            let mut body = json!({"from": from, "to": self.org.payee, "amount": amount});
            if keyed {
                body["idempotencyKey"] = json!(format!("load-{n}"));
            }
            Op::Pay { body, keyed }
        };
        let small = || pay(format!("{}.{:02}", 1 + n % 40, n % 100));
        match n % 8 {
            2 | 5 => pay(format!("{}.00", 1500 + (n % 10) * 100)),
            3 | 6 => match self.pending.lock().expect("pending").pop_front() {
                Some(approval) => Op::Decide { approval, approve: !n.is_multiple_of(3) },
                None => small(),
            },
            7 => Op::Fund {
                wallet: from.clone(),
                body: json!({"amount": "250.00", "idempotencyKey": format!("fund-{n}")}),
            },
            _ => small(),
        }
    }

    async fn worker(self: Arc<Self>) {
        while !self.stop.load(Ordering::SeqCst) {
            let n = self.seq.fetch_add(1, Ordering::SeqCst);
            if n >= MAX_REQUESTS {
                return;
            }
            let op = self.next_op(n);
            let (path, key, body) = op.request(&self.org);
            let started = Instant::now();
            let outcome = self.api.send("POST", &path, key, Some(&body)).await;
            let ended = Instant::now();
            // A well-behaved client: honours Retry-After on 503, backs off when it cannot connect.
            let pause = match &outcome {
                Ok(reply) if reply.status == 503 => Duration::from_secs(1),
                Ok(reply) => {
                    if let (202, Some(approval)) = (reply.status, reply.body["approvalId"].as_str()) {
                        self.pending.lock().expect("pending").push_back(approval.to_string());
                    }
                    Duration::from_millis(10)
                }
                Err(_) => Duration::from_millis(250),
            };
            self.records.lock().expect("records").push(Record { op, started, ended, outcome });
            tokio::time::sleep(pause).await;
        }
    }

    fn done(&self) -> usize {
        self.records.lock().expect("records").len()
    }

    /// Waits until `n` requests have completed (or `cap` passed).
    async fn wait_for_requests(&self, n: usize, cap: Duration) {
        let deadline = Instant::now() + cap;
        while self.done() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Runs `WORKERS` clients until `stop`.
fn start_load(api: Api, org: Org) -> (Arc<Load>, Vec<tokio::task::JoinHandle<()>>) {
    let load = Arc::new(Load {
        api,
        org,
        stop: AtomicBool::new(false),
        seq: AtomicUsize::new(0),
        pending: Mutex::new(VecDeque::new()),
        records: Mutex::new(Vec::new()),
    });
    let workers = (0..WORKERS).map(|_| tokio::spawn(load.clone().worker())).collect();
    (load, workers)
}

async fn stop_load(load: &Load, workers: Vec<tokio::task::JoinHandle<()>>) -> Vec<Record> {
    load.stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.expect("worker");
    }
    std::mem::take(&mut *load.records.lock().expect("records"))
}

// ---------------------------------------------------------------------------------------------
// Judging the answers.

/// When the fault began (just before the signal), when the process was gone, when it was started
/// again and when it answered again.
struct Fault {
    kill_at: Instant,
    down_at: Instant,
    restart_at: Instant,
    ready_at: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Answered before the kill.
    Before,
    /// In flight at the kill.
    AroundKill,
    /// Sent after the process was gone, answered before it was started again.
    Outage,
    /// Sent during the outage, answered after the restart began, or sent while it was starting.
    AroundRestart,
    /// Sent once it answered again.
    After,
}

fn phase(r: &Record, f: &Fault) -> Phase {
    if r.ended < f.kill_at {
        Phase::Before
    } else if r.started < f.down_at {
        Phase::AroundKill
    } else if r.ended < f.restart_at {
        Phase::Outage
    } else if r.started < f.ready_at {
        Phase::AroundRestart
    } else {
        Phase::After
    }
}

fn label(outcome: &Result<Reply, String>) -> String {
    match outcome {
        Ok(reply) => reply.status.to_string(),
        Err(_) => "conn-error".into(),
    }
}

/// Counts per phase and answer, with answer times, for the report.
fn tally(records: &[Record], fault: &Fault) -> String {
    let mut by: BTreeMap<Phase, (BTreeMap<String, usize>, Vec<Duration>)> = BTreeMap::new();
    for r in records {
        let (counts, times) = by.entry(phase(r, fault)).or_default();
        *counts.entry(label(&r.outcome)).or_default() += 1;
        times.push(r.ended - r.started);
    }
    by.into_iter()
        .map(|(phase, (counts, mut times))| {
            times.sort();
            let ms = |d: Duration| d.as_millis();
            format!(
                "{phase:?} {counts:?} (p50 {} ms, max {} ms)",
                ms(times[times.len() / 2]),
                ms(times[times.len() - 1])
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Which answers each phase allows; `during_outage` judges requests sent while the process was
/// gone. Never a 500, never an unexpected 4xx. Panics with every offending request.
fn judge(
    records: &[Record],
    fault: &Fault,
    during_outage: impl Fn(&Result<Reply, String>) -> bool,
    around: impl Fn(&Result<Reply, String>) -> bool,
) {
    let mut bad = Vec::new();
    for r in records {
        let p = phase(r, fault);
        let healthy = matches!(&r.outcome, Ok(reply) if r.op.expected(reply, false));
        let ok = match p {
            Phase::Before | Phase::After => healthy,
            Phase::Outage => during_outage(&r.outcome),
            Phase::AroundKill | Phase::AroundRestart => healthy || around(&r.outcome),
        };
        if !ok {
            bad.push(format!("{p:?} {:?}: {:?}", r.op, r.outcome));
        }
    }
    assert!(bad.is_empty(), "{} unexpected answers:\n  {}", bad.len(), bad.join("\n  "));
}

/// What resending the unanswered requests found.
#[derive(Debug, Default)]
struct Settled {
    /// Requests answered 503 or cut off.
    unresolved: usize,
    /// Resent (keyed intakes, funds, decisions).
    resent: usize,
    /// Of those, found already done (an idempotent replay, or a decision already taken).
    had_committed: usize,
    /// Intakes without a key that were not answered: they may or may not have executed.
    unknown_unkeyed: usize,
}

/// Resends every request that was answered 503 or cut off, whose outcome can be settled (an
/// intake or fund with its idempotency key, a decision), until it is answered; returns the
/// payment ids and fund transaction ids every answer named.
async fn settle(load: &Load, records: &[Record]) -> (Settled, Vec<String>, Vec<String>) {
    let mut settled = Settled::default();
    let mut payments = Vec::new();
    let mut funds = Vec::new();
    let mut note = |op: &Op, reply: &Reply| match op {
        Op::Pay { .. } if reply.status == 201 || reply.status == 202 => {
            payments.push(reply.body["id"].as_str().expect("payment id").to_string())
        }
        Op::Fund { .. } => funds.push(reply.body["transactionId"].as_str().expect("transaction id").to_string()),
        _ => {}
    };
    for r in records {
        match &r.outcome {
            Ok(reply) if reply.status != 503 => note(&r.op, reply),
            _ => {
                settled.unresolved += 1;
                if matches!(r.op, Op::Pay { keyed: false, .. }) {
                    settled.unknown_unkeyed += 1;
                    continue;
                }
                let (path, key, body) = r.op.request(&load.org);
                let mut answer = None;
                for _ in 0..40 {
                    match load.api.send("POST", &path, key, Some(&body)).await {
                        Ok(reply) if reply.status != 503 => {
                            answer = Some(reply);
                            break;
                        }
                        _ => tokio::time::sleep(Duration::from_millis(500)).await,
                    }
                }
                let reply = answer.unwrap_or_else(|| panic!("{:?}: still unavailable after recovery", r.op));
                assert!(r.op.expected(&reply, true), "resent {:?}: {} {}", r.op, reply.status, reply.body);
                settled.resent += 1;
                if reply.replayed || reply.status == 409 {
                    settled.had_committed += 1;
                }
                note(&r.op, &reply);
            }
        }
    }
    (settled, payments, funds)
}

/// After settling: every answered payment and fund exists, and only unanswered intakes without a
/// key may have left a payment nobody was told about.
async fn check_answers(
    load: &Load,
    records: &[Record],
    fault: &Fault,
    snapshot: &Snapshot,
    settled: &Settled,
    payments: &[String],
    funds: &[String],
) {
    let listed: std::collections::BTreeSet<&str> = snapshot.payments.iter().filter_map(|p| p["id"].as_str()).collect();
    let answered: std::collections::BTreeSet<&str> = payments.iter().map(String::as_str).collect();
    assert_eq!(answered.len(), payments.len(), "two answers named one payment");
    let mut missing = Vec::new();
    for id in answered.difference(&listed) {
        // Which request was told about it, and whether it can still be read by id.
        let told = records.iter().find(|r| matches!(&r.outcome, Ok(reply) if reply.body["id"] == **id));
        let read = load.api.send("GET", &format!("/v1/payments/{id}"), &load.org.admin, None).await;
        let read = read.map(|reply| reply.status);
        missing.push(format!(
            "{id}: answered {:?} to {:?}; GET by id → {read:?}",
            told.map(|r| phase(r, fault)),
            told.map(|r| &r.op)
        ));
    }
    assert!(missing.is_empty(), "answered payments that are not listed:\n  {}", missing.join("\n  "));
    let untold = listed.difference(&answered).count();
    assert!(
        untold <= settled.unknown_unkeyed,
        "{untold} payments nobody was told about, but only {} unkeyed intakes went unanswered",
        settled.unknown_unkeyed
    );
    let fund_lines: std::collections::BTreeSet<&str> = snapshot
        .ledgers
        .values()
        .flatten()
        .filter(|l| l["kind"] == "FUND")
        .filter_map(|l| l["transactionId"].as_str())
        .collect();
    for txn in funds {
        assert!(fund_lines.contains(txn.as_str()), "answered fund {txn} has no ledger line");
    }
    // The three setup funds plus every fund of the load (all keyed, all settled).
    assert_eq!(fund_lines.len(), 3 + funds.len(), "funds executed twice or without an answer");
}

// ---------------------------------------------------------------------------------------------
// DynamoDB Local, run by the test so it can be stopped and started on the same data.

struct DynamoLocal {
    jar_dir: PathBuf,
    db_path: PathBuf,
    log: PathBuf,
    port: u16,
    child: Option<tokio::process::Child>,
}

impl DynamoLocal {
    fn new() -> Self {
        let jar_dir = std::env::var(DYNAMODB_LOCAL_DIR_ENV).unwrap_or_else(|_| {
            panic!("{DYNAMODB_LOCAL_DIR_ENV} is not set: point it at DynamoDB Local's directory (scripts/test does)")
        });
        let jar_dir = PathBuf::from(jar_dir);
        assert!(jar_dir.join("DynamoDBLocal.jar").exists(), "no DynamoDBLocal.jar in {}", jar_dir.display());
        let dir = temp_dir("faults-dynamodb");
        DynamoLocal {
            jar_dir,
            db_path: dir.clone(),
            log: dir.join("dynamodb-local.log"),
            port: free_port(),
            child: None,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts it on the same port and data file (`-sharedDb -dbPath`, not `-inMemory`).
    fn start(&mut self) {
        let child = tokio::process::Command::new("java")
            .arg(format!("-Djava.library.path={}", self.jar_dir.join("DynamoDBLocal_lib").display()))
            .arg("-jar")
            .arg(self.jar_dir.join("DynamoDBLocal.jar"))
            // No telemetry: the test's traffic stays on the loopback interface.
            .args(["-disableTelemetry", "-sharedDb", "-dbPath"])
            .arg(&self.db_path)
            .args(["-port", &self.port.to_string()])
            // It writes `dynamodb-local-metadata.json` where it runs: keep that out of the tree.
            .current_dir(&self.db_path)
            .stdout(log_file(&self.log))
            .stderr(log_file(&self.log))
            .kill_on_drop(true)
            .spawn()
            .expect("start DynamoDB Local (java)");
        self.child = Some(child);
    }

    /// Stops it with SIGTERM and waits until it is gone. Not SIGKILL: killed, DynamoDB Local
    /// (unlike DynamoDB) loses its last acknowledged write (300 acknowledged TransactWriteItems,
    /// 299 items after SIGKILL and restart; 300 after SIGTERM), which would be the emulator's
    /// fault, not the service's. Requests in flight are still cut or refused.
    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().expect("DynamoDB Local's pid");
            let sent = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
            assert!(sent.as_ref().is_ok_and(|s| s.success()), "SIGTERM to DynamoDB Local: {sent:?}");
            match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
                Ok(status) => {
                    status.expect("reap DynamoDB Local");
                }
                Err(_) => panic!("DynamoDB Local did not stop within 30 s of SIGTERM; see {}", self.log.display()),
            }
        }
    }

    async fn wait_until_it_answers(&self, client: &aws_sdk_dynamodb::Client) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while client.list_tables().send().await.is_err() {
            assert!(Instant::now() < deadline, "DynamoDB Local did not answer; see {}", self.log.display());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Every outbox event in the table (they commit with their change).
async fn outbox_events(client: &aws_sdk_dynamodb::Client, table: &str) -> Vec<ObservedEvent> {
    let mut events = Vec::new();
    let mut start = None;
    loop {
        let out = client
            .scan()
            .table_name(table)
            .filter_expression("begins_with(pk, :event)")
            .expression_attribute_values(":event", AttributeValue::S("EVENT#".into()))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan outbox");
        for item in out.items.unwrap_or_default() {
            // Read as the store reads it: outbox events are kept deflated.
            let item = countersign_core::adapters::dynamodb::from_attributes(item).expect("an item");
            let body = item.body.value().unwrap_or(Value::Null);
            // Policy events (the scenario's setup) name no payment or approval: not the
            // checker's business; any other event must be readable.
            if body["type"].as_str().is_some_and(|kind| kind.starts_with("policy.")) {
                continue;
            }
            events.push(ObservedEvent::from_body(&body).unwrap_or_else(|| panic!("unreadable outbox event: {body}")));
        }
        start = out.last_evaluated_key;
        if start.is_none() {
            return events;
        }
    }
}

/// The service on DynamoDB Local run by the test, stopped (SIGTERM) after 80 requests and
/// started again 15 s later on the same `-dbPath`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_outage_mid_load_keeps_every_invariant() {
    let began = Instant::now();
    let mut dynamo = DynamoLocal::new();
    dynamo.start();
    let client = dynamo_client_at(&dynamo.endpoint()).await;
    dynamo.wait_until_it_answers(&client).await;
    let app = TestApp::spawn_on_dynamo_at(&dynamo.endpoint()).await;
    let TestStore::Dynamo { table, .. } = &app.store else { unreachable!("a DynamoDB store") };
    let http = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build().expect("client");
    let api = Api::new(app.base.clone(), http);
    let org = setup(&api).await;
    let admin = org.admin.clone();

    let (load, workers) = start_load(api.clone(), org);
    load.wait_for_requests(REQUESTS_BEFORE, Duration::from_secs(30)).await;
    let kill_at = Instant::now();
    dynamo.stop().await;
    let down_at = Instant::now();
    tokio::time::sleep(DYNAMODB_OUTAGE).await;
    let restart_at = Instant::now();
    dynamo.start();
    dynamo.wait_until_it_answers(&client).await;
    let ready_at = Instant::now();
    let fault = Fault { kill_at, down_at, restart_at, ready_at };
    load.wait_for_requests(load.done() + REQUESTS_AFTER, Duration::from_secs(60)).await;
    let records = stop_load(&load, workers).await;

    // While the store is gone every answer is 503 SERVICE_UNAVAILABLE (with Retry-After); the
    // service itself never stops answering.
    let unavailable = |o: &Result<Reply, String>| matches!(o, Ok(reply) if is_unavailable(reply));
    judge(&records, &fault, unavailable, unavailable);
    let outage_answers = records.iter().filter(|r| phase(r, &fault) == Phase::Outage).count();
    assert!(outage_answers >= WORKERS, "only {outage_answers} requests were answered during the outage");

    let (settled, payments, funds) = settle(&load, &records).await;
    let snapshot = invariants::check(&api, &admin).await;
    check_answers(&load, &records, &fault, &snapshot, &settled, &payments, &funds).await;
    let events = outbox_events(&client, table).await;
    let lost = snapshot.event_violations(&events);
    assert!(lost.is_empty(), "events:\n  {}", lost.join("\n  "));

    eprintln!(
        "dynamodb outage: {} requests by {WORKERS} clients; SIGTERM took {:.1} s; store down {:.1} s, answering again {:.1} s after restart; \
         by phase: {}; settled {settled:?}; {} outbox events; {}; test took {:.1} s",
        records.len(),
        (down_at - kill_at).as_secs_f64(),
        (restart_at - down_at).as_secs_f64(),
        (ready_at - restart_at).as_secs_f64(),
        tally(&records, &fault),
        events.len(),
        snapshot.summary(),
        began.elapsed().as_secs_f64()
    );
    dynamo.stop().await;
    let _ = std::fs::remove_dir_all(&dynamo.db_path);
}

// ---------------------------------------------------------------------------------------------
// The local server binary, killed and restarted on the same data directory.

struct LocalServer {
    bin: PathBuf,
    data_dir: PathBuf,
    log: PathBuf,
    port: u16,
    child: Option<tokio::process::Child>,
}

impl LocalServer {
    fn new() -> Self {
        let bin = std::env::var(BIN_ENV).unwrap_or_else(|_| {
            panic!("{BIN_ENV} is not set: build `countersign` and point it at the binary (scripts/test does)")
        });
        let bin = PathBuf::from(bin);
        assert!(bin.exists(), "{BIN_ENV}={} does not exist", bin.display());
        let dir = temp_dir("faults-local");
        LocalServer { bin, data_dir: dir.join("data"), log: dir.join("server.log"), port: free_port(), child: None }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn start(&mut self) {
        let child = tokio::process::Command::new(&self.bin)
            .args(["serve", "--addr", &format!("127.0.0.1:{}", self.port), "--data-dir"])
            .arg(&self.data_dir)
            .env("COUNTERSIGN_ADMIN_KEY", OPERATOR_KEY)
            .env("COUNTERSIGN_ALLOW_PRIVATE_WEBHOOKS", "true")
            .env("COUNTERSIGN_SWEEP_INTERVAL_SECONDS", "1")
            .env("COUNTERSIGN_WEBHOOK_BACKOFF_BASE_MS", "200")
            .env("RUST_LOG", "warn")
            .stdout(log_file(&self.log))
            .stderr(log_file(&self.log))
            .kill_on_drop(true)
            .spawn()
            .expect("start countersign serve");
        self.child = Some(child);
    }

    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().expect("SIGKILL countersign");
            child.wait().await.expect("reap countersign");
        }
    }

    async fn wait_until_healthy(&mut self, http: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(res) = http.get(format!("{}/health", self.base())).send().await {
                if res.status() == 200 {
                    return;
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("countersign exited ({status}); see {}", self.log.display());
            }
            assert!(Instant::now() < deadline, "countersign is not healthy; see {}", self.log.display());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The real `countersign serve` binary, SIGKILLed after 80 requests and started again 1 s later
/// on the same data directory and port; a webhook on `*` to a verifying receiver.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_server_sigkill_mid_load_keeps_every_invariant() {
    let began = Instant::now();
    let receiver = Receiver::start().await;
    let mut server = LocalServer::new();
    // A fresh connection per request: none is left pointing at the killed process.
    let http = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).pool_max_idle_per_host(0).build().expect("client");
    server.start();
    server.wait_until_healthy(&http).await;
    let api = Api::new(server.base(), http.clone());
    let org = setup(&api).await;
    let admin = org.admin.clone();
    let hook =
        expect_created(&api, "/v1/webhooks", &admin, json!({"url": receiver.url("faults"), "events": ["*"]})).await;
    receiver.control("faults", hook["secret"].as_str().expect("secret"), "ok").await;

    let (load, workers) = start_load(api.clone(), org);
    load.wait_for_requests(REQUESTS_BEFORE, Duration::from_secs(30)).await;
    let kill_at = Instant::now();
    server.kill().await;
    let down_at = Instant::now();
    tokio::time::sleep(SERVER_DOWN).await;
    let restart_at = Instant::now();
    server.start();
    server.wait_until_healthy(&http).await;
    let ready_at = Instant::now();
    let fault = Fault { kill_at, down_at, restart_at, ready_at };
    load.wait_for_requests(load.done() + REQUESTS_AFTER, Duration::from_secs(60)).await;
    let records = stop_load(&load, workers).await;

    // A dead process answers nothing: requests in flight at the kill, or sent while it was down,
    // fail at the connection level; anything that does answer is never a 500.
    let cut = |o: &Result<Reply, String>| o.is_err();
    judge(&records, &fault, cut, |o| cut(o) || matches!(o, Ok(reply) if is_unavailable(reply)));

    let (settled, payments, funds) = settle(&load, &records).await;
    let snapshot = invariants::check(&api, &admin).await;
    check_answers(&load, &records, &fault, &snapshot, &settled, &payments, &funds).await;

    // No event lost: the receiver eventually gets every one (events committed but not queued at
    // the kill are re-published by the sweep; claimed deliveries come back after their lease).
    let began_waiting = Instant::now();
    let deadline = began_waiting + EVENTS_WAIT;
    let (deliveries, lost) = loop {
        let deliveries = receiver.received("faults").await;
        let observed: Vec<ObservedEvent> =
            deliveries.iter().filter_map(|d| ObservedEvent::from_body(&d["body"])).collect();
        let lost = snapshot.event_violations(&observed);
        if lost.is_empty() || Instant::now() >= deadline {
            break (deliveries, lost);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(lost.is_empty(), "after {EVENTS_WAIT:?}:\n  {}", lost.join("\n  "));
    let events_took = began_waiting.elapsed();
    assert!(deliveries.iter().all(|d| d["verified"] == true), "a delivery failed verification: {deliveries:?}");

    eprintln!(
        "local server SIGKILL: {} requests by {WORKERS} clients; down {:.1} s, healthy {:.1} s after restart; \
         by phase: {}; settled {settled:?}; {} deliveries of {} events (all in {:.1} s after the checks); {}; test took {:.1} s",
        records.len(),
        (restart_at - down_at).as_secs_f64(),
        (ready_at - restart_at).as_secs_f64(),
        tally(&records, &fault),
        deliveries.len(),
        snapshot.expected_events().len(),
        events_took.as_secs_f64(),
        snapshot.summary(),
        began.elapsed().as_secs_f64()
    );
    server.kill().await;
    let _ = std::fs::remove_dir_all(server.data_dir.parent().expect("dir"));
}
