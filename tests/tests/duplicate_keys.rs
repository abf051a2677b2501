//! A JSON body that gives a key twice is refused at every JSON door (docs/api.md, "Request bodies"), on both stores:
//! 400 `VALIDATION_ERROR` naming the key's path, and nothing written. `{"from": A, …, "from": B}`
//! would otherwise pay from B here while a gateway or a client-side check saw A.

use countersign_tests::{per_backend, Backend, TestApp};
use serde_json::Value;

/// Sends `body` as it is written (repeats kept) and checks the refusal names `field`.
async fn refused(app: &TestApp, method: &str, path: &str, key: &str, body: &str, field: &str) {
    let before = app.store.item_count().await;
    let (status, answer) = app.call_raw(method, path, Some(&format!("Bearer {key}")), body.as_bytes().to_vec()).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str(), answer["error"]["details"]["field"].as_str()),
        (400, Some("VALIDATION_ERROR"), Some(field)),
        "{method} {path} {body}: {answer}"
    );
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(field) && message.contains("duplicate"), "{message}");
    assert_eq!(app.store.item_count().await, before, "{method} {path}: nothing is written");
}

per_backend!(a_key_given_twice_is_refused_at_every_json_door);
async fn a_key_given_twice_is_refused_at_every_json_door(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let other = app.wallet(&s.admin, "USD").await;
    let (from, to) = (&s.from, &s.to);
    let (_, approval) = app.held_payment(&s, "5000.00").await;

    // The attack: two parsers, two payers.
    let pay = format!(r#"{{"from": "{other}", "to": "{to}", "amount": "10.00", "from": "{from}"}}"#);
    refused(&app, "POST", "/v1/payments", &s.agent, &pay, "from").await;
    // Escaped spellings are the same key.
    let escaped = format!(r#"{{"from": "{other}", "to": "{to}", "amount": "10.00", "fr\u006fm": "{from}"}}"#);
    refused(&app, "POST", "/v1/payments", &s.agent, &escaped, "from").await;
    let nested =
        format!(r#"{{"from": "{from}", "to": "{to}", "amount": "10.00", "metadata": {{"a": {{"b": 1, "b": 2}}}}}}"#);
    refused(&app, "POST", "/v1/payments", &s.agent, &nested, "metadata.a.b").await;
    assert_eq!(app.balance(&s.admin, from).await, "10000.00");

    let cases: Vec<(&str, String, String, &str)> = vec![
        ("POST", format!("/v1/approvals/{approval}/approve"), r#"{"note": "a", "note": "b"}"#.into(), "note"),
        (
            "POST",
            format!("/v1/approvals/{approval}/modify"),
            r#"{"amount": "1.00", "amount": "4000.00"}"#.into(),
            "amount",
        ),
        ("POST", format!("/v1/approvals/{approval}/reject"), r#"{"reason": "a", "reason": "b"}"#.into(), "reason"),
        (
            "POST",
            "/v1/approvals/bulk".into(),
            format!(r#"{{"decision": "reject", "ids": ["{approval}"], "decision": "approve"}}"#),
            "decision",
        ),
        ("POST", format!("/v1/approvals/{approval}/comments"), r#"{"body": "a", "body": "b"}"#.into(), "body"),
        (
            "POST",
            format!("/reviews/{approval}/decide"),
            r#"{"decision_type": "reject", "decision_type": "approve"}"#.into(),
            "decision_type",
        ),
        (
            "POST",
            "/reviews".into(),
            r#"{"task_type": "t", "proposed_action": "a", "urgency": "low", "urgency": "critical"}"#.into(),
            "urgency",
        ),
        ("POST", "/v1/refunds".into(), r#"{"paymentId": "pay_x", "items": [{"k": 1, "k": 2}]}"#.into(), "items[0].k"),
        (
            "POST",
            format!("/v1/wallets/{from}/policies"),
            r#"{"name": "p", "autoRejectAbove": "1.00", "autoRejectAbove": "99999.00"}"#.into(),
            "autoRejectAbove",
        ),
        (
            "POST",
            "/v1/api-keys".into(),
            r#"{"name": "k", "permissions": ["payments:read"], "permissions": ["admin"]}"#.into(),
            "permissions",
        ),
        (
            "POST",
            "/v1/webhooks".into(),
            r#"{"url": "https://a.example", "url": "https://b.example", "events": ["*"]}"#.into(),
            "url",
        ),
        (
            "POST",
            "/v1/members".into(),
            r#"{"name": "m", "email": "a@example.com", "email": "b@example.com"}"#.into(),
            "email",
        ),
        ("POST", "/v1/teams".into(), r#"{"name": "a", "name": "b"}"#.into(), "name"),
        ("POST", "/v1/routing-rules".into(), r#"{"name": "r", "priority": 1, "priority": 1000000}"#.into(), "priority"),
        ("PATCH", format!("/v1/wallets/{from}"), r#"{"name": "a", "name": "b"}"#.into(), "name"),
        ("POST", format!("/v1/wallets/{from}/fund"), r#"{"amount": "1.00", "amount": "1000000.00"}"#.into(), "amount"),
    ];
    for (method, path, body, field) in &cases {
        refused(&app, method, path, &s.admin, body, field).await;
    }
    let (_, a) = app.get(&format!("/v1/approvals/{approval}"), &s.reviewer).await;
    assert_eq!((a["status"].as_str(), a["votes"].as_array().map(Vec::len)), (Some("PENDING"), Some(0)), "{a}");

    // The same body without the repeat is accepted: the refusal is the repeat alone.
    let once = format!(r#"{{"from": "{from}", "to": "{to}", "amount": "10.00"}}"#);
    let (status, body) =
        app.call_raw("POST", "/v1/payments", Some(&format!("Bearer {}", s.agent)), once.into_bytes()).await;
    assert_eq!(status, 201, "{body}");
}

/// Posts `request` to `/mcp` as it is written; the status and the JSON answer (`Null` if none).
async fn post_mcp(app: &TestApp, key: &str, request: String) -> (u16, Value) {
    let res = app
        .http
        .post(format!("{}/mcp", app.base))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .bearer_auth(key)
        .body(request)
        .send()
        .await
        .expect("mcp request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

per_backend!(mcp_tool_arguments_with_a_key_given_twice_are_refused);
async fn mcp_tool_arguments_with_a_key_given_twice_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let other = app.wallet(&s.admin, "USD").await;
    let before = app.store.item_count().await;
    let request = format!(
        r#"{{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {{"name": "request_payment",
            "arguments": {{"from": "{other}", "to": "{}", "amount": "10.00", "from": "{}"}}}}}}"#,
        s.to, s.from
    );
    let (status, body) = post_mcp(&app, &s.agent, request).await;
    assert_eq!(
        (status, body["error"]["code"].as_str(), body["error"]["details"]["field"].as_str()),
        (400, Some("VALIDATION_ERROR"), Some("params.arguments.from")),
        "{body}"
    );
    assert_eq!(app.store.item_count().await, before);
    assert_eq!(app.balance(&s.admin, &s.from).await, "10000.00");
}

per_backend!(an_mcp_body_over_the_limit_is_refused_before_it_is_read_whole);
async fn an_mcp_body_over_the_limit_is_refused_before_it_is_read_whole(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let padding = "x".repeat(countersign_core::api::MAX_BODY_BYTES);
    let request = format!(r#"{{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {{"pad": "{padding}"}}}}"#);
    let (status, body) = post_mcp(&app, &s.agent, request).await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("PAYLOAD_TOO_LARGE")), "{body}");
}
