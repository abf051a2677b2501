//! Separation of duties, the idempotency and refund holes (docs/api.md, "Separation of duties", "Idempotency") through HTTP on both
//! stores: idempotency records belong to the calling key, and a wallet-bound key's wallets are
//! checked before anything is replayed; a record deleted by TTL between two retries never lets
//! both commit; a held refund re-checks the deny rules when it is approved.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::Duration;
use countersign_core::ports::{Expect, Item, Key, Query, Queued, Store, StoreError, TxToken, Write};
use countersign_tests::{per_backend, Backend, Scenario, TestApp};
use serde_json::{json, Value};
use tokio::sync::oneshot;

fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

/// An agent key of the scenario's organisation, like the scenario's own.
async fn agent(app: &TestApp, s: &Scenario) -> String {
    app.key(&s.admin, &["payments:write", "payments:read", "wallets:read"]).await
}

/// The ids of the payments out of the scenario's `from` wallet.
async fn payments_from(app: &TestApp, s: &Scenario) -> Vec<String> {
    let (status, list) = app.get(&format!("/v1/payments?walletId={}&limit=100", s.from), &s.admin).await;
    assert_eq!(status, 200, "{list}");
    list["data"].as_array().expect("payments").iter().map(|p| p["id"].as_str().expect("id").to_string()).collect()
}

per_backend!(two_agents_with_one_idempotency_key_each_get_their_own_payment);
async fn two_agents_with_one_idempotency_key_each_get_their_own_payment(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("1000.00").await;
    let (a, b) = (agent(&app, &s).await, agent(&app, &s).await);
    let pay = |amount: &str| json!({"from": s.from, "to": s.to, "amount": amount, "idempotencyKey": "order-1"});

    let (status, first) = app.post("/v1/payments", &a, pay("10.00")).await;
    assert_eq!(status, 201, "{backend:?}: {first}");
    // B's different request under the same key is B's own, not a reuse of A's key.
    let (status, other) = app.post("/v1/payments", &b, pay("20.00")).await;
    assert_eq!((status, other["amount"].as_str()), (201, Some("20.00")), "{backend:?}: {other}");
    assert_ne!(other["id"], first["id"]);
    // The same request from a third agent is not handed A's payment either.
    let c = agent(&app, &s).await;
    let (status, same) = app.post("/v1/payments", &c, pay("10.00")).await;
    assert_eq!(status, 201, "{backend:?}: {same}");
    assert_ne!(same["id"], first["id"], "{backend:?}: C was handed A's payment");
    // Each key's retry replays its own outcome, and only that.
    for (key, earlier) in [(&a, &first), (&b, &other), (&c, &same)] {
        let amount = earlier["amount"].as_str().expect("amount");
        let (status, again) = app.post("/v1/payments", key, pay(amount)).await;
        assert_eq!((status, &again["id"]), (201, &earlier["id"]), "{backend:?}: {again}");
    }
    let (status, reuse) = app.post("/v1/payments", &a, pay("30.00")).await;
    assert_eq!((status, code(&reuse)), (409, Some("IDEMPOTENCY_KEY_REUSE")), "{backend:?}: {reuse}");
    assert_eq!(payments_from(&app, &s).await.len(), 3);
    assert_eq!(app.balance(&s.admin, &s.from).await, "960.00");
}

per_backend!(a_wallet_bound_key_is_never_replayed_a_refund_of_another_wallet);
async fn a_wallet_bound_key_is_never_replayed_a_refund_of_another_wallet(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("1000.00").await;
    let other_payee = app.wallet(&s.admin, "USD").await;
    let paid = |to: String| {
        let app = &app;
        let agent = s.agent.clone();
        let from = s.from.clone();
        async move {
            let (status, body) =
                app.post("/v1/payments", &agent, json!({"from": from, "to": to, "amount": "100.00"})).await;
            assert_eq!(status, 201, "{body}");
            body["id"].as_str().expect("id").to_string()
        }
    };
    let (first, second) = (paid(s.to.clone()).await, paid(other_payee.clone()).await);
    let refunder = app.key(&s.admin, &["refunds:write"]).await;
    let (status, bound) = app
        .post(
            "/v1/api-keys",
            &s.admin,
            json!({"name": "payee-2", "permissions": ["refunds:write"], "walletIds": [other_payee]}),
        )
        .await;
    assert_eq!(status, 201, "{bound}");
    let bound = bound["secret"].as_str().expect("secret").to_string();
    let refund = |payment: &str| json!({"paymentId": payment, "amount": "5.00", "idempotencyKey": "return-1"});

    let (status, theirs) = app.post("/v1/refunds", &refunder, refund(&first)).await;
    assert_eq!(status, 201, "{backend:?}: {theirs}");
    // The very same request from a key bound to another wallet: refused, not replayed.
    let (status, body) = app.post("/v1/refunds", &bound, refund(&first)).await;
    assert_eq!((status, code(&body)), (403, Some("WALLET_NOT_ALLOWED")), "{backend:?}: {body}");
    // Its own refund under the same key is its own.
    let (status, own) = app.post("/v1/refunds", &bound, refund(&second)).await;
    assert_eq!((status, own["paymentId"].as_str()), (201, Some(second.as_str())), "{backend:?}: {own}");
    assert_ne!(own["id"], theirs["id"]);
    let (status, again) = app.post("/v1/refunds", &bound, refund(&second)).await;
    assert_eq!((status, &again["id"]), (201, &own["id"]), "{backend:?}: {again}");
    assert_eq!(app.balance(&s.admin, &s.to).await, "95.00");
    assert_eq!(app.balance(&s.admin, &other_payee).await, "95.00");
}

/// A store that, once armed, holds the first read that returns an idempotency record until the
/// test lets it go: the record as that request read it can then be deleted (as DynamoDB's TTL
/// would) and another request served before the held one goes on.
struct HeldRead {
    inner: Arc<dyn Store>,
    armed: Mutex<Option<(oneshot::Sender<Key>, oneshot::Receiver<()>)>>,
}

impl HeldRead {
    fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(HeldRead { inner, armed: Mutex::new(None) })
    }

    /// Returns (where the held read's record is, once it is read; what lets it go on).
    fn arm(&self) -> (oneshot::Receiver<Key>, oneshot::Sender<()>) {
        let (seen, seen_rx) = oneshot::channel();
        let (release, released) = oneshot::channel();
        *self.armed.lock().expect("armed") = Some((seen, released));
        (seen_rx, release)
    }

    async fn hold_if_armed(&self, items: &[Option<Item>]) {
        let Some(record) = items.iter().flatten().find(|i| i.key.pk.starts_with("IDEM#")) else { return };
        let armed = self.armed.lock().expect("armed").take();
        if let Some((seen, released)) = armed {
            let _ = seen.send(record.key.clone());
            let _ = released.await;
        }
    }
}

#[async_trait]
impl Store for HeldRead {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let item = self.inner.get(key).await?;
        self.hold_if_armed(std::slice::from_ref(&item)).await;
        Ok(item)
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        let items = self.inner.get_many(keys).await?;
        self.hold_if_armed(&items).await;
        Ok(items)
    }

    /// Read one at a time, never ahead in a batch: as a Lambda that has not yet seen the key's
    /// organisation reads (and as the embedded store always does), so the held read is the
    /// retry's own read of the record, and the reads after it see what happened meanwhile.
    fn reads_are_round_trips(&self) -> bool {
        false
    }

    async fn apply(&self, writes: &[Write], token: Option<&TxToken>) -> Result<(), StoreError> {
        self.inner.apply(writes, token).await
    }

    async fn queue(&self, writes: &[Write], token: Option<&TxToken>, after: &[TxToken]) -> Result<Queued, StoreError> {
        self.inner.queue(writes, token, after).await
    }

    async fn query(&self, query: Query) -> Result<Vec<Item>, StoreError> {
        self.inner.query(query).await
    }
}

per_backend!(an_idempotency_record_deleted_by_ttl_between_two_retries_lets_one_payment_commit);
async fn an_idempotency_record_deleted_by_ttl_between_two_retries_lets_one_payment_commit(backend: Backend) {
    let mut held = None;
    let app = TestApp::spawn_wrapped(backend, |store| {
        let wrapped = HeldRead::new(store);
        held = Some(wrapped.clone());
        wrapped
    })
    .await;
    let held = held.expect("wrapped");
    let s = app.scenario("1000.00").await;
    let body = json!({"from": s.from, "to": s.to, "amount": "10.00", "idempotencyKey": "order-7"});
    let (status, first) = app.post("/v1/payments", &s.agent, body.clone()).await;
    assert_eq!(status, 201, "{first}");
    // A day later the record has expired; its key is free for a new payment, once.
    app.clock.advance(Duration::hours(25));

    // The older retry reads the expired record, then waits...
    let (seen, release) = held.arm();
    let older = {
        let (http, url, agent, body) =
            (app.http.clone(), format!("{}/v1/payments", app.base), s.agent.clone(), body.clone());
        tokio::spawn(async move {
            let res = http.post(url).bearer_auth(agent).json(&body).send().await.expect("request");
            (res.status().as_u16(), res.json::<Value>().await.expect("json"))
        })
    };
    let record = seen.await.expect("the older retry read the record");
    // ...while TTL deletes it and a newer retry makes the payment anew.
    let store = app.store.store();
    let stored = store.get(&record).await.expect("get").expect("still there");
    store.apply(&[Write::Delete { key: record, expect: Expect::Version(stored.version) }], None).await.expect("ttl");
    let (status, newer) = app.post("/v1/payments", &s.agent, body.clone()).await;
    assert_eq!(status, 201, "{backend:?}: {newer}");
    assert_ne!(newer["id"], first["id"]);
    let _ = release.send(());
    let (status, replayed) = older.await.expect("older retry");

    // Exactly one of the two retries made a payment; the other is answered with it.
    assert_eq!((status, &replayed["id"]), (201, &newer["id"]), "{backend:?}: {replayed}");
    assert_eq!(payments_from(&app, &s).await.len(), 2, "{backend:?}: a second payment committed");
    assert_eq!(app.balance(&s.admin, &s.from).await, "980.00");
}

/// A completed payment of `amount` from the scenario's `from` to `to`.
async fn paid(app: &TestApp, s: &Scenario, amount: &str) -> String {
    let (status, body) =
        app.post("/v1/payments", &s.agent, json!({"from": s.from, "to": s.to, "amount": amount})).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().expect("id").to_string()
}

/// Refunds of `payment` held for review; returns their approval ids.
async fn held_refunds(app: &TestApp, refunder: &str, payment: &str, amounts: &[&str]) -> Vec<String> {
    let mut approvals = Vec::new();
    for amount in amounts {
        let (status, held) = app.post("/v1/refunds", refunder, json!({"paymentId": payment, "amount": amount})).await;
        assert_eq!((status, held["status"].as_str()), (202, Some("pending")), "{held}");
        approvals.push(held["approvalId"].as_str().expect("approval").to_string());
    }
    approvals
}

per_backend!(a_held_refund_is_denied_at_execution_by_a_deny_rule_added_while_it_waited);
async fn a_held_refund_is_denied_at_execution_by_a_deny_rule_added_while_it_waited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    app.policy(&s.admin, &s.to, json!({"name": "review", "appliesTo": ["refund"], "requireReviewAbove": "100.00"}))
        .await;
    let payment = paid(&app, &s, "1000.00").await;
    let refunder = app.key(&s.admin, &["refunds:write", "payments:read"]).await;
    let approvals = held_refunds(&app, &refunder, &payment, &["300.00", "290.00", "150.00"]).await;
    let approve = |approval: &str| {
        let path = format!("/v1/approvals/{approval}/approve");
        let reviewer = s.reviewer.clone();
        let app = &app;
        async move { app.post(&path, &reviewer, json!({"note": "ok"})).await }
    };
    let balances = || async { (app.balance(&s.admin, &s.from).await, app.balance(&s.admin, &s.to).await) };
    let before = balances().await;

    // The payer's wallet is blocked as a refund recipient while the first refund waits.
    let block = json!({"name": "block", "appliesTo": ["refund"], "blockedRecipients": [s.from]});
    let blocking = app.policy(&s.admin, &s.to, block).await;
    let (status, decided) = approve(&approvals[0]).await;
    assert_eq!(status, 200, "{backend:?}: {decided}");
    assert_eq!(decided["refund"]["status"], "rejected", "{backend:?}: {decided}");
    assert!(decided["refund"]["failureReason"].as_str().is_some_and(|r| r.contains("denied by policy")), "{decided}");
    assert_eq!(decided["refund"]["transactionId"], Value::Null, "{decided}");
    assert_eq!(balances().await, before, "{backend:?}: a denied refund moved money");

    // Then a ceiling: above it is denied, below it executes.
    let path = format!("/v1/wallets/{}/policies/{blocking}", s.to);
    let (status, body) = app.call("PATCH", &path, Some(&s.admin), Some(json!({"enabled": false}))).await;
    assert_eq!(status, 200, "{body}");
    app.policy(&s.admin, &s.to, json!({"name": "ceiling", "appliesTo": ["refund"], "autoRejectAbove": "200.00"})).await;
    let (status, decided) = approve(&approvals[1]).await;
    assert_eq!((status, decided["refund"]["status"].as_str()), (200, Some("rejected")), "{backend:?}: {decided}");
    assert_eq!(balances().await, before, "{backend:?}: a denied refund moved money");
    let (status, decided) = approve(&approvals[2]).await;
    assert_eq!((status, decided["refund"]["status"].as_str()), (200, Some("approved")), "{backend:?}: {decided}");
    assert_eq!(app.balance(&s.admin, &s.to).await, "850.00");

    // Only the executed refund counts against the payment; the denied ones are released.
    let (_, read) = app.get(&format!("/v1/payments/{payment}"), &s.agent).await;
    assert_eq!(
        (read["refundedAmount"].as_str(), read["refundPendingAmount"].as_str()),
        (Some("150.00"), None),
        "{backend:?}: {read}"
    );
    let (_, rejected) = app.get("/v1/refunds?status=rejected", &refunder).await;
    assert_eq!(rejected["data"].as_array().map(Vec::len), Some(2), "{backend:?}: {rejected}");
    // Audited, with why.
    let (_, audit) = app.get("/v1/audit-logs?limit=100", &s.admin).await;
    let denied: Vec<&Value> =
        audit["data"].as_array().expect("audit").iter().filter(|e| e["action"] == "refund.denied").collect();
    assert_eq!(denied.len(), 2, "{backend:?}: {audit}");
    assert!(denied.iter().all(|e| e["details"]["rule"].is_string()), "{denied:?}");
}
