//! A commit whose outcome is unknown (committed then the connection dropped; still in progress)
//! is resolved by resending the same writes with the same token, never by planning again: money
//! moves once, with or without an idempotency key. On both stores.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use countersign_tests::faults::{Fault, FlakyStore};
use countersign_tests::{per_backend, Backend, TestApp};
use serde_json::json;

async fn app_with_faults(backend: Backend) -> (TestApp, Arc<FlakyStore>) {
    let mut flaky = None;
    let app = TestApp::spawn_wrapped(backend, |store| {
        let wrapped = FlakyStore::new(store);
        flaky = Some(wrapped.clone());
        wrapped
    })
    .await;
    (app, flaky.expect("wrapped"))
}

async fn debits(app: &TestApp, key: &str, wallet: &str) -> usize {
    let (_, txns) = app.get(&format!("/v1/wallets/{wallet}/transactions?limit=100"), key).await;
    txns["data"].as_array().expect("ledger").iter().filter(|t| t["kind"] == "DEBIT").count()
}

per_backend!(an_ambiguous_commit_moves_money_once);
async fn an_ambiguous_commit_moves_money_once(backend: Backend) {
    let (app, flaky) = app_with_faults(backend).await;
    let s = app.scenario("100.00").await;

    // Payment without an idempotency key: committed, answer lost → resent → one payment.
    flaky.arm(&[Fault::CommitThenDrop]);
    let before = flaky.commits.load(Ordering::SeqCst);
    let (status, body) =
        app.post("/v1/payments", &s.agent, json!({"from": s.from, "to": s.to, "amount": "10.00"})).await;
    assert_eq!(status, 201, "{backend:?}: {body}");
    assert_eq!(flaky.commits.load(Ordering::SeqCst) - before, 2, "one send and one resend");
    let (_, list) = app.get(&format!("/v1/payments?walletId={}", s.from), &s.agent).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1), "{backend:?}: {list}");
    assert_eq!(app.balance(&s.admin, &s.from).await, "90.00");
    assert_eq!(debits(&app, &s.admin, &s.from).await, 1);

    // In progress twice, then committed-and-dropped: still one payment.
    flaky.arm(&[Fault::InProgress, Fault::InProgress, Fault::CommitThenDrop]);
    let (status, body) =
        app.post("/v1/payments", &s.agent, json!({"from": s.from, "to": s.to, "amount": "5.00"})).await;
    assert_eq!(status, 201, "{backend:?}: {body}");
    assert_eq!(app.balance(&s.admin, &s.from).await, "85.00");
    assert_eq!(debits(&app, &s.admin, &s.from).await, 2);

    // A fund is counted once.
    flaky.arm(&[Fault::CommitThenDrop]);
    let (status, body) = app.post(&format!("/v1/wallets/{}/fund", s.from), &s.admin, json!({"amount": "15.00"})).await;
    assert_eq!((status, body["newBalance"].as_str()), (201, Some("100.00")), "{backend:?}: {body}");
    assert_eq!(app.balance(&s.admin, &s.from).await, "100.00");
}

per_backend!(an_ambiguous_approval_executes_once);
async fn an_ambiguous_approval_executes_once(backend: Backend) {
    let (app, flaky) = app_with_faults(backend).await;
    let s = app.scenario("5000.00").await;
    let (payment, approval) = app.held_payment(&s, "2000.00").await;
    flaky.arm(&[Fault::CommitThenDrop]);
    let (status, body) = app.post(&format!("/v1/approvals/{approval}/approve"), &s.reviewer, json!({})).await;
    assert_eq!((status, body["payment"]["status"].as_str()), (200, Some("COMPLETED")), "{backend:?}: {body}");
    assert_eq!(app.get(&format!("/v1/payments/{payment}"), &s.agent).await.1["status"], "COMPLETED");
    assert_eq!(app.balance(&s.admin, &s.from).await, "3000.00");
    assert_eq!(debits(&app, &s.admin, &s.from).await, 1);
}
