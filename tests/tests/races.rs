//! Races have exactly one winner, on both stores.

use countersign_tests::{per_backend, Backend, TestApp};
use futures::future::join_all;
use serde_json::json;

per_backend!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    fifty_parallel_decisions_on_one_approval_have_one_winner
);
async fn fifty_parallel_decisions_on_one_approval_have_one_winner(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let (payment, approval) = app.held_payment(&s, "5000.00").await;
    // 25 approvers and 25 rejecters, each with its own key.
    let mut keys = Vec::new();
    for _ in 0..50 {
        keys.push(app.key(&s.admin, &["approvals:write"]).await);
    }
    let calls = keys.iter().enumerate().map(|(i, key)| {
        let path = format!("/v1/approvals/{approval}/{}", if i % 2 == 0 { "approve" } else { "reject" });
        let app = &app;
        async move { app.post(&path, key, json!({})).await }
    });
    let results = join_all(calls).await;
    let winners: Vec<_> = results.iter().filter(|(status, _)| *status == 200).collect();
    assert_eq!(winners.len(), 1, "{backend:?}: {results:?}");
    for (status, body) in &results {
        assert!(
            *status == 200 || (*status == 409 && body["error"]["code"] == "APPROVAL_NOT_PENDING"),
            "{backend:?}: {status} {body}"
        );
    }
    let (_, txns) = app.get(&format!("/v1/wallets/{}/transactions", s.from), &s.admin).await;
    let debits = txns["data"].as_array().unwrap().iter().filter(|t| t["kind"] == "DEBIT").count();
    let (_, pay) = app.get(&format!("/v1/payments/{payment}"), &s.agent).await;
    match pay["status"].as_str().unwrap() {
        "COMPLETED" => {
            assert_eq!(debits, 1, "{backend:?}");
            assert_eq!(app.balance(&s.admin, &s.from).await, "5000.00");
            assert_eq!(app.balance(&s.admin, &s.to).await, "5000.00");
        }
        "REJECTED" => {
            assert_eq!(debits, 0, "{backend:?}");
            assert_eq!(app.balance(&s.admin, &s.from).await, "10000.00");
        }
        other => panic!("{backend:?}: unexpected payment status {other}"),
    }
}

per_backend!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    twenty_parallel_requests_with_one_idempotency_key_make_one_payment
);
async fn twenty_parallel_requests_with_one_idempotency_key_make_one_payment(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("1000.00").await;
    let body = json!({"from": s.from, "to": s.to, "amount": "10.00", "idempotencyKey": "order-42"});
    let results = join_all((0..20).map(|_| app.post("/v1/payments", &s.agent, body.clone()))).await;
    let ids: std::collections::HashSet<_> = results
        .iter()
        .map(|(st, b)| {
            assert_eq!(*st, 201, "{backend:?}: {b}");
            b["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{backend:?}: every response names the same payment");
    let (_, list) = app.get("/v1/payments?limit=100", &s.agent).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{backend:?}");
    assert_eq!(app.balance(&s.admin, &s.from).await, "990.00");
    // Same key, different body: refused.
    let other = json!({"from": s.from, "to": s.to, "amount": "11.00", "idempotencyKey": "order-42"});
    let (status, err) = app.post("/v1/payments", &s.agent, other).await;
    assert_eq!((status, err["error"]["code"].as_str()), (409, Some("IDEMPOTENCY_KEY_REUSE")));
}

per_backend!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    twenty_parallel_payments_never_overdraw
);
async fn twenty_parallel_payments_never_overdraw(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("100.00").await;
    let body = json!({"from": s.from, "to": s.to, "amount": "10.00"});
    let results = join_all((0..20).map(|_| app.post("/v1/payments", &s.agent, body.clone()))).await;
    let ok = results.iter().filter(|(st, _)| *st == 201).count();
    let short = results.iter().filter(|(st, b)| *st == 402 && b["error"]["code"] == "INSUFFICIENT_FUNDS").count();
    assert_eq!((ok, short), (10, 10), "{backend:?}: {results:?}");
    assert_eq!(app.balance(&s.admin, &s.from).await, "0.00", "{backend:?}");
    assert_eq!(app.balance(&s.admin, &s.to).await, "100.00", "{backend:?}");
}

per_backend!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    approve_racing_expiry_has_one_outcome
);
async fn approve_racing_expiry_has_one_outcome(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let (payment, approval) = app.held_payment(&s, "2000.00").await;
    // Put the clock exactly at the deadline so both sides see the approval as due.
    app.clock.advance(chrono::Duration::hours(24));
    let path = format!("/v1/approvals/{approval}/approve");
    let approve = app.post(&path, &s.reviewer, json!({}));
    let sweep = app.service.expire_due(10);
    let ((status, body), swept) = tokio::join!(approve, sweep);
    let swept = swept.expect("sweep");
    assert_eq!(status, 409, "{backend:?}: time is checked at the write: {body}");
    assert_eq!(swept.expired, 1, "{backend:?}");
    let (_, pay) = app.get(&format!("/v1/payments/{payment}"), &s.agent).await;
    assert_eq!(pay["status"], "EXPIRED");
    assert_eq!(app.balance(&s.admin, &s.from).await, "10000.00");
}

per_backend!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    many_payments_from_one_wallet_all_land
);
/// A hot wallet: 40 concurrent payments from one wallet, enough funds for all. Each lands once,
/// none is lost to contention (no 5xx), and the balance is exact.
async fn many_payments_from_one_wallet_all_land(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("1000.00").await;
    let body = json!({"from": s.from, "to": s.to, "amount": "2.50"});
    let results = join_all((0..40).map(|_| app.post("/v1/payments", &s.agent, body.clone()))).await;
    assert!(results.iter().all(|(st, _)| *st == 201), "{backend:?}: {results:?}");
    assert_eq!(app.balance(&s.admin, &s.from).await, "900.00", "{backend:?}");
    assert_eq!(app.balance(&s.admin, &s.to).await, "100.00", "{backend:?}");
}

per_backend!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    crossing_transfers_between_two_wallets_do_not_deadlock
);
/// Payments A→B and B→A at once touch the same two wallets in opposite orders: every one
/// completes (within the test's time), and the money adds up.
async fn crossing_transfers_between_two_wallets_do_not_deadlock(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("500.00").await;
    app.fund(&s.admin, &s.to, "500.00").await;
    let pay = |from: &str, to: &str| json!({"from": from, "to": to, "amount": "1.00"});
    let calls = (0..40).map(|i| {
        let body = if i % 2 == 0 { pay(&s.from, &s.to) } else { pay(&s.to, &s.from) };
        let key = if i % 2 == 0 { &s.agent } else { &s.admin };
        app.post("/v1/payments", key, body)
    });
    let results = tokio::time::timeout(std::time::Duration::from_secs(60), join_all(calls))
        .await
        .unwrap_or_else(|_| panic!("{backend:?}: crossing transfers did not finish"));
    assert!(results.iter().all(|(st, _)| *st == 201), "{backend:?}: {results:?}");
    assert_eq!(app.balance(&s.admin, &s.from).await, "500.00", "{backend:?}");
    assert_eq!(app.balance(&s.admin, &s.to).await, "500.00", "{backend:?}");
}
