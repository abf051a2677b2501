//! Separation of duties at every door (docs/api.md, "Separation of duties"), on both stores, as one table: for each way
//! to decide an approval (REST approve and modify, `/reviews` decide, the dashboard, MCP
//! `decide_approval`, a review link, a Slack button), the person who submitted the payment is
//! refused, through the key that submitted it and through a key that key minted later, and nothing
//! moves. (In Slack a click is a member's: the door is driven for the member-bound submitter; a
//! key that is no member is nobody in Slack.) The
//! submitter is bound to a member, an unbound key (a person of its own), or an admin key bound to
//! the payer's wallet (every permission on that wallet, still one person). The same
//! doors then let another person decide, so the refusals are the rule, not a broken door.

use std::sync::Arc;

use countersign_core::domain::secret::ServerSecret;
use countersign_tests::doors::{self, Door, DoorAnswer, DOORS};
use countersign_tests::{per_backend, Backend, Scenario, TestApp};
use serde_json::json;

const SECRET: &str = "every-door-integration-secret-0123456789";
const PUBLIC_URL: &str = "http://dashboard.test";

/// Every permission a door could ask for: the refusals below are separation of duties alone.
const SUBMITTER: &[&str] =
    &["payments:write", "payments:read", "approvals:read", "approvals:write", "api_keys:write", "reviews:write"];

trait SelfApproval {
    fn refused_as_self_approval(&self) -> bool;
}

impl SelfApproval for DoorAnswer {
    fn refused_as_self_approval(&self) -> bool {
        !self.decided && self.code.as_deref() == Some("SELF_APPROVAL_FORBIDDEN")
    }
}

async fn app(backend: Backend) -> TestApp {
    TestApp::spawn_tuned(backend, |s| {
        s.session_secret = Some(Arc::new(ServerSecret::new(SECRET).expect("secret")));
        s.public_url = Some(PUBLIC_URL.into());
    })
    .await
}

/// A payment of 500.00 held for review, submitted by `submitter`; its approval id.
async fn held_by(app: &TestApp, s: &Scenario, submitter: &str) -> String {
    let body = json!({"from": s.from, "to": s.to, "amount": "500.00"});
    let (status, body) = app.post("/v1/payments", submitter, body).await;
    assert_eq!(status, 202, "{body}");
    body["approvalId"].as_str().expect("approval id").to_string()
}

async fn approve_through(app: &TestApp, door: Door, key: &str, approval: &str) -> DoorAnswer {
    doors::approve_through(app, door, key, approval, "400.00", PUBLIC_URL).await
}

/// The approval has no vote and is still pending; the payer's balance is untouched.
async fn nothing_moved(app: &TestApp, s: &Scenario, approval: &str, funds: &str, context: &str) {
    let (_, a) = app.get(&format!("/v1/approvals/{approval}"), &s.reviewer).await;
    assert_eq!(
        (a["status"].as_str(), a["votes"].as_array().map(Vec::len)),
        (Some("PENDING"), Some(0)),
        "{context}: {a}"
    );
    assert_eq!(app.balance(&s.admin, &s.from).await, funds, "{context}");
}

per_backend!(no_door_lets_the_submitters_person_countersign);
async fn no_door_lets_the_submitters_person_countersign(backend: Backend) {
    let app = app(backend).await;
    let s = app.scenario("100000.00").await;
    app.policy(&s.admin, &s.from, json!({"name": "above 100", "requireReviewAbove": "100.00"})).await;
    let sam = app.member(&s.admin, "sam").await;
    // A wallet-bound admin key holds every permission on its wallet and is still one person.
    let bound_admin = {
        let body = json!({"name": "desk", "permissions": ["admin"], "walletIds": [s.from]});
        let (status, body) = app.post("/v1/api-keys", &s.admin, body).await;
        assert_eq!(status, 201, "{body}");
        body["secret"].as_str().expect("secret").to_string()
    };
    let submitters = [
        ("a member's key", app.key_for(&s.admin, Some(&sam), SUBMITTER).await),
        ("an unbound key", app.key_for(&s.admin, None, SUBMITTER).await),
        ("a wallet-bound admin key", bound_admin.clone()),
    ];
    let reviewer_member = app.member(&s.admin, "rita").await;
    let reviewer = app.key_for(&s.admin, Some(&reviewer_member), &["approvals:read", "approvals:write"]).await;

    // Nor does it vouch for identities: binding a key to another member is refused.
    let body = json!({"name": "as rita", "permissions": ["approvals:write"], "walletIds": [s.from], "memberId": reviewer_member});
    let (status, body) = app.post("/v1/api-keys", &bound_admin, body).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("PERMISSION_DENIED")), "{body}");

    let mut refusals = 0;
    for (shape, submitter) in &submitters {
        // Minted by the submitter's key after the fact: the same person.
        let minted = {
            let body =
                json!({"name": "later", "permissions": ["approvals:read", "approvals:write"], "walletIds": [s.from]});
            let (status, body) = app.post("/v1/api-keys", submitter, body).await;
            assert_eq!(status, 201, "{body}");
            body["secret"].as_str().expect("secret").to_string()
        };
        for door in DOORS {
            if matches!(door, Door::Slack) && *shape != "a member's key" {
                continue;
            }
            let approval = held_by(&app, &s, submitter).await;
            let funds = app.balance(&s.admin, &s.from).await;
            for (who, key) in [("the submitter's key", submitter), ("a key it minted", &minted)] {
                let context = format!("{backend:?}, {shape}, {who}, {door:?}");
                let answer = approve_through(&app, door, key, &approval).await;
                assert!(answer.refused_as_self_approval(), "{context}: {:?} {}", answer.code, answer.shown);
                nothing_moved(&app, &s, &approval, &funds, &context).await;
                refusals += 1;
            }
            // Another person decides through the same door, and the payment executes once.
            let context = format!("{backend:?}, {shape}, {door:?}, another person");
            let answer = approve_through(&app, door, &reviewer, &approval).await;
            assert!(answer.decided, "{context}: {}", answer.shown);
            let (_, a) = app.get(&format!("/v1/approvals/{approval}"), &s.reviewer).await;
            assert_eq!(
                (a["status"].as_str(), a["votes"].as_array().map(Vec::len)),
                (Some("APPROVED"), Some(1)),
                "{context}: {a}"
            );
            let paid = if matches!(door, Door::RestModify) { "400.00" } else { "500.00" };
            let payment = format!("/v1/payments/{}", a["paymentId"].as_str().expect("payment id"));
            let (_, payment) = app.get(&payment, &s.admin).await;
            assert_eq!(
                (payment["status"].as_str(), payment["amount"].as_str()),
                (Some("COMPLETED"), Some(paid)),
                "{context}: {payment}"
            );
        }
    }
    // Slack for the member-bound submitter alone.
    assert_eq!(refusals, (3 * DOORS.len() - 2) * 2);
}

per_backend!(a_frozen_key_is_refused_at_every_door);
/// The kill switch (docs/api.md, "Agent controls"): once a reviewer's key is frozen, every door
/// refuses it with `KEY_FROZEN`, a dashboard session signed in before the freeze included, and
/// nothing moves; unfrozen, the same key decides again.
async fn a_frozen_key_is_refused_at_every_door(backend: Backend) {
    let app = app(backend).await;
    let s = app.scenario("100000.00").await;
    let rita = app.member(&s.admin, "rita").await;
    let (status, minted) = app
        .post(
            "/v1/api-keys",
            &s.admin,
            json!({"name": "rita", "permissions": ["approvals:read", "approvals:write"], "memberId": rita}),
        )
        .await;
    assert_eq!(status, 201, "{minted}");
    app.policy(&s.admin, &s.from, json!({"name": "above 100", "requireReviewAbove": "100.00"})).await;
    let (reviewer, reviewer_id) =
        (minted["secret"].as_str().expect("secret").to_string(), minted["id"].as_str().expect("id").to_string());
    // Sessions made before the freeze: the dashboard and a review link's confirm page.
    let mut dashboard = countersign_tests::browser::Browser::new(&app);
    let dashboard_csrf = dashboard.signed_in(&reviewer).await;
    let mut linked = countersign_tests::browser::Browser::new(&app);
    linked.signed_in(&reviewer).await;
    let (status, _) = app.post(&format!("/v1/api-keys/{reviewer_id}/freeze"), &s.admin, json!({})).await;
    assert_eq!(status, 200);

    for door in DOORS {
        let approval = held_by(&app, &s, &s.agent).await;
        let funds = app.balance(&s.admin, &s.from).await;
        let context = format!("{backend:?}, {door:?}");
        let answer = match door {
            Door::Dashboard => {
                let path = format!("/dashboard/approvals/{approval}/decide");
                let page = dashboard.post(&path, &[("csrf", &dashboard_csrf), ("action", "approve")]).await;
                doors::page_answer(page.status, page.body)
            }
            Door::ReviewLink => {
                let stored = app.get(&format!("/v1/approvals/{approval}"), &s.reviewer).await.1;
                let expires = stored["expiresAt"].as_str().expect("expiresAt").parse().expect("time");
                let id = countersign_core::domain::ids::ApprovalId::parse(&approval).expect("id");
                let url = app.service.review_url(&id, expires).expect("a review link");
                let page = linked.get(url.strip_prefix(PUBLIC_URL).expect("public url")).await;
                doors::page_answer(page.status, page.body)
            }
            _ => approve_through(&app, door, &reviewer, &approval).await,
        };
        assert!(
            !answer.decided && answer.code.as_deref() == Some("KEY_FROZEN"),
            "{context}: {:?} {}",
            answer.code,
            answer.shown
        );
        nothing_moved(&app, &s, &approval, &funds, &context).await;
    }
    let (status, _) = app.post(&format!("/v1/api-keys/{reviewer_id}/unfreeze"), &s.admin, json!({})).await;
    assert_eq!(status, 200);
    let approval = held_by(&app, &s, &s.agent).await;
    let answer = approve_through(&app, Door::RestApprove, &reviewer, &approval).await;
    assert!(answer.decided, "{backend:?}: unfrozen, the key decides again: {}", answer.shown);
}

per_backend!(a_frozen_wallets_held_payments_execute_at_no_door);
/// The kill switch on a wallet (docs/api.md, "Agent controls"): approving a payment held before
/// the freeze is refused `WALLET_FROZEN` at every door, nothing moves and the approval stays
/// pending; unfrozen, the same reviewer approves it.
async fn a_frozen_wallets_held_payments_execute_at_no_door(backend: Backend) {
    let app = app(backend).await;
    let s = app.scenario("100000.00").await;
    app.policy(&s.admin, &s.from, json!({"name": "above 100", "requireReviewAbove": "100.00"})).await;
    let rita = app.member(&s.admin, "rita").await;
    let reviewer = app.key_for(&s.admin, Some(&rita), &["approvals:read", "approvals:write"]).await;
    let mut held = Vec::new();
    for _ in DOORS {
        held.push(held_by(&app, &s, &s.agent).await);
    }
    let (status, _) = app.post(&format!("/v1/wallets/{}/freeze", s.to), &s.admin, json!({})).await;
    assert_eq!(status, 200);
    let funds = app.balance(&s.admin, &s.from).await;
    for (door, approval) in DOORS.into_iter().zip(&held) {
        let context = format!("{backend:?}, {door:?}");
        let answer = approve_through(&app, door, &reviewer, approval).await;
        assert!(
            !answer.decided && answer.code.as_deref() == Some("WALLET_FROZEN"),
            "{context}: {:?} {}",
            answer.code,
            answer.shown
        );
        nothing_moved(&app, &s, approval, &funds, &context).await;
    }
    let (status, _) = app.post(&format!("/v1/wallets/{}/unfreeze", s.to), &s.admin, json!({})).await;
    assert_eq!(status, 200);
    let answer = approve_through(&app, Door::RestApprove, &reviewer, &held[0]).await;
    assert!(answer.decided, "{backend:?}: unfrozen, it executes: {}", answer.shown);
}
