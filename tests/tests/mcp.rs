//! `/mcp` over HTTP on both stores, as JSON-RPC posts (the stateless Streamable HTTP exchange,
//! what a Lambda answers): a held payment requested, refused to the key that asked for it and to
//! a key without the permission, decided by a reviewer, and a 401 without a key. The MCP SDK
//! client drives the same tools in tests/mcp.

use countersign_tests::{per_backend, Backend, TestApp};
use serde_json::{json, Value};

/// One `tools/call` as `key`; returns the tool result.
async fn call(app: &TestApp, key: &str, tool: &str, arguments: Value) -> Value {
    let (status, content_type, body) = post(app, Some(key), tool, arguments).await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"), "{body}");
    assert_eq!(body["id"], 7, "{body}");
    body["result"].clone()
}

async fn post(app: &TestApp, key: Option<&str>, tool: &str, arguments: Value) -> (u16, String, Value) {
    let request = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                         "params": {"name": tool, "arguments": arguments}});
    let mut post = app
        .http
        .post(format!("{}/mcp", app.base))
        .header("accept", "application/json, text/event-stream")
        .json(&request);
    if let Some(key) = key {
        post = post.bearer_auth(key);
    }
    let res = post.send().await.expect("request");
    let status = res.status().as_u16();
    let content_type = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let body = res.json::<Value>().await.unwrap_or(Value::Null);
    (status, content_type, body)
}

/// The API error code a tool error starts its text with.
fn error_code(result: &Value) -> String {
    assert_eq!(result["isError"], true, "{result}");
    let text = result["content"][0]["text"].as_str().expect("text");
    let code = text.split(':').next().unwrap_or_default().to_string();
    assert_eq!(result["structuredContent"]["error"]["code"], code.as_str(), "{result}");
    code
}

per_backend!(mcp_tools_act_as_the_key_and_refuse_what_the_route_refuses);

async fn mcp_tools_act_as_the_key_and_refuse_what_the_route_refuses(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("5000.00").await;
    let pay = json!({"from": s.from, "to": s.to, "amount": "1500.00", "idempotency_key": "mcp-1"});

    let (status, _, body) = post(&app, None, "request_payment", pay.clone()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("UNAUTHORIZED")), "{body}");
    assert_eq!(app.balance(&s.admin, &s.from).await, "5000.00");

    let asked = call(&app, &s.agent, "request_payment", pay.clone()).await["structuredContent"].clone();
    assert_eq!((asked["held"].as_bool(), asked["payment"]["status"].as_str()), (Some(true), Some("PENDING_APPROVAL")));
    let approval = asked["approval"]["id"].as_str().expect("approval id").to_string();
    let replay = call(&app, &s.agent, "request_payment", pay).await["structuredContent"].clone();
    assert_eq!((replay["replayed"].as_bool(), &replay["payment"]["id"]), (Some(true), &asked["payment"]["id"]));

    // The agent key lacks approvals:write, as on REST; the admin key that asks for a payment may
    // not decide it.
    let decide = json!({"approval_id": approval, "decision": "approve"});
    assert_eq!(error_code(&call(&app, &s.agent, "decide_approval", decide.clone()).await), "PERMISSION_DENIED");
    let (status, _) = app.post(&format!("/v1/approvals/{approval}/approve"), &s.agent, json!({})).await;
    assert_eq!(status, 403);
    let own = json!({"from": s.from, "to": s.to, "amount": "1200.00"});
    let own = call(&app, &s.admin, "request_payment", own).await["structuredContent"]["approval"]["id"].clone();
    let refused = call(&app, &s.admin, "decide_approval", json!({"approval_id": own, "decision": "approve"})).await;
    assert_eq!(error_code(&refused), "SELF_APPROVAL_FORBIDDEN");
    let bad = json!({"from": s.from, "to": s.to, "amount": "1.001"});
    assert_eq!(error_code(&call(&app, &s.agent, "request_payment", bad).await), "INVALID_AMOUNT");

    let pending = call(&app, &s.reviewer, "list_pending_approvals", json!({"wallet_id": s.from})).await;
    assert_eq!(pending["structuredContent"]["approvals"].as_array().map(Vec::len), Some(2), "{pending}");
    let decided = call(&app, &s.reviewer, "decide_approval", decide).await["structuredContent"].clone();
    assert_eq!(decided["payment"]["status"], "COMPLETED", "{decided}");
    assert_eq!(app.balance(&s.admin, &s.from).await, "3500.00");
    let waited = call(&app, &s.reviewer, "wait_for_decision", json!({"approval_id": approval})).await;
    assert_eq!(
        (&waited["structuredContent"]["pending"], &waited["structuredContent"]["status"]),
        (&json!(false), &json!("APPROVED"))
    );
}
