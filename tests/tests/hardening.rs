//! Money-path hardening through the API, on both stores: keys bound to wallets, funding as its
//! own permission, canonical ids in policies, deny rules re-checked at approval, the webhook cap
//! under concurrent creation.

use countersign_tests::{per_backend, Backend, TestApp};
use futures::future::join_all;
use serde_json::{json, Value};

fn code(body: &serde_json::Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

per_backend!(keys_bound_to_wallets_act_only_on_them);
async fn keys_bound_to_wallets_act_only_on_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("1000.00").await;
    let other = app.wallet(&s.admin, "USD").await;
    app.fund(&s.admin, &other, "50.00").await;
    let perms =
        json!(["payments:write", "payments:read", "wallets:read", "approvals:read", "api_keys:write", "audit:read"]);
    let (status, bound) = app
        .post("/v1/api-keys", &s.admin, json!({"name": "a-only", "permissions": perms, "walletIds": [s.from]}))
        .await;
    assert_eq!((status, bound["walletIds"][0].as_str()), (201, Some(s.from.as_str())), "{backend:?}: {bound}");
    let key = bound["secret"].as_str().expect("secret").to_string();

    let (status, _) = app.post("/v1/payments", &key, json!({"from": s.from, "to": s.to, "amount": "5.00"})).await;
    assert_eq!(status, 201, "pays from its wallet");
    let (_, paid_elsewhere) =
        app.post("/v1/payments", &s.admin, json!({"from": other, "to": s.to, "amount": "1.00"})).await;
    let (status, body) = app.post("/v1/payments", &key, json!({"from": other, "to": s.from, "amount": "1.00"})).await;
    assert_eq!((status, code(&body)), (403, Some("WALLET_NOT_ALLOWED")), "{backend:?}: {body}");
    let (status, body) = app.get(&format!("/v1/wallets/{other}"), &key).await;
    assert_eq!((status, code(&body)), (403, Some("WALLET_NOT_ALLOWED")));
    let (status, body) = app.get(&format!("/v1/payments/{}", paid_elsewhere["id"].as_str().unwrap()), &key).await;
    assert_eq!((status, code(&body)), (403, Some("WALLET_NOT_ALLOWED")));
    let (_, wallets) = app.get("/v1/wallets", &key).await;
    let ids: Vec<&str> = wallets["data"].as_array().unwrap().iter().filter_map(|w| w["id"].as_str()).collect();
    assert_eq!(ids, [s.from.as_str()], "{backend:?}: lists only its wallet");
    let (_, payments) = app.get("/v1/payments", &key).await;
    assert_eq!(payments["data"].as_array().map(Vec::len), Some(1), "{payments}");
    let (status, body) = app.get("/v1/audit-logs", &key).await;
    assert_eq!((status, code(&body)), (403, Some("WALLET_NOT_ALLOWED")), "the org-wide log");

    // It can mint keys only within its own wallets.
    let mint =
        |wallets: serde_json::Value| json!({"name": "k", "permissions": ["payments:read"], "walletIds": wallets});
    let (status, body) = app.post("/v1/api-keys", &key, json!({"name": "k", "permissions": ["payments:read"]})).await;
    assert_eq!((status, code(&body)), (403, Some("WALLET_NOT_ALLOWED")), "an unbound key is wider");
    assert_eq!(app.post("/v1/api-keys", &key, mint(json!([other]))).await.0, 403);
    assert_eq!(app.post("/v1/api-keys", &key, mint(json!([s.from]))).await.0, 201);

    // Funding creates money: wallets:write no longer funds, wallets:fund does.
    let writer = app.key(&s.admin, &["wallets:write"]).await;
    let (status, body) = app.post(&format!("/v1/wallets/{}/fund", s.from), &writer, json!({"amount": "1.00"})).await;
    assert_eq!((status, code(&body)), (403, Some("PERMISSION_DENIED")), "{body}");
    let funder = app.key(&s.admin, &["wallets:fund"]).await;
    let (status, _) = app.post(&format!("/v1/wallets/{}/fund", s.from), &funder, json!({"amount": "1.00"})).await;
    assert_eq!(status, 201);
}

per_backend!(a_lower_case_id_in_a_policy_still_blocks);
async fn a_lower_case_id_in_a_policy_still_blocks(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("1000.00").await;
    let lower = format!("wal_{}", s.to.strip_prefix("wal_").unwrap().to_lowercase());
    let policy = app.policy(&s.admin, &s.from, json!({"name": "block", "blockedRecipients": [lower]})).await;
    let (_, stored) = app.get(&format!("/v1/wallets/{}/policies/{policy}", s.from), &s.admin).await;
    assert_eq!(stored["blockedRecipients"][0], s.to.as_str(), "{backend:?}: stored canonical");
    let (status, body) =
        app.post("/v1/payments", &s.agent, json!({"from": s.from, "to": s.to, "amount": "1.00"})).await;
    assert_eq!((status, code(&body)), (403, Some("POLICY_DENIED")), "{backend:?}: {body}");
}

per_backend!(a_recipient_blocked_while_pending_is_not_paid);
async fn a_recipient_blocked_while_pending_is_not_paid(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("5000.00").await;
    let (payment, approval) = app.held_payment(&s, "2000.00").await;
    app.policy(&s.admin, &s.from, json!({"name": "block", "blockedRecipients": [s.to]})).await;
    let (status, body) = app.post(&format!("/v1/approvals/{approval}/approve"), &s.reviewer, json!({})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("APPROVED")), "{backend:?}: {body}");
    assert_eq!(body["payment"]["status"], "FAILED");
    assert!(body["payment"]["failureReason"].as_str().unwrap().contains("blocked"), "{body}");
    assert_eq!(app.get(&format!("/v1/payments/{payment}"), &s.agent).await.1["status"], "FAILED");
    assert_eq!(app.balance(&s.admin, &s.from).await, "5000.00", "no money moved");
    let (_, log) = app.get("/v1/audit-logs?action=payment.failed", &s.admin).await;
    assert_eq!(log["data"][0]["details"]["rule"], "blockedRecipients", "{log}");
}

per_backend!(the_webhook_cap_holds_under_concurrent_creation);
async fn the_webhook_cap_holds_under_concurrent_creation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.org("hooks").await;
    // A literal public address needs no DNS here.
    let hook = |n: usize| json!({"url": format!("https://93.184.216.34/hook/{n}"), "events": ["*"]});
    for n in 0..95 {
        assert_eq!(app.post("/v1/webhooks", &admin, hook(n)).await.0, 201);
    }
    let results = join_all((95..105).map(|n| {
        let (app, admin) = (&app, &admin);
        async move { app.post("/v1/webhooks", admin, hook(n)).await }
    }))
    .await;
    let created = results.iter().filter(|(status, _)| *status == 201).count();
    assert!(results.iter().all(|(status, _)| *status == 201 || *status == 400), "{backend:?}: {results:?}");
    assert_eq!(created, 5, "{backend:?}");
    let (_, list) = app.get("/v1/webhooks", &admin).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(100));
}

// Members, teams and routing rules are capped per organisation like webhooks: ten creations at
// once with five places left make exactly five (the count is made in the plan and the
// organisation record is rewritten with each creation, so a creation counted on a stale count
// loses its commit and counts again).
per_backend!(the_member_team_and_rule_caps_hold_under_concurrent_creation);
async fn the_member_team_and_rule_caps_hold_under_concurrent_creation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.org("caps").await;
    let team = app.team(&admin, "first", &[]).await;
    type Body = Box<dyn Fn(usize) -> Value>;
    let kinds: [(&str, usize, Body); 3] = [
        ("/v1/members", 1000, Box::new(|n| json!({"name": format!("m{n}"), "email": format!("m{n}@example.com")}))),
        ("/v1/teams", 100, Box::new(|n| json!({"name": format!("t{n}")}))),
        (
            "/v1/routing-rules",
            100,
            Box::new(move |n| json!({"name": format!("r{n}"), "conditions": {}, "assignToTeam": team})),
        ),
    ];
    for (path, cap, body) in &kinds {
        // The team made above counts against the team cap.
        let already = usize::from(*path == "/v1/teams");
        for n in already..cap - 5 {
            assert_eq!(app.post(path, &admin, body(n)).await.0, 201, "{backend:?} {path} {n}");
        }
        let results = join_all((0..10).map(|n| app.post(path, &admin, body(cap + n)))).await;
        let created = results.iter().filter(|(status, _)| *status == 201).count();
        assert!(results.iter().all(|(status, _)| *status == 201 || *status == 400), "{backend:?}: {results:?}");
        assert_eq!(created, 5, "{backend:?} {path}");
        let (status, list) = app.get(path, &admin).await;
        assert_eq!(status, 200, "{list}");
        let listed = list.as_array().or_else(|| list["data"].as_array()).map(Vec::len);
        assert_eq!(listed, Some(*cap), "{backend:?} {path}");
    }
}
