//! Separation of duties that holds, on the people side (docs/api.md, "Separation of duties"; issue 21), through the
//! API on both stores: only an admin key binds a key to a member or vouches for a new person;
//! a key minted by any other key is its minter's person; only an admin key changes team
//! membership; a key bound to wallets touches no members, teams, routing rules or settings; and
//! an approval no rule or chain assigns goes to the organisation's default team.

use countersign_tests::{per_backend, Backend, TestApp};
use serde_json::{json, Value};

fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

/// How many entries the audit log holds for `action`.
async fn audited(app: &TestApp, admin: &str, action: &str) -> usize {
    let (status, log) = app.get(&format!("/v1/audit-logs?action={action}&limit=100"), admin).await;
    assert_eq!(status, 200, "{log}");
    log["data"].as_array().map_or(0, Vec::len)
}

async fn key_count(app: &TestApp, admin: &str) -> usize {
    let (status, keys) = app.get("/v1/api-keys?limit=100", admin).await;
    assert_eq!(status, 200, "{keys}");
    keys["data"].as_array().map_or(0, Vec::len)
}

async fn approval_status(app: &TestApp, reader: &str, approval: &str) -> String {
    let (_, got) = app.get(&format!("/v1/approvals/{approval}"), reader).await;
    got["status"].as_str().expect("status").to_string()
}

per_backend!(only_an_admin_key_binds_a_key_to_another_member);
async fn only_an_admin_key_binds_a_key_to_another_member(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let (sam, olga) = (app.member(&s.admin, "sam").await, app.member(&s.admin, "olga").await);
    let sams = app.key_for(&s.admin, Some(&sam), &["payments:write", "approvals:write", "api_keys:write"]).await;
    let (status, held) =
        app.post("/v1/payments", &sams, json!({"from": s.from, "to": s.to, "amount": "2000.00"})).await;
    assert_eq!(status, 202, "{held}");
    let approval = held["approvalId"].as_str().expect("approval").to_string();
    // An unbound non-admin key (an agent's) may not either.
    let agents = app.key_for(&s.admin, None, &["payments:write", "api_keys:write", "approvals:write"]).await;
    let (keys, created) = (key_count(&app, &s.admin).await, audited(&app, &s.admin, "api_key.created").await);

    for minter in [&sams, &agents] {
        let (status, body) = app.mint(minter, Some(&olga), &["approvals:write"]).await;
        assert_eq!((status, code(&body)), (403, Some("PERMISSION_DENIED")), "{backend:?}: {body}");
        assert_eq!(body["error"]["details"]["required"], "admin", "{body}");
    }
    assert_eq!(key_count(&app, &s.admin).await, keys, "{backend:?}: nothing written");
    assert_eq!(audited(&app, &s.admin, "api_key.created").await, created, "{backend:?}: nothing audited");
    assert_eq!(approval_status(&app, &s.reviewer, &approval).await, "PENDING", "{backend:?}");

    // A key naming its own member is fine: it is that member's anyway, and cannot approve.
    let (status, own) = app.mint(&sams, Some(&sam), &["approvals:write"]).await;
    assert_eq!((status, own["memberId"].as_str()), (201, Some(sam.as_str())), "{backend:?}: {own}");
    let own = own["secret"].as_str().expect("secret");
    let path = format!("/v1/approvals/{approval}/approve");
    let (status, body) = app.post(&path, own, json!({})).await;
    assert_eq!((status, code(&body)), (403, Some("SELF_APPROVAL_FORBIDDEN")), "{backend:?}: {body}");

    // No key rebinds its person afterwards: PATCH knows no memberId.
    let (_, listed) = app.get("/v1/api-keys?limit=100", &s.admin).await;
    let sams_id = sams["csk_".len()..].rsplit_once('_').expect("secret shape").0.to_string();
    assert!(listed["data"].as_array().expect("keys").iter().any(|k| k["id"] == sams_id.as_str()), "{listed}");
    let (status, body) =
        app.call("PATCH", &format!("/v1/api-keys/{sams_id}"), Some(&s.admin), Some(json!({"memberId": olga}))).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (400, Some("memberId")), "{body}");
    let (status, body) = app.post(&path, &sams, json!({})).await;
    assert_eq!((status, code(&body)), (403, Some("SELF_APPROVAL_FORBIDDEN")), "{backend:?}: {body}");

    // An admin key vouches for olga: hers approves.
    let olgas = app.key_for(&s.admin, Some(&olga), &["approvals:write"]).await;
    let (status, body) = app.post(&path, &olgas, json!({})).await;
    assert_eq!((status, body["payment"]["status"].as_str()), (200, Some("COMPLETED")), "{backend:?}: {body}");
}

per_backend!(a_key_minted_by_an_unbound_key_is_its_minters_person);
async fn a_key_minted_by_an_unbound_key_is_its_minters_person(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    // An agent's key, bound to no member, that may mint keys.
    let agent = app.key_for(&s.admin, None, &["payments:write", "api_keys:write", "approvals:write"]).await;
    let (status, held) =
        app.post("/v1/payments", &agent, json!({"from": s.from, "to": s.to, "amount": "2000.00"})).await;
    assert_eq!(status, 202, "{held}");
    let path = format!("/v1/approvals/{}/approve", held["approvalId"].as_str().expect("approval"));
    let minted = app.key_for(&agent, None, &["approvals:write", "api_keys:write"]).await;
    let grandchild = app.key_for(&minted, None, &["approvals:write"]).await;
    for key in [&agent, &minted, &grandchild] {
        let (status, body) = app.post(&path, key, json!({})).await;
        assert_eq!((status, code(&body)), (403, Some("SELF_APPROVAL_FORBIDDEN")), "{backend:?}: {body}");
    }
    assert_eq!(app.post(&path, &s.reviewer, json!({})).await.0, 200, "{backend:?}: another person approves");
}

per_backend!(keys_minted_by_a_reviewers_key_count_once_for_a_quorum);
async fn keys_minted_by_a_reviewers_key_count_once_for_a_quorum(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    app.policy(
        &s.admin,
        &s.from,
        json!({"name": "two people", "requireReviewAbove": "100.00", "requiredApprovals": 2}),
    )
    .await;
    let (_, approval) = app.held_payment(&s, "500.00").await;
    let path = format!("/v1/approvals/{approval}/approve");
    // A reviewer's key with no member, minted by the admin: a person of its own.
    let reviewer = app.key_for(&s.admin, None, &["approvals:write", "api_keys:write"]).await;
    let (status, body) = app.post(&path, &reviewer, json!({})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("PENDING")), "{backend:?}: {body}");
    for _ in 0..3 {
        let more = app.key_for(&reviewer, None, &["approvals:write"]).await;
        let (status, body) = app.post(&path, &more, json!({})).await;
        assert_eq!((status, code(&body)), (409, Some("ALREADY_VOTED")), "{backend:?}: {body}");
    }
    assert_eq!(approval_status(&app, &s.reviewer, &approval).await, "PENDING", "{backend:?}");
    let (status, body) = app.post(&path, &s.reviewer, json!({})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("APPROVED")), "{backend:?}: {body}");
}

per_backend!(only_an_admin_key_changes_team_membership);
async fn only_an_admin_key_changes_team_membership(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let (rita, mallory) = (app.member(&s.admin, "rita").await, app.member(&s.admin, "mallory").await);
    let finance = app.team(&s.admin, "finance", &[&rita]).await;
    let organiser = app.key(&s.admin, &["members:write", "policies:write"]).await;
    let (teams, changed) =
        (audited(&app, &s.admin, "team.created").await, audited(&app, &s.admin, "team.updated").await);

    let (status, body) = app.post("/v1/teams", &organiser, json!({"name": "mine", "members": [mallory]})).await;
    assert_eq!((status, code(&body)), (403, Some("PERMISSION_DENIED")), "{backend:?}: {body}");
    let patch = format!("/v1/teams/{finance}");
    for members in [json!([rita, mallory]), json!([mallory]), json!([])] {
        let (status, body) = app.call("PATCH", &patch, Some(&organiser), Some(json!({"members": members}))).await;
        assert_eq!((status, code(&body)), (403, Some("PERMISSION_DENIED")), "{backend:?}: {body}");
    }
    let (_, listed) = app.get("/v1/teams", &s.admin).await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1), "{backend:?}: no team made: {listed}");
    assert_eq!(listed["data"][0]["members"], json!([rita]), "{backend:?}: membership unchanged");
    assert_eq!(audited(&app, &s.admin, "team.created").await, teams);
    assert_eq!(audited(&app, &s.admin, "team.updated").await, changed);

    // What does not change who decides is still the organiser's: an empty team, a new name.
    let (status, body) = app.post("/v1/teams", &organiser, json!({"name": "empty"})).await;
    assert_eq!((status, body["members"].clone()), (201, json!([])), "{backend:?}: {body}");
    let (status, body) = app.call("PATCH", &patch, Some(&organiser), Some(json!({"name": "finance desk"}))).await;
    assert_eq!((status, body["members"].clone()), (200, json!([rita])), "{backend:?}: {body}");
    // The admin changes membership.
    let (status, body) = app.call("PATCH", &patch, Some(&s.admin), Some(json!({"members": [rita, mallory]}))).await;
    assert_eq!((status, body["members"].clone()), (200, json!([rita, mallory])), "{backend:?}: {body}");
}

per_backend!(wallet_bound_keys_touch_no_members_teams_routing_or_settings);
async fn wallet_bound_keys_touch_no_members_teams_routing_or_settings(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("100000.00").await;
    let rita = app.member(&s.admin, "rita").await;
    let finance = app.team(&s.admin, "finance", &[&rita]).await;
    let rule = json!({"name": "all to finance", "priority": 1, "conditions": {}, "assignToTeam": finance});
    let (status, rule) = app.post("/v1/routing-rules", &s.admin, rule).await;
    assert_eq!(status, 201, "{rule}");
    let rule_id = rule["id"].as_str().expect("id").to_string();
    let bound = |perms: &[&str]| {
        let body = json!({"name": "bound", "permissions": perms, "walletIds": [s.from]});
        let app = &app;
        let admin = s.admin.clone();
        async move {
            let (status, body) = app.post("/v1/api-keys", &admin, body).await;
            assert_eq!(status, 201, "{body}");
            body["secret"].as_str().expect("secret").to_string()
        }
    };
    let scoped = bound(&["members:write", "policies:write", "approvals:read", "approvals:write"]).await;
    let bound_admin = bound(&["admin"]).await;
    let audit_before = app.get("/v1/audit-logs?limit=100", &s.admin).await.1["data"].as_array().map_or(0, Vec::len);

    // The attack of issue 21: a rule at priority 1,000,000 matching everything, to a team of
    // the key's choosing; and the team itself.
    let takeover = json!({"name": "mine", "priority": 1_000_000, "conditions": {}, "assignToTeam": finance});
    let takeover_hc = json!({"name": "mine", "priority": 1_000_000, "conditions": {}, "assign_to_team_id": finance, "is_active": true});
    let member_body = json!({"name": "m", "email": "m@example.com"});
    let calls: Vec<(&str, String, Option<Value>)> = vec![
        ("POST", "/v1/members".into(), Some(member_body)),
        ("GET", "/v1/members".into(), None),
        ("POST", "/v1/teams".into(), Some(json!({"name": "mine"}))),
        ("POST", "/v1/teams".into(), Some(json!({"name": "mine", "members": [rita]}))),
        ("GET", "/v1/teams".into(), None),
        ("PATCH", format!("/v1/teams/{finance}"), Some(json!({"members": []}))),
        ("PATCH", format!("/v1/teams/{finance}"), Some(json!({"name": "renamed"}))),
        ("POST", "/v1/routing-rules".into(), Some(takeover.clone())),
        ("POST", "/routing-rules".into(), Some(takeover_hc)),
        ("GET", "/v1/routing-rules".into(), None),
        ("GET", "/routing-rules".into(), None),
        ("PATCH", format!("/v1/routing-rules/{rule_id}"), Some(json!({"priority": 1_000_000}))),
        ("PATCH", format!("/routing-rules/{rule_id}"), Some(json!({"is_active": false}))),
        ("DELETE", format!("/v1/routing-rules/{rule_id}"), None),
        ("DELETE", format!("/routing-rules/{rule_id}"), None),
        ("GET", "/v1/settings".into(), None),
        ("PATCH", "/v1/settings".into(), Some(json!({"defaultTeam": finance}))),
    ];
    for key in [&scoped, &bound_admin] {
        for (method, path, body) in &calls {
            let (status, got) = app.call(method, path, Some(key), body.clone()).await;
            assert_eq!(
                (status, code(&got)),
                (403, Some("WALLET_NOT_ALLOWED")),
                "{backend:?}: {method} {path} by a wallet-bound key: {got}"
            );
        }
    }
    // Refused before the body is read: a malformed body tells a bound key nothing either.
    let (status, got) = app.post("/v1/routing-rules", &scoped, json!({"priority": "high"})).await;
    assert_eq!((status, code(&got)), (403, Some("WALLET_NOT_ALLOWED")), "{backend:?}: {got}");

    // Nothing written.
    let audit_after = app.get("/v1/audit-logs?limit=100", &s.admin).await.1["data"].as_array().map_or(0, Vec::len);
    assert_eq!(audit_after, audit_before, "{backend:?}: nothing audited");
    let (_, rules) = app.get("/v1/routing-rules", &s.admin).await;
    assert_eq!(rules["data"].as_array().map(Vec::len), Some(1), "{backend:?}: {rules}");
    assert_eq!((rules["data"][0]["priority"].as_i64(), rules["data"][0]["isActive"].as_bool()), (Some(1), Some(true)));
    let (_, teams) = app.get("/v1/teams", &s.admin).await;
    assert_eq!(teams["data"].as_array().map(Vec::len), Some(1), "{backend:?}: {teams}");
    assert_eq!(
        (teams["data"][0]["name"].as_str(), teams["data"][0]["members"].clone()),
        (Some("finance"), json!([rita]))
    );
    // The bound key still does its own job: it reads and decides its wallet's approvals.
    let (_, approval) = app.held_payment(&s, "5000.00").await;
    assert_eq!(app.get(&format!("/v1/approvals/{approval}"), &scoped).await.0, 200);
}

per_backend!(settings_are_read_by_reviewers_and_changed_by_an_admin);
async fn settings_are_read_by_reviewers_and_changed_by_an_admin(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let finance = app.team(&s.admin, "finance", &[]).await;
    let elsewhere = app.org("elsewhere").await;
    let theirs = app.team(&elsewhere, "theirs", &[]).await;

    let (status, got) = app.get("/v1/settings", &s.reviewer).await;
    assert_eq!((status, got["defaultTeam"].clone()), (200, Value::Null), "{backend:?}: {got}");
    let (status, got) = app.get("/v1/settings", &s.agent).await;
    assert_eq!((status, code(&got)), (403, Some("PERMISSION_DENIED")), "{backend:?}: {got}");

    let manager = app.key(&s.admin, &["members:write", "policies:write", "approvals:read", "api_keys:write"]).await;
    let refusals: Vec<(&str, Value, u16, &str, Option<&str>)> = vec![
        (s.reviewer.as_str(), json!({"defaultTeam": finance}), 403, "PERMISSION_DENIED", None),
        (manager.as_str(), json!({"defaultTeam": finance}), 403, "PERMISSION_DENIED", None),
        (s.admin.as_str(), json!({"defaultTeam": "team_01J00000000000000000000000"}), 404, "TEAM_NOT_FOUND", None),
        (s.admin.as_str(), json!({"defaultTeam": theirs}), 404, "TEAM_NOT_FOUND", None),
        (s.admin.as_str(), json!({"defaultTeam": "finance"}), 400, "VALIDATION_ERROR", Some("defaultTeam")),
        (s.admin.as_str(), json!({"defaultTeam": 5}), 400, "VALIDATION_ERROR", Some("defaultTeam")),
        (s.admin.as_str(), json!({"defaultTeam": [finance]}), 400, "VALIDATION_ERROR", Some("defaultTeam")),
        (
            s.admin.as_str(),
            json!({"defaultTeam": finance, "escalate": true}),
            400,
            "VALIDATION_ERROR",
            Some("escalate"),
        ),
    ];
    for (key, body, status, want, field) in refusals {
        let (got_status, got) = app.call("PATCH", "/v1/settings", Some(key), Some(body.clone())).await;
        assert_eq!((got_status, code(&got)), (status, Some(want)), "{backend:?}: {body}: {got}");
        if let Some(field) = field {
            assert_eq!(got["error"]["details"]["field"], field, "{body}: {got}");
        }
    }
    assert_eq!(app.get("/v1/settings", &s.reviewer).await.1["defaultTeam"], Value::Null, "{backend:?}: unchanged");
    assert_eq!(audited(&app, &s.admin, "settings.updated").await, 0, "{backend:?}: nothing written");

    let (status, got) = app.call("PATCH", "/v1/settings", Some(&s.admin), Some(json!({"defaultTeam": finance}))).await;
    assert_eq!((status, got["defaultTeam"].as_str()), (200, Some(finance.as_str())), "{backend:?}: {got}");
    assert_eq!(app.get("/v1/settings", &s.reviewer).await.1["defaultTeam"], finance.as_str());
    // Absent: unchanged. Null: cleared.
    let (status, got) = app.call("PATCH", "/v1/settings", Some(&s.admin), Some(json!({}))).await;
    assert_eq!((status, got["defaultTeam"].as_str()), (200, Some(finance.as_str())), "{backend:?}: {got}");
    let (status, got) = app.call("PATCH", "/v1/settings", Some(&s.admin), Some(json!({"defaultTeam": null}))).await;
    assert_eq!((status, got["defaultTeam"].clone()), (200, Value::Null), "{backend:?}: {got}");
    let (_, log) = app.get("/v1/audit-logs?action=settings.updated", &s.admin).await;
    assert_eq!(log["data"].as_array().map(Vec::len), Some(3), "{backend:?}: {log}");
    let details: Vec<Value> =
        log["data"].as_array().expect("log").iter().map(|e| e["details"]["defaultTeam"].clone()).collect();
    assert!(details.contains(&json!(finance)) && details.contains(&Value::Null), "{log}");
    // Another organisation's settings are its own.
    assert_eq!(app.get("/v1/settings", &elsewhere).await.1["defaultTeam"], Value::Null);
}

per_backend!(an_approval_no_rule_or_chain_assigns_goes_to_the_default_team);
async fn an_approval_no_rule_or_chain_assigns_goes_to_the_default_team(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("100000.00").await;
    let rita = app.member(&s.admin, "rita").await;
    let finance = app.team(&s.admin, "finance", &[&rita]).await;
    let perms = ["approvals:read", "approvals:write"];
    let ritas = app.key_for(&s.admin, Some(&rita), &perms).await;

    // No default team: anyone with approvals:write decides (documented), as before.
    let (_, open) = app.held_payment(&s, "2000.00").await;
    let (_, got) = app.get(&format!("/v1/approvals/{open}"), &s.reviewer).await;
    assert_eq!(got["assignedTeam"], Value::Null, "{backend:?}: {got}");
    let (_, earlier) = app.held_payment(&s, "2000.00").await;
    assert_eq!(app.post(&format!("/v1/approvals/{open}/approve"), &s.reviewer, json!({})).await.0, 200);

    let (status, got) = app.call("PATCH", "/v1/settings", Some(&s.admin), Some(json!({"defaultTeam": finance}))).await;
    assert_eq!(status, 200, "{got}");
    let (_, approval) = app.held_payment(&s, "3000.00").await;
    let (_, got) = app.get(&format!("/v1/approvals/{approval}"), &s.reviewer).await;
    assert_eq!(got["assignedTeam"], finance.as_str(), "{backend:?}: {got}");
    // A non-member with approvals:write is refused, on the approval held before too.
    for id in [&approval, &earlier] {
        for action in ["approve", "reject"] {
            let (status, body) = app.post(&format!("/v1/approvals/{id}/{action}"), &s.reviewer, json!({})).await;
            assert_eq!((status, code(&body)), (403, Some("NOT_ASSIGNED")), "{backend:?}: {id} {action}: {body}");
        }
        assert_eq!(approval_status(&app, &s.reviewer, id).await, "PENDING", "{backend:?}");
    }
    let (_, mine) = app.get("/v1/approvals?assignedToMe=true", &ritas).await;
    assert_eq!(mine["data"].as_array().map(Vec::len), Some(1), "{backend:?}: {mine}");
    for id in [&approval, &earlier] {
        let (status, body) = app.post(&format!("/v1/approvals/{id}/approve"), &ritas, json!({})).await;
        assert_eq!((status, body["payment"]["status"].as_str()), (200, Some("COMPLETED")), "{backend:?}: {body}");
    }

    // A routing rule still wins over the default team.
    let mo = app.member(&s.admin, "mo").await;
    let managers = app.team(&s.admin, "managers", &[&mo]).await;
    let rule = json!({"name": "big", "priority": 5, "assignToTeam": managers,
                      "conditions": {"amount": {"operator": ">", "value": 50000}}});
    assert_eq!(app.post("/v1/routing-rules", &s.admin, rule).await.0, 201);
    let (_, routed) = app.held_payment(&s, "60000.00").await;
    assert_eq!(app.get(&format!("/v1/approvals/{routed}"), &s.reviewer).await.1["assignedTeam"], managers.as_str());

    // Reviews and held refunds no rule assigns go to the default team too.
    let asker = app.key(&s.admin, &["reviews:write"]).await;
    let review = json!({"task_type": "email", "proposed_action": "send the newsletter", "urgency": "low"});
    let (status, review) = app.post("/reviews", &asker, review).await;
    assert_eq!((status, review["assigned_team_id"].as_str()), (201, Some(finance.as_str())), "{backend:?}: {review}");
    let (status, body) = app
        .post(
            &format!("/reviews/{}/decide", review["id"].as_str().expect("id")),
            &s.reviewer,
            json!({"decision_type": "approve"}),
        )
        .await;
    assert_eq!((status, code(&body)), (403, Some("NOT_ASSIGNED")), "{backend:?}: {body}");

    app.policy(&s.admin, &s.to, json!({"name": "every refund", "appliesTo": ["refund"], "requireHumanApproval": true}))
        .await;
    let (status, paid) =
        app.post("/v1/payments", &s.agent, json!({"from": s.from, "to": s.to, "amount": "500.00"})).await;
    assert_eq!(status, 201, "{paid}");
    let refunder = app.key(&s.admin, &["refunds:write", "payments:read"]).await;
    let (status, held) = app.post("/v1/refunds", &refunder, json!({"paymentId": paid["id"], "amount": "100.00"})).await;
    assert_eq!(status, 202, "{backend:?}: {held}");
    let refund_approval = held["approvalId"].as_str().expect("approval");
    let (_, got) = app.get(&format!("/v1/approvals/{refund_approval}"), &s.reviewer).await;
    assert_eq!(got["assignedTeam"], finance.as_str(), "{backend:?}: {got}");
}
