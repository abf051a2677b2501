//! People, teams and routing (docs/api.md, "Teams and routing"), through the API on both stores: separation of duties
//! and quorum count people, not keys; a routing rule assigns a held payment's approval to a team,
//! whose members alone (or an admin) decide it.

use countersign_tests::{per_backend, Backend, TestApp};
use serde_json::{json, Value};

fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

per_backend!(one_person_with_many_keys_cannot_meet_a_quorum);
async fn one_person_with_many_keys_cannot_meet_a_quorum(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    app.policy(
        &s.admin,
        &s.from,
        json!({"name": "two people", "requireReviewAbove": "100.00", "requiredApprovals": 2}),
    )
    .await;
    let (_, approval) = app.held_payment(&s, "500.00").await;
    let alice = app.member(&s.admin, "alice").await;
    let first = app.key_for(&s.admin, Some(&alice), &["approvals:write", "api_keys:write"]).await;
    let mut keys = vec![first.clone()];
    for _ in 0..4 {
        // Minted by alice's key: alice's too.
        keys.push(app.key_for(&first, None, &["approvals:write"]).await);
    }
    let path = format!("/v1/approvals/{approval}/approve");
    let (status, body) = app.post(&path, &keys[0], json!({})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("PENDING")), "{backend:?}: {body}");
    for key in &keys[1..] {
        let (status, body) = app.post(&path, key, json!({})).await;
        assert_eq!((status, code(&body)), (409, Some("ALREADY_VOTED")), "{backend:?}: {body}");
    }
    let bob = app.member(&s.admin, "bob").await;
    let bobs = app.key_for(&s.admin, Some(&bob), &["approvals:write"]).await;
    let (status, body) = app.post(&path, &bobs, json!({})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("APPROVED")), "{backend:?}: {body}");
}

per_backend!(the_submitter_cannot_approve_through_a_key_minted_later);
async fn the_submitter_cannot_approve_through_a_key_minted_later(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let sam = app.member(&s.admin, "sam").await;
    let sams = app.key_for(&s.admin, Some(&sam), &["payments:write", "approvals:write", "api_keys:write"]).await;
    let (status, held) =
        app.post("/v1/payments", &sams, json!({"from": s.from, "to": s.to, "amount": "2000.00"})).await;
    assert_eq!(status, 202, "{held}");
    let later = app.key_for(&sams, None, &["approvals:write"]).await;
    let path = format!("/v1/approvals/{}/approve", held["approvalId"].as_str().unwrap());
    let (status, body) = app.post(&path, &later, json!({})).await;
    assert_eq!((status, code(&body)), (403, Some("SELF_APPROVAL_FORBIDDEN")), "{backend:?}: {body}");
    // Only an admin key binds a key to another member (docs/api.md, "Separation of duties"): sam's key cannot mint olga's.
    let other = app.member(&s.admin, "olga").await;
    let body = json!({"name": "k", "permissions": ["approvals:write"], "memberId": other});
    let (status, body) = app.post("/v1/api-keys", &sams, body).await;
    assert_eq!((status, code(&body)), (403, Some("PERMISSION_DENIED")), "{backend:?}: {body}");
    let olgas = app.key_for(&s.admin, Some(&other), &["approvals:write"]).await;
    assert_eq!(app.post(&path, &olgas, json!({})).await.0, 200);
}

per_backend!(a_routing_rule_assigns_the_team_that_alone_decides);
async fn a_routing_rule_assigns_the_team_that_alone_decides(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("100000.00").await;
    let rita = app.member(&s.admin, "rita").await;
    let otto = app.member(&s.admin, "otto").await;
    let (status, team) = app.post("/v1/teams", &s.admin, json!({"name": "finance", "members": [rita]})).await;
    assert_eq!(status, 201, "{team}");
    let team_id = team["id"].as_str().unwrap().to_string();
    // The Humancheck seed's rule, as written, with our team id.
    let rule = json!({
        "name": "large payments to finance",
        "priority": 10,
        "conditions": {
            "task_type": {"operator": "=", "value": "payment"},
            "metadata.amount": {"operator": ">", "value": 10000}
        },
        "assign_to_team_id": team_id,
        "is_active": true
    });
    let (status, body) = app.post("/routing-rules", &s.admin, rule).await;
    assert_eq!(status, 201, "{backend:?}: {body}");
    let body = json!({"from": s.from, "to": s.to, "amount": "15000.00", "metadata": {"amount": 15000}});
    let (status, held) = app.post("/v1/payments", &s.agent, body).await;
    assert_eq!(status, 202, "{held}");
    let approval = held["approvalId"].as_str().unwrap().to_string();
    let (_, got) = app.get(&format!("/v1/approvals/{approval}"), &s.reviewer).await;
    assert_eq!(got["assignedTeam"], team_id.as_str(), "{backend:?}: {got}");
    let small = json!({"from": s.from, "to": s.to, "amount": "2000.00", "metadata": {"amount": 2000}});
    let (_, unrouted) = app.post("/v1/payments", &s.agent, small).await;
    let (_, got) = app.get(&format!("/v1/approvals/{}", unrouted["approvalId"].as_str().unwrap()), &s.reviewer).await;
    assert_eq!(got["assignedTeam"], Value::Null, "no rule matched");

    let perms = ["approvals:read", "approvals:write"];
    let ritas = app.key_for(&s.admin, Some(&rita), &perms).await;
    let ottos = app.key_for(&s.admin, Some(&otto), &perms).await;
    let (_, mine) = app.get("/v1/approvals?assignedToMe=true", &ritas).await;
    assert_eq!(mine["data"].as_array().map(Vec::len), Some(1), "{mine}");
    assert_eq!(app.get("/v1/approvals?assignedToMe=true", &ottos).await.1["data"].as_array().map(Vec::len), Some(0));
    let (_, by_team) = app.get(&format!("/v1/approvals?team={team_id}"), &s.reviewer).await;
    assert_eq!(by_team["data"][0]["id"], approval.as_str());
    let path = format!("/v1/approvals/{approval}/approve");
    let (status, body) = app.post(&path, &ottos, json!({})).await;
    assert_eq!((status, code(&body)), (403, Some("NOT_ASSIGNED")), "{backend:?}: {body}");
    let (status, body) = app.post(&path, &ritas, json!({})).await;
    assert_eq!((status, body["payment"]["status"].as_str()), (200, Some("COMPLETED")), "{backend:?}: {body}");
}

per_backend!(a_reviewer_approves_a_lower_amount);
async fn a_reviewer_approves_a_lower_amount(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let (payment, approval) = app.held_payment(&s, "5000.00").await;
    let path = format!("/v1/approvals/{approval}/modify");
    for (amount, status) in [("5000.01", 400), ("0.00", 400), ("1.001", 400)] {
        let (got, body) = app.post(&path, &s.reviewer, json!({"amount": amount})).await;
        assert_eq!((got, body["error"]["details"]["field"].as_str()), (status, Some("amount")), "{backend:?}: {body}");
    }
    let (status, body) = app.post(&path, &s.reviewer, json!({"amount": "4000.00", "note": "capped at contract"})).await;
    assert_eq!(status, 200, "{backend:?}: {body}");
    assert_eq!(
        (body["status"].as_str(), body["transactionDetails"]["amount"].as_str()),
        (Some("APPROVED"), Some("4000.00"))
    );
    assert_eq!(body["originalAmount"]["amount"], "5000.00");
    let (_, paid) = app.get(&format!("/v1/payments/{payment}"), &s.agent).await;
    assert_eq!((paid["status"].as_str(), paid["amount"].as_str()), (Some("COMPLETED"), Some("4000.00")), "{paid}");
    assert_eq!(app.balance(&s.admin, &s.from).await, "6000.00");
    let (_, log) = app.get("/v1/audit-logs?action=approval.modified", &s.admin).await;
    assert_eq!(
        (log["data"][0]["details"]["from"].as_str(), log["data"][0]["details"]["to"].as_str()),
        (Some("5000.00"), Some("4000.00"))
    );
}

/// A scenario whose payments above 100.00 are held with a 60 s window for a two-tier chain:
/// ann's team, then ben's; `on_timeout` as given.
struct Tiers {
    s: countersign_tests::Scenario,
    ann: String,
    ben: String,
    first: String,
    second: String,
}

async fn tiers(app: &TestApp, on_timeout: &str) -> Tiers {
    let s = app.scenario("10000.00").await;
    let (ann, ben) = (app.member(&s.admin, "ann").await, app.member(&s.admin, "ben").await);
    let (first, second) = (app.team(&s.admin, "tier 1", &[&ann]).await, app.team(&s.admin, "tier 2", &[&ben]).await);
    let policy = json!({
        "name": "tiers", "requireReviewAbove": "100.00", "approvalTtlSeconds": 60,
        "escalationChain": [first, second], "onTimeout": on_timeout
    });
    app.policy(&s.admin, &s.from, policy).await;
    Tiers { s, ann, ben, first, second }
}

per_backend!(escalation_walks_the_chain_then_the_sweep_expires);
async fn escalation_walks_the_chain_then_the_sweep_expires(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let Tiers { s, ann, first, second, .. } = tiers(&app, "escalate").await;
    let (payment, approval) = app.held_payment(&s, "500.00").await;
    let get = || async { app.get(&format!("/v1/approvals/{approval}"), &s.reviewer).await.1 };
    assert_eq!(get().await["assignedTeam"], first.as_str(), "{backend:?}: the chain's first tier");

    app.clock.advance(chrono::Duration::seconds(61));
    app.service.sweep(None, 100).await.expect("sweep");
    let escalated = get().await;
    assert_eq!(
        (escalated["status"].as_str(), escalated["assignedTeam"].as_str()),
        (Some("ESCALATED"), Some(second.as_str())),
        "{backend:?}: {escalated}"
    );
    // The second tier decides now; the first no longer can.
    let anns = app.key_for(&s.admin, Some(&ann), &["approvals:write"]).await;
    let (status, body) = app.post(&format!("/v1/approvals/{approval}/approve"), &anns, json!({})).await;
    assert_eq!((status, code(&body)), (403, Some("NOT_ASSIGNED")), "{body}");

    app.clock.advance(chrono::Duration::seconds(61));
    app.service.sweep(None, 100).await.expect("sweep");
    assert_eq!(get().await["status"], "EXPIRED", "{backend:?}: the chain has ended");
    assert_eq!(app.get(&format!("/v1/payments/{payment}"), &s.agent).await.1["status"], "EXPIRED");
    let (_, log) = app.get("/v1/audit-logs?action=approval.escalated", &s.admin).await;
    assert_eq!(log["data"][0]["actor"], "system", "{log}");
}

per_backend!(a_member_escalates_by_hand_and_timeouts_can_reject);
async fn a_member_escalates_by_hand_and_timeouts_can_reject(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let Tiers { s, ann, ben, second, .. } = tiers(&app, "reject").await;
    let (_, approval) = app.held_payment(&s, "500.00").await;
    let perms = ["approvals:read", "approvals:write"];
    let (anns, bens) =
        (app.key_for(&s.admin, Some(&ann), &perms).await, app.key_for(&s.admin, Some(&ben), &perms).await);
    let path = format!("/v1/approvals/{approval}/escalate");
    let (status, body) = app.post(&path, &bens, json!({})).await;
    assert_eq!((status, code(&body)), (403, Some("NOT_ASSIGNED")), "{backend:?}: only the assigned team escalates");
    let (status, body) = app.post(&path, &anns, json!({"note": "over my limit"})).await;
    assert_eq!((status, body["assignedTeam"].as_str()), (200, Some(second.as_str())), "{backend:?}: {body}");
    let (status, body) = app.post(&path, &bens, json!({})).await;
    assert_eq!((status, code(&body)), (409, Some("NO_ESCALATION_TARGET")), "{body}");
    let (_, mine) = app.get("/v1/approvals?assignedToMe=true&status=ESCALATED", &bens).await;
    assert_eq!(mine["data"].as_array().map(Vec::len), Some(1), "{mine}");

    // Nobody decides: onTimeout reject.
    app.clock.advance(chrono::Duration::seconds(61));
    app.service.sweep(None, 100).await.expect("sweep");
    let (_, got) = app.get(&format!("/v1/approvals/{approval}"), &s.reviewer).await;
    assert_eq!(got["status"], "REJECTED", "{backend:?}: {got}");
    assert_eq!(app.balance(&s.admin, &s.from).await, "10000.00");
}

per_backend!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    fifty_approvers_and_escalators_have_one_winner
);
async fn fifty_approvers_and_escalators_have_one_winner(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let mut members = Vec::new();
    for i in 0..50 {
        members.push(app.member(&s.admin, &format!("m{i}")).await);
    }
    let refs: Vec<&str> = members.iter().map(String::as_str).collect();
    let first = app.team(&s.admin, "tier 1", &refs).await;
    let second = app.team(&s.admin, "tier 2", &[]).await;
    let policy = json!({"name": "tiers", "requireReviewAbove": "100.00", "escalationChain": [first, second]});
    app.policy(&s.admin, &s.from, policy).await;
    let (payment, approval) = app.held_payment(&s, "500.00").await;
    let mut keys = Vec::new();
    for m in &members {
        keys.push(app.key_for(&s.admin, Some(m), &["approvals:write"]).await);
    }
    let calls = keys.iter().enumerate().map(|(i, key)| {
        let action = if i % 2 == 0 { "approve" } else { "escalate" };
        let path = format!("/v1/approvals/{approval}/{action}");
        let app = &app;
        async move { (action, app.post(&path, key, json!({})).await) }
    });
    let results = futures::future::join_all(calls).await;
    let winners: Vec<_> = results.iter().filter(|(_, (status, _))| *status == 200).collect();
    assert_eq!(winners.len(), 1, "{backend:?}: {results:?}");
    for (_, (status, body)) in &results {
        let loser = matches!(code(body), Some("APPROVAL_NOT_PENDING" | "NOT_ASSIGNED"));
        assert!(*status == 200 || ((*status == 409 || *status == 403) && loser), "{backend:?}: {status} {body}");
    }
    let (_, txns) = app.get(&format!("/v1/wallets/{}/transactions", s.from), &s.admin).await;
    let debits = txns["data"].as_array().unwrap().iter().filter(|t| t["kind"] == "DEBIT").count();
    let (_, pay) = app.get(&format!("/v1/payments/{payment}"), &s.agent).await;
    match winners[0].0 {
        "approve" => assert_eq!((pay["status"].as_str(), debits), (Some("COMPLETED"), 1), "{backend:?}"),
        _ => assert_eq!((pay["status"].as_str(), debits), (Some("PENDING_APPROVAL"), 0), "{backend:?}"),
    }
}
