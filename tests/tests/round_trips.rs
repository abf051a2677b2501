//! DynamoDB requests and sequential round trips per request, counted on the wire by a proxy
//! between the service and DynamoDB Local (issue 12). An intake is one round of reads (the key,
//! both wallets, the payer's policies and counter, the routing rules, the idempotency record)
//! and one transaction; a decision is two rounds of reads and one transaction. What follows the
//! commit (publishing the events, then marking them published in one request) is counted apart.
//! Counts, not timings: they hold on any machine.

use std::sync::Arc;

use countersign_core::domain::org::hash_secret;
use countersign_core::service::{Countersign, Settings, Wiring};
use countersign_tests::proxy::{Cost, Proxy, SplittingBus, Traffic};
use countersign_tests::{dynamo_endpoint, ManualClock, TestApp, TestStore, OPERATOR_KEY};
use serde_json::{json, Value};

struct Counted {
    app: TestApp,
    bus: Arc<SplittingBus>,
}

impl Counted {
    /// The service as a Lambda runs it (no in-process lanes, events to a bus) on DynamoDB
    /// Local behind the counting proxy.
    async fn spawn() -> Self {
        let proxy = Proxy::start(&dynamo_endpoint()).await;
        let store = TestStore::dynamo_at(&proxy.endpoint).await;
        let clock = ManualClock::new();
        let settings = Settings { operator_key_hash: Some(hash_secret(OPERATOR_KEY)), ..Settings::default() };
        let bus = Arc::new(SplittingBus::new(proxy));
        let wiring = Wiring { bus: bus.clone(), ..Wiring::default() };
        let service =
            Countersign::new(store.store(), clock.clone(), settings).with_wiring(wiring).without_record_locks();
        Counted { app: TestApp::serve(store, clock, service).await, bus }
    }

    async fn post(&self, path: &str, key: &str, body: Value) -> (u16, Value, Cost) {
        self.bus.reset();
        let (status, body) = self.app.post(path, key, body).await;
        (status, body, self.bus.cost())
    }
}

fn assert_within(what: &str, traffic: &Traffic, requests: usize, trips: usize) {
    println!("{what}: {} requests ({}), {} round trips", traffic.requests, traffic.targets(), traffic.round_trips);
    assert!(
        traffic.requests <= requests && traffic.round_trips <= trips,
        "{what}: {} requests ({}) in {} round trips; at most {requests} requests in {trips} round trips",
        traffic.requests,
        traffic.targets(),
        traffic.round_trips
    );
}

/// The outbox marks after publishing are one request: one event's a plain PutItem, several
/// events' one TransactWriteItems.
fn assert_one_mark(what: &str, cost: &Cost) {
    let one = |target: &str| cost.marks.by_target.get(target).copied() == Some(1);
    assert!(
        cost.marks.requests == 1 && (one("PutItem") || one("TransactWriteItems")),
        "{what}: the outbox marks after publishing: {}",
        cost.marks.targets()
    );
}

#[tokio::test]
async fn intake_reads_once_then_commits_and_a_decision_reads_twice() {
    let counted = Counted::spawn().await;
    let app = &counted.app;
    let s = app.scenario("100000.00").await;
    let (status, team) = app.post("/v1/teams", &s.admin, json!({"name": "finance", "members": []})).await;
    assert_eq!(status, 201, "{team}");
    let rule = json!({
        "name": "large to finance", "priority": 1, "assign_to_team_id": team["id"],
        "conditions": {"metadata.amount": {"operator": ">", "value": 5000}}, "is_active": true
    });
    let (status, body) = app.post("/routing-rules", &s.admin, rule).await;
    assert_eq!(status, 201, "{body}");
    let pay = |amount: &str| json!({"from": s.from, "to": s.to, "amount": amount, "metadata": {"amount": 6000}});
    // Each key's first request reads its key alone (its organisation is not known yet) and
    // refreshes lastUsedAt: not what is counted here.
    app.held_payment(&s, "2000.00").await;
    let (_, warm) = app.held_payment(&s, "2000.00").await;
    assert_eq!(app.post(&format!("/v1/approvals/{warm}/approve"), &s.reviewer, json!({})).await.0, 200);

    let (status, _, cost) = counted.post("/v1/payments", &s.agent, pay("10.00")).await;
    assert_eq!(status, 201);
    // One BatchGetItem (key, wallets, policy set, counters, settings) and one transaction: the
    // routing rules are not read for a payment that executes.
    assert_within("auto-executed intake", &cost.commit, 2, 2);
    assert_one_mark("auto-executed intake", &cost);

    let (status, held, cost) = counted.post("/v1/payments", &s.agent, pay("6000.00")).await;
    assert_eq!(status, 202, "{held}");
    let approval = held["approvalId"].as_str().expect("approval id");
    let (_, got) = app.get(&format!("/v1/approvals/{approval}"), &s.reviewer).await;
    assert_eq!(got["assignedTeam"], team["id"], "routed by the rule read ahead: {got}");
    // A held payment reads the routing rules once it knows it holds: one more round trip.
    assert_within("held intake (routed)", &cost.commit, 3, 3);
    assert_one_mark("held intake", &cost);

    let mut keyed = pay("10.00");
    keyed["idempotencyKey"] = json!("round-trips-1");
    let (status, first, cost) = counted.post("/v1/payments", &s.agent, keyed.clone()).await;
    assert_eq!(status, 201, "{first}");
    assert_within("intake with an idempotency key", &cost.commit, 2, 2);
    let (status, again, cost) = counted.post("/v1/payments", &s.agent, keyed).await;
    assert_eq!((status, &again["id"]), (201, &first["id"]), "replayed: {again}");
    assert_within("idempotent replay", &cost.commit, 3, 1);

    let (status, decided, cost) = counted.post(&format!("/v1/approvals/{approval}/approve"), &s.admin, json!({})).await;
    assert_eq!((status, decided["payment"]["status"].as_str()), (200, Some("COMPLETED")), "{decided}");
    assert_within("approve (executes the payment)", &cost.commit, 5, 3);
    assert_one_mark("approve", &cost);

    let (_, held, _) =
        counted.post("/v1/payments", &s.agent, json!({"from": s.from, "to": s.to, "amount": "2000.00"})).await;
    let approval = held["approvalId"].as_str().expect("approval id");
    let (status, _, cost) = counted.post(&format!("/v1/approvals/{approval}/reject"), &s.reviewer, json!({})).await;
    assert_eq!(status, 200);
    assert_within("reject", &cost.commit, 4, 3);

    // Reading ahead changes no answer: a revoked key is refused on its very next request, and
    // a body error still waits for the key (401 before 400).
    let (status, keys) = app.get("/v1/api-keys", &s.admin).await;
    assert_eq!(status, 200, "{keys}");
    let agent_id = countersign_core::domain::org::key_id_of_secret(&s.agent).expect("key id");
    let (status, body) = app.call("DELETE", &format!("/v1/api-keys/{agent_id}"), Some(&s.admin), None).await;
    assert!(status == 200 || status == 204, "revoke: {status} {body}");
    let (status, body, _) = counted.post("/v1/payments", &s.agent, pay("10.00")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("API_KEY_REVOKED")), "{body}");
    let (status, body, _) = counted.post("/v1/payments", "cs_not_a_key", json!({"amount": []})).await;
    assert_eq!(status, 401, "{body}");
}

#[tokio::test]
async fn the_default_team_is_read_ahead_with_intake() {
    let counted = Counted::spawn().await;
    let app = &counted.app;
    let s = app.scenario("100000.00").await;
    let (status, rita) = app.post("/v1/members", &s.admin, json!({"name": "rita", "email": "rita@example.com"})).await;
    assert_eq!(status, 201, "{rita}");
    let (status, team) = app.post("/v1/teams", &s.admin, json!({"name": "desk", "members": [rita["id"]]})).await;
    assert_eq!(status, 201, "{team}");
    let (status, body) =
        app.call("PATCH", "/v1/settings", Some(&s.admin), Some(json!({"defaultTeam": team["id"]}))).await;
    assert_eq!(status, 200, "{body}");
    let (status, ritas) = app
        .post(
            "/v1/api-keys",
            &s.admin,
            json!({"name": "rita", "permissions": ["approvals:write"], "memberId": rita["id"]}),
        )
        .await;
    assert_eq!(status, 201, "{ritas}");
    let ritas = ritas["secret"].as_str().expect("secret");
    // Each key's first request is not what is counted (see above).
    let (_, warm) = app.held_payment(&s, "2000.00").await;
    assert_eq!(app.post(&format!("/v1/approvals/{warm}/approve"), ritas, json!({})).await.0, 200);

    let (status, held, cost) =
        counted.post("/v1/payments", &s.agent, json!({"from": s.from, "to": s.to, "amount": "2000.00"})).await;
    assert_eq!(status, 202, "{held}");
    assert_within("held intake (default team)", &cost.commit, 3, 3);
    let approval = held["approvalId"].as_str().expect("approval id");
    let (_, got) = app.get(&format!("/v1/approvals/{approval}"), &s.reviewer).await;
    assert_eq!(got["assignedTeam"], team["id"], "assigned the default team read ahead: {got}");
    let (status, decided, cost) = counted.post(&format!("/v1/approvals/{approval}/approve"), ritas, json!({})).await;
    assert_eq!((status, decided["payment"]["status"].as_str()), (200, Some("COMPLETED")), "{decided}");
    assert_within("approve by the default team", &cost.commit, 5, 3);
}

/// Shadow policies (docs/api.md, "Shadow policies") cost a wallet that has them one more round
/// of reads per payment (their would-have records, read together by key once the policy set
/// names them) and nothing more: the counts move in the payment's own transaction.
#[tokio::test]
async fn shadow_policies_cost_one_more_round_of_reads() {
    let counted = Counted::spawn().await;
    let app = &counted.app;
    let s = app.scenario("100000.00").await;
    for name in ["ceiling", "review"] {
        let shadow = json!({"name": name, "mode": "shadow", "requireReviewAbove": "5.00"});
        app.policy(&s.admin, &s.from, shadow).await;
    }
    let pay = json!({"from": s.from, "to": s.to, "amount": "10.00"});
    // The first payment makes the records (and is each key's first request): not counted.
    assert_eq!(app.post("/v1/payments", &s.agent, pay.clone()).await.0, 201);
    let (status, paid, cost) = counted.post("/v1/payments", &s.agent, pay).await;
    assert_eq!((status, paid["shadowDecisions"].as_array().map(Vec::len)), (201, Some(2)), "{paid}");
    assert_within("auto-executed intake with two shadow policies", &cost.commit, 4, 3);
    assert_one_mark("intake with shadow policies", &cost);
}
