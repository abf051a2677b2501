//! Four-eyes on policy changes (docs/api.md, "Four-eyes on policy changes"; issue 27), on both
//! stores: with `policyChangesNeedApproval` on, a policy or routing-rule change answers 202 and
//! waits; another person approves it and it is applied exactly once (two approvers, or an
//! approval and a rejection, racing: one wins); the requester's own approval is refused at
//! every door (REST and the dashboard); turning four-eyes off needs another person too.

use std::sync::Arc;

use countersign_tests::browser::{Browser, Page};
use countersign_tests::{per_backend, Backend, TestApp};
use serde_json::{json, Value};

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

/// An organisation (its admin key, two wallets, the first with one policy) and two people, ann
/// and ben, each with a key that may change policies and read wallets and approvals (the
/// dashboard's sign-in needs `approvals:read`). Four-eyes is turned on by the admin.
struct Org {
    admin: String,
    from: String,
    ann: String,
    ann_member: String,
    ben: String,
}

const PERMS: [&str; 3] = ["policies:write", "wallets:read", "approvals:read"];

async fn org(app: &TestApp) -> Org {
    let s = app.scenario("1000.00").await;
    let (ann_member, ben_member) = (app.member(&s.admin, "ann").await, app.member(&s.admin, "ben").await);
    let ann = app.key_for(&s.admin, Some(&ann_member), &PERMS).await;
    let ben = app.key_for(&s.admin, Some(&ben_member), &PERMS).await;
    four_eyes(app, &s.admin, true).await;
    Org { admin: s.admin, from: s.from, ann, ann_member, ben }
}

async fn four_eyes(app: &TestApp, admin: &str, on: bool) -> (u16, Value) {
    app.call("PATCH", "/v1/settings", Some(admin), Some(json!({"policyChangesNeedApproval": on}))).await
}

async fn policies(app: &TestApp, key: &str, wallet: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("/v1/wallets/{wallet}/policies"), key).await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().expect("data").clone()
}

async fn changes(app: &TestApp, key: &str, status: &str) -> Vec<Value> {
    let (code, body) = app.get(&format!("/v1/policy-changes?status={status}"), key).await;
    assert_eq!(code, 200, "{body}");
    body["data"].as_array().expect("data").clone()
}

fn id(body: &Value) -> String {
    body["changeId"].as_str().unwrap_or_else(|| panic!("changeId in {body}")).to_string()
}

per_backend!(a_policy_change_waits_for_another_person_and_is_applied_once);
/// On → 202 with the change (kind, target, requester, diff) → listed pending → the requester
/// (either of their keys) may not approve → another person approves: the policy exists with the
/// fields asked for, the change is applied with the policy's id. Update and delete the same way;
/// a rejected change applies nothing; audit rows and events for each step.
async fn a_policy_change_waits_for_another_person_and_is_applied_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let o = org(&app).await;
    let (status, settings) = app.get("/v1/settings", &o.admin).await;
    assert_eq!((status, &settings["policyChangesNeedApproval"]), (200, &json!(true)), "{settings}");
    let before = policies(&app, &o.admin, &o.from).await;

    // Create: 202, nothing applied.
    let path = format!("/v1/wallets/{}/policies", o.from);
    let body = json!({"name": "cap", "maxTransactionAmount": "250.00", "requireHumanApproval": true});
    let (status, pending) = app.post(&path, &o.ann, body).await;
    assert_eq!(status, 202, "{backend:?}: {pending}");
    let change = id(&pending);
    assert!(change.starts_with("chg_"), "{pending}");
    assert_eq!((pending["status"].as_str(), pending["kind"].as_str()), (Some("pending"), Some("policy.create")));
    assert_eq!(pending["target"]["walletId"], json!(o.from));
    assert_eq!(pending["requestedBy"]["person"], json!(o.ann_member));
    assert!(pending["requestedAt"].is_string(), "{pending}");
    let diff = pending["diff"].as_array().expect("diff");
    let limit = diff.iter().find(|d| d["field"] == "maxTransactionAmount").expect("the limit in the diff");
    assert_eq!((&limit["before"], &limit["after"]), (&Value::Null, &json!("250.00")), "{pending}");
    assert_eq!(policies(&app, &o.admin, &o.from).await, before, "{backend:?}: nothing applied yet");
    let listed = changes(&app, &o.ben, "pending").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], json!(change));
    let (status, got) = app.get(&format!("/v1/policy-changes/{change}"), &o.ben).await;
    assert_eq!((status, got["diff"].clone()), (200, pending["diff"].clone()), "{got}");

    // The requester may not approve, from any key of theirs.
    let approve = format!("/v1/policy-changes/{change}/approve");
    let (status, body) = app.post(&approve, &o.ann, json!({})).await;
    assert_eq!((status, code(&body)), (403, Some("SELF_APPROVAL_FORBIDDEN")), "{backend:?}: {body}");
    let anns_other_key = app.key_for(&o.admin, Some(&o.ann_member), &PERMS).await;
    let (status, body) = app.post(&approve, &anns_other_key, json!({})).await;
    assert_eq!((status, code(&body)), (403, Some("SELF_APPROVAL_FORBIDDEN")), "{backend:?}: {body}");

    // Ben approves: applied, once.
    let (status, applied) = app.post(&approve, &o.ben, json!({})).await;
    assert_eq!((status, applied["status"].as_str()), (200, Some("applied")), "{backend:?}: {applied}");
    let policy = applied["result"].as_str().expect("result").to_string();
    assert!(policy.starts_with("pol_"), "{applied}");
    assert_eq!(applied["target"]["policyId"], json!(policy));
    assert!(applied["decidedBy"]["keyId"].is_string() && applied["decidedAt"].is_string(), "{applied}");
    let (status, made) = app.get(&format!("/v1/wallets/{}/policies/{policy}", o.from), &o.admin).await;
    assert_eq!(status, 200, "{made}");
    assert_eq!((made["name"].as_str(), made["maxTransactionAmount"].as_str()), (Some("cap"), Some("250.00")));
    assert_eq!(made["requireHumanApproval"], json!(true));
    assert_eq!(policies(&app, &o.admin, &o.from).await.len(), before.len() + 1);
    for decision in ["approve", "reject"] {
        let (status, body) = app.post(&format!("/v1/policy-changes/{change}/{decision}"), &o.admin, json!({})).await;
        assert_eq!((status, code(&body)), (409, Some("POLICY_CHANGE_NOT_PENDING")), "{backend:?}: {body}");
        assert_eq!(body["error"]["details"]["status"], "applied");
    }
    assert_eq!(policies(&app, &o.admin, &o.from).await.len(), before.len() + 1, "{backend:?}: applied once");
    assert!(changes(&app, &o.ben, "pending").await.is_empty());
    assert_eq!(changes(&app, &o.ben, "applied").await.len(), 1);

    // Update: the diff is against the policy as it is.
    let one = format!("/v1/wallets/{}/policies/{policy}", o.from);
    let (status, pending) =
        app.call("PATCH", &one, Some(&o.ann), Some(json!({"maxTransactionAmount": "300.00"}))).await;
    assert_eq!((status, pending["kind"].as_str()), (202, Some("policy.update")), "{pending}");
    assert_eq!(pending["target"]["policyId"], json!(policy));
    let diff: Vec<&Value> = pending["diff"].as_array().expect("diff").iter().collect();
    assert_eq!(diff.len(), 1, "only the limit moves: {pending}");
    assert_eq!((&diff[0]["before"], &diff[0]["after"]), (&json!("250.00"), &json!("300.00")));
    assert_eq!(app.get(&one, &o.admin).await.1["maxTransactionAmount"], "250.00", "not yet");
    let (status, body) = app.post(&format!("/v1/policy-changes/{}/approve", id(&pending)), &o.ben, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.get(&one, &o.admin).await.1["maxTransactionAmount"], "300.00");

    // Delete, rejected: nothing applied, the reason kept.
    let (status, pending) = app.call("DELETE", &one, Some(&o.ann), None).await;
    assert_eq!((status, pending["kind"].as_str()), (202, Some("policy.delete")), "{pending}");
    let reject = format!("/v1/policy-changes/{}/reject", id(&pending));
    let (status, rejected) = app.post(&reject, &o.ben, json!({"reason": "we still need it"})).await;
    assert_eq!((status, rejected["status"].as_str()), (200, Some("rejected")), "{rejected}");
    assert_eq!(rejected["reason"], "we still need it");
    assert_eq!(app.get(&one, &o.admin).await.0, 200, "{backend:?}: still there");

    // Audit rows and events.
    for action in ["policy_change.requested", "policy_change.approved", "policy_change.rejected"] {
        let (_, log) = app.get(&format!("/v1/audit-logs?action={action}"), &o.admin).await;
        assert!(!log["data"].as_array().expect("data").is_empty(), "{backend:?}: {action}: {log}");
    }
    let events = outbox(&app).await;
    let count = |kind: &str| events.iter().filter(|e| e["type"] == kind).count();
    assert_eq!(count("policy.change_requested"), 3, "{backend:?}");
    // Every applied change says so: the two approved here (with their change), and those
    // applied at once (the scenario's policy, turning four-eyes on: `changeId` null).
    let approved: Vec<&Value> =
        events.iter().filter(|e| e["type"] == "policy.changed" && !e["data"]["changeId"].is_null()).collect();
    assert_eq!(approved.len(), 2, "{backend:?}: the two approved");
    let created = approved.iter().find(|e| e["data"]["changeId"] == json!(change)).expect("the creation's event");
    assert_eq!(created["data"]["result"], json!(policy));
    assert_eq!(count("policy.changed"), 4, "{backend:?}: and the two applied at once");
}

per_backend!(refused_changes_write_nothing_and_a_change_that_no_longer_applies_stays_pending);
/// With four-eyes on, bad input is refused as it is without it (same status and code), unknown
/// wallets and policies are 404, and nothing is recorded. A change approved after its policy
/// went away answers what the direct call would (404) and stays pending; the requester may
/// withdraw it.
async fn refused_changes_write_nothing_and_a_change_that_no_longer_applies_stays_pending(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let o = org(&app).await;
    let path = format!("/v1/wallets/{}/policies", o.from);
    let unknown_wallet = "/v1/wallets/wal_01JEA54N6AVHB24CP7DGZ4B1H6/policies";
    let unknown_policy = format!("{path}/pol_01JEA5V8PNG0R6BQHGCGHAPZZ8");
    let count = app.store.item_count().await;
    for (method, at, body, want) in [
        ("POST", path.as_str(), json!({"maxTransactionAmount": "5.00"}), (400, "VALIDATION_ERROR")),
        ("POST", path.as_str(), json!({"name": "x", "maxTransactionAmount": 5}), (400, "INVALID_AMOUNT")),
        ("POST", path.as_str(), json!({"name": "x", "maxTransactionAmount": "5.001"}), (400, "INVALID_AMOUNT")),
        (
            "POST",
            path.as_str(),
            json!({"name": "x", "escalationChain": ["team_01JEA54N6AVHB24CP7DGZ4B1H6"]}),
            (404, "TEAM_NOT_FOUND"),
        ),
        ("POST", unknown_wallet, json!({"name": "x"}), (404, "WALLET_NOT_FOUND")),
        ("PATCH", unknown_policy.as_str(), json!({"name": "x"}), (404, "POLICY_NOT_FOUND")),
        ("DELETE", unknown_policy.as_str(), Value::Null, (404, "POLICY_NOT_FOUND")),
        (
            "POST",
            "/v1/routing-rules",
            json!({"name": "r", "assignToTeam": "team_01JEA54N6AVHB24CP7DGZ4B1H6"}),
            (404, "TEAM_NOT_FOUND"),
        ),
        (
            "PATCH",
            "/v1/routing-rules/rule_01JEA54N6AVHB24CP7DGZ4B1H6",
            json!({"name": "x"}),
            (404, "ROUTING_RULE_NOT_FOUND"),
        ),
    ] {
        let body = (!body.is_null()).then_some(body);
        let (status, got) = app.call(method, at, Some(&o.ann), body).await;
        assert_eq!((status, code(&got)), (want.0, Some(want.1)), "{backend:?}: {method} {at}: {got}");
    }
    assert_eq!(app.store.item_count().await, count, "{backend:?}: refused requests wrote nothing");
    assert!(changes(&app, &o.admin, "pending").await.is_empty());

    // A change whose policy is deleted before it is approved.
    let policy = policies(&app, &o.admin, &o.from).await[0]["id"].as_str().expect("id").to_string();
    let one = format!("{path}/{policy}");
    let (status, update) = app.call("PATCH", &one, Some(&o.ann), Some(json!({"name": "renamed"}))).await;
    assert_eq!(status, 202, "{update}");
    let (status, delete) = app.call("DELETE", &one, Some(&o.ann), None).await;
    assert_eq!(status, 202, "{delete}");
    let (status, body) = app.post(&format!("/v1/policy-changes/{}/approve", id(&delete)), &o.ben, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.get(&one, &o.admin).await.0, 404);
    let approve = format!("/v1/policy-changes/{}/approve", id(&update));
    let (status, body) = app.post(&approve, &o.ben, json!({})).await;
    assert_eq!((status, code(&body)), (404, Some("POLICY_NOT_FOUND")), "{backend:?}: as the direct call: {body}");
    let (_, still) = app.get(&format!("/v1/policy-changes/{}", id(&update)), &o.ben).await;
    assert_eq!(still["status"], "pending", "{backend:?}: {still}");
    let (status, withdrawn) = app.post(&format!("/v1/policy-changes/{}/reject", id(&update)), &o.ann, json!({})).await;
    assert_eq!((status, withdrawn["status"].as_str()), (200, Some("rejected")), "{backend:?}: withdrawn: {withdrawn}");
}

per_backend!(racing_decisions_have_exactly_one_winner);
/// Two approvers at once: one 200, one 409, one policy written. An approval and a rejection at
/// once: one wins, and the policy exists exactly when the approval won.
async fn racing_decisions_have_exactly_one_winner(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let o = org(&app).await;
    let cat_member = app.member(&o.admin, "cat").await;
    let cat = app.key_for(&o.admin, Some(&cat_member), &PERMS).await;
    let path = format!("/v1/wallets/{}/policies", o.from);
    let start = policies(&app, &o.admin, &o.from).await.len();
    for round in 0..4 {
        let (status, pending) = app.post(&path, &o.ann, json!({"name": format!("race {round}")})).await;
        assert_eq!(status, 202, "{pending}");
        let approve = format!("/v1/policy-changes/{}/approve", id(&pending));
        let (a, b) = tokio::join!(app.post(&approve, &o.ben, json!({})), app.post(&approve, &cat, json!({})));
        let mut statuses = [a.0, b.0];
        statuses.sort();
        assert_eq!(statuses, [200, 409], "{backend:?} round {round}: {} / {}", a.1, b.1);
        let loser = if a.0 == 409 { &a.1 } else { &b.1 };
        assert_eq!(code(loser), Some("POLICY_CHANGE_NOT_PENDING"), "{loser}");
        let named = policies(&app, &o.admin, &o.from).await;
        assert_eq!(named.len(), start + round + 1, "{backend:?} round {round}: exactly one policy per change");
        assert_eq!(named.iter().filter(|p| p["name"] == format!("race {round}")).count(), 1);
    }
    let mut applied = start + 4;
    for round in 0..4 {
        let (status, pending) = app.post(&path, &o.ann, json!({"name": format!("duel {round}")})).await;
        assert_eq!(status, 202, "{pending}");
        let change = id(&pending);
        let (approve, reject) =
            (format!("/v1/policy-changes/{change}/approve"), format!("/v1/policy-changes/{change}/reject"));
        let (a, b) =
            tokio::join!(app.post(&approve, &o.ben, json!({})), app.post(&reject, &cat, json!({"reason": "no"})),);
        let mut statuses = [a.0, b.0];
        statuses.sort();
        assert_eq!(statuses, [200, 409], "{backend:?} duel {round}: {} / {}", a.1, b.1);
        let (_, now) = app.get(&format!("/v1/policy-changes/{change}"), &o.admin).await;
        let approved = a.0 == 200;
        assert_eq!(now["status"], if approved { "applied" } else { "rejected" }, "{now}");
        applied += usize::from(approved);
        assert_eq!(policies(&app, &o.admin, &o.from).await.len(), applied, "{backend:?} duel {round}");
    }
}

per_backend!(routing_rules_go_through_four_eyes_too);
/// A routing rule's creation, change and deletion each wait for another person.
async fn routing_rules_go_through_four_eyes_too(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let o = org(&app).await;
    let team = app.team(&o.admin, "ops", &[]).await;
    let rules = || async { app.get("/v1/routing-rules", &o.admin).await.1["data"].as_array().expect("data").clone() };
    let approve = |change: String| {
        let ben = o.ben.clone();
        let app = &app;
        async move { app.post(&format!("/v1/policy-changes/{change}/approve"), &ben, json!({})).await }
    };
    let (status, pending) = app
        .post(
            "/v1/routing-rules",
            &o.ann,
            json!({"name": "big", "priority": 5, "conditions": {}, "assignToTeam": team}),
        )
        .await;
    assert_eq!((status, pending["kind"].as_str()), (202, Some("routing_rule.create")), "{backend:?}: {pending}");
    assert!(rules().await.is_empty(), "not yet");
    let (status, applied) = approve(id(&pending)).await;
    assert_eq!(status, 200, "{applied}");
    let rule = applied["result"].as_str().expect("rule id").to_string();
    assert!(rule.starts_with("rule_"), "{applied}");
    let listed = rules().await;
    assert_eq!((listed.len(), &listed[0]["id"], &listed[0]["priority"]), (1, &json!(rule), &json!(5)));

    let one = format!("/v1/routing-rules/{rule}");
    let (status, pending) = app.call("PATCH", &one, Some(&o.ann), Some(json!({"priority": 9}))).await;
    assert_eq!((status, pending["kind"].as_str()), (202, Some("routing_rule.update")), "{pending}");
    assert_eq!(pending["target"]["ruleId"], json!(rule));
    let moved = pending["diff"].as_array().expect("diff").iter().find(|d| d["field"] == "priority").cloned();
    assert_eq!(moved.map(|d| (d["before"].clone(), d["after"].clone())), Some((json!(5), json!(9))));
    let (status, body) = app.post(&format!("/v1/policy-changes/{}/approve", id(&pending)), &o.ann, json!({})).await;
    assert_eq!((status, code(&body)), (403, Some("SELF_APPROVAL_FORBIDDEN")), "{body}");
    assert_eq!(approve(id(&pending)).await.0, 200);
    assert_eq!(rules().await[0]["priority"], 9);

    let (status, pending) = app.call("DELETE", &one, Some(&o.ann), None).await;
    assert_eq!((status, pending["kind"].as_str()), (202, Some("routing_rule.delete")), "{pending}");
    assert_eq!(rules().await.len(), 1, "not yet");
    assert_eq!(approve(id(&pending)).await.0, 200);
    assert!(rules().await.is_empty(), "{backend:?}: deleted on approval");
}

per_backend!(turning_four_eyes_off_needs_another_person);
/// Turning it on applies at once; turning it off while on is a pending change the same admin
/// cannot approve, another admin can. Other settings change at once. Once off, changes apply
/// directly again.
async fn turning_four_eyes_off_needs_another_person(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let o = org(&app).await;
    // An unbound admin key the admin mints answers for the admin: not a second person.
    let alter_ego = app.key(&o.admin, &["admin"]).await;
    let dee = app.member(&o.admin, "dee").await;
    let second_admin = app.key_for(&o.admin, Some(&dee), &["admin"]).await;
    let team = app.team(&o.admin, "ops", &[]).await;
    let (status, body) = app.call("PATCH", "/v1/settings", Some(&o.admin), Some(json!({"defaultTeam": team}))).await;
    assert_eq!((status, &body["defaultTeam"]), (200, &json!(team)), "{backend:?}: not a policy change: {body}");
    let (status, pending) = four_eyes(&app, &o.admin, false).await;
    assert_eq!((status, pending["kind"].as_str()), (202, Some("settings.update")), "{backend:?}: {pending}");
    let flag = pending["diff"].as_array().expect("diff").iter().find(|d| d["field"] == "policyChangesNeedApproval");
    assert_eq!(flag.map(|d| (d["before"].clone(), d["after"].clone())), Some((json!(true), json!(false))));
    assert_eq!(app.get("/v1/settings", &o.admin).await.1["policyChangesNeedApproval"], true, "still on");
    let approve = format!("/v1/policy-changes/{}/approve", id(&pending));
    for own in [&o.admin, &alter_ego] {
        let (status, body) = app.post(&approve, own, json!({})).await;
        assert_eq!((status, code(&body)), (403, Some("SELF_APPROVAL_FORBIDDEN")), "{backend:?}: {body}");
    }
    let (status, body) = app.post(&approve, &o.ben, json!({})).await;
    assert_eq!((status, code(&body)), (403, Some("PERMISSION_DENIED")), "{backend:?}: settings need an admin: {body}");
    let (status, body) = app.post(&approve, &second_admin, json!({})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("applied")), "{body}");
    let (_, settings) = app.get("/v1/settings", &o.admin).await;
    assert_eq!((&settings["policyChangesNeedApproval"], &settings["defaultTeam"]), (&json!(false), &json!(team)));

    // Off: changes apply directly (201), and say so in an event.
    let (status, made) = app.post(&format!("/v1/wallets/{}/policies", o.from), &o.ann, json!({"name": "direct"})).await;
    assert_eq!(status, 201, "{backend:?}: {made}");
    let events = outbox(&app).await;
    let direct = events.iter().find(|e| e["type"] == "policy.changed" && e["data"]["result"] == made["id"]);
    assert!(direct.is_some_and(|e| e["data"]["changeId"].is_null()), "{backend:?}: {events:?}");
    // On again, at once.
    let (status, body) = four_eyes(&app, &o.admin, true).await;
    assert_eq!((status, &body["policyChangesNeedApproval"]), (200, &json!(true)), "{body}");
    let (status, _) = app.post(&format!("/v1/wallets/{}/policies", o.from), &o.ann, json!({"name": "held"})).await;
    assert_eq!(status, 202);
}

per_backend!(keys_a_requester_mints_are_the_requester_and_a_stale_change_is_refused);
/// A key that is a person of its own answers for whoever minted it: it can neither approve its
/// minter's change nor have its own change approved by its minter. And a change is approved as
/// shown: once the policy it was requested against has moved on, approving it is 409 and
/// nothing applies.
async fn keys_a_requester_mints_are_the_requester_and_a_stale_change_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let o = org(&app).await;
    let policy = policies(&app, &o.admin, &o.from).await[0]["id"].as_str().expect("policy").to_string();
    let path = format!("/v1/wallets/{}/policies/{policy}", o.from);

    let (status, rename) = app.call("PATCH", &path, Some(&o.ann), Some(json!({"name": "renamed"}))).await;
    assert_eq!(status, 202, "{backend:?}: {rename}");
    let approve_rename = format!("/v1/policy-changes/{}/approve", id(&rename));
    // The admin's unbound key asks; the admin approving is the same human.
    let admins_unbound = app.key(&o.admin, &PERMS).await;
    let (status, quorum) = app.call("PATCH", &path, Some(&admins_unbound), Some(json!({"requiredApprovals": 3}))).await;
    assert_eq!(status, 202, "{backend:?}: {quorum}");
    let approve_quorum = format!("/v1/policy-changes/{}/approve", id(&quorum));
    let (status, body) = app.post(&approve_quorum, &o.admin, json!({})).await;
    assert_eq!((status, code(&body)), (403, Some("SELF_APPROVAL_FORBIDDEN")), "{backend:?}: {body}");

    // Ben approves the quorum change: the policy moves on, so Ann's rename (its diff shown
    // against the policy before) is stale and applies nothing.
    let (status, body) = app.post(&approve_quorum, &o.ben, json!({})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("applied")), "{backend:?}: {body}");
    let (_, now) = app.get(&path, &o.admin).await;
    let (status, body) = app.post(&approve_rename, &o.ben, json!({})).await;
    assert_eq!((status, code(&body)), (409, Some("POLICY_CHANGE_STALE")), "{backend:?}: {body}");
    assert_eq!(app.get(&path, &o.admin).await.1, now, "{backend:?}: nothing applied");
    let (_, still) = app.get(&format!("/v1/policy-changes/{}", id(&rename)), &o.ben).await;
    assert_eq!(still["status"], "pending", "{backend:?}: {still}");
}

per_backend!(a_change_not_approved_within_seven_days_expires);
/// A pending change may be approved for 7 days (`expiresAt`); after that approving answers 409
/// `POLICY_CHANGE_EXPIRED` and applies nothing, and it can still be withdrawn.
async fn a_change_not_approved_within_seven_days_expires(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let o = org(&app).await;
    let policy = policies(&app, &o.admin, &o.from).await[0]["id"].as_str().expect("policy").to_string();
    let path = format!("/v1/wallets/{}/policies/{policy}", o.from);
    let (status, change) = app.call("PATCH", &path, Some(&o.ann), Some(json!({"name": "late"}))).await;
    assert_eq!(status, 202, "{backend:?}: {change}");
    let requested = change["requestedAt"].as_str().expect("requestedAt");
    let expires = change["expiresAt"].as_str().expect("expiresAt");
    let (requested, expires) = (
        chrono::DateTime::parse_from_rfc3339(requested).expect("time"),
        chrono::DateTime::parse_from_rfc3339(expires).expect("time"),
    );
    assert_eq!(expires - requested, chrono::Duration::days(7), "{backend:?}: {change}");

    let (_, before) = app.get(&path, &o.admin).await;
    app.clock.advance(chrono::Duration::days(7));
    let approve = format!("/v1/policy-changes/{}/approve", id(&change));
    let (status, body) = app.post(&approve, &o.ben, json!({})).await;
    assert_eq!((status, code(&body)), (409, Some("POLICY_CHANGE_EXPIRED")), "{backend:?}: {body}");
    assert_eq!(app.get(&path, &o.admin).await.1, before, "{backend:?}: nothing applied");
    let reject = format!("/v1/policy-changes/{}/reject", id(&change));
    let (status, body) = app.post(&reject, &o.ann, json!({"reason": "too late"})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("rejected")), "{backend:?}: {body}");

    // Within the window it applies as ever.
    let (_, change) = app.call("PATCH", &path, Some(&o.ann), Some(json!({"name": "in time"}))).await;
    app.clock.advance(chrono::Duration::days(7) - chrono::Duration::seconds(1));
    let approve = format!("/v1/policy-changes/{}/approve", id(&change));
    let (status, body) = app.post(&approve, &o.ben, json!({})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("applied")), "{backend:?}: {body}");
}

per_backend!(a_webhook_on_every_event_hears_policy_changes_only_with_wallets_read);
/// `"*"` includes the policy events, which carry the policies and rules they change.
async fn a_webhook_on_every_event_hears_policy_changes_only_with_wallets_read(backend: Backend) {
    let app = TestApp::spawn_tuned(backend, |s| s.allow_private_webhooks = true).await;
    let admin = app.org("acme").await;
    let narrow = app.key(&admin, &["webhooks:write", "approvals:read"]).await;
    let body = json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]});
    let (status, reply) = app.post("/v1/webhooks", &narrow, body.clone()).await;
    assert_eq!((status, code(&reply)), (403, Some("PERMISSION_DENIED")), "{backend:?}: {reply}");
    let wide = app.key(&admin, &["webhooks:write", "approvals:read", "wallets:read"]).await;
    let (status, reply) = app.post("/v1/webhooks", &wide, body).await;
    assert_eq!(status, 201, "{backend:?}: {reply}");
}

per_backend!(the_webhook_event_list_takes_the_policy_events);
/// `policy.change_requested` and `policy.changed` are event types a webhook may subscribe to.
async fn the_webhook_event_list_takes_the_policy_events(backend: Backend) {
    let app = TestApp::spawn_tuned(backend, |s| s.allow_private_webhooks = true).await;
    let admin = app.org("acme").await;
    let body = json!({"url": "http://127.0.0.1:9/hook", "events": ["policy.change_requested", "policy.changed"]});
    let (status, made) = app.post("/v1/webhooks", &admin, body).await;
    assert_eq!(status, 201, "{backend:?}: {made}");
    let hooks_only = app.key(&admin, &["webhooks:write"]).await;
    let (status, body) = app
        .post("/v1/webhooks", &hooks_only, json!({"url": "http://127.0.0.1:9/h", "events": ["policy.changed"]}))
        .await;
    assert_eq!((status, code(&body)), (403, Some("PERMISSION_DENIED")), "{backend:?}: needs wallets:read: {body}");
}

per_backend!(the_dashboard_lists_changes_and_keeps_the_same_rule);
/// The dashboard's page lists the pending change with its diff; the requester sees no Approve
/// button and a forged approval is refused with the API's code; another person approves there.
async fn the_dashboard_lists_changes_and_keeps_the_same_rule(backend: Backend) {
    let app = TestApp::spawn_tuned(backend, |s| {
        let secret = countersign_core::domain::secret::ServerSecret::new("policy-changes-dashboard-secret-0123456789");
        s.session_secret = Some(Arc::new(secret.expect("secret")));
    })
    .await;
    let o = org(&app).await;
    let (status, pending) = app
        .post(
            &format!("/v1/wallets/{}/policies", o.from),
            &o.ann,
            json!({"name": "<b>cap</b>", "dailySpendingLimit": "75.00"}),
        )
        .await;
    assert_eq!(status, 202, "{pending}");
    let change = id(&pending);
    let decide = format!("/dashboard/policy-changes/{change}/decide");

    let mut browser = Browser::new(&app);
    let token = browser.signed_in(&o.ann).await;
    let Page { status, body: page, .. } = browser.get("/dashboard/policy-changes").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&change) && page.contains("dailySpendingLimit") && page.contains("75.00"), "{page}");
    assert!(page.contains("&#60;b&#62;cap") && !page.contains("<b>cap</b>"), "escaped: {page}");
    assert!(page.contains("another person must approve it") && !page.contains("Approve and apply"), "{page}");
    assert!(page.contains("href=\"/dashboard/policy-changes\""), "in the nav: {page}");
    let Page { status, body: page, .. } = browser.post(&decide, &[("csrf", &token), ("action", "approve")]).await;
    assert_eq!(status, 403, "{backend:?}: {page}");
    assert!(page.contains("SELF_APPROVAL_FORBIDDEN"), "{backend:?}: {page}");
    let Page { status, .. } = browser.post(&decide, &[("csrf", "forged"), ("action", "reject")]).await;
    assert_eq!(status, 403, "{backend:?}: a form without its token is refused");
    let (_, still) = app.get(&format!("/v1/policy-changes/{change}"), &o.ben).await;
    assert_eq!(still["status"], "pending", "{backend:?}: {still}");

    let mut browser = Browser::new(&app);
    let token = browser.signed_in(&o.ben).await;
    let Page { body: page, .. } = browser.get("/dashboard/policy-changes").await;
    assert!(page.contains("Approve and apply"), "{page}");
    let Page { status, location, .. } = browser.post(&decide, &[("csrf", &token), ("action", "approve")]).await;
    assert_eq!((status, location.as_deref()), (303, Some("/dashboard/policy-changes")), "{backend:?}");
    let (_, now) = app.get(&format!("/v1/policy-changes/{change}"), &o.admin).await;
    assert_eq!(now["status"], "applied", "{backend:?}: {now}");
    let Page { body: page, .. } = browser.get("/dashboard/policy-changes?status=applied").await;
    assert!(page.contains(&change), "{page}");
    let Page { status, body: page, .. } = browser.post(&decide, &[("csrf", &token), ("action", "reject")]).await;
    assert!(status == 409 && page.contains("POLICY_CHANGE_NOT_PENDING"), "{backend:?}: {status} {page}");
    let Page { status, .. } = browser.get("/dashboard/policy-changes?status=nope").await;
    assert_eq!(status, 400);
}
