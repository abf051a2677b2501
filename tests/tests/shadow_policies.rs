//! Shadow policies (docs/api.md, "Shadow policies"; DESIGN.md §2.11) through HTTP on both
//! stores: a shadow policy never changes what happens to a payment or refund (not its limits,
//! holds, velocity, daily spend nor the evaluate route), each payment and refund it watches
//! carries what it would have decided (`shadowDecisions`, on the real facts: the hourly count
//! included), and its would-have counts stay exact under 20 concurrent payments. Switched to
//! enforce, it decides from the next payment on.

use countersign_tests::{per_backend, Backend, Scenario, TestApp};
use futures::future::join_all;
use serde_json::{json, Value};

async fn stats(app: &TestApp, key: &str, wallet: &str, policy: &str) -> Value {
    let (status, body) = app.get(&format!("/v1/wallets/{wallet}/policies/{policy}/shadow-stats"), key).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// (evaluated, executed, held, denied, differed) of a stats answer.
fn counts(stats: &Value) -> (u64, u64, u64, u64, u64) {
    let n = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("a count: {stats}"));
    let would = &stats["wouldHave"];
    (n(&stats["evaluated"]), n(&would["executed"]), n(&would["held"]), n(&would["denied"]), n(&stats["differed"]))
}

async fn pay(app: &TestApp, s: &Scenario, amount: &str) -> (u16, Value) {
    app.post("/v1/payments", &s.agent, json!({"from": s.from, "to": s.to, "amount": amount})).await
}

/// The one shadow decision a payment or refund carries, as (policy, outcome, rule).
fn only_shadow(body: &Value) -> (String, String, String) {
    let decisions = body["shadowDecisions"].as_array().unwrap_or_else(|| panic!("shadowDecisions: {body}"));
    assert_eq!(decisions.len(), 1, "{body}");
    let d = &decisions[0];
    assert!(d["reason"].as_str().is_some_and(|r| !r.is_empty()), "{body}");
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (text(&d["policyId"]), text(&d["outcome"]), text(&d["rule"]))
}

per_backend!(a_shadow_deny_policy_changes_nothing_and_counts_what_it_would_have_done);
async fn a_shadow_deny_policy_changes_nothing_and_counts_what_it_would_have_done(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    // Every rule it has would stop these payments: blocked payee, a reject limit, a daily
    // limit, an hourly count and a step-up threshold.
    let strict = json!({
        "name": "strict", "mode": "shadow", "blockedRecipients": [s.to], "autoRejectAbove": "0.50",
        "dailySpendingLimit": "1.00", "maxPaymentsPerHour": 1, "stepUpAbove": "1.00"
    });
    let (status, created) = app.post(&format!("/v1/wallets/{}/policies", s.from), &s.admin, strict).await;
    assert_eq!((status, created["mode"].as_str()), (201, Some("shadow")), "{created}");
    let shadow = created["id"].as_str().expect("id").to_string();
    let fresh = stats(&app, &s.agent, &s.from, &shadow).await;
    assert_eq!(
        (counts(&fresh), fresh["mode"].as_str(), &fresh["since"]),
        ((0, 0, 0, 0, 0), Some("shadow"), &Value::Null)
    );

    // The evaluate route ignores it too.
    let path = format!("/v1/wallets/{}/policies/evaluate", s.from);
    let (_, evaluated) = app.post(&path, &s.admin, json!({"amount": "5.00", "to": s.to})).await;
    assert_eq!(evaluated["status"], "approved", "{backend:?}: {evaluated}");
    assert_ne!(evaluated["policyId"].as_str(), Some(shadow.as_str()), "{evaluated}");

    for _ in 0..3 {
        let (status, paid) = pay(&app, &s, "5.00").await;
        assert_eq!((status, paid["status"].as_str()), (201, Some("COMPLETED")), "{backend:?}: {paid}");
        assert_eq!(only_shadow(&paid), (shadow.clone(), "DENY".into(), "blockedRecipients".into()), "{paid}");
        let (_, read) = app.get(&format!("/v1/payments/{}", paid["id"].as_str().unwrap()), &s.agent).await;
        assert_eq!(read["shadowDecisions"], paid["shadowDecisions"], "{backend:?}: stored with the payment");
    }
    // Held by the real (enforced) policy, and approved: execution's re-check ignores it as well.
    let (status, held) = pay(&app, &s, "1500.00").await;
    assert_eq!(status, 202, "{backend:?}: {held}");
    assert_eq!(only_shadow(&held).1, "DENY");
    let approval = held["approvalId"].as_str().expect("approval");
    let (status, approved) = app.post(&format!("/v1/approvals/{approval}/approve"), &s.reviewer, json!({})).await;
    assert_eq!(status, 200, "{backend:?}: {approved}");
    assert_eq!(app.balance(&s.admin, &s.from).await, "8485.00", "{backend:?}");

    let counted = stats(&app, &s.agent, &s.from, &shadow).await;
    assert_eq!(counts(&counted), (4, 0, 0, 4, 4), "{backend:?}: {counted}");
    assert_eq!((counted["policyId"].as_str(), counted["mode"].as_str()), (Some(shadow.as_str()), Some("shadow")));
    assert!(counted["since"].is_string(), "{counted}");

    // An enforcing policy's counts: zero, readable.
    let (_, list) = app.get(&format!("/v1/wallets/{}/policies", s.from), &s.admin).await;
    let enforced = list["data"].as_array().unwrap().iter().find(|p| p["mode"] == "enforce").expect("the scenario's");
    let none = stats(&app, &s.admin, &s.from, enforced["id"].as_str().unwrap()).await;
    assert_eq!((counts(&none), none["mode"].as_str()), ((0, 0, 0, 0, 0), Some("enforce")), "{none}");
    // A payment on a wallet without shadow policies carries none.
    let (_, plain) = app.post("/v1/payments", &s.agent, json!({"from": s.to, "to": s.from, "amount": "1.00"})).await;
    assert!(plain.get("shadowDecisions").is_none(), "{plain}");
}

per_backend!(a_shadow_hold_policy_counts_executions_holds_and_real_denials);
async fn a_shadow_hold_policy_counts_executions_holds_and_real_denials(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let review = json!({"name": "review", "mode": "shadow", "requireHumanApproval": true, "autoApproveBelow": "10.00"});
    let shadow = app.policy(&s.admin, &s.from, review).await;
    app.policy(&s.admin, &s.from, json!({"name": "cap", "autoRejectAbove": "5000.00"})).await;

    let (status, small) = pay(&app, &s, "5.00").await;
    assert_eq!((status, only_shadow(&small)), (201, (shadow.clone(), "EXECUTE".into(), "policy".into())), "{small}");
    let (status, larger) = pay(&app, &s, "20.00").await;
    assert_eq!(
        (status, only_shadow(&larger)),
        (201, (shadow.clone(), "HOLD".into(), "requireHumanApproval".into())),
        "{backend:?}: executed for real, held in shadow: {larger}"
    );
    // Denied for real: nothing is stored but the audit row, and the evaluation is counted.
    let (status, denied) = pay(&app, &s, "6000.00").await;
    assert_eq!((status, denied["error"]["code"].as_str()), (403, Some("POLICY_DENIED")), "{denied}");
    let counted = stats(&app, &s.admin, &s.from, &shadow).await;
    assert_eq!(counts(&counted), (3, 1, 2, 0, 2), "{backend:?}: {counted}");
    let (_, audit) = app.get("/v1/audit-logs?action=payment.denied", &s.admin).await;
    let entry = audit["data"].as_array().and_then(|d| d.first()).cloned().unwrap_or_default();
    assert_eq!(entry["details"]["shadowDecisions"][0]["outcome"], "HOLD", "{backend:?}: {audit}");
}

per_backend!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    twenty_concurrent_payments_are_counted_exactly
);
async fn twenty_concurrent_payments_are_counted_exactly(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let shadow =
        app.policy(&s.admin, &s.from, json!({"name": "watch", "mode": "shadow", "requireReviewAbove": "3.00"})).await;
    let calls = (0..20).map(|n| pay(&app, &s, if n % 2 == 0 { "1.00" } else { "5.00" }));
    let results = join_all(calls).await;
    for (status, body) in &results {
        assert_eq!(status, &201, "{backend:?}: {body}");
    }
    let held = results.iter().filter(|(_, b)| only_shadow(b).1 == "HOLD").count();
    assert_eq!(held, 10, "{backend:?}");
    let counted = stats(&app, &s.agent, &s.from, &shadow).await;
    assert_eq!(counts(&counted), (20, 10, 10, 0, 10), "{backend:?}: {counted}");
    assert_eq!(app.balance(&s.admin, &s.from).await, "9940.00", "{backend:?}");
}

per_backend!(refunds_are_watched_by_shadow_refund_policies);
async fn refunds_are_watched_by_shadow_refund_policies(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let (_, paid) = pay(&app, &s, "100.00").await;
    let payment = paid["id"].as_str().expect("id").to_string();
    // Refunds leave the payee's wallet: its refund rules watch them, its payment rules do not.
    let refunds = json!({"name": "refund cap", "mode": "shadow", "appliesTo": ["refund"], "autoRejectAbove": "10.00"});
    let shadow = app.policy(&s.admin, &s.to, refunds).await;
    app.policy(&s.admin, &s.to, json!({"name": "payments", "mode": "shadow", "requireHumanApproval": true})).await;
    let refunder = app.key(&s.admin, &["refunds:write", "payments:read"]).await;

    let (status, big) = app.post("/v1/refunds", &refunder, json!({"paymentId": payment, "amount": "50.00"})).await;
    assert_eq!((status, big["status"].as_str()), (201, Some("approved")), "{backend:?}: {big}");
    assert_eq!(only_shadow(&big), (shadow.clone(), "DENY".into(), "autoRejectAbove".into()), "{big}");
    let (status, small) = app.post("/v1/refunds", &refunder, json!({"paymentId": payment, "amount": "5.00"})).await;
    assert_eq!((status, only_shadow(&small).1.as_str()), (201, "EXECUTE"), "{backend:?}: {small}");
    let (_, read) = app.get(&format!("/v1/refunds/{}", big["id"].as_str().unwrap()), &refunder).await;
    assert_eq!(read["shadowDecisions"], big["shadowDecisions"], "{backend:?}: stored with the refund");
    let counted = stats(&app, &s.admin, &s.to, &shadow).await;
    assert_eq!(counts(&counted), (2, 1, 0, 1, 1), "{backend:?}: {counted}");
}

per_backend!(switched_to_enforce_it_denies_from_the_next_payment);
async fn switched_to_enforce_it_denies_from_the_next_payment(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let shadow =
        app.policy(&s.admin, &s.from, json!({"name": "block", "mode": "shadow", "blockedRecipients": [s.to]})).await;
    let (status, _) = pay(&app, &s, "5.00").await;
    assert_eq!(status, 201, "{backend:?}");
    let path = format!("/v1/wallets/{}/policies/{shadow}", s.from);
    let (status, switched) = app.call("PATCH", &path, Some(&s.admin), Some(json!({"mode": "enforce"}))).await;
    assert_eq!((status, switched["mode"].as_str()), (200, Some("enforce")), "{switched}");
    let (status, denied) = pay(&app, &s, "5.00").await;
    assert_eq!(
        (status, denied["error"]["code"].as_str()),
        (403, Some("POLICY_DENIED")),
        "{backend:?}: enforced from the next payment: {denied}"
    );
    // The counts stay readable (an enforcing policy is not evaluated in shadow).
    let counted = stats(&app, &s.admin, &s.from, &shadow).await;
    assert_eq!((counts(&counted), counted["mode"].as_str()), ((1, 0, 0, 1, 1), Some("enforce")), "{counted}");
    // And back to shadow: it only watches again, and counts on.
    let (status, _) = app.call("PATCH", &path, Some(&s.admin), Some(json!({"mode": "shadow"}))).await;
    assert_eq!(status, 200);
    let (status, paid) = pay(&app, &s, "5.00").await;
    assert_eq!((status, only_shadow(&paid).1.as_str()), (201, "DENY"), "{backend:?}: {paid}");
    assert_eq!(counts(&stats(&app, &s.admin, &s.from, &shadow).await).0, 2, "{backend:?}");
}

per_backend!(a_shadow_velocity_limit_sees_the_real_hourly_count);
async fn a_shadow_velocity_limit_sees_the_real_hourly_count(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let shadow =
        app.policy(&s.admin, &s.from, json!({"name": "loop", "mode": "shadow", "maxPaymentsPerHour": 2})).await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (status, paid) = pay(&app, &s, "1.00").await;
        assert_eq!(status, 201, "{backend:?}: never enforced: {paid}");
        seen.push(only_shadow(&paid).2);
    }
    assert_eq!(seen, ["policy", "policy", "maxPaymentsPerHour", "maxPaymentsPerHour"], "{backend:?}");
    assert_eq!(counts(&stats(&app, &s.admin, &s.from, &shadow).await), (4, 2, 0, 2, 2), "{backend:?}");
}
