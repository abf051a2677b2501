//! Every way a person can approve a held payment, driven the same way for every rule tested
//! across doors (separation of duties in tests/every_door.rs, passkey step-up in
//! tests/step_up.rs): REST approve and modify, a bulk decision of one id, `/reviews` decide, MCP
//! `decide_approval`, the dashboard's decide form, a signed review link, and a click on a Slack
//! message's button.

use serde_json::{json, Value};

use crate::browser::Browser;
use crate::TestApp;
use countersign_core::domain::ids::ApprovalId;

#[derive(Debug, Clone, Copy)]
pub enum Door {
    RestApprove,
    RestModify,
    /// `POST /v1/approvals/bulk` with this one id: answered 200, the row says what happened.
    Bulk,
    ReviewsDecide,
    Mcp,
    Dashboard,
    ReviewLink,
    /// A signed click on Approve in Slack, by the Slack user linked to the key's member (a key
    /// that is no member is nobody in Slack: refused `SLACK_USER_NOT_LINKED`).
    Slack,
}

pub const DOORS: [Door; 8] = [
    Door::RestApprove,
    Door::RestModify,
    Door::Bulk,
    Door::ReviewsDecide,
    Door::Mcp,
    Door::Dashboard,
    Door::ReviewLink,
    Door::Slack,
];

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
pub fn page_answer(status: u16, body: String) -> DoorAnswer {
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
        Door::Bulk => {
            let body = json!({"decision": "approve", "ids": [approval]});
            let (status, body) = app.post("/v1/approvals/bulk", key, body).await;
            if status != 200 {
                // Refused before any row (a frozen or revoked key): the API's own envelope.
                return rest_answer(status, body);
            }
            let row = &body["results"][0];
            DoorAnswer {
                decided: row["ok"] == true,
                status,
                code: row["error"]["code"].as_str().map(String::from),
                url: None,
                shown: body.to_string(),
            }
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
            if status != 200 {
                // Refused before MCP (a frozen or revoked key): the API's own envelope.
                return rest_answer(status, res.json().await.expect("an error envelope"));
            }
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
        Door::Slack => slack_click(app, key, approval).await,
    }
}

/// The Slack app every organisation the Slack door is used in gets (its signing secret).
const SLACK_SECRET: &str = "doors0slack0signing0secret000000";

/// Clicks Approve on `approval`'s message in Slack as the Slack user of `key`'s member: the
/// organisation's Slack app and the member's Slack user are set up first (straight in the store,
/// as `PUT /v1/integrations/slack` and `PATCH /v1/members/{id}` would: the door is given no admin
/// key). The click's answer is the private message the clicker got, which ends `(CODE).`.
async fn slack_click(app: &TestApp, key: &str, approval: &str) -> DoorAnswer {
    use countersign_core::domain::notification::{SlackIntegration, SlackUserLink};
    use countersign_core::domain::people::Person;
    use countersign_core::layout::create;

    // Read as stored, not authenticated: a frozen key's member still clicks (and is refused).
    let id = countersign_core::domain::org::key_id_of_secret(key).expect("a key's secret");
    let item = app.store.store().get(&countersign_core::layout::api_key_key(&id)).await.expect("read the key");
    let caller =
        countersign_core::layout::decode::<countersign_core::domain::org::ApiKey>(item.expect("the door's key"))
            .expect("a key")
            .value;
    let Some(Person::Member(member)) = caller.person.clone() else {
        return DoorAnswer {
            decided: false,
            status: 200,
            code: Some("SLACK_USER_NOT_LINKED".into()),
            url: None,
            shown: "a key that is no member is nobody in Slack".into(),
        };
    };
    let org = caller.org_id.clone();
    let sealing = app.service.settings().encryption_key.clone().expect("the test app seals secrets");
    let seal = |value: &str, field| sealing.seal(value, &SlackIntegration::owner(&org, field)).expect("seal");
    let now = chrono::Utc::now();
    let integration = SlackIntegration {
        org_id: org.clone(),
        bot_token: seal("xoxb-doors", "botToken"),
        signing_secret: seal(SLACK_SECRET, "signingSecret"),
        default_channel: Some("C0DOORS".into()),
        created_at: now,
        updated_at: now,
    };
    let user = format!("U{}", &member.as_str()[4..]);
    let link = SlackUserLink { org_id: org.clone(), slack_user_id: user.clone(), member_id: member };
    let store = app.store.store();
    // Each is made once per organisation and member; a second try finds it made.
    let _ = store.transact(vec![create(&integration).expect("integration")]).await;
    let _ = store.transact(vec![create(&link).expect("link")]).await;

    let payload = json!({
        "type": "block_actions", "user": {"id": user, "team_id": "T0DOORS"}, "team": {"id": "T0DOORS"},
        "channel": {"id": "C0DOORS"}, "container": {"type": "message", "message_ts": "1.000001", "channel_id": "C0DOORS"},
        "message": {"ts": "1.000001", "text": "Approval needed"},
        "actions": [{"action_id": "countersign_approve", "value": approval, "type": "button"}]
    });
    let body: String =
        url::form_urlencoded::Serializer::new(String::new()).append_pair("payload", &payload.to_string()).finish();
    let timestamp = chrono::Utc::now().timestamp();
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(SLACK_SECRET.as_bytes()).expect("key");
    hmac::Mac::update(&mut mac, format!("v0:{timestamp}:{body}").as_bytes());
    let signature = format!("v0={}", hex::encode(hmac::Mac::finalize(mac).into_bytes()));
    let fake = app.slack.as_ref().expect("the test app's fake Slack");
    let said_before = fake.calls("chat.postEphemeral").len();
    let res = app
        .http
        .post(format!("{}/integrations/slack/interactions?org={org}", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", timestamp.to_string())
        .header("x-slack-signature", signature)
        .body(body)
        .send()
        .await
        .expect("click");
    let status = res.status().as_u16();
    let said: Vec<String> = fake
        .calls("chat.postEphemeral")
        .into_iter()
        .skip(said_before)
        .filter(|c| c.body["user"] == user.as_str())
        .map(|c| c.body["text"].as_str().unwrap_or_default().to_string())
        .collect();
    let shown = said.join("\n");
    // A refusal ends `(CODE).`; "recorded: 1 of 2" is a vote counted.
    let code = shown.rsplit_once('(').and_then(|(_, rest)| rest.strip_suffix(").")).map(String::from);
    DoorAnswer { decided: status == 200 && code.is_none(), status, code, url: None, shown }
}
