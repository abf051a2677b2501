//! Separation of duties that holds (docs/api.md, "Separation of duties"; issue 21), the approvals side, on both stores:
//! escalation moves forward only and within the chain's time bound, never by the submitter's
//! person; a `reviews:write` key reads only its own person's reviews; `GET /reviews` reads only
//! what its page needs; a key holds at most 16 long-polls at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use countersign_core::domain::ids::ApiKeyId;
use countersign_core::domain::org::hash_secret;
use countersign_core::domain::org::key_id_of_secret;
use countersign_core::ports::{Clock, Index, Item, Key, Query, Queued, Store, StoreError, TxToken, Write};
use countersign_core::service::{Countersign, Settings};
use countersign_tests::browser::{Browser, Page};
use countersign_tests::{per_backend, Backend, ManualClock, TestApp, TestStore, OPERATOR_KEY};
use serde_json::{json, Value};

fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

fn time(body: &Value, field: &str) -> DateTime<Utc> {
    body[field].as_str().and_then(|t| t.parse().ok()).unwrap_or_else(|| panic!("{field} in {body}"))
}

const TTL: i64 = 60;

/// A held payment's approval, by the scenario's agent, on a two-tier chain (ann's team, then
/// ben's) with a 60 s window and `onTimeout: reject`. Returns the scenario, the approval id and
/// (ann, ben, first, second).
async fn two_tiers(app: &TestApp) -> (countersign_tests::Scenario, [String; 4]) {
    let s = app.scenario("10000.00").await;
    let (ann, ben) = (app.member(&s.admin, "ann").await, app.member(&s.admin, "ben").await);
    let (first, second) = (app.team(&s.admin, "tier 1", &[&ann]).await, app.team(&s.admin, "tier 2", &[&ben]).await);
    let policy = json!({
        "name": "tiers", "requireReviewAbove": "100.00", "approvalTtlSeconds": TTL,
        "escalationChain": [first, second], "onTimeout": "reject"
    });
    app.policy(&s.admin, &s.from, policy).await;
    (s, [ann, ben, first, second])
}

per_backend!(escalation_moves_forward_only_and_the_chain_bounds_the_window);
/// Escalating to the team it already has (or had) is refused and moves no deadline; escalating
/// forward gives a fresh window cut at `createdAt + (tiers + 1) × window`; `onTimeout: reject`
/// then fires at that bound however often it was handed on.
async fn escalation_moves_forward_only_and_the_chain_bounds_the_window(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (s, [ann, ben, first, second]) = two_tiers(&app).await;
    let (third, fourth) = (app.team(&s.admin, "audit", &[]).await, app.team(&s.admin, "board", &[]).await);
    let (payment, approval) = app.held_payment(&s, "500.00").await;
    let perms = ["approvals:read", "approvals:write"];
    let (anns, bens) =
        (app.key_for(&s.admin, Some(&ann), &perms).await, app.key_for(&s.admin, Some(&ben), &perms).await);
    let path = format!("/v1/approvals/{approval}/escalate");
    let get = || async { app.get(&format!("/v1/approvals/{approval}"), &s.reviewer).await.1 };
    let created = time(&get().await, "createdAt");
    let at = |seconds: i64| created + chrono::Duration::seconds(seconds);
    let advance_to = |seconds: i64| {
        use countersign_core::ports::Clock;
        app.clock.advance(at(seconds) - app.clock.now());
    };
    let expires = || async { time(&get().await, "expiresAt") };
    assert_eq!(expires().await, at(TTL), "{backend:?}");

    // To the team it has: refused, again and again, and the deadline stays.
    for (seconds, key) in [(10, &s.admin), (20, &anns), (30, &s.admin)] {
        advance_to(seconds);
        let (status, body) = app.post(&path, key, json!({"toTeam": first})).await;
        assert_eq!((status, code(&body)), (409, Some("NO_ESCALATION_TARGET")), "{backend:?} at {seconds}: {body}");
        assert_eq!(expires().await, at(TTL), "{backend:?}: the deadline did not move");
    }

    // Forward along the chain: a fresh window.
    advance_to(40);
    let (status, body) = app.post(&path, &anns, json!({})).await;
    assert_eq!((status, body["assignedTeam"].as_str()), (200, Some(second.as_str())), "{backend:?}: {body}");
    assert_eq!(time(&body, "expiresAt"), at(40 + TTL));
    // Never back, never where it is; a named team only by an admin.
    for (key, to, expected) in [
        (&bens, &second, (409, "NO_ESCALATION_TARGET")),
        (&bens, &first, (409, "NO_ESCALATION_TARGET")),
        (&s.admin, &first, (409, "NO_ESCALATION_TARGET")),
        (&bens, &third, (403, "PERMISSION_DENIED")),
    ] {
        let (status, body) = app.post(&path, key, json!({"toTeam": to})).await;
        assert_eq!((status, code(&body)), (expected.0, Some(expected.1)), "{backend:?}: {body}");
    }
    let (status, body) = app.post(&path, &bens, json!({})).await;
    assert_eq!((status, code(&body)), (409, Some("NO_ESCALATION_TARGET")), "{backend:?}: the chain ended: {body}");
    assert_eq!(expires().await, at(40 + TTL));

    // An admin hands it to teams it never had, but the window stays within the chain's bound.
    advance_to(90);
    let (status, body) = app.post(&path, &s.admin, json!({"toTeam": third})).await;
    assert_eq!((status, time(&body, "expiresAt")), (200, at(90 + TTL)), "{backend:?}: {body}");
    advance_to(140);
    let (status, body) = app.post(&path, &s.admin, json!({"toTeam": fourth})).await;
    let bound = at(3 * TTL);
    assert_eq!((status, time(&body, "expiresAt")), (200, bound), "{backend:?}: cut at (tiers + 1) × window: {body}");
    advance_to(170);
    let (status, body) = app.post(&path, &s.admin, json!({"toTeam": third})).await;
    assert_eq!((status, code(&body)), (409, Some("NO_ESCALATION_TARGET")), "{backend:?}: {body}");

    // At the bound, nobody having decided: onTimeout reject.
    advance_to(3 * TTL + 1);
    app.service.sweep(None, 100).await.expect("sweep");
    assert_eq!(get().await["status"], "REJECTED", "{backend:?}");
    assert_eq!(app.get(&format!("/v1/payments/{payment}"), &s.agent).await.1["status"], "REJECTED");
    let (_, log) = app.get("/v1/audit-logs?action=approval.escalated", &s.admin).await;
    assert_eq!(log["data"].as_array().map(Vec::len), Some(3), "{backend:?}: three escalations: {log}");
}

per_backend!(the_sweep_escalates_only_forward_and_within_the_bound);
/// `onTimeout: escalate` walks the chain on its own, forward only (never back to a tier it had)
/// and within `createdAt + (tiers + 1) × window`: an approval whose time is spent ends (expires)
/// instead of being handed on.
async fn the_sweep_escalates_only_forward_and_within_the_bound(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let mut tiers = Vec::new();
    for name in ["t1", "t2", "t3"] {
        tiers.push(app.team(&s.admin, name, &[]).await);
    }
    let (x, y) = (app.team(&s.admin, "x", &[]).await, app.team(&s.admin, "y", &[]).await);
    let policy = json!({
        "name": "tiers", "requireReviewAbove": "100.00", "approvalTtlSeconds": TTL,
        "escalationChain": tiers, "onTimeout": "escalate"
    });
    app.policy(&s.admin, &s.from, policy).await;
    let (payment, approval) = app.held_payment(&s, "500.00").await;
    let get = || async { app.get(&format!("/v1/approvals/{approval}"), &s.reviewer).await.1 };
    let created = time(&get().await, "createdAt");
    let bound = created + chrono::Duration::seconds(4 * TTL);
    let advance_to = |at: DateTime<Utc>| {
        use countersign_core::ports::Clock;
        app.clock.advance(at - app.clock.now());
    };
    // An admin hands it off the chain twice, late in each window.
    for (seconds, to) in [(59, &x), (118, &y)] {
        advance_to(created + chrono::Duration::seconds(seconds));
        let path = format!("/v1/approvals/{approval}/escalate");
        let (status, body) = app.post(&path, &s.admin, json!({"toTeam": to})).await;
        assert_eq!((status, body["assignedTeam"].as_str()), (200, Some(to.as_str())), "{backend:?}: {body}");
    }
    let mut handed_to = Vec::new();
    for _ in 0..5 {
        let now = get().await;
        if now["status"] != "ESCALATED" {
            break;
        }
        let due = time(&now, "expiresAt");
        assert!(due <= bound, "{backend:?}: past the chain's bound: {now}");
        advance_to(due + chrono::Duration::seconds(1));
        app.service.sweep(None, 100).await.expect("sweep");
        handed_to.extend(get().await["assignedTeam"].as_str().map(str::to_string));
    }
    assert_eq!(get().await["status"], "EXPIRED", "{backend:?}: handed to {handed_to:?}");
    assert!(!handed_to.contains(&tiers[0]), "{backend:?}: never back to the first tier: {handed_to:?}");
    assert_eq!(app.get(&format!("/v1/payments/{payment}"), &s.agent).await.1["status"], "EXPIRED");
}

per_backend!(the_submitters_person_never_escalates);
/// The submitter's person (its member key, and a key that key minted) cannot escalate its own
/// payment's approval, nor its own review, through REST, `/reviews` or MCP; nothing moves.
async fn the_submitters_person_never_escalates(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (s, [ann, ben, first, second]) = two_tiers(&app).await;
    let perms = ["payments:write", "approvals:read", "approvals:write", "reviews:write", "api_keys:write"];
    let anns = app.key_for(&s.admin, Some(&ann), &perms).await;
    let minted = app.key_for(&anns, None, &["approvals:read", "approvals:write"]).await;
    let (status, held) = app.post("/v1/payments", &anns, json!({"from": s.from, "to": s.to, "amount": "500.00"})).await;
    assert_eq!(status, 202, "{held}");
    let approval = held["approvalId"].as_str().expect("approval").to_string();
    let get = || async { app.get(&format!("/v1/approvals/{approval}"), &s.reviewer).await.1 };
    assert_eq!(get().await["assignedTeam"], first.as_str(), "{backend:?}: ann's own team holds it");
    let before = get().await;
    for (door, key) in [("member key", &anns), ("minted key", &minted)] {
        let (status, body) = app.post(&format!("/v1/approvals/{approval}/escalate"), key, json!({})).await;
        assert_eq!((status, code(&body)), (403, Some("SELF_APPROVAL_FORBIDDEN")), "{backend:?} {door}: {body}");
        let (status, body) = app.post(&format!("/reviews/{approval}/escalate"), key, json!({})).await;
        assert_eq!((status, code(&body)), (403, Some("SELF_APPROVAL_FORBIDDEN")), "{backend:?} {door}: {body}");
        let (status, body) = mcp_call(&app, key, "escalate_approval", json!({"approval_id": approval})).await;
        assert_eq!(status, 200, "{body}");
        let text = body["result"]["content"][0]["text"].as_str().unwrap_or_default();
        assert!(
            body["result"]["isError"] == true && text.contains("SELF_APPROVAL_FORBIDDEN"),
            "{backend:?} {door} MCP: {body}"
        );
    }
    assert_eq!(get().await, before, "{backend:?}: nothing moved");
    // Someone else on ann's team may.
    let other = app.member(&s.admin, "otto").await;
    let (status, body) =
        app.call("PATCH", &format!("/v1/teams/{first}"), Some(&s.admin), Some(json!({"members": [ann, other]}))).await;
    assert_eq!(status, 200, "{body}");
    let ottos = app.key_for(&s.admin, Some(&other), &["approvals:write"]).await;
    let (status, body) = app.post(&format!("/v1/approvals/{approval}/escalate"), &ottos, json!({})).await;
    assert_eq!((status, body["assignedTeam"].as_str()), (200, Some(second.as_str())), "{backend:?}: {body}");

    // A review: its asker's person never escalates it; only an admin names a team.
    let desk = app.team(&s.admin, "desk", &[&ann, &ben]).await;
    let rule = json!({"name": "desk", "priority": 1, "conditions": {"task_type": {"operator": "=", "value": "wire"}},
        "assign_to_team_id": desk, "is_active": true});
    assert_eq!(app.post("/routing-rules", &s.admin, rule).await.0, 201);
    let (status, review) =
        app.post("/reviews", &anns, json!({"task_type": "wire", "proposed_action": "wire 9,000"})).await;
    assert_eq!(status, 201, "{review}");
    let path = format!("/reviews/{}/escalate", review["id"].as_str().expect("id"));
    for key in [&anns, &minted] {
        let (status, body) = app.post(&path, key, json!({"to_team_id": second})).await;
        assert_eq!((status, code(&body)), (403, Some("SELF_APPROVAL_FORBIDDEN")), "{backend:?}: {body}");
    }
    let bens = app.key_for(&s.admin, Some(&ben), &["approvals:write"]).await;
    let (status, body) = app.post(&path, &bens, json!({"to_team_id": second})).await;
    assert_eq!((status, code(&body)), (403, Some("PERMISSION_DENIED")), "{backend:?}: a member names no team: {body}");
    let (status, body) = app.post(&path, &s.admin, json!({"to_team_id": desk})).await;
    assert_eq!((status, code(&body)), (409, Some("NO_ESCALATION_TARGET")), "{backend:?}: {body}");
    let (status, body) = app.post(&path, &s.admin, json!({"to_team_id": second})).await;
    assert_eq!((status, body["assigned_team_id"].as_str()), (200, Some(second.as_str())), "{backend:?}: {body}");
    let (status, body) = app.post(&path, &s.admin, json!({"to_team_id": desk})).await;
    assert_eq!((status, code(&body)), (409, Some("NO_ESCALATION_TARGET")), "{backend:?}: never back: {body}");
}

/// One MCP tool call over Streamable HTTP (stateless); returns status and the JSON-RPC answer.
async fn mcp_call(app: &TestApp, key: &str, tool: &str, arguments: Value) -> (u16, Value) {
    let request =
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments}});
    let res = app
        .http
        .post(format!("{}/mcp", app.base))
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .json(&request)
        .send()
        .await
        .expect("mcp");
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    // An SSE answer carries the JSON-RPC message on its `data:` line.
    let json = text.lines().find_map(|l| l.strip_prefix("data:")).unwrap_or(&text).trim().to_string();
    (status, serde_json::from_str(&json).unwrap_or(Value::Null))
}

per_backend!(a_reviews_write_key_reads_only_its_own_persons_reviews);
/// `reviews:write` alone reads the reviews its person asked for (and their decisions, waiting
/// or not); another person's review is missing to it (404). `approvals:read` reads them all.
async fn a_reviews_write_key_reads_only_its_own_persons_reviews(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.org("acme").await;
    let carl = app.member(&admin, "carl").await;
    let mine = app.key_for(&admin, Some(&carl), &["reviews:write", "api_keys:write"]).await;
    let also_mine = app.key_for(&mine, None, &["reviews:write"]).await;
    let theirs = app.key_for(&admin, None, &["reviews:write"]).await;
    let reviewer = app.key_for(&admin, None, &["approvals:read"]).await;
    let (status, review) =
        app.post("/reviews", &mine, json!({"task_type": "wire", "proposed_action": "wire 9,000 EUR"})).await;
    assert_eq!(status, 201, "{review}");
    let id = review["id"].as_str().expect("id");
    let paths = [format!("/reviews/{id}"), format!("/reviews/{id}/decision"), format!("/reviews/{id}/decision?wait=1")];
    for path in &paths {
        for key in [&mine, &also_mine, &reviewer] {
            let (status, body) = app.get(path, key).await;
            assert_eq!(status, 200, "{backend:?} {path}: {body}");
        }
        let (status, body) = app.get(path, &theirs).await;
        assert_eq!((status, code(&body)), (404, Some("REVIEW_NOT_FOUND")), "{backend:?} {path}: {body}");
    }
    let (status, body) = app.get("/reviews", &theirs).await;
    assert_eq!((status, code(&body)), (403, Some("PERMISSION_DENIED")), "{backend:?}: listing needs approvals:read");
}

/// Counts the items a store hands back (gets and queries).
struct CountingStore {
    inner: Arc<dyn Store>,
    items: Arc<AtomicUsize>,
}

#[async_trait]
impl Store for CountingStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let item = self.inner.get(key).await?;
        self.items.fetch_add(usize::from(item.is_some()), Ordering::SeqCst);
        Ok(item)
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        let items = self.inner.get_many(keys).await?;
        self.items.fetch_add(items.iter().flatten().count(), Ordering::SeqCst);
        Ok(items)
    }

    fn reads_are_round_trips(&self) -> bool {
        self.inner.reads_are_round_trips()
    }

    async fn apply(&self, writes: &[Write], token: Option<&TxToken>) -> Result<(), StoreError> {
        self.inner.apply(writes, token).await
    }

    async fn queue(&self, writes: &[Write], token: Option<&TxToken>, after: &[TxToken]) -> Result<Queued, StoreError> {
        self.inner.queue(writes, token, after).await
    }

    async fn query(&self, query: Query) -> Result<Vec<Item>, StoreError> {
        let items = self.inner.query(query).await?;
        self.items.fetch_add(items.len(), Ordering::SeqCst);
        Ok(items)
    }
}

per_backend!(listing_reviews_reads_only_what_its_page_needs);
/// 300 reviews and a few held payments: a page of 5 reads a few dozen items, not 300; pages
/// follow each other newest first without gaps; `total` is labelled capped; pages reach the
/// first 1,000 entries.
async fn listing_reviews_reads_only_what_its_page_needs(backend: Backend) {
    let counter = Arc::new(AtomicUsize::new(0));
    let items = counter.clone();
    let app = TestApp::spawn_wrapped(backend, move |inner| Arc::new(CountingStore { inner, items })).await;
    let s = app.scenario("100000.00").await;
    let agent = app.key_for(&s.admin, None, &["reviews:write"]).await;
    for _ in 0..3 {
        app.held_payment(&s, "2000.00").await;
    }
    let asks = (0..300).map(|i| {
        let app = &app;
        let agent = &agent;
        async move {
            let ask = json!({"task_type": "wire", "proposed_action": format!("wire {i}")});
            assert_eq!(app.post("/reviews", agent, ask).await.0, 201);
        }
    });
    futures::stream::iter(asks).buffer_unordered(8).collect::<Vec<()>>().await;
    // Warm the reviewer's key (its first request reads the key alone).
    assert_eq!(app.get("/reviews?page_size=1", &s.reviewer).await.0, 200);

    let read = || async { counter.load(Ordering::SeqCst) };
    let mut seen = Vec::new();
    for page in 1..=3 {
        let before = read().await;
        let (status, body) = app.get(&format!("/reviews?page={page}&page_size=5"), &s.reviewer).await;
        let items = read().await - before;
        assert_eq!(status, 200, "{body}");
        println!("{backend:?} page {page}: {items} items read");
        // Each source reads its first page × 5 + 20 (+1 to see more); the shown held payments'
        // payments; the key.
        let bound = 2 * (page * 5 + 21) + 5 + 2;
        assert!(items <= bound, "{backend:?} page {page}: read {items} items, at most {bound}");
        assert_eq!(
            (body["total_is_capped"].as_bool(), body["reviews"].as_array().map(Vec::len)),
            (Some(true), Some(5))
        );
        assert!(body["total"].as_u64().is_some_and(|t| t >= page as u64 * 5), "{body}");
        seen.extend(
            body["reviews"].as_array().into_iter().flatten().map(|r| r["id"].as_str().unwrap_or("").to_string()),
        );
    }
    let ulids: Vec<&str> = seen.iter().map(|id| id.split_once('_').map_or("", |(_, u)| u)).collect();
    assert!(ulids.windows(2).all(|w| w[0] > w[1]), "{backend:?}: newest first, no repeats: {seen:?}");

    let (status, body) = app.get("/reviews?page=200&page_size=5", &s.reviewer).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.get("/reviews?page=11&page_size=100", &s.reviewer).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (400, Some("page")), "{backend:?}: {body}");
    // A small listing's total is exact.
    let (_, payments) = app.get("/reviews?task_type=payment", &s.reviewer).await;
    assert_eq!(
        (payments["total"].as_u64(), payments["total_is_capped"].as_bool()),
        (Some(3), Some(false)),
        "{payments}"
    );
}

use futures::StreamExt;

/// Polls `check` until it holds, for at most 10 s (a liveness bound, not a timing).
async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..1000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not within 10 s: {what}");
}

per_backend!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    a_key_holds_at_most_sixteen_long_polls
);
/// 16 waits of one key held open: the 17th (`?wait=`, a blocking create, MCP) gets 429 with
/// `Retry-After` and writes nothing; another key still waits; once the waits end (a decision,
/// or a client that went away), the key waits again.
async fn a_key_holds_at_most_sixteen_long_polls(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.org("acme").await;
    let agent = app.key_for(&admin, None, &["reviews:write"]).await;
    let agent_id = key_id_of_secret(&agent).expect("key id");
    let reviewer = app.key_for(&admin, None, &["approvals:read", "approvals:write"]).await;
    let (_, review) = app.post("/reviews", &agent, json!({"task_type": "wire", "proposed_action": "wire"})).await;
    let id = review["id"].as_str().expect("id").to_string();
    let wait_url = format!("{}/reviews/{id}/decision?wait=25", app.base);
    let waits: Vec<_> = (0..16)
        .map(|_| {
            let request = app.http.get(&wait_url).bearer_auth(&agent).send();
            tokio::spawn(async move {
                let res = request.await.expect("wait");
                (res.status().as_u16(), res.json::<Value>().await.unwrap_or(Value::Null))
            })
        })
        .collect();
    eventually("16 waits held", || app.service.waits_held(&agent_id) == 16).await;

    let res = app.http.get(&wait_url).bearer_auth(&agent).send().await.expect("17th");
    let retry_after = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
    let (status, body) = (res.status().as_u16(), res.json::<Value>().await.unwrap_or(Value::Null));
    assert_eq!((status, code(&body)), (429, Some("RATE_LIMIT_EXCEEDED")), "{backend:?}: {body}");
    assert!(retry_after.as_deref().and_then(|r| r.parse::<u64>().ok()).is_some_and(|r| r > 0), "{retry_after:?}");
    let items = app.store.item_count().await;
    let ask = json!({"task_type": "wire", "proposed_action": "again", "blocking": true});
    let (status, body) = app.post("/reviews", &agent, ask).await;
    assert_eq!((status, code(&body)), (429, Some("RATE_LIMIT_EXCEEDED")), "{backend:?}: {body}");
    assert_eq!(app.store.item_count().await, items, "{backend:?}: a refused blocking create writes nothing");
    let (_, body) = mcp_call(&app, &agent, "wait_for_decision", json!({"approval_id": id, "timeout_seconds": 1})).await;
    let text = body["result"]["content"][0]["text"].as_str().unwrap_or_default();
    assert!(body["result"]["isError"] == true && text.contains("RATE_LIMIT_EXCEEDED"), "{backend:?} MCP: {body}");
    // Another key is not held back.
    let (status, body) = app.get(&format!("/reviews/{id}/decision?wait=1"), &reviewer).await;
    assert_eq!((status, body), (200, Value::Null), "{backend:?}");

    // A decision ends the 16 waits; their slots come back.
    let (status, body) =
        app.post(&format!("/reviews/{id}/decide"), &reviewer, json!({"decision_type": "approve"})).await;
    assert_eq!(status, 200, "{body}");
    for wait in waits {
        let (status, body) = wait.await.expect("wait task");
        assert_eq!((status, body["decision_type"].as_str()), (200, Some("approve")), "{backend:?}: {body}");
    }
    eventually("slots given back", || app.service.waits_held(&agent_id) == 0).await;
    let (status, body) = app.get(&format!("/reviews/{id}/decision?wait=1"), &agent).await;
    assert_eq!((status, body["decision_type"].as_str()), (200, Some("approve")), "{backend:?}: {body}");

    // A client that goes away gives its slot back too.
    let (_, pending) = app.post("/reviews", &agent, json!({"task_type": "wire", "proposed_action": "later"})).await;
    let url = format!("{}/reviews/{}/decision?wait=25", app.base, pending["id"].as_str().expect("id"));
    let gone = tokio::spawn(app.http.get(&url).bearer_auth(&agent).send());
    eventually("the wait held", || app.service.waits_held(&agent_id) == 1).await;
    gone.abort();
    eventually("the dropped wait's slot given back", || app.service.waits_held(&agent_id) == 0).await;
}

/// The same key's slots as another instance sees them: the items of its `WAIT#` partition.
async fn stored_slots(store: &TestStore, key: &ApiKeyId) -> Vec<Item> {
    let query = Query::new(Index::Primary, format!("WAIT#{key}"), 100);
    store.store().query(query).await.expect("slots")
}

/// Polls `check` until it holds, for at most 10 s (a liveness bound, not a timing).
async fn eventually_async<F: std::future::Future<Output = bool>>(what: &str, check: impl Fn() -> F) {
    for _ in 0..1000 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not within 10 s: {what}");
}

/// On DynamoDB the cap holds across instances (on Lambda each one serves one request at a time):
/// two services over one table, each holding 8 waits of one key, refuse the 17th on either with
/// 429 and `Retry-After`; another key still waits; once the waits end the key waits again; and
/// slots a crashed instance never gave back free themselves when their TTL passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_long_poll_cap_holds_across_instances_on_dynamodb() {
    let store = TestStore::new(Backend::Dynamo).await;
    let clock = ManualClock::new();
    let settings = Settings { operator_key_hash: Some(hash_secret(OPERATOR_KEY)), ..Settings::default() };
    let instance = || Countersign::new(store.store(), clock.clone(), settings.clone()).without_record_locks();
    let one = TestApp::serve(store.clone(), clock.clone(), instance()).await;
    let two = TestApp::serve(store.clone(), clock.clone(), instance()).await;
    let admin = one.org("acme").await;
    let agent = one.key_for(&admin, None, &["reviews:write"]).await;
    let agent_id = key_id_of_secret(&agent).expect("key id");
    let reviewer = one.key_for(&admin, None, &["approvals:read", "approvals:write"]).await;
    let (_, review) = one.post("/reviews", &agent, json!({"task_type": "wire", "proposed_action": "wire"})).await;
    let id = review["id"].as_str().expect("id").to_string();
    let waits: Vec<_> = [&one, &two]
        .into_iter()
        .flat_map(|app| std::iter::repeat_n(app, 8))
        .map(|app| {
            let request =
                app.http.get(format!("{}/reviews/{id}/decision?wait=25", app.base)).bearer_auth(&agent).send();
            tokio::spawn(async move {
                let res = request.await.expect("wait");
                (res.status().as_u16(), res.json::<Value>().await.unwrap_or(Value::Null))
            })
        })
        .collect();
    // A wait is counted once its slot is taken.
    let held = || (one.service.waits_held(&agent_id), two.service.waits_held(&agent_id));
    eventually("8 waits held by each instance", || held() == (8, 8)).await;

    for app in [&one, &two] {
        let res = app.http.get(format!("{}/reviews/{id}/decision?wait=5", app.base)).bearer_auth(&agent).send();
        let res = res.await.expect("17th");
        let retry_after = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
        let (status, body) = (res.status().as_u16(), res.json::<Value>().await.unwrap_or(Value::Null));
        assert_eq!((status, code(&body)), (429, Some("RATE_LIMIT_EXCEEDED")), "{}: {body}", app.base);
        assert!(retry_after.as_deref().and_then(|r| r.parse::<u64>().ok()).is_some_and(|r| r > 0), "{retry_after:?}");
        let ask = json!({"task_type": "wire", "proposed_action": "again", "blocking": true});
        let (status, body) = app.post("/reviews", &agent, ask).await;
        assert_eq!((status, code(&body)), (429, Some("RATE_LIMIT_EXCEEDED")), "{}: {body}", app.base);
        let (_, body) =
            mcp_call(app, &agent, "wait_for_decision", json!({"approval_id": id, "timeout_seconds": 1})).await;
        let text = body["result"]["content"][0]["text"].as_str().unwrap_or_default();
        assert!(body["result"]["isError"] == true && text.contains("RATE_LIMIT_EXCEEDED"), "MCP: {body}");
    }
    assert_eq!(stored_slots(&store, &agent_id).await.len(), 16, "the 16 slots, in the table both instances share");
    // Another key is not held back.
    let (status, body) = two.get(&format!("/reviews/{id}/decision?wait=1"), &reviewer).await;
    assert_eq!((status, body), (200, Value::Null));

    // A decision ends the 16 waits; their slots are deleted and the key waits again.
    let (status, body) =
        two.post(&format!("/reviews/{id}/decide"), &reviewer, json!({"decision_type": "approve"})).await;
    assert_eq!(status, 200, "{body}");
    for wait in waits {
        let (status, body) = wait.await.expect("wait task");
        assert_eq!((status, body["decision_type"].as_str()), (200, Some("approve")), "{body}");
    }
    eventually_async("slots deleted", || async { stored_slots(&store, &agent_id).await.is_empty() }).await;
    let (_, pending) = one.post("/reviews", &agent, json!({"task_type": "wire", "proposed_action": "later"})).await;
    let pending = pending["id"].as_str().expect("id").to_string();
    let (status, body) = two.get(&format!("/reviews/{pending}/decision?wait=1"), &agent).await;
    assert_eq!((status, body), (200, Value::Null));

    // An instance that crashed holding 16 slots: the key is refused until their TTL passes.
    let ttl = clock.now().timestamp() + 40;
    let writes: Vec<Write> = (0..16)
        .map(|n| {
            let item = Item {
                key: Key::new(format!("WAIT#{agent_id}"), n.to_string()),
                version: 1,
                indexes: Default::default(),
                expires_at_epoch: Some(ttl),
                body: json!({"apiKeyId": agent_id, "slot": n}).into(),
                counters: &[],
                compact: false,
            };
            Write::Put { item, expect: countersign_core::ports::Expect::Absent }
        })
        .collect();
    store.store().apply(&writes, None).await.expect("crashed slots");
    let (status, body) = one.get(&format!("/reviews/{pending}/decision?wait=1"), &agent).await;
    assert_eq!((status, code(&body)), (429, Some("RATE_LIMIT_EXCEEDED")), "{body}");
    clock.advance(chrono::Duration::seconds(41));
    let (status, body) = one.get(&format!("/reviews/{pending}/decision?wait=1"), &agent).await;
    assert_eq!((status, body), (200, Value::Null), "expired slots are free");
    eventually_async("the slot taken over is given back", || async {
        let slots = stored_slots(&store, &agent_id).await;
        slots.len() == 15 && slots.iter().all(|s| s.expires_at_epoch == Some(ttl))
    })
    .await;
}

per_backend!(the_dashboards_escalate_button_keeps_the_same_rules);
/// The dashboard's Escalate goes through the same rule: the submitter's person is refused
/// (whatever team it names), the current team is refused, a member names no team; nothing moves.
async fn the_dashboards_escalate_button_keeps_the_same_rules(backend: Backend) {
    let app = TestApp::spawn_tuned(backend, |s| {
        let secret = countersign_core::domain::secret::ServerSecret::new("sod-approvals-dashboard-secret-0123456789");
        s.session_secret = Some(Arc::new(secret.expect("secret")));
    })
    .await;
    let (s, [ann, ben, first, _]) = two_tiers(&app).await;
    let third = app.team(&s.admin, "audit", &[]).await;
    let perms = ["payments:write", "approvals:read", "approvals:write"];
    let anns = app.key_for(&s.admin, Some(&ann), &perms).await;
    let (status, held) = app.post("/v1/payments", &anns, json!({"from": s.from, "to": s.to, "amount": "500.00"})).await;
    assert_eq!(status, 202, "{held}");
    let approval = held["approvalId"].as_str().expect("approval").to_string();
    let get = || async { app.get(&format!("/v1/approvals/{approval}"), &s.reviewer).await.1 };
    let before = get().await;
    let decide = format!("/dashboard/approvals/{approval}/decide");

    let mut browser = Browser::new(&app);
    let token = browser.signed_in(&anns).await;
    let Page { status, body: page, .. } = browser.post(&decide, &[("csrf", &token), ("action", "escalate")]).await;
    assert_eq!(status, 403, "{backend:?}: {page}");
    assert!(page.contains("SELF_APPROVAL_FORBIDDEN"), "{backend:?}: {page}");
    let Page { status, body: page, .. } =
        browser.post(&decide, &[("csrf", &token), ("action", "escalate"), ("to_team", &third)]).await;
    assert!(status == 403 && page.contains("SELF_APPROVAL_FORBIDDEN"), "{backend:?}: {status} {page}");

    // Ben joins ann's team: he may escalate along the chain, but not name a team.
    let (status, body) =
        app.call("PATCH", &format!("/v1/teams/{first}"), Some(&s.admin), Some(json!({"members": [ann, ben]}))).await;
    assert_eq!(status, 200, "{body}");
    let bens = app.key_for(&s.admin, Some(&ben), &["approvals:read", "approvals:write"]).await;
    let mut browser = Browser::new(&app);
    let token = browser.signed_in(&bens).await;
    let Page { status, body: page, .. } =
        browser.post(&decide, &[("csrf", &token), ("action", "escalate"), ("to_team", &first)]).await;
    assert!(status == 409 && page.contains("NO_ESCALATION_TARGET"), "{backend:?}: {status} {page}");
    let Page { status, body: page, .. } =
        browser.post(&decide, &[("csrf", &token), ("action", "escalate"), ("to_team", &third)]).await;
    assert!(status == 403 && page.contains("PERMISSION_DENIED"), "{backend:?}: {status} {page}");
    assert_eq!(get().await, before, "{backend:?}: nothing moved");
}
