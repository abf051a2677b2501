//! Comments on approvals and bulk decisions (docs/api.md, "Comments", "Bulk decisions") through
//! HTTP on both stores: who may comment and read comments (reviewers, the requesting key; anyone
//! else a 404), the audit row and the `approval.commented` event; a bulk decision over a mix of
//! ids, each row answering what the single route answers, and each good payment executed once.

use countersign_tests::{per_backend, Backend, TestApp};
use serde_json::{json, Value};

/// `key_…` of a key's secret (`csk_key_…_<secret>`).
fn key_id(secret: &str) -> String {
    secret.trim_start_matches("csk_").rsplit_once('_').map(|(id, _)| id.to_string()).expect("key secret")
}

fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

/// Every unpublished event in the outbox (no bus is wired here, so they wait there).
async fn outbox(app: &TestApp) -> Vec<Value> {
    use countersign_core::layout::{due_partitions, DUE_OUTBOX};
    use countersign_core::ports::{Index, Query};
    let store = app.store.store();
    let mut events = Vec::new();
    for partition in due_partitions(DUE_OUTBOX) {
        let mut query = Query::new(Index::Due, partition, 1000);
        query.newest_first = false;
        for item in store.query(query).await.expect("outbox") {
            events.push(item.body.value().expect("json"));
        }
    }
    events
}

/// An organisation with a held payment of its own: (admin key, approval id).
async fn other_org_with_a_held_payment(app: &TestApp) -> (String, String) {
    let admin = app.org("other").await;
    let (from, to) = (app.wallet(&admin, "USD").await, app.wallet(&admin, "USD").await);
    app.fund(&admin, &from, "100.00").await;
    app.policy(&admin, &from, json!({"name": "hold", "requireHumanApproval": true})).await;
    let (status, held) = app.post("/v1/payments", &admin, json!({"from": from, "to": to, "amount": "1.00"})).await;
    assert_eq!(status, 202, "{held}");
    (admin, held["approvalId"].as_str().expect("approvalId").to_string())
}

per_backend!(reviewers_and_the_requesting_key_comment_and_everyone_else_gets_a_404);
async fn reviewers_and_the_requesting_key_comment_and_everyone_else_gets_a_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let (_, approval) = app.held_payment(&s, "5000.00").await;
    let comments = format!("/v1/approvals/{approval}/comments");
    let maya = app.member(&s.admin, "maya").await;
    let maya_key = app.key_for(&s.admin, Some(&maya), &["approvals:read", "approvals:write"]).await;

    // A reviewer asks; the agent that requested the payment (payments:write only) answers.
    let (status, asked) = app.post(&comments, &s.reviewer, json!({"body": "  Which invoice is this?\n"})).await;
    assert_eq!(status, 201, "{backend:?}: {asked}");
    assert!(asked["id"].as_str().is_some_and(|id| id.starts_with("cmt_")), "{asked}");
    assert_eq!(asked["approvalId"], approval.as_str());
    assert_eq!(asked["body"], "Which invoice is this?", "trimmed");
    assert_eq!(asked["author"], json!({"keyId": key_id(&s.reviewer)}), "{asked}");
    assert!(asked["createdAt"].is_string());
    let keys: Vec<&String> = asked.as_object().expect("object").keys().collect();
    assert_eq!(keys.len(), 5, "{{id, approvalId, body, author, createdAt}}: {asked}");
    let (status, answered) = app.post(&comments, &s.agent, json!({"body": "Invoice 1042, ACME."})).await;
    assert_eq!(status, 201, "{answered}");
    assert_eq!(answered["author"]["keyId"], key_id(&s.agent).as_str());
    // A key bound to a member is that member's comment.
    let (status, by_maya) = app.post(&comments, &maya_key, json!({"body": "Checked with ACME."})).await;
    assert_eq!(status, 201, "{by_maya}");
    assert_eq!(by_maya["author"], json!({"keyId": key_id(&maya_key), "memberId": maya}), "{by_maya}");

    // Both sides read them, oldest first; a page at a time.
    for key in [&s.agent, &s.reviewer] {
        let (status, listed) = app.get(&comments, key).await;
        assert_eq!(status, 200, "{listed}");
        let bodies: Vec<&str> =
            listed["data"].as_array().unwrap().iter().map(|c| c["body"].as_str().unwrap()).collect();
        assert_eq!(bodies, ["Which invoice is this?", "Invoice 1042, ACME.", "Checked with ACME."]);
        assert_eq!(listed["hasMore"], false);
    }
    let (_, first) = app.get(&format!("{comments}?limit=2"), &s.reviewer).await;
    assert_eq!((first["data"].as_array().unwrap().len(), &first["hasMore"]), (2, &json!(true)), "{first}");
    let cursor = first["nextCursor"].as_str().expect("cursor");
    let (_, rest) = app.get(&format!("{comments}?limit=2&cursor={cursor}"), &s.reviewer).await;
    assert_eq!(rest["data"][0]["id"], by_maya["id"], "{rest}");
    assert_eq!(rest["hasMore"], false);

    // Anyone else: the approval does not exist for them (as another organisation's).
    let bystander = app.key(&s.admin, &["payments:write", "payments:read"]).await;
    let elsewhere = app.key_for(&s.admin, None, &["approvals:read", "approvals:write"]).await;
    let (status, bound) = app
        .post(
            "/v1/api-keys",
            &s.admin,
            json!({"name": "bound", "permissions": ["approvals:read", "approvals:write"], "walletIds": [s.to]}),
        )
        .await;
    assert_eq!(status, 201, "{bound}");
    let bound = bound["secret"].as_str().unwrap().to_string();
    let reader = app.key(&s.admin, &["approvals:read"]).await;
    let (other_admin, other_approval) = other_org_with_a_held_payment(&app).await;
    let refused = [
        ("another key with payments:write", &bystander, comments.clone()),
        ("a reviewer bound to another wallet", &bound, comments.clone()),
        ("another organisation's admin", &other_admin, comments.clone()),
        ("our admin, their approval", &s.admin, format!("/v1/approvals/{other_approval}/comments")),
        ("an unknown approval", &s.admin, "/v1/approvals/apr_01J00000000000000000000000/comments".into()),
        ("a malformed id", &s.admin, "/v1/approvals/nope/comments".into()),
    ];
    for (who, key, path) in &refused {
        let (status, body) = app.post(path, key, json!({"body": "hello"})).await;
        assert_eq!((status, code(&body)), (404, Some("APPROVAL_NOT_FOUND")), "{backend:?} post, {who}: {body}");
        let (status, body) = app.get(path, key).await;
        assert_eq!((status, code(&body)), (404, Some("APPROVAL_NOT_FOUND")), "{backend:?} get, {who}: {body}");
    }
    // Reading is approvals:read; writing is approvals:write.
    assert_eq!(app.get(&comments, &reader).await.0, 200);
    let (status, body) = app.post(&comments, &reader, json!({"body": "hello"})).await;
    assert_eq!((status, code(&body)), (404, Some("APPROVAL_NOT_FOUND")), "{body}");
    assert_eq!(app.get(&comments, &elsewhere).await.0, 200, "an unbound reviewer reads");

    // Decided approvals take comments too.
    let (status, decided) = app.post(&format!("/v1/approvals/{approval}/approve"), &s.reviewer, json!({})).await;
    assert_eq!((status, decided["status"].as_str()), (200, Some("APPROVED")), "{decided}");
    let (status, late) = app.post(&comments, &s.agent, json!({"body": "Thanks!"})).await;
    assert_eq!(status, 201, "{late}");

    // Each comment: one audit row on the approval, one `approval.commented` event with the comment.
    let (_, log) = app.get("/v1/audit-logs?action=approval.commented", &s.admin).await;
    let logged = log["data"].as_array().unwrap();
    assert_eq!(logged.len(), 4, "{log}");
    assert!(logged.iter().all(|e| e["resourceId"] == approval.as_str()), "{log}");
    let events: Vec<Value> = outbox(&app).await.into_iter().filter(|e| e["type"] == "approval.commented").collect();
    assert_eq!(events.len(), 4, "{backend:?}: {events:?}");
    let event = events.iter().find(|e| e["data"]["commentId"] == asked["id"]).expect("the first comment's event");
    assert_eq!(event["data"]["approvalId"], approval.as_str());
    assert_eq!(event["data"]["body"], "Which invoice is this?");
    assert_eq!(event["data"]["author"]["keyId"], key_id(&s.reviewer).as_str());

    // Nothing else moved: the payment executed once, by the approval.
    assert_eq!(app.balance(&s.admin, &s.from).await, "5000.00");
}

per_backend!(a_bulk_decision_answers_each_id_as_the_single_route_would);
async fn a_bulk_decision_answers_each_id_as_the_single_route_would(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    // The bulk reviewer is Maya; another of her keys asked for one payment.
    let maya = app.member(&s.admin, "maya").await;
    let reviewer = app.key_for(&s.admin, Some(&maya), &["approvals:read", "approvals:write"]).await;
    let maya_agent = app.key_for(&s.admin, Some(&maya), &["payments:write"]).await;
    let (first_payment, first) = app.held_payment(&s, "1500.00").await;
    let (second_payment, second) = app.held_payment(&s, "2000.00").await;
    let (decided_payment, decided) = app.held_payment(&s, "1200.00").await;
    let (status, body) = app.post(&format!("/v1/approvals/{decided}/reject"), &s.reviewer, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (status, own) =
        app.post("/v1/payments", &maya_agent, json!({"from": s.from, "to": s.to, "amount": "3000.00"})).await;
    assert_eq!(status, 202, "{own}");
    let (own_payment, own) = (own["id"].as_str().unwrap().to_string(), own["approvalId"].as_str().unwrap().to_string());
    let (other_admin, foreign) = other_org_with_a_held_payment(&app).await;
    let unknown = "apr_01J00000000000000000000000".to_string();

    let ids = [&first, &unknown, &foreign, &own, &decided, &second, &first];
    let (status, body) = app
        .post("/v1/approvals/bulk", &reviewer, json!({"decision": "approve", "ids": ids, "note": "month end"}))
        .await;
    assert_eq!(status, 200, "{backend:?}: {body}");
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), ids.len(), "{body}");
    for (row, id) in results.iter().zip(ids) {
        assert_eq!(row["id"], id.as_str(), "in the order given: {body}");
    }
    for at in [0, 5] {
        assert_eq!((&results[at]["ok"], &results[at]["status"]), (&json!(true), &json!("APPROVED")), "{body}");
        assert!(results[at].get("error").is_none(), "{body}");
    }
    let codes: Vec<Option<&str>> = results.iter().map(|r| r["error"]["code"].as_str()).collect();
    assert_eq!(
        codes,
        [
            None,
            Some("APPROVAL_NOT_FOUND"),
            Some("APPROVAL_NOT_FOUND"),
            Some("SELF_APPROVAL_FORBIDDEN"),
            Some("APPROVAL_NOT_PENDING"),
            None,
            Some("APPROVAL_NOT_PENDING"),
        ],
        "{backend:?}: {body}"
    );
    // Each refusal is word for word what the single route answers the same key now.
    for (row, id) in results.iter().zip(ids).filter(|(row, _)| row["ok"] == false) {
        assert!(row.get("status").is_none(), "{row}");
        let (status, single) = app.post(&format!("/v1/approvals/{id}/approve"), &reviewer, json!({})).await;
        assert!((400..500).contains(&status), "{single}");
        assert_eq!(row["error"]["code"], single["error"]["code"], "{id}");
        assert_eq!(row["error"]["message"], single["error"]["message"], "{id}");
    }

    // Each good payment executed exactly once; nothing else moved.
    assert_eq!(app.balance(&s.admin, &s.from).await, "6500.00", "{backend:?}");
    assert_eq!(app.balance(&s.admin, &s.to).await, "3500.00", "{backend:?}");
    let (_, lines) = app.get(&format!("/v1/wallets/{}/transactions", s.from), &s.admin).await;
    let kinds: Vec<&str> = lines["data"].as_array().unwrap().iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "DEBIT").count(), 2, "{lines}");
    for (payment, status) in [
        (&first_payment, "COMPLETED"),
        (&second_payment, "COMPLETED"),
        (&decided_payment, "REJECTED"),
        (&own_payment, "PENDING_APPROVAL"),
    ] {
        assert_eq!(app.get(&format!("/v1/payments/{payment}"), &s.admin).await.1["status"], status, "{payment}");
    }
    let (_, approved) = app.get(&format!("/v1/approvals/{first}"), &s.admin).await;
    assert_eq!(approved["votes"].as_array().unwrap().len(), 1, "one vote, not two: {approved}");
    assert_eq!(approved["votes"][0]["note"], "month end");
    assert_eq!(app.get(&format!("/v1/approvals/{own}"), &s.admin).await.1["status"], "PENDING");
    assert_eq!(app.get(&format!("/v1/approvals/{foreign}"), &other_admin).await.1["status"], "PENDING");
}

per_backend!(bulk_reject_and_who_may_ask);
async fn bulk_reject_and_who_may_ask(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let (payment_a, a) = app.held_payment(&s, "1500.00").await;
    let (payment_b, b) = app.held_payment(&s, "2500.00").await;
    // The agent may not decide, in bulk or not; a request is refused whole.
    let (status, body) = app.post("/v1/approvals/bulk", &s.agent, json!({"decision": "approve", "ids": [a]})).await;
    assert_eq!((status, code(&body)), (403, Some("PERMISSION_DENIED")), "{body}");
    let (status, body) = app
        .post("/v1/approvals/bulk", &s.reviewer, json!({"decision": "reject", "ids": [a, b], "note": "dupes"}))
        .await;
    assert_eq!(status, 200, "{backend:?}: {body}");
    assert_eq!(body["results"][0], json!({"id": a, "ok": true, "status": "REJECTED"}), "{body}");
    assert_eq!(body["results"][1], json!({"id": b, "ok": true, "status": "REJECTED"}), "{body}");
    for payment in [&payment_a, &payment_b] {
        assert_eq!(app.get(&format!("/v1/payments/{payment}"), &s.admin).await.1["status"], "REJECTED");
    }
    assert_eq!(app.get(&format!("/v1/approvals/{a}"), &s.admin).await.1["resolutionNote"], "dupes");
    assert_eq!(app.balance(&s.admin, &s.from).await, "10000.00");
}
