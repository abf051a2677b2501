//! Slack as a door (docs/api.md, "Slack and email"), on both stores, as one table: a click on a
//! message's button is a vote by the member linked to the clicking Slack user, under every rule
//! a vote has elsewhere. Requests are signed here as Slack signs them (`v0`, HMAC-SHA256 of
//! `v0:{timestamp}:{body}`, written out below rather than borrowed from the code under test); the
//! answers to the clicker go to a local fake of Slack's Web API. For each click the table says
//! what must happen: 401 with nothing decided, a private refusal with nothing decided, a vote
//! recorded, or the decision with the message updated.

use countersign_tests::fake_slack::FakeSlack;
use countersign_tests::{per_backend, Backend, TestApp};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

const SIGNING_SECRET: &str = "8f742231b10e8888abcd99aaabbbccc1";
const CHANNEL: &str = "C0DESK";

struct World {
    app: TestApp,
    slack: FakeSlack,
    org: String,
    admin: String,
    sam: String,
    single: String,
    pair: String,
    to: String,
}

fn sign(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// A block_actions payload as Slack sends it for a click by `user` on `action` of `approval`.
fn click_body(user: &str, action: &str, approval: &str) -> String {
    let payload = json!({
        "type": "block_actions",
        "user": {"id": user, "username": user.to_lowercase(), "team_id": "T0ACME"},
        "team": {"id": "T0ACME", "domain": "acme"},
        "api_app_id": "A0COUNTERSIGN",
        "container": {"type": "message", "message_ts": "1700000000.000001", "channel_id": CHANNEL},
        "channel": {"id": CHANNEL, "name": "desk"},
        "message": {"ts": "1700000000.000001", "text": "Approval needed"},
        "response_url": "https://hooks.slack.com/actions/T0ACME/1/abc",
        "trigger_id": "1.2.3",
        "actions": [{"action_id": action, "block_id": "decide", "value": approval, "type": "button",
                     "action_ts": "1700000001.000001"}]
    });
    let encoded: String = url_encode(&payload.to_string());
    format!("payload={encoded}")
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Posts `body` to the interactions URL of `org` with `signature` (None: no header) at `timestamp`.
async fn post_click(app: &TestApp, org: &str, timestamp: Option<i64>, signature: Option<String>, body: &str) -> u16 {
    let mut request = app
        .http
        .post(format!("{}/integrations/slack/interactions?org={org}", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_string());
    if let Some(t) = timestamp {
        request = request.header("x-slack-request-timestamp", t.to_string());
    }
    if let Some(s) = signature {
        request = request.header("x-slack-signature", s);
    }
    request.send().await.expect("click").status().as_u16()
}

async fn signed_click(app: &TestApp, org: &str, body: &str) -> u16 {
    let now = chrono::Utc::now().timestamp();
    post_click(app, org, Some(now), Some(sign(SIGNING_SECRET, now, body)), body).await
}

async fn world(backend: Backend) -> World {
    // The service's own fake of Slack's Web API; a queue on its store (a queue message per
    // notification due), with no worker: the tests hand messages over themselves.
    let app = TestApp::spawn_wired(
        backend,
        |_| {},
        |w, store| {
            w.queue = std::sync::Arc::new(countersign_core::adapters::local_queue::StoreQueue::new(store));
        },
    )
    .await;
    let slack = app.slack.clone().expect("the test app's fake Slack");
    let admin = app.org("acme").await;
    let (_, me) = app.get("/v1/settings", &admin).await;
    let org = me["orgId"].as_str().expect("org id").to_string();
    let body = json!({"botToken": "xoxb-1-acme", "signingSecret": SIGNING_SECRET, "defaultChannel": CHANNEL});
    let (status, body) = app.call("PUT", "/v1/integrations/slack", Some(&admin), Some(body)).await;
    assert_eq!(status, 200, "{body}");
    let mut members = Vec::new();
    for (name, slack_user) in [("sam", "U0SAM"), ("rita", "U0RITA"), ("quinn", "U0QUINN"), ("otto", "U0OTTO")] {
        let member = app.member(&admin, name).await;
        let body = json!({"slackUserId": slack_user});
        let (status, body) = app.call("PATCH", &format!("/v1/members/{member}"), Some(&admin), Some(body)).await;
        assert_eq!(status, 200, "{body}");
        members.push(member);
    }
    let desk = app.team(&admin, "desk", &[&members[0], &members[1], &members[2]]).await;
    let (status, body) = app.call("PATCH", "/v1/settings", Some(&admin), Some(json!({"defaultTeam": desk}))).await;
    assert_eq!(status, 200, "{body}");
    let voter = ["approvals:read", "approvals:write"];
    let sam = app
        .key_for(&admin, Some(&members[0]), &["payments:write", "payments:read", "approvals:read", "approvals:write"])
        .await;
    for member in &members[1..] {
        app.key_for(&admin, Some(member), &voter).await;
    }
    let (single, pair, to) =
        (app.wallet(&admin, "USD").await, app.wallet(&admin, "USD").await, app.wallet(&admin, "USD").await);
    for (wallet, policy) in [
        (&single, json!({"name": "one person", "requireReviewAbove": "100.00", "stepUpAbove": "5000.00"})),
        (&pair, json!({"name": "two people", "requireReviewAbove": "100.00", "requiredApprovals": 2})),
    ] {
        app.fund(&admin, wallet, "100000.00").await;
        app.policy(&admin, wallet, policy).await;
    }
    World { app, slack, org, admin, sam, single, pair, to }
}

/// A payment held for review, submitted by sam; its approval id and payment id.
async fn held(w: &World, from: &str, amount: &str) -> (String, String) {
    let (status, body) = w.app.post("/v1/payments", &w.sam, json!({"from": from, "to": w.to, "amount": amount})).await;
    assert_eq!(status, 202, "{body}");
    (body["approvalId"].as_str().expect("approval").into(), body["id"].as_str().expect("payment").into())
}

async fn approval(w: &World, id: &str) -> Value {
    w.app.get(&format!("/v1/approvals/{id}"), &w.admin).await.1
}

/// One row: what, (payer wallet, amount), clicks (Slack user, action) before, the click, what
/// must happen.
type Case<'a> = (&'a str, (String, &'a str), Vec<(&'a str, &'a str)>, Click, Expect);

/// What a click must lead to.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// 401, nothing decided, nothing said in Slack.
    Unauthorized,
    /// 200, a private answer to the clicker containing this, nothing decided.
    Refused(&'static str),
    /// 200, the vote counted, more needed: a private answer containing this.
    Recorded(&'static str),
    /// 200, decided to this status; the clicked message updated.
    Decided(&'static str),
}

per_backend!(a_slack_click_is_the_linked_members_vote_under_every_rule);
async fn a_slack_click_is_the_linked_members_vote_under_every_rule(backend: Backend) {
    let w = world(backend).await;
    let now = chrono::Utc::now().timestamp();
    let mut checked = 0;
    // (what, approval source, clicks before, the click, what must happen)
    let single = |amount| (w.single.clone(), amount);
    let cases: Vec<Case> = vec![
        ("no signature", single("500.00"), vec![], Click::Unsigned("U0RITA"), Expect::Unauthorized),
        ("a wrong secret", single("500.00"), vec![], Click::WrongSecret("U0RITA"), Expect::Unauthorized),
        ("six minutes old", single("500.00"), vec![], Click::Stale("U0RITA", now - 360), Expect::Unauthorized),
        ("another organisation's URL", single("500.00"), vec![], Click::OtherOrg("U0RITA"), Expect::Unauthorized),
        ("tampered after signing", single("500.00"), vec![], Click::Tampered("U0RITA"), Expect::Unauthorized),
        ("an unlinked Slack user", single("500.00"), vec![], Click::Approve("U0NOBODY"), Expect::Refused("not linked")),
        (
            "a member outside the team",
            single("500.00"),
            vec![],
            Click::Approve("U0OTTO"),
            Expect::Refused("not counted"),
        ),
        ("the submitter", single("500.00"), vec![], Click::Approve("U0SAM"), Expect::Refused("submitted")),
        (
            "above stepUpAbove",
            single("6000.00"),
            vec![],
            Click::Approve("U0RITA"),
            Expect::Refused("/dashboard/approvals/"),
        ),
        ("a team member", single("500.00"), vec![], Click::Approve("U0RITA"), Expect::Decided("APPROVED")),
        ("a team member rejects", single("500.00"), vec![], Click::Reject("U0RITA"), Expect::Decided("REJECTED")),
        (
            "the same click again",
            single("500.00"),
            vec![("U0RITA", "countersign_approve")],
            Click::Approve("U0RITA"),
            Expect::Refused("not counted"),
        ),
        ("one of two", (w.pair.clone(), "500.00"), vec![], Click::Approve("U0RITA"), Expect::Recorded("1 of 2")),
        (
            "the same person twice",
            (w.pair.clone(), "500.00"),
            vec![("U0RITA", "countersign_approve")],
            Click::Approve("U0RITA"),
            Expect::Refused("not counted"),
        ),
        (
            "two of two",
            (w.pair.clone(), "500.00"),
            vec![("U0RITA", "countersign_approve")],
            Click::Approve("U0QUINN"),
            Expect::Decided("APPROVED"),
        ),
    ];
    for (what, (from, amount), before, click, expect) in cases {
        let context = format!("{backend:?}: {what}");
        let (id, payment) = held(&w, &from, amount).await;
        for (user, action) in before {
            assert_eq!(signed_click(&w.app, &w.org, &click_body(user, action, &id)).await, 200, "{context}");
        }
        let votes_before = approval(&w, &id).await["votes"].as_array().map_or(0, Vec::len);
        let (ephemeral, updates) = (w.slack.calls("chat.postEphemeral").len(), w.slack.calls("chat.update").len());
        let status = click.send(&w, &id).await;
        let after = approval(&w, &id).await;
        let votes = after["votes"].as_array().map_or(0, Vec::len);
        let said = w.slack.calls("chat.postEphemeral");
        let said_now = said.get(ephemeral).map(|c| c.body["text"].as_str().unwrap_or("").to_string());
        match expect {
            Expect::Unauthorized => {
                assert_eq!(status, 401, "{context}");
                assert_eq!((after["status"].as_str(), votes), (Some("PENDING"), votes_before), "{context}: {after}");
                assert_eq!(said.len(), ephemeral, "{context}: nothing said");
            }
            Expect::Refused(words) => {
                assert_eq!(status, 200, "{context}");
                let text = said_now.unwrap_or_else(|| panic!("{context}: no private answer"));
                assert!(text.contains(words), "{context}: {text}");
                assert_eq!(said[ephemeral].body["user"].as_str(), click.user(), "{context}: to the clicker alone");
                assert_eq!(votes, votes_before, "{context}: no vote counted: {after}");
                assert_eq!(w.slack.calls("chat.update").len(), updates, "{context}: message untouched");
            }
            Expect::Recorded(words) => {
                assert_eq!(status, 200, "{context}");
                assert!(said_now.as_deref().is_some_and(|t| t.contains(words)), "{context}: {said_now:?}");
                assert_eq!((after["status"].as_str(), votes), (Some("PENDING"), votes_before + 1), "{context}");
            }
            Expect::Decided(decided) => {
                assert_eq!(status, 200, "{context}");
                assert_eq!(after["status"].as_str(), Some(decided), "{context}: {after}");
                let update = w.slack.calls("chat.update");
                let update = update.get(updates).unwrap_or_else(|| panic!("{context}: message not updated"));
                assert_eq!(
                    (update.body["channel"].as_str(), update.body["ts"].as_str()),
                    (Some(CHANNEL), Some("1700000000.000001")),
                    "{context}: the clicked message"
                );
                let text = update.body.to_string();
                assert!(
                    text.contains(if decided == "APPROVED" { "Approved" } else { "Rejected" }),
                    "{context}: {text}"
                );
                assert!(!text.contains("countersign_approve"), "{context}: no buttons left: {text}");
                let (_, paid) = w.app.get(&format!("/v1/payments/{payment}"), &w.admin).await;
                let wanted = if decided == "APPROVED" { "COMPLETED" } else { "REJECTED" };
                assert_eq!(paid["status"].as_str(), Some(wanted), "{context}: {paid}");
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 15);
    // Executed once each: the single-person approvals paid 500.00 three times (approve, and the
    // repeated click's first), the pair once.
    let (_, single) = w.app.get(&format!("/v1/wallets/{}/balance", w.single), &w.admin).await;
    assert_eq!(single["balance"].as_str(), Some("99000.00"), "{single}");
    let (_, pair) = w.app.get(&format!("/v1/wallets/{}/balance", w.pair), &w.admin).await;
    assert_eq!(pair["balance"].as_str(), Some("99500.00"), "{pair}");
}

/// How a click is sent.
#[derive(Debug, Clone, Copy)]
enum Click {
    Approve(&'static str),
    Reject(&'static str),
    Unsigned(&'static str),
    WrongSecret(&'static str),
    Stale(&'static str, i64),
    OtherOrg(&'static str),
    Tampered(&'static str),
}

impl Click {
    fn user(self) -> Option<&'static str> {
        match self {
            Click::Approve(u)
            | Click::Reject(u)
            | Click::Unsigned(u)
            | Click::WrongSecret(u)
            | Click::Stale(u, _)
            | Click::OtherOrg(u)
            | Click::Tampered(u) => Some(u),
        }
    }

    async fn send(self, w: &World, approval: &str) -> u16 {
        let now = chrono::Utc::now().timestamp();
        let approve = |user| click_body(user, "countersign_approve", approval);
        match self {
            Click::Approve(user) => signed_click(&w.app, &w.org, &approve(user)).await,
            Click::Reject(user) => {
                signed_click(&w.app, &w.org, &click_body(user, "countersign_reject", approval)).await
            }
            Click::Unsigned(user) => post_click(&w.app, &w.org, Some(now), None, &approve(user)).await,
            Click::WrongSecret(user) => {
                let body = approve(user);
                post_click(&w.app, &w.org, Some(now), Some(sign("another0secret0entirely000000000", now, &body)), &body)
                    .await
            }
            Click::Stale(user, then) => {
                let body = approve(user);
                post_click(&w.app, &w.org, Some(then), Some(sign(SIGNING_SECRET, then, &body)), &body).await
            }
            Click::OtherOrg(user) => {
                let other = w.app.org("globex").await;
                let (_, settings) = w.app.get("/v1/settings", &other).await;
                let other = settings["orgId"].as_str().expect("org id").to_string();
                signed_click(&w.app, &other, &approve(user)).await
            }
            Click::Tampered(user) => {
                let body = approve(user);
                let signature = sign(SIGNING_SECRET, now, &body);
                let tampered = body.replace("U0RITA", "U0QUINN");
                post_click(&w.app, &w.org, Some(now), Some(signature), &tampered).await
            }
        }
    }
}

/// The committed, unpublished outbox event of `kind` about `approval` (the test service has no
/// bus: events wait in the outbox, as after a crash between commit and publish).
async fn outbox_event(w: &World, kind: &str, approval: &str) -> countersign_core::domain::event::Event {
    use countersign_core::layout::{decode, due_partitions, DUE_OUTBOX};
    use countersign_core::ports::{Index, Query};
    for partition in due_partitions(DUE_OUTBOX) {
        let items = w.app.store.store().query(Query::new(Index::Due, partition, 1000)).await.expect("outbox");
        for item in items {
            let event = decode::<countersign_core::domain::event::Event>(item).expect("event").value;
            if event.kind == kind && event.data["approvalId"] == approval {
                return event;
            }
        }
    }
    panic!("no {kind} event for {approval} in the outbox")
}

per_backend!(workers_racing_on_one_event_post_and_update_each_message_once);
/// Planning and sending race separately: the event's handlers plan once, the queue message's
/// workers send once, and an outcome's handlers leave a message the click updated alone.
async fn workers_racing_on_one_event_post_and_update_each_message_once(backend: Backend) {
    use countersign_core::ports::QueueMessage;
    let w = world(backend).await;
    let (id, payment) = held(&w, &w.single, "500.00").await;
    let mentions = |method: &str| {
        w.slack.calls(method).into_iter().filter(|c| c.body.to_string().contains(&id)).collect::<Vec<_>>()
    };

    // Eight workers handle the same approval.created at once (an at-least-once queue): one
    // request planned, queued (this service's queue takes no messages: nothing is sent yet)…
    let created = QueueMessage::Event { event: outbox_event(&w, "approval.created", &id).await };
    let handled = futures::future::join_all((0..8).map(|_| w.app.service.handle_message(&created))).await;
    assert!(handled.iter().all(Result::is_ok), "{handled:?}");
    let requests = format!("/v1/notifications/deliveries?approvalId={id}&kind=request");
    let (_, planned) = w.app.get(&requests, &w.admin).await;
    let planned = planned["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(planned.len(), 1, "{planned:?}");
    assert_eq!((planned[0]["status"].as_str(), planned[0]["attempts"].as_u64()), (Some("PENDING"), Some(0)));
    assert!(mentions("chat.postMessage").is_empty());
    // …and eight workers take its queue message at once: one post.
    let due = QueueMessage::Notification {
        subject: id.clone(),
        notification_id: serde_json::from_value(planned[0]["id"].clone()).expect("notification id"),
        attempt: 0,
    };
    let handled = futures::future::join_all((0..8).map(|_| w.app.service.handle_message(&due))).await;
    assert!(handled.iter().all(Result::is_ok), "{handled:?}");
    let posts = mentions("chat.postMessage");
    assert_eq!(posts.len(), 1, "{posts:?}");
    let (_, log) = w.app.get(&requests, &w.admin).await;
    let log = log["data"].as_array().cloned().unwrap_or_default();
    assert_eq!((log[0]["status"].as_str(), log[0]["attempts"].as_u64()), (Some("DELIVERED"), Some(1)), "{log:?}");
    // The reminder waits for 80 % of the window: planned, not sent.
    let (_, reminders) =
        w.app.get(&format!("/v1/notifications/deliveries?approvalId={id}&kind=reminder"), &w.admin).await;
    assert_eq!(reminders["data"][0]["status"].as_str(), Some("PENDING"), "{reminders}");

    // Rita approves from that message; then eight workers race on approval.approved: the message
    // was updated once, by the click's answer, and never again.
    let ts = log[0]["slackTs"].as_str().expect("the message's ts").to_string();
    let body = click_body("U0RITA", "countersign_approve", &id).replace("1700000000.000001", &ts);
    assert_eq!(signed_click(&w.app, &w.org, &body).await, 200);
    let approved = QueueMessage::Event { event: outbox_event(&w, "approval.approved", &id).await };
    let handled = futures::future::join_all((0..8).map(|_| w.app.service.handle_message(&approved))).await;
    assert!(handled.iter().all(Result::is_ok), "{handled:?}");
    let updates: Vec<_> = w.slack.calls("chat.update").into_iter().filter(|c| c.body["ts"] == ts.as_str()).collect();
    assert_eq!(updates.len(), 1, "{updates:?}");
    let (_, paid) = w.app.get(&format!("/v1/payments/{payment}"), &w.admin).await;
    assert_eq!(paid["status"].as_str(), Some("COMPLETED"), "{paid}");
}
