//! Policy versions (DESIGN.md §2.11, docs/api.md "Policy versions") through HTTP on both stores:
//! every create, update and delete keeps the whole policy as a numbered version (listed oldest
//! first, paged, still there after the delete); payments, refunds and their approvals name the
//! versions they were decided under; an approval in flight keeps the quorum and the step-up of
//! those versions whatever the policies say later, while a deny rule added meanwhile still stops
//! its execution; another organisation sees none of it.

use std::sync::Arc;

use countersign_core::domain::approval::VoteDecision;
use countersign_core::domain::ids::ApprovalId;
use countersign_core::domain::secret::ServerSecret;
use countersign_core::service::{Caller, DecideRequest, NewPasskey};
use countersign_tests::authenticator::Authenticator;
use countersign_tests::{per_backend, Backend, Scenario, TestApp};
use serde_json::{json, Value};

const REVIEWER: &[&str] = &["approvals:read", "approvals:write", "payments:read"];
const ORIGIN: &str = "http://localhost:8080";

fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

async fn get(app: &TestApp, key: &str, path: &str) -> Value {
    let (status, body) = app.get(path, key).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

async fn patch(app: &TestApp, key: &str, wallet: &str, policy: &str, body: Value) -> Value {
    let path = format!("/v1/wallets/{wallet}/policies/{policy}");
    let (status, body) = app.call("PATCH", &path, Some(key), Some(body)).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The id of the scenario's own policy ("review large": holds above 1000.00).
async fn scenario_policy(app: &TestApp, s: &Scenario) -> String {
    let list = get(app, &s.admin, &format!("/v1/wallets/{}/policies", s.from)).await;
    list["data"][0]["id"].as_str().expect("policy").to_string()
}

fn versions_path(wallet: &str, policy: &str) -> String {
    format!("/v1/wallets/{wallet}/policies/{policy}/versions")
}

/// The policy versions named by a payment, refund or approval: `(policyId, version)`.
fn named(body: &Value) -> Vec<(String, u64)> {
    body["policyVersions"]
        .as_array()
        .unwrap_or_else(|| panic!("no policyVersions: {body}"))
        .iter()
        .map(|v| (v["policyId"].as_str().expect("policyId").to_string(), v["version"].as_u64().expect("version")))
        .collect()
}

async fn approve(app: &TestApp, key: &str, approval: &str) -> (u16, Value) {
    app.post(&format!("/v1/approvals/{approval}/approve"), key, json!({})).await
}

per_backend!(every_change_keeps_a_version_and_a_delete_keeps_the_last);
async fn every_change_keeps_a_version_and_a_delete_keeps_the_last(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("1000.00").await;
    let (status, created) = app
        .post(
            &format!("/v1/wallets/{}/policies", s.from),
            &s.admin,
            json!({"name": "v", "maxTransactionAmount": "100.00"}),
        )
        .await;
    assert_eq!((status, created["version"].as_u64()), (201, Some(1)), "{created}");
    let policy = created["id"].as_str().expect("id").to_string();
    let second = patch(&app, &s.admin, &s.from, &policy, json!({"maxTransactionAmount": "200.00"})).await;
    let third = patch(&app, &s.admin, &s.from, &policy, json!({"name": "v3", "requiredApprovals": 2})).await;
    assert_eq!((second["version"].as_u64(), third["version"].as_u64()), (Some(2), Some(3)), "{backend:?}");
    let read = get(&app, &s.admin, &format!("/v1/wallets/{}/policies/{policy}", s.from)).await;
    assert_eq!(read["version"], 3, "{read}");

    let path = versions_path(&s.from, &policy);
    let list = get(&app, &s.agent, &path).await;
    let data = list["data"].as_array().expect("data");
    let numbers: Vec<_> = data.iter().map(|v| v["version"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [1, 2, 3], "{backend:?}: oldest first: {list}");
    assert_eq!((list["hasMore"].as_bool(), list["nextCursor"].is_null()), (Some(false), true), "{list}");
    assert_eq!(data[0]["policy"]["maxTransactionAmount"], "100.00", "version 1 as it was: {}", data[0]);
    assert_eq!(data[1]["policy"]["maxTransactionAmount"], "200.00", "{}", data[1]);
    assert_eq!(
        (data[2]["policy"]["name"].as_str(), data[2]["policy"]["requiredApprovals"].as_u64()),
        (Some("v3"), Some(2))
    );
    for (n, v) in data.iter().enumerate() {
        assert_eq!((v["policyId"].as_str(), v["walletId"].as_str()), (Some(policy.as_str()), Some(s.from.as_str())));
        assert_eq!((v["deleted"].as_bool(), v["policy"]["version"].as_u64()), (Some(false), Some(n as u64 + 1)), "{v}");
        assert!(v["changedBy"].as_str().is_some_and(|k| k.starts_with("key_")) && v["changedAt"].is_string(), "{v}");
    }
    // One version by number; the current policy is the last version's.
    let two = get(&app, &s.admin, &format!("{path}/2")).await;
    assert_eq!(&two, &data[1], "{backend:?}");
    assert_eq!(data[2]["policy"], read, "{backend:?}: the last version is the policy as it stands");
    let (status, missing) = app.get(&format!("{path}/4"), &s.admin).await;
    assert_eq!((status, code(&missing)), (404, Some("POLICY_VERSION_NOT_FOUND")), "{missing}");

    // Paged like other lists.
    let first = get(&app, &s.admin, &format!("{path}?limit=2")).await;
    assert_eq!((first["data"].as_array().unwrap().len(), first["hasMore"].as_bool()), (2, Some(true)), "{first}");
    let cursor = first["nextCursor"].as_str().expect("cursor");
    let rest = get(&app, &s.admin, &format!("{path}?limit=2&cursor={cursor}")).await;
    assert_eq!(rest["data"][0]["version"], 3, "{rest}");
    assert_eq!(rest["hasMore"], false, "{rest}");

    // Deleted: the history stays, ending in a version marked deleted (the policy as it stood).
    let (status, _) =
        app.call("DELETE", &format!("/v1/wallets/{}/policies/{policy}", s.from), Some(&s.admin), None).await;
    assert_eq!(status, 200);
    let (status, gone) = app.get(&format!("/v1/wallets/{}/policies/{policy}", s.from), &s.admin).await;
    assert_eq!((status, code(&gone)), (404, Some("POLICY_NOT_FOUND")), "{gone}");
    let list = get(&app, &s.admin, &path).await;
    let data = list["data"].as_array().expect("data");
    let numbers: Vec<_> =
        data.iter().map(|v| (v["version"].as_u64().unwrap(), v["deleted"].as_bool().unwrap())).collect();
    assert_eq!(numbers, [(1, false), (2, false), (3, false), (4, true)], "{backend:?}: {list}");
    assert_eq!((data[3]["policy"]["name"].as_str(), data[3]["policy"]["version"].as_u64()), (Some("v3"), Some(4)));
    assert_eq!(get(&app, &s.admin, &format!("{path}/4")).await, data[3]);

    // A policy that never was: 404, not an empty list.
    let (status, none) = app.get(&versions_path(&s.from, "pol_01J00000000000000000000000"), &s.admin).await;
    assert_eq!((status, code(&none)), (404, Some("POLICY_NOT_FOUND")), "{none}");
}

per_backend!(payments_refunds_and_approvals_name_the_versions_they_were_decided_under);
async fn payments_refunds_and_approvals_name_the_versions_they_were_decided_under(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let review = scenario_policy(&app, &s).await;
    // Version 2 of the hold policy; a disabled policy and a refund policy do not decide payments.
    patch(&app, &s.admin, &s.from, &review, json!({"approvalTtlSeconds": 3600})).await;
    let daily = app.policy(&s.admin, &s.from, json!({"name": "daily", "dailySpendingLimit": "9000.00"})).await;
    let off = app.policy(&s.admin, &s.from, json!({"name": "off", "enabled": false})).await;
    app.policy(&s.admin, &s.from, json!({"name": "refunds here", "appliesTo": ["refund"]})).await;
    let expected = vec![(review.clone(), 2), (daily.clone(), 1)];

    let (status, executed) =
        app.post("/v1/payments", &s.agent, json!({"from": s.from, "to": s.to, "amount": "10.00"})).await;
    assert_eq!(status, 201, "{executed}");
    assert_eq!(named(&executed), expected, "{backend:?}: {executed}");
    let (payment, approval) = app.held_payment(&s, "1500.00").await;
    let held = get(&app, &s.admin, &format!("/v1/payments/{payment}")).await;
    let pending = get(&app, &s.admin, &format!("/v1/approvals/{approval}")).await;
    assert_eq!((named(&held), named(&pending)), (expected.clone(), expected.clone()), "{backend:?}");
    assert!(!named(&held).iter().any(|(p, _)| p == &off));

    // Later changes do not rewrite what was decided.
    patch(&app, &s.admin, &s.from, &daily, json!({"dailySpendingLimit": "8000.00"})).await;
    let (status, decided) = approve(&app, &s.reviewer, &approval).await;
    assert_eq!((status, decided["status"].as_str()), (200, Some("APPROVED")), "{decided}");
    assert_eq!((named(&decided), named(&decided["payment"])), (expected.clone(), expected), "{backend:?}");

    // A refund: the payee wallet's refund policies.
    let refunds = app
        .policy(
            &s.admin,
            &s.to,
            json!({"name": "review refunds", "appliesTo": ["refund"], "requireReviewAbove": "5.00"}),
        )
        .await;
    patch(&app, &s.admin, &s.to, &refunds, json!({"name": "review refunds (v2)"})).await;
    app.policy(&s.admin, &s.to, json!({"name": "payments only", "requireHumanApproval": true})).await;
    let refunder = app.key(&s.admin, &["refunds:write", "payments:read"]).await;
    let (status, refund) = app.post("/v1/refunds", &refunder, json!({"paymentId": payment, "amount": "6.00"})).await;
    assert_eq!(status, 202, "{refund}");
    assert_eq!(named(&refund), [(refunds.clone(), 2)], "{backend:?}: {refund}");
    let refund_approval = refund["approvalId"].as_str().expect("approval");
    let pending = get(&app, &s.admin, &format!("/v1/approvals/{refund_approval}")).await;
    assert_eq!(named(&pending), [(refunds.clone(), 2)], "{pending}");
    let (status, decided) = approve(&app, &s.reviewer, refund_approval).await;
    assert_eq!((status, decided["refund"]["status"].as_str()), (200, Some("approved")), "{decided}");
    assert_eq!(named(&decided["refund"]), [(refunds, 2)], "{decided}");
}

per_backend!(an_approval_keeps_the_quorum_it_was_held_under);
async fn an_approval_keeps_the_quorum_it_was_held_under(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let policy = scenario_policy(&app, &s).await;
    let second = app.key(&s.admin, REVIEWER).await;
    let third = app.key(&s.admin, REVIEWER).await;

    // Held needing two; the policy then asks one: this approval still needs two.
    patch(&app, &s.admin, &s.from, &policy, json!({"requiredApprovals": 2})).await;
    let (payment, two) = app.held_payment(&s, "1500.00").await;
    patch(&app, &s.admin, &s.from, &policy, json!({"requiredApprovals": 1})).await;
    let (status, first) = approve(&app, &s.reviewer, &two).await;
    assert_eq!((status, first["status"].as_str()), (200, Some("PENDING")), "{backend:?}: one of two: {first}");
    assert_eq!(get(&app, &s.admin, &format!("/v1/payments/{payment}")).await["status"], "PENDING_APPROVAL");
    let (status, done) = approve(&app, &second, &two).await;
    assert_eq!(
        (status, done["status"].as_str(), done["payment"]["status"].as_str()),
        (200, Some("APPROVED"), Some("COMPLETED")),
        "{done}"
    );
    assert_eq!(done["requiredApprovals"], 2, "{done}");

    // Held needing one (version 3); the policy then asks three: one approval still completes it.
    let (payment, one) = app.held_payment(&s, "1200.00").await;
    assert_eq!(named(&get(&app, &s.admin, &format!("/v1/approvals/{one}")).await), [(policy.clone(), 3)]);
    patch(&app, &s.admin, &s.from, &policy, json!({"requiredApprovals": 3})).await;
    let (status, done) = approve(&app, &third, &one).await;
    assert_eq!(
        (status, done["status"].as_str(), done["payment"]["status"].as_str()),
        (200, Some("APPROVED"), Some("COMPLETED")),
        "{backend:?}: {done}"
    );
    assert_eq!(get(&app, &s.admin, &format!("/v1/payments/{payment}")).await["status"], "COMPLETED");
    // A payment held now needs the three the policy asks.
    let (_, three) = app.held_payment(&s, "1100.00").await;
    assert_eq!(get(&app, &s.admin, &format!("/v1/approvals/{three}")).await["requiredApprovals"], 3);
    assert_eq!(app.balance(&s.admin, &s.to).await, "2700.00", "{backend:?}");
}

/// The harness's app with a dashboard session secret: passkeys can be registered (the relying
/// party is the harness's `http://localhost:8080`).
async fn passkey_app(backend: Backend) -> TestApp {
    TestApp::spawn_tuned(backend, |s| {
        s.session_secret = Some(Arc::new(ServerSecret::new("policy-versions-secret-0123456789").expect("secret")));
    })
    .await
}

async fn caller(app: &TestApp, key: &str) -> Caller {
    app.service.authenticate(Some(key)).await.expect("caller")
}

per_backend!(an_approval_keeps_the_step_up_it_was_held_under);
/// A step-up added after the hold is not asked of that approval (but of one held after it); a
/// step-up removed after the hold still is: 403 `STEP_UP_REQUIRED` with the threshold it was
/// held under, nothing decided, and a passkey assertion then pays it.
async fn an_approval_keeps_the_step_up_it_was_held_under(backend: Backend) {
    let app = passkey_app(backend).await;
    let s = app.scenario("100000.00").await;
    let policy = scenario_policy(&app, &s).await;
    let member = app.member(&s.admin, "rita").await;
    let rita = app.key_for(&s.admin, Some(&member), REVIEWER).await;

    // Added after the hold: not needed for it.
    let (payment, before_step_up) = app.held_payment(&s, "2000.00").await;
    patch(&app, &s.admin, &s.from, &policy, json!({"stepUpAbove": "500.00"})).await;
    let (_, after_step_up) = app.held_payment(&s, "2000.00").await;
    let (status, done) = approve(&app, &rita, &before_step_up).await;
    assert_eq!((status, done["payment"]["status"].as_str()), (200, Some("COMPLETED")), "{backend:?}: {done}");
    assert_eq!(get(&app, &s.admin, &format!("/v1/payments/{payment}")).await["status"], "COMPLETED");
    let pinned = get(&app, &s.admin, &format!("/v1/approvals/{after_step_up}")).await;
    assert_eq!(pinned["stepUpAbove"], "500.00", "{pinned}");

    // Removed after the hold: still needed for the approval held under it.
    patch(&app, &s.admin, &s.from, &policy, json!({"stepUpAbove": null})).await;
    let balances = (app.balance(&s.admin, &s.from).await, app.balance(&s.admin, &s.to).await);
    let (status, refused) = approve(&app, &rita, &after_step_up).await;
    assert_eq!((status, code(&refused)), (403, Some("STEP_UP_REQUIRED")), "{backend:?}: {refused}");
    assert_eq!(refused["error"]["details"]["stepUpAbove"], "500.00", "{refused}");
    let still = get(&app, &s.admin, &format!("/v1/approvals/{after_step_up}")).await;
    assert_eq!((still["status"].as_str(), still["votes"].as_array().map(Vec::len)), (Some("PENDING"), Some(0)));
    assert_eq!((app.balance(&s.admin, &s.from).await, app.balance(&s.admin, &s.to).await), balances);
    // The dashboard's detail page shows the pinned threshold too.
    let c = caller(&app, &rita).await;
    let id = ApprovalId::parse(&after_step_up).expect("id");
    let detail = app.service.approval_detail(&c, &id).await.expect("detail");
    assert_eq!(detail.step_up_above.map(|d| d.to_string()).as_deref(), Some("500.00"));
    // With a passkey it pays.
    let auth = Authenticator::new();
    let options = app.service.passkey_registration_options(&c).await.expect("options");
    let (client_data_json, attestation_object) = auth.register(&options.rp_id, ORIGIN, &options.challenge);
    let new = NewPasskey { challenge: options.challenge, client_data_json, attestation_object, name: "laptop".into() };
    app.service.register_passkey(&c, new).await.expect("registered");
    let start = app.service.start_step_up(&c, &id, None).await.expect("started");
    let proof = auth.assert(&start.rp_id, ORIGIN, &start.challenge).proof(&start.nonce);
    let request = DecideRequest { step_up: Some(proof), ..DecideRequest::new(VoteDecision::Approve, None) };
    let decided = app.service.decide_approval(&c, &id, request).await.expect("approved with a passkey");
    assert_eq!(decided.payment.status().as_str(), "COMPLETED", "{backend:?}");
    assert!(decided.approval.votes[0].passkey.is_some());
    // A payment held now needs no step-up.
    let (_, now_held) = app.held_payment(&s, "2000.00").await;
    let (status, done) = approve(&app, &rita, &now_held).await;
    assert_eq!((status, done["status"].as_str()), (200, Some("APPROVED")), "{done}");
}

per_backend!(a_deny_rule_added_after_the_hold_still_stops_execution);
async fn a_deny_rule_added_after_the_hold_still_stops_execution(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("5000.00").await;
    let policy = scenario_policy(&app, &s).await;
    let (payment, approval) = app.held_payment(&s, "1500.00").await;
    patch(&app, &s.admin, &s.from, &policy, json!({"blockedRecipients": [s.to]})).await;
    let (status, decided) = approve(&app, &s.reviewer, &approval).await;
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["payment"]["status"], "FAILED", "{backend:?}: {decided}");
    assert!(decided["payment"]["failureReason"].as_str().is_some_and(|r| r.contains("blocked")), "{decided}");
    assert_eq!(get(&app, &s.admin, &format!("/v1/payments/{payment}")).await["status"], "FAILED");
    assert_eq!(app.balance(&s.admin, &s.from).await, "5000.00", "{backend:?}: nothing moved");
    assert_eq!(app.balance(&s.admin, &s.to).await, "0.00", "{backend:?}: nothing moved");
}

per_backend!(another_organisation_sees_no_versions);
async fn another_organisation_sees_no_versions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("100.00").await;
    let policy = scenario_policy(&app, &s).await;
    let other = app.org("other").await;
    let other_wallet = app.wallet(&other, "USD").await;
    let path = versions_path(&s.from, &policy);
    let (status, body) = app.get(&path, &other).await;
    assert_eq!((status, code(&body)), (404, Some("WALLET_NOT_FOUND")), "{backend:?}: {body}");
    let (status, body) = app.get(&format!("{path}/1"), &other).await;
    assert_eq!((status, code(&body)), (404, Some("POLICY_VERSION_NOT_FOUND")), "{backend:?}: {body}");
    // Our policy's id under their own wallet names nothing of theirs.
    let theirs = versions_path(&other_wallet, &policy);
    let (status, body) = app.get(&theirs, &other).await;
    assert_eq!((status, code(&body)), (404, Some("POLICY_NOT_FOUND")), "{body}");
    let (status, body) = app.get(&format!("{theirs}/1"), &other).await;
    assert_eq!((status, code(&body)), (404, Some("POLICY_VERSION_NOT_FOUND")), "{body}");
    // A key bound to another of our wallets may not read them either; ours still can.
    let to_only = app
        .post("/v1/api-keys", &s.admin, json!({"name": "k", "permissions": ["wallets:read"], "walletIds": [s.to]}))
        .await;
    assert_eq!(to_only.0, 201, "{}", to_only.1);
    let (status, body) = app.get(&path, to_only.1["secret"].as_str().unwrap()).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(get(&app, &s.admin, &path).await["data"].as_array().map(Vec::len), Some(1));
}
