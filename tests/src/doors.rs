//! Every way a person can approve a held payment, driven the same way for every rule tested
//! across doors (separation of duties in tests/every_door.rs, passkey step-up in
//! tests/step_up.rs): REST approve and modify, `/reviews` decide, MCP `decide_approval`, the
//! dashboard's decide form, and a signed review link.

use serde_json::{json, Value};

use crate::browser::Browser;
use crate::TestApp;
use countersign_core::domain::ids::ApprovalId;

#[derive(Debug, Clone, Copy)]
pub enum Door {
    RestApprove,
    RestModify,
    ReviewsDecide,
    Mcp,
    Dashboard,
    ReviewLink,
}

pub const DOORS: [Door; 6] =
    [Door::RestApprove, Door::RestModify, Door::ReviewsDecide, Door::Mcp, Door::Dashboard, Door::ReviewLink];

/// What a door answered: whether it decided, its status (200 for an MCP call), the refusal code
/// (the error envelope's, an MCP tool error's, or a dashboard page's `(CODE).`), `details.url`
/// when the door shows an envelope, and everything it showed.
#[derive(Debug)]
pub struct DoorAnswer {
    pub decided: bool,
    pub status: u16,
    pub code: Option<String>,
    pub url: Option<String>,
    pub shown: String,
}

fn rest_answer(status: u16, body: Value) -> DoorAnswer {
    DoorAnswer {
        decided: status == 200,
        status,
        code: body["error"]["code"].as_str().map(String::from),
        url: body["error"]["details"]["url"].as_str().map(String::from),
        shown: body.to_string(),
    }
}

/// A dashboard page: a decision redirects (303) or, on a review link, confirms (200); a refusal
/// is a 4xx page ending its message with `(CODE).`.
fn page_answer(status: u16, body: String) -> DoorAnswer {
    let code = body.match_indices('(').find_map(|(at, _)| {
        let rest = &body[at + 1..];
        let end = rest.find(").")?;
        let code = &rest[..end];
        (end > 3 && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')).then(|| code.to_string())
    });
    DoorAnswer {
        decided: status == 303 || status == 200,
        status,
        code: code.filter(|_| status >= 400),
        url: None,
        shown: body,
    }
}

/// Approves `approval` as `key` through `door` (modify: to `modify_to`). Review links are made
/// for the service's `public_url`.
pub async fn approve_through(
    app: &TestApp,
    door: Door,
    key: &str,
    approval: &str,
    modify_to: &str,
    public_url: &str,
) -> DoorAnswer {
    match door {
        Door::RestApprove => {
            let (status, body) = app.post(&format!("/v1/approvals/{approval}/approve"), key, json!({})).await;
            rest_answer(status, body)
        }
        Door::RestModify => {
            let body = json!({"amount": modify_to, "note": "a little less"});
            let (status, body) = app.post(&format!("/v1/approvals/{approval}/modify"), key, body).await;
            rest_answer(status, body)
        }
        Door::ReviewsDecide => {
            let body = json!({"decision_type": "approve"});
            let (status, body) = app.post(&format!("/reviews/{approval}/decide"), key, body).await;
            rest_answer(status, body)
        }
        Door::Mcp => {
            let request = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
                "name": "decide_approval", "arguments": {"approval_id": approval, "decision": "approve"}}});
            let res = app
                .http
                .post(format!("{}/mcp", app.base))
                .header("accept", "application/json, text/event-stream")
                .bearer_auth(key)
                .json(&request)
                .send()
                .await
                .expect("mcp request");
            let status = res.status().as_u16();
            assert_eq!(status, 200, "an MCP call is answered 200, its refusal inside");
            let body: Value = res.json().await.expect("json-rpc body");
            let result = &body["result"];
            let refused = result["isError"] == true;
            let error = &result["structuredContent"]["error"];
            DoorAnswer {
                decided: !refused && result["structuredContent"]["approval"].is_object(),
                status,
                code: error["code"].as_str().filter(|_| refused).map(String::from),
                url: error["details"]["url"].as_str().map(String::from),
                shown: body.to_string(),
            }
        }
        Door::Dashboard => {
            let mut browser = Browser::new(app);
            let csrf = browser.signed_in(key).await;
            let page = browser
                .post(&format!("/dashboard/approvals/{approval}/decide"), &[("csrf", &csrf), ("action", "approve")])
                .await;
            page_answer(page.status, page.body)
        }
        Door::ReviewLink => {
            let stored = app.get(&format!("/v1/approvals/{approval}"), key).await.1;
            let expires = stored["expiresAt"].as_str().expect("expiresAt").parse().expect("time");
            let id = ApprovalId::parse(approval).expect("approval id");
            let url = app.service.review_url(&id, expires).expect("a review link");
            let path = url.strip_prefix(public_url).expect("public url").to_string();
            let mut browser = Browser::new(app);
            browser.signed_in(key).await;
            let confirm = browser.get(&path).await;
            assert_eq!(confirm.status, 200, "{}", confirm.body);
            let csrf = confirm.csrf();
            let page = browser.post(&path, &[("csrf", &csrf), ("action", "approve")]).await;
            page_answer(page.status, page.body)
        }
    }
}
