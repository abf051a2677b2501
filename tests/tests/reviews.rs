//! The Humancheck-compatible reviews API (docs/api.md, "Reviews") through HTTP on both stores: create
//! (plain and blocking), decide once, the decision long-poll, paging, routing to a team,
//! separation of duties, expiry by the sweep, and the outbox events.

use std::time::{Duration, Instant};

use countersign_tests::{per_backend, Backend, TestApp};
use serde_json::{json, Value};

/// The kinds of every unpublished event in the outbox (the sparse `due` index, every shard).
async fn outbox_kinds(app: &TestApp) -> Vec<String> {
    use countersign_core::layout::{due_partitions, DUE_OUTBOX};
    use countersign_core::ports::{Index, Query};
    let store = app.store.store();
    let mut kinds = Vec::new();
    for partition in due_partitions(DUE_OUTBOX) {
        let mut query = Query::new(Index::Due, partition, 1000);
        query.newest_first = false;
        for item in store.query(query).await.expect("outbox") {
            kinds.extend(item.body.value().expect("json")["type"].as_str().map(String::from));
        }
    }
    kinds
}

fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

fn review_body(task_type: &str) -> Value {
    json!({
        "task_type": task_type,
        "proposed_action": "Process payment of $5,000.00 to ACME Corp (Account: 1234567890)",
        "agent_reasoning": "over the threshold",
        "confidence_score": 0.9,
        "urgency": "high",
        "framework": "langchain",
        "metadata": {"amount": 5000, "vendor": "ACME Corp", "currency": "USD"}
    })
}

/// An org with an admin, an agent (`reviews:write`) and a reviewer (approvals).
async fn setup(app: &TestApp) -> (String, String, String) {
    let admin = app.org("acme").await;
    let agent = app.key(&admin, &["reviews:write"]).await;
    let reviewer = app.key(&admin, &["approvals:read", "approvals:write"]).await;
    (admin, agent, reviewer)
}

async fn create(app: &TestApp, agent: &str, body: Value) -> String {
    let (status, review) = app.post("/reviews", agent, body).await;
    assert_eq!(status, 201, "{review}");
    review["id"].as_str().expect("id").to_string()
}

per_backend!(create_read_and_decide_once);
async fn create_read_and_decide_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, agent, reviewer) = setup(&app).await;
    let (status, review) = app.post("/reviews", &agent, review_body("payment")).await;
    assert_eq!(status, 201, "{backend:?}: {review}");
    let id = review["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("rev_"), "{review}");
    for field in ["task_type", "proposed_action", "agent_reasoning", "framework", "metadata", "assigned_team_id"] {
        assert!(review.get(field).is_some(), "{field} missing: {review}");
    }
    assert_eq!(
        (review["status"].as_str(), review["urgency"].as_str(), review["confidence_score"].as_f64()),
        (Some("pending"), Some("high"), Some(0.9))
    );
    assert!(review["decision"].is_null() && review["expires_at"].is_string() && review["created_at"].is_string());
    // Default urgency.
    let mut plain = review_body("email");
    plain.as_object_mut().unwrap().remove("urgency");
    let (_, other) = app.post("/reviews", &agent, plain).await;
    assert_eq!(other["urgency"], "medium", "{other}");

    let (status, read) = app.get(&format!("/reviews/{id}"), &reviewer).await;
    assert_eq!((status, read["id"].as_str()), (200, Some(id.as_str())), "{read}");
    let (status, pending) = app.get(&format!("/reviews/{id}/decision"), &agent).await;
    assert_eq!((status, pending), (200, Value::Null));

    let path = format!("/reviews/{id}/decide");
    let (status, body) = app.post(&path, &reviewer, json!({"notes": "ok"})).await;
    assert_eq!((status, code(&body)), (400, Some("VALIDATION_ERROR")), "{body}");
    assert_eq!(body["error"]["details"]["field"], "decision_type", "{body}");
    let (status, body) = app.post(&path, &reviewer, json!({"decision_type": "modify"})).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (400, Some("modified_action")), "{body}");
    let (status, body) = app.post(&path, &reviewer, json!({"decision_type": "maybe"})).await;
    assert_eq!(status, 400, "{body}");

    let (status, decision) =
        app.post(&path, &reviewer, json!({"decision_type": "approve", "notes": "fine", "reviewer_name": "x"})).await;
    assert_eq!(status, 400, "reviewer fields are never taken from the body: {decision}");
    let (status, decision) = app.post(&path, &reviewer, json!({"decision_type": "approve", "notes": "fine"})).await;
    assert_eq!(status, 200, "{backend:?}: {decision}");
    assert_eq!(
        (decision["decision_type"].as_str(), decision["review_id"].as_str()),
        (Some("approve"), Some(id.as_str()))
    );
    assert!(decision["reviewer_id"].as_str().unwrap().starts_with("key_"), "{decision}");
    assert_eq!((decision["reviewer_name"].as_str(), decision["notes"].as_str()), (Some("k"), Some("fine")));
    assert!(decision["id"].is_string() && decision["timestamp"].is_string() && decision["modified_action"].is_null());

    let (status, again) = app.post(&path, &reviewer, json!({"decision_type": "reject"})).await;
    assert_eq!((status, code(&again)), (409, Some("REVIEW_NOT_PENDING")), "{again}");
    let (status, got) = app.get(&format!("/reviews/{id}/decision"), &agent).await;
    assert_eq!((status, &got), (200, &decision));
    let (_, read) = app.get(&format!("/reviews/{id}"), &reviewer).await;
    assert_eq!((read["status"].as_str(), &read["decision"]), (Some("approved"), &decision));

    // Reject and modify.
    let r2 = create(&app, &agent, review_body("payment")).await;
    let (status, d) =
        app.post(&format!("/reviews/{r2}/decide"), &reviewer, json!({"decision_type": "reject", "notes": "no"})).await;
    assert_eq!((status, d["decision_type"].as_str()), (200, Some("reject")), "{d}");
    let r3 = create(&app, &agent, review_body("payment")).await;
    let action = "Process payment of $4,000.00 to ACME Corp";
    let (status, d) = app
        .post(
            &format!("/reviews/{r3}/decide"),
            &reviewer,
            json!({"decision_type": "modify", "modified_action": action}),
        )
        .await;
    assert_eq!((status, d["modified_action"].as_str()), (200, Some(action)), "{d}");
    let (_, read) = app.get(&format!("/reviews/{r3}"), &reviewer).await;
    assert_eq!(read["status"], "modified");

    // Permissions: the agent cannot decide; the reviewer cannot create.
    let (status, _) = app.post(&format!("/reviews/{r3}/decide"), &agent, json!({"decision_type": "approve"})).await;
    assert_eq!(status, 403);
    let (status, _) = app.post("/reviews", &reviewer, review_body("payment")).await;
    assert_eq!(status, 403);
    // Bad input names its field.
    for (body, field) in [
        (json!({"proposed_action": "x"}), "task_type"),
        (json!({"task_type": "x"}), "proposed_action"),
        (json!({"task_type": "x", "proposed_action": "y", "confidence_score": 1.5}), "confidence_score"),
        (json!({"task_type": "x", "proposed_action": "y", "urgency": "soon"}), "urgency"),
    ] {
        let (status, err) = app.post("/reviews", &agent, body).await;
        assert_eq!((status, err["error"]["details"]["field"].as_str()), (400, Some(field)), "{err}");
    }
}

per_backend!(blocking_create_returns_the_decision_made_meanwhile);
async fn blocking_create_returns_the_decision_made_meanwhile(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (admin, agent, reviewer) = setup(&app).await;
    let base = app.base.clone();
    let http = app.http.clone();
    let reviewer_task = tokio::spawn(async move {
        // Find the pending review and approve it.
        for _ in 0..100 {
            let res: Value = http
                .get(format!("{base}/reviews?status=pending"))
                .bearer_auth(&reviewer)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some(id) = res["reviews"][0]["id"].as_str() {
                let res = http
                    .post(format!("{base}/reviews/{id}/decide"))
                    .bearer_auth(&reviewer)
                    .json(&json!({"decision_type": "approve"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no review appeared");
    });
    let mut body = review_body("payment");
    body["blocking"] = json!(true);
    let started = Instant::now();
    let (status, review) = app.post("/reviews", &agent, body).await;
    reviewer_task.await.unwrap();
    assert_eq!(status, 200, "{backend:?}: {review}");
    assert_eq!(
        (review["status"].as_str(), review["decision"]["decision_type"].as_str()),
        (Some("approved"), Some("approve"))
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    let _ = admin;
}

per_backend!(blocking_create_times_out_undecided_and_the_decision_long_polls);
async fn blocking_create_times_out_undecided_and_the_decision_long_polls(backend: Backend) {
    let app = TestApp::spawn_tuned(backend, |s| s.review_wait = Duration::from_secs(1)).await;
    let (_, agent, reviewer) = setup(&app).await;
    let mut body = review_body("payment");
    body["blocking"] = json!(true);
    let started = Instant::now();
    let (status, review) = app.post("/reviews", &agent, body).await;
    let waited = started.elapsed();
    assert_eq!(
        (status, &review["decision"], review["status"].as_str()),
        (202, &Value::Null, Some("pending")),
        "{review}"
    );
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(5), "{waited:?}");
    let id = review["id"].as_str().unwrap().to_string();

    // A long-poll that ends undecided answers null after its wait.
    let started = Instant::now();
    let (status, none) = app.get(&format!("/reviews/{id}/decision?wait=1"), &agent).await;
    assert_eq!((status, none), (200, Value::Null));
    assert!(started.elapsed() >= Duration::from_millis(900));
    let (status, err) = app.get(&format!("/reviews/{id}/decision?wait=29"), &agent).await;
    assert_eq!((status, err["error"]["details"]["field"].as_str()), (400, Some("wait")), "{err}");

    // A long-poll answered by a decision made meanwhile.
    let (base, http, rid, key) = (app.base.clone(), app.http.clone(), id.clone(), reviewer.clone());
    let decider = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        http.post(format!("{base}/reviews/{rid}/decide"))
            .bearer_auth(&key)
            .json(&json!({"decision_type": "reject", "notes": "too much"}))
            .send()
            .await
            .unwrap()
            .status()
    });
    let started = Instant::now();
    let (status, decision) = app.get(&format!("/reviews/{id}/decision?wait=10"), &agent).await;
    assert_eq!(decider.await.unwrap(), 200);
    assert_eq!(
        (status, decision["decision_type"].as_str(), decision["notes"].as_str()),
        (200, Some("reject"), Some("too much"))
    );
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

per_backend!(list_pages_and_filters);
async fn list_pages_and_filters(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, agent, reviewer) = setup(&app).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(create(&app, &agent, review_body(if i < 3 { "payment" } else { "email" })).await);
    }
    app.post(&format!("/reviews/{}/decide", ids[0]), &reviewer, json!({"decision_type": "approve"})).await;
    let (status, all) = app.get("/reviews?page=1&page_size=2", &reviewer).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!((all["total"].as_u64(), all["page"].as_u64(), all["page_size"].as_u64()), (Some(5), Some(1), Some(2)));
    let newest_first: Vec<&str> =
        all["reviews"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(newest_first, vec![ids[4].as_str(), ids[3].as_str()]);
    let (_, last) = app.get("/reviews?page=3&page_size=2", &reviewer).await;
    assert_eq!(last["reviews"][0]["id"].as_str(), Some(ids[0].as_str()), "{last}");
    let (_, payments) = app.get("/reviews?task_type=payment", &reviewer).await;
    assert_eq!(payments["total"], 3, "{payments}");
    let (_, pending) = app.get("/reviews?status=pending&task_type=payment", &reviewer).await;
    assert_eq!(pending["total"], 2, "{pending}");
    let (_, approved) = app.get("/reviews?status=approved", &reviewer).await;
    assert_eq!(approved["reviews"][0]["id"].as_str(), Some(ids[0].as_str()));
    for bad in ["page_size=0", "page_size=101", "page=0", "status=open"] {
        let (status, err) = app.get(&format!("/reviews?{bad}"), &reviewer).await;
        assert_eq!((status, code(&err)), (400, Some("VALIDATION_ERROR")), "{bad}: {err}");
    }
    // Another organisation sees none of them.
    let other = app.org("other").await;
    let (_, theirs) = app.get("/reviews", &other).await;
    assert_eq!(theirs["total"], 0);
    let (status, _) = app.get(&format!("/reviews/{}", ids[1]), &other).await;
    assert_eq!(status, 404);
    // Agents (reviews:write) cannot list.
    assert_eq!(app.get("/reviews", &agent).await.0, 403);
}

async fn member(app: &TestApp, admin: &str, name: &str) -> String {
    let (status, body) =
        app.post("/v1/members", admin, json!({"name": name, "email": format!("{name}@example.com")})).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().expect("id").to_string()
}

async fn member_key(app: &TestApp, admin: &str, member: &str, permissions: &[&str]) -> String {
    let (status, body) =
        app.post("/v1/api-keys", admin, json!({"name": "k", "permissions": permissions, "memberId": member})).await;
    assert_eq!(status, 201, "{body}");
    body["secret"].as_str().expect("secret").to_string()
}

per_backend!(routing_assigns_a_team_and_people_decide);
async fn routing_assigns_a_team_and_people_decide(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (admin, _, reviewer) = setup(&app).await;
    let fin = member(&app, &admin, "fiona").await;
    let sam = member(&app, &admin, "sam").await;
    let (_, team) = app.post("/v1/teams", &admin, json!({"name": "finance", "members": [fin]})).await;
    let team = team["id"].as_str().unwrap().to_string();
    let (status, rule) = app
        .post(
            "/routing-rules",
            &admin,
            json!({
                "name": "High-value payments to finance team", "priority": 100,
                "conditions": {"task_type": {"operator": "=", "value": "payment"},
                               "metadata.amount": {"operator": ">", "value": 1000},
                               "urgency": {"operator": "in", "value": ["high", "critical"]}},
                "assign_to_team_id": team, "is_active": true
            }),
        )
        .await;
    assert_eq!(status, 201, "{rule}");
    let sams = member_key(&app, &admin, &sam, &["reviews:write", "approvals:read", "approvals:write"]).await;
    let fionas = member_key(&app, &admin, &fin, &["approvals:read", "approvals:write"]).await;
    let (_, routed) = app.post("/reviews", &sams, review_body("payment")).await;
    assert_eq!(routed["assigned_team_id"].as_str(), Some(team.as_str()), "{routed}");
    let mut small = review_body("payment");
    small["metadata"]["amount"] = json!(10);
    let (_, unrouted) = app.post("/reviews", &sams, small).await;
    assert!(unrouted["assigned_team_id"].is_null(), "{unrouted}");

    let id = routed["id"].as_str().unwrap();
    let path = format!("/reviews/{id}/decide");
    let (status, body) = app.post(&path, &reviewer, json!({"decision_type": "approve"})).await;
    assert_eq!((status, code(&body)), (403, Some("NOT_ASSIGNED")), "{body}");
    // Sam asked for the unrouted one: he may not approve or modify it, whatever the key.
    let other = unrouted["id"].as_str().unwrap();
    let sams_too = member_key(&app, &admin, &sam, &["approvals:write"]).await;
    let (status, body) =
        app.post(&format!("/reviews/{other}/decide"), &sams_too, json!({"decision_type": "approve"})).await;
    assert_eq!((status, code(&body)), (403, Some("SELF_APPROVAL_FORBIDDEN")), "{body}");
    let (status, decision) = app.post(&path, &fionas, json!({"decision_type": "approve"})).await;
    assert_eq!(status, 200, "{decision}");
    assert_eq!(
        (decision["reviewer_id"].as_str(), decision["reviewer_name"].as_str()),
        (Some(fin.as_str()), Some("fiona"))
    );
    // The submitter may withdraw (reject) their own.
    let (status, _) = app.post(&format!("/reviews/{other}/decide"), &sams, json!({"decision_type": "reject"})).await;
    assert_eq!(status, 200);
}

per_backend!(the_sweep_expires_reviews_and_events_are_in_the_outbox);
async fn the_sweep_expires_reviews_and_events_are_in_the_outbox(backend: Backend) {
    let app = TestApp::spawn_tuned(backend, |s| s.allow_private_webhooks = true).await;
    let (admin, agent, reviewer) = setup(&app).await;
    let stale = create(&app, &agent, review_body("payment")).await;
    let decided = create(&app, &agent, review_body("payment")).await;
    app.post(&format!("/reviews/{decided}/decide"), &reviewer, json!({"decision_type": "approve"})).await;
    app.clock.advance(chrono::Duration::hours(25));
    let (status, late) =
        app.post(&format!("/reviews/{stale}/decide"), &reviewer, json!({"decision_type": "approve"})).await;
    assert_eq!((status, code(&late)), (409, Some("REVIEW_EXPIRED")), "time is checked at the write: {late}");
    let summary = app.service.expire_due(100).await.expect("sweep");
    assert_eq!(summary.expired, 1, "{summary:?}");
    let (_, read) = app.get(&format!("/reviews/{stale}"), &reviewer).await;
    assert_eq!((read["status"].as_str(), &read["decision"]), (Some("expired"), &Value::Null), "{read}");
    assert_eq!(app.service.expire_due(100).await.expect("sweep").expired, 0);

    let (_, audit) = app.get("/v1/audit-logs?limit=100", &admin).await;
    let actions: Vec<&str> = audit["data"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    for action in ["review.created", "review.decided", "review.expired"] {
        assert!(actions.contains(&action), "{action}: {actions:?}");
    }
    // The outbox holds the events (no bus is wired here, so they wait to be published).
    let events = outbox_kinds(&app).await;
    for kind in ["review.created", "review.decided", "review.expired"] {
        assert!(events.iter().any(|k| k == kind), "{kind}: {events:?}");
    }
    let (status, webhook) = app
        .post(
            "/v1/webhooks",
            &admin,
            json!({"url": "http://127.0.0.1:9/h", "events": ["review.created", "review.decided", "review.expired"]}),
        )
        .await;
    assert_eq!(status, 201, "subscribable: {webhook}");
}
