//! The layout is documented in one place: docs/architecture.md's access-pattern table. A broad
//! scenario runs through the real service on the embedded store (as `countersign serve` wires
//! it: the outbox relay, the store-backed queue and its worker, a real webhook client), once as
//! the embedded store runs and once with its reads reported as round trips (as DynamoDB's are:
//! read-ahead, and long-poll slots kept in the store). Every key written (each put as it is
//! written, and every item left in the SQLite file: `pk`/`sk` and each index's keys) is reduced
//! to the table's pattern for its index, and must be in the table. Every row of the table, in
//! turn, must be written by the scenario, unless the row says it is read only or is listed in
//! `NOT_WRITTEN_HERE` with the reason.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use countersign_core::domain::ids::ApprovalId;
use countersign_core::domain::org::hash_secret;
use countersign_core::domain::review_link::ReviewLink;
use countersign_core::ports::{Item, Key, Query, Queued, Store, StoreError, TxToken, Write};
use countersign_core::service::Settings;
use countersign_tests::{ManualClock, TestApp, TestStore, OPERATOR_KEY};
use serde_json::{json, Value};

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/architecture.md");
const INDEXES: [&str; 5] = ["table", "byOrg", "byStatus", "byWallet", "due"];

/// Rows the scenario cannot reach, each with the reason (rows marked *read only* in the table
/// are never written by anything).
const NOT_WRITTEN_HERE: &[(&str, &str, &str, &str)] = &[
    (
        "due",
        "OUTBOX_PARKED",
        "<createdAt>#<event>",
        "an event is parked after EventBridge refused it 10 times; the outbox unit tests park one",
    ),
    (
        "table",
        "ORG#<org>#PASSKEY#<person>",
        "<sha256 of credential id>",
        "registering needs an authenticator's attestation: tests/tests/step_up.rs registers with a software one",
    ),
    (
        "table",
        "STEPUP#<nonce>",
        "NONCE",
        "a step-up nonce is issued only to a person with a passkey: tests/tests/step_up.rs",
    ),
];

/// One row of the table: its index and its two patterns.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    index: String,
    pk: String,
    sk: String,
    read_only: bool,
}

/// The access-pattern table of docs/architecture.md: the table under `## Access patterns`.
fn documented() -> Vec<Row> {
    let text = std::fs::read_to_string(DOC).expect("docs/architecture.md");
    let section = text.split("\n## Access patterns").nth(1).expect("docs/architecture.md has '## Access patterns'");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut lines = section.lines().skip_while(|l| !l.starts_with('|'));
    let header = cells(lines.next().expect("the access-pattern table"));
    let column = |name: &str| header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no '{name}' column"));
    let (what, index, pk, sk) = (column("Record"), column("Index"), column("Partition key"), column("Sort key"));
    let mut rows = Vec::new();
    for line in lines.skip(1).take_while(|l| l.starts_with('|')) {
        let row = cells(line);
        let index_name = row[index].clone();
        assert!(INDEXES.contains(&index_name.as_str()), "unknown index {index_name:?} in: {line}");
        rows.push(Row {
            index: index_name,
            pk: code(&row[pk], line),
            sk: code(&row[sk], line),
            read_only: row[what].contains("read only"),
        });
    }
    assert!(rows.len() > 20, "the access-pattern table looks truncated: {rows:?}");
    rows
}

fn cells(line: &str) -> Vec<String> {
    line.trim().trim_matches('|').split('|').map(|c| c.trim().to_string()).collect()
}

/// The one backticked pattern of a key cell.
fn code(cell: &str, line: &str) -> String {
    let parts: Vec<&str> = cell.split('`').collect();
    assert!(parts.len() == 3, "a key cell must hold exactly one `pattern`: {cell:?} in: {line}");
    parts[1].to_string()
}

/// A word in capitals: a literal segment (`WALLET`) or a status (`PENDING`).
fn is_word(segment: &str) -> bool {
    segment.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && segment.chars().all(|c| c.is_ascii_uppercase() || c == '_')
}

/// Whether `key` has the shape of `pattern` (the spelling docs/architecture.md explains).
fn matches(pattern: &str, key: &str) -> bool {
    let (pattern, key): (Vec<&str>, Vec<&str>) = (pattern.split('#').collect(), key.split('#').collect());
    pattern.len() == key.len()
        && pattern.iter().zip(&key).all(|(p, k)| match p.strip_prefix('<').and_then(|p| p.strip_suffix('>')) {
            None => p == k,
            Some("0..15") => k.parse::<u32>().is_ok_and(|n| n < 16),
            Some(name) if is_word(name) => is_word(k),
            Some(_) => !k.is_empty() && !is_word(k),
        })
}

/// One key as written: the index it is in and its two parts.
type Written = (String, String, String);

fn index_keys(item: &Item) -> Vec<Written> {
    let mut keys = vec![("table".to_string(), item.key.pk.clone(), item.key.sk.clone())];
    let ix = &item.indexes;
    for (name, pair) in
        [("byOrg", &ix.by_org), ("byStatus", &ix.by_status), ("byWallet", &ix.by_wallet), ("due", &ix.due)]
    {
        if let Some((pk, sk)) = pair {
            keys.push((name.to_string(), pk.clone(), sk.clone()));
        }
    }
    keys
}

/// The store, recording every put on its way in; its reads are round trips when `remote`.
struct Recording {
    inner: Arc<dyn Store>,
    remote: bool,
    written: Mutex<BTreeSet<Written>>,
}

impl Recording {
    fn record(&self, writes: &[Write]) {
        let mut written = self.written.lock().expect("written");
        for write in writes {
            if let Write::Put { item, .. } = write {
                written.extend(index_keys(item));
            }
        }
    }
}

#[async_trait]
impl Store for Recording {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.inner.get(key).await
    }
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        self.inner.get_many(keys).await
    }
    fn reads_are_round_trips(&self) -> bool {
        self.remote
    }
    async fn apply(&self, writes: &[Write], token: Option<&TxToken>) -> Result<(), StoreError> {
        self.record(writes);
        self.inner.apply(writes, token).await
    }
    async fn queue(&self, writes: &[Write], token: Option<&TxToken>, after: &[TxToken]) -> Result<Queued, StoreError> {
        self.record(writes);
        self.inner.queue(writes, token, after).await
    }
    async fn query(&self, query: Query) -> Result<Vec<Item>, StoreError> {
        self.inner.query(query).await
    }
}

/// Every key of every item in the SQLite file, read with a read-only connection of its own.
fn stored_keys(db: &Path) -> BTreeSet<Written> {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open db");
    let mut stmt =
        conn.prepare("SELECT pk, sk, g1pk, g1sk, g2pk, g2sk, g3pk, g3sk, g4pk, g4sk FROM items").expect("items");
    let mut keys = BTreeSet::new();
    let rows = stmt
        .query_map([], |r| (0..10).map(|i| r.get::<_, Option<String>>(i)).collect::<rusqlite::Result<Vec<_>>>())
        .expect("query");
    for row in rows {
        let row = row.expect("row");
        for (n, name) in INDEXES.iter().enumerate() {
            if let (Some(pk), Some(sk)) = (&row[2 * n], &row[2 * n + 1]) {
                keys.insert((name.to_string(), pk.clone(), sk.clone()));
            }
        }
    }
    assert!(!keys.is_empty(), "the SQLite file at {} holds no items", db.display());
    keys
}

/// A webhook receiver on loopback: `/ok` answers 204, anything else 500.
async fn receiver() -> String {
    use axum::routing::post;
    let router = axum::Router::new()
        .route("/ok", post(|| async { axum::http::StatusCode::NO_CONTENT }))
        .route("/fail", post(|| async { axum::http::StatusCode::INTERNAL_SERVER_ERROR }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

/// The local server's composition over a recording SQLite store in a fresh data directory.
async fn local_app(remote: bool) -> (TestApp, Arc<Recording>, PathBuf) {
    let dir = std::env::temp_dir().join(format!("countersign-access-patterns-{}", ulid::Ulid::new()));
    let sqlite = countersign_core::adapters::sqlite::SqliteStore::open_dir(&dir).expect("open store");
    let store = TestStore::Sqlite(sqlite);
    let recording = Arc::new(Recording { inner: store.store(), remote, written: Mutex::default() });
    let clock = ManualClock::new();
    let settings = Settings {
        operator_key_hash: Some(hash_secret(OPERATOR_KEY)),
        allow_private_webhooks: true,
        retry: countersign_core::domain::delivery::RetryPolicy {
            max_attempts: 2,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(200),
        },
        review_wait: Duration::from_secs(1),
        audit_signer: Some(Arc::new(countersign_core::proof::signing::AuditSigner::generate())),
        public_url: Some("http://localhost:8080".into()),
        encryption_key: Some(Arc::new(
            countersign_core::domain::encryption::EncryptionKey::parse(
                &countersign_core::domain::encryption::EncryptionKey::generate_text(),
            )
            .expect("key"),
        )),
        ..Settings::default()
    };
    // Slack connected (a fake of its Web API): notifications, their log and the links are written.
    let slack = countersign_tests::fake_slack::FakeSlack::start().await;
    let slack = countersign_core::adapters::slack_api::HttpSlackApi::new(slack.base_url, Duration::from_secs(2))
        .expect("slack client");
    let (service, queue) =
        countersign_core::local::wire_with(recording.clone(), clock.clone(), settings, |w| w.slack = Arc::new(slack))
            .expect("local wiring");
    tokio::spawn(countersign_core::local::run_queue_worker(service.clone(), queue, Duration::from_millis(20)));
    let app = TestApp::serve(store, clock, (*service).clone()).await;
    (app, recording, dir.join("countersign.db"))
}

fn id(body: &Value) -> String {
    body["id"].as_str().unwrap_or_else(|| panic!("no id in {body}")).to_string()
}

async fn ok(app: &TestApp, method: &str, path: &str, key: &str, body: Option<Value>, status: u16) -> Value {
    let (got, body) = app.call(method, path, Some(key), body).await;
    assert_eq!(got, status, "{method} {path}: {body}");
    body
}

/// Polls `path` until `done` holds for its body (20 s at most).
async fn until(app: &TestApp, path: &str, key: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = app.get(path, key).await;
        if done(&body) {
            return body;
        }
        assert!(tokio::time::Instant::now() < deadline, "GET {path} never became what the test waits for: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Everything the service writes: people, keys, settings, routing, wallets, funds, policies,
/// payments executed and held, every kind of decision, refunds, reviews, webhooks and their
/// deliveries (delivered and dead-lettered), idempotency records, a dashboard session, a used
/// review link, a long-poll, and the sweep.
async fn scenario(app: &TestApp) {
    let admin = app.org("Acme").await;
    let hooks = receiver().await;

    // People, teams, settings, routing.
    let fiona = app.member(&admin, "fiona").await;
    let maya = app.member(&admin, "maya").await;
    let desk = app.team(&admin, "Desk", &[&fiona]).await;
    let managers = app.team(&admin, "Managers", &[&maya]).await;
    ok(app, "PATCH", "/v1/settings", &admin, Some(json!({"defaultTeam": managers})), 200).await;
    // Slack: the integration, a team's channel, a member's Slack user (one member per user).
    let slack = json!({"botToken": "xoxb-1-acme", "signingSecret": "0123456789abcdef0123456789abcdef",
                       "defaultChannel": "C0DEFAULT"});
    ok(app, "PUT", "/v1/integrations/slack", &admin, Some(slack), 200).await;
    ok(app, "PATCH", &format!("/v1/teams/{managers}"), &admin, Some(json!({"slackChannel": "C0MANAGERS"})), 200).await;
    ok(app, "PATCH", &format!("/v1/members/{maya}"), &admin, Some(json!({"slackUserId": "U0MAYA"})), 200).await;
    ok(
        app,
        "POST",
        "/routing-rules",
        &admin,
        Some(json!({"name": "critical", "priority": 10, "is_active": true,
        "conditions": {"urgency": {"operator": "=", "value": "critical"}}, "assign_to_team_id": managers})),
        201,
    )
    .await;
    let review_perms = ["approvals:read", "approvals:write"];
    let fiona_key = app.key_for(&admin, Some(&fiona), &review_perms).await;
    let maya_key = app.key_for(&admin, Some(&maya), &review_perms).await;
    let agent =
        app.key(&admin, &["payments:write", "payments:read", "reviews:write", "refunds:write", "wallets:read"]).await;

    // Wallets, an idempotent fund, policies (velocity and a shadow policy on the payer, a refund
    // rule on the payee).
    let from = app.wallet(&admin, "USD").await;
    let to = app.wallet(&admin, "USD").await;
    ok(
        app,
        "POST",
        &format!("/v1/wallets/{from}/fund"),
        &admin,
        Some(json!({"amount": "20000.00",
        "idempotencyKey": "fund-1"})),
        201,
    )
    .await;
    app.policy(
        &admin,
        &from,
        json!({"name": "large", "requireReviewAbove": "1000.00",
        "escalationChain": [desk, managers], "maxPaymentsPerHour": 100}),
    )
    .await;
    app.policy(&admin, &to, json!({"name": "refunds", "appliesTo": ["refund"], "requireReviewAbove": "200.00"})).await;
    // A shadow policy (never enforced): its would-have counts, made by the first payment.
    app.policy(&admin, &from, json!({"name": "watch", "mode": "shadow", "autoRejectAbove": "4000.00"})).await;

    // Webhooks: one that accepts everything, one that always fails (dead letters).
    let subscribe = |path: &str, events: &str| {
        let body = json!({"url": format!("{hooks}/{path}"), "events": [events]});
        ok(app, "POST", "/v1/webhooks", &admin, Some(body), 201)
    };
    let good = id(&subscribe("ok", "*").await);
    let _failing = id(&subscribe("fail", "payment.completed").await);
    ok(app, "POST", &format!("/v1/webhooks/{good}/test"), &admin, None, 200).await;

    // Payments: executed (idempotent, then replayed), and held ones decided every way.
    let pay = |amount: &str| json!({"from": from, "to": to, "amount": amount});
    let keyed = json!({"from": from, "to": to, "amount": "10.00", "idempotencyKey": "order-1"});
    let small = ok(app, "POST", "/v1/payments", &agent, Some(keyed.clone()), 201).await;
    // The same request again: replayed from its idempotency record.
    ok(app, "POST", "/v1/payments", &agent, Some(keyed), 201).await;
    let held = |body: Value| body["approvalId"].as_str().expect("approvalId").to_string();
    let approve = held(ok(app, "POST", "/v1/payments", &agent, Some(pay("5000.00")), 202).await);
    ok(app, "POST", &format!("/v1/approvals/{approve}/approve"), &fiona_key, Some(json!({"note": "ok"})), 200).await;
    // Comments, in the approval's partition: by the reviewer and by the requesting key; listed.
    let comments = format!("/v1/approvals/{approve}/comments");
    ok(app, "POST", &comments, &fiona_key, Some(json!({"body": "paid on the 1st"})), 201).await;
    ok(app, "POST", &comments, &agent, Some(json!({"body": "thanks"})), 201).await;
    ok(app, "GET", &comments, &agent, None, 200).await;
    let reject = held(ok(app, "POST", "/v1/payments", &agent, Some(pay("2500.00")), 202).await);
    ok(app, "POST", &format!("/v1/approvals/{reject}/reject"), &fiona_key, Some(json!({"reason": "no"})), 200).await;
    let modify = held(ok(app, "POST", "/v1/payments", &agent, Some(pay("3000.00")), 202).await);
    ok(app, "POST", &format!("/v1/approvals/{modify}/modify"), &fiona_key, Some(json!({"amount": "2000.00"})), 200)
        .await;
    let escalate = held(ok(app, "POST", "/v1/payments", &agent, Some(pay("1500.00")), 202).await);
    ok(app, "POST", &format!("/v1/approvals/{escalate}/escalate"), &fiona_key, Some(json!({})), 200).await;
    ok(app, "POST", &format!("/reviews/{escalate}/decide"), &maya_key, Some(json!({"decision_type": "approve"})), 200)
        .await;
    let critical = held(
        ok(
            app,
            "POST",
            "/v1/payments",
            &agent,
            Some(json!({"from": from, "to": to,
        "amount": "1200.00", "urgency": "critical"})),
            202,
        )
        .await,
    );
    let left_to_expire = held(ok(app, "POST", "/v1/payments", &agent, Some(pay("1100.00")), 202).await);

    // Agent controls: a budgeted key's counters (spent, then reserved and settled), an allow
    // rule and its hit, a wallet and a key frozen and unfrozen.
    let budgets = json!([{"window": "day", "limit": "5000.00", "currency": "USD"}]);
    let body = json!({"name": "budgeted", "permissions": ["payments:write"], "budgets": budgets});
    let budgeted = ok(app, "POST", "/v1/api-keys", &admin, Some(body), 201).await;
    let (budgeted_key, budgeted_id) = (budgeted["secret"].as_str().expect("secret"), id(&budgeted));
    ok(app, "POST", "/v1/payments", budgeted_key, Some(pay("20.00")), 201).await;
    let allowed = held(ok(app, "POST", "/v1/payments", budgeted_key, Some(pay("1001.00")), 202).await);
    let always = json!({"alwaysAllow": {"maxAmount": "1200.00", "expiresInDays": 30}});
    ok(app, "POST", &format!("/v1/approvals/{allowed}/approve"), &fiona_key, Some(always), 200).await;
    ok(app, "POST", "/v1/payments", &agent, Some(pay("1050.00")), 201).await;
    ok(app, "GET", &format!("/v1/wallets/{from}/allow-rules"), &admin, None, 200).await;
    ok(app, "GET", &format!("/v1/api-keys/{budgeted_id}/budgets"), &admin, None, 200).await;
    for path in [format!("/v1/wallets/{to}"), format!("/v1/api-keys/{budgeted_id}")] {
        ok(app, "POST", &format!("{path}/freeze"), &admin, None, 200).await;
        ok(app, "POST", &format!("{path}/unfreeze"), &admin, None, 200).await;
    }

    // Refunds: one executed (idempotent), one held and approved by the default team.
    ok(
        app,
        "POST",
        "/v1/refunds",
        &agent,
        Some(json!({"paymentId": id(&small), "amount": "5.00",
        "idempotencyKey": "refund-1"})),
        201,
    )
    .await;
    let approved_payment = ok(app, "GET", &format!("/v1/approvals/{approve}"), &maya_key, None, 200).await;
    let paid = approved_payment["paymentId"].as_str().expect("paymentId").to_string();
    let refund =
        held(ok(app, "POST", "/v1/refunds", &agent, Some(json!({"paymentId": paid, "amount": "300.00"})), 202).await);
    ok(app, "POST", &format!("/v1/approvals/{refund}/approve"), &maya_key, Some(json!({})), 200).await;

    // Reviews: one routed and decided, one waited on and left to expire.
    let decided = id(&ok(
        app,
        "POST",
        "/reviews",
        &agent,
        Some(json!({"task_type": "deploy",
        "proposed_action": "Ship v2", "urgency": "critical"})),
        201,
    )
    .await);
    ok(
        app,
        "POST",
        &format!("/reviews/{decided}/decide"),
        &maya_key,
        Some(json!({"decision_type": "reject",
        "notes": "not today"})),
        200,
    )
    .await;
    let open = id(&ok(
        app,
        "POST",
        "/reviews",
        &agent,
        Some(json!({"task_type": "email",
        "proposed_action": "Send the newsletter"})),
        201,
    )
    .await);
    ok(app, "GET", &format!("/reviews/{open}/decision?wait=1"), &agent, None, 200).await;

    // The dashboard: a session, and a review link used.
    let maya_signed_in = app.service.sign_in(&maya_key).await.expect("sign in");
    let link = ReviewLink {
        approval_id: ApprovalId::parse(&critical).expect("approval id"),
        expires_at: chrono::Utc::now() + chrono::Duration::hours(24),
    };
    let fingerprint = ReviewLink::fingerprint("a-token-of-this-test");
    let claimed = app
        .service
        .claim_review_link(&link, &fingerprint, &maya_signed_in.key.org_id, &maya_signed_in.key.id)
        .await
        .expect("claim");
    assert!(claimed);

    // A passkey registration started (its challenge kept five minutes).
    let maya_caller = app.service.authenticate(Some(&maya_key)).await.expect("caller");
    app.service.passkey_registration_options(&maya_caller).await.expect("registration options");

    // Four-eyes on policy changes: on; a policy change requested and approved by another
    // person, another withdrawn by its requester.
    ok(app, "PATCH", "/v1/settings", &admin, Some(json!({"policyChangesNeedApproval": true})), 200).await;
    // Fiona's key: a person of her own (an unbound key the admin minted answers for the admin).
    let policy_writer = app.key_for(&admin, Some(&fiona), &["policies:write", "wallets:read"]).await;
    let policies = format!("/v1/wallets/{from}/policies");
    let requested = ok(app, "POST", &policies, &policy_writer, Some(json!({"name": "four-eyes"})), 202).await;
    let change = requested["changeId"].as_str().expect("changeId").to_string();
    ok(app, "POST", &format!("/v1/policy-changes/{change}/approve"), &admin, Some(json!({})), 200).await;
    let requested = ok(app, "POST", &policies, &policy_writer, Some(json!({"name": "withdrawn"})), 202).await;
    let change = requested["changeId"].as_str().expect("changeId").to_string();
    ok(app, "POST", &format!("/v1/policy-changes/{change}/reject"), &policy_writer, Some(json!({})), 200).await;
    ok(app, "GET", "/v1/policy-changes?status=applied", &admin, None, 200).await;
    ok(app, "GET", "/v1/policy-changes", &admin, None, 200).await;

    // Reads of every listing, so none is left unexercised by the layout it documents.
    for path in [
        "/v1/audit-logs",
        "/v1/payments?status=COMPLETED",
        &format!("/v1/approvals?walletId={from}"),
        "/reviews?status=pending",
        "/v1/refunds",
        &format!("/v1/webhooks/{good}/deliveries"),
    ] {
        ok(app, "GET", path, &admin, None, 200).await;
    }

    // Deliveries: the good hook's delivered, the bad hook's dead-lettered, then retried.
    until(app, &format!("/v1/webhooks/{good}/deliveries"), &admin, |b| {
        b["data"].as_array().is_some_and(|d| d.iter().any(|r| r["status"] == "DELIVERED"))
    })
    .await;
    let dlq = until(app, "/v1/webhooks/dlq", &admin, |b| b["data"].as_array().is_some_and(|d| !d.is_empty())).await;
    let dead = id(&dlq["data"][0]);
    ok(app, "POST", &format!("/v1/webhooks/dlq/{dead}/retry"), &admin, None, 200).await;

    // The sweep, a day and more later: the pending approval and the open review expire.
    app.clock.advance(chrono::Duration::hours(49));
    let swept = app.service.sweep(None, 100).await.expect("sweep");
    assert!(swept.checkpoints_sealed >= 1, "the sweep sealed the audit log: {swept:?}");
    let receipt = ok(app, "GET", &format!("/v1/payments/{paid}/receipt"), &admin, None, 200).await;
    assert!(receipt["auditEntries"].as_array().is_some_and(|e| e.iter().all(|e| !e["proof"].is_null())), "{receipt}");
    let expired = ok(app, "GET", &format!("/v1/approvals/{left_to_expire}"), &admin, None, 200).await;
    assert_eq!(expired["status"], "EXPIRED", "{swept:?}: {expired}");
    let review = ok(app, "GET", &format!("/reviews/{open}"), &admin, None, 200).await;
    assert_eq!(review["status"], "expired", "{review}");
    // Let the relay and the queue worker finish what the sweep's events started.
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// The scenario on a fresh app; every key written through it or left in its file.
async fn keys_written(remote: bool) -> BTreeSet<Written> {
    let (app, recording, db) = local_app(remote).await;
    scenario(&app).await;
    let mut keys = recording.written.lock().expect("written").clone();
    keys.extend(stored_keys(&db));
    keys
}

fn pattern_of<'a>(rows: &'a [Row], (index, pk, sk): &Written) -> Option<&'a Row> {
    rows.iter().find(|r| r.index == *index && matches(&r.pk, pk) && matches(&r.sk, sk))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_key_written_is_in_the_documented_table() {
    let rows = documented();
    let embedded = keys_written(false).await;
    let remote = keys_written(true).await;
    assert!(
        remote.iter().any(|(_, pk, _)| pk.starts_with("WAIT#")),
        "with reads as round trips, a long-poll holds a slot in the store"
    );

    let mut missing = BTreeSet::new();
    let mut used = BTreeSet::new();
    for key in embedded.iter().chain(&remote) {
        match pattern_of(&rows, key) {
            Some(row) => {
                used.insert(row.clone());
            }
            None => {
                missing.insert(key.clone());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "keys written that docs/architecture.md's access-pattern table lacks (add a row: index, pk, sk):\n{}",
        missing.iter().map(|(ix, pk, sk)| format!("  {ix}: {pk} / {sk}")).collect::<Vec<_>>().join("\n")
    );

    let exempt: BTreeSet<(&str, &str, &str)> = NOT_WRITTEN_HERE.iter().map(|(i, p, s, _)| (*i, *p, *s)).collect();
    for (index, pk, sk, _) in NOT_WRITTEN_HERE {
        assert!(
            rows.iter().any(|r| r.index == *index && r.pk == *pk && r.sk == *sk),
            "NOT_WRITTEN_HERE names {index}: {pk} / {sk}, which the table no longer has"
        );
    }
    let unwritten: Vec<&Row> = rows
        .iter()
        .filter(|r| {
            !r.read_only && !used.contains(r) && !exempt.contains(&(r.index.as_str(), r.pk.as_str(), r.sk.as_str()))
        })
        .collect();
    assert!(
        unwritten.is_empty(),
        "rows of the table the scenario never wrote (stale, or extend the scenario, or list them in \
         NOT_WRITTEN_HERE with the reason): {unwritten:#?}"
    );
    let read_only_written: Vec<&Row> = rows.iter().filter(|r| r.read_only && used.contains(r)).collect();
    assert!(read_only_written.is_empty(), "rows marked read only that were written: {read_only_written:#?}");
}

#[test]
fn patterns_match_as_the_document_spells_them() {
    assert!(matches("ORG#<org>#PAYMENT#<STATUS>", "ORG#org_01J#PAYMENT#COMPLETED"));
    assert!(!matches("ORG#<org>#PAYMENT#<STATUS>", "ORG#org_01J#PAYMENT#pay_01J"));
    assert!(!matches("ORG#<org>", "ORG#org_01J#AUDIT"));
    assert!(!matches("ORG#<org>#<resource>", "ORG#org_01J#AUDIT"));
    assert!(matches("APPROVAL#<0..15>", "APPROVAL#15"));
    assert!(!matches("APPROVAL#<0..15>", "APPROVAL#16"));
    assert!(matches("<expiresAt>#<approval>", "2026-12-06T10:00:00.000Z#apr_01J"));
    assert!(matches("IDEM#<org>#<key>#fund#<wallet>#<client key>", "IDEM#org_1#key_2#fund#wal_3#fund-1"));
    assert!(!matches("IDEM#<org>#<key>#payments#<client key>", "IDEM#org_1#key_2#refunds#r-1"));
}
