//! One wallet paid by many at once (DESIGN.md §2.10): counters move in place under guards, so
//! racing payments never overdraw, never pass a daily limit or an hourly count, and never
//! execute on policies changed under them, on both stores.

use countersign_tests::{per_backend, Backend, TestApp};
use futures::future::join_all;
use serde_json::json;

/// `n` payments of `amount` from the scenario's wallet at once; their statuses.
async fn race(app: &TestApp, agent: &str, from: &str, to: &str, n: usize, amount: &str) -> Vec<u16> {
    let body = json!({"from": from, "to": to, "amount": amount});
    let calls = (0..n).map(|_| app.post("/v1/payments", agent, body.clone()));
    let results = join_all(calls).await;
    for (status, body) in &results {
        assert!([201, 202, 402, 403].contains(status), "{status} {body}");
    }
    results.into_iter().map(|(status, _)| status).collect()
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

per_backend!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    racing_payments_stay_within_the_daily_limit
);
async fn racing_payments_stay_within_the_daily_limit(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("1000.00").await;
    app.policy(&s.admin, &s.from, json!({"name": "daily", "dailySpendingLimit": "100.00"})).await;
    let statuses = race(&app, &s.agent, &s.from, &s.to, 30, "7.00").await;
    // 14 × 7.00 = 98.00 fits under 100.00; a 15th would make 105.00.
    assert_eq!(count(&statuses, 201), 14, "{backend:?}: {statuses:?}");
    assert_eq!(app.balance(&s.admin, &s.from).await, "902.00", "{backend:?}");
    assert_eq!(app.balance(&s.admin, &s.to).await, "98.00", "{backend:?}");
}

per_backend!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    racing_payments_stay_within_the_hourly_count
);
async fn racing_payments_stay_within_the_hourly_count(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("1000.00").await;
    app.policy(&s.admin, &s.from, json!({"name": "velocity", "maxPaymentsPerHour": 5})).await;
    let statuses = race(&app, &s.agent, &s.from, &s.to, 20, "1.00").await;
    assert_eq!(count(&statuses, 201), 5, "{backend:?}: {statuses:?}");
    assert_eq!(app.balance(&s.admin, &s.from).await, "995.00", "{backend:?}");
}

per_backend!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    racing_payments_never_overdraw_and_all_that_fit_land
);
async fn racing_payments_never_overdraw_and_all_that_fit_land(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("50.00").await;
    let statuses = race(&app, &s.agent, &s.from, &s.to, 40, "3.00").await;
    // 16 × 3.00 = 48.00; the rest are refused for funds (402 INSUFFICIENT_FUNDS), none lost.
    assert_eq!((count(&statuses, 201), count(&statuses, 402)), (16, 24), "{backend:?}: {statuses:?}");
    assert_eq!(app.balance(&s.admin, &s.from).await, "2.00", "{backend:?}");
    let (_, txns) = app.get(&format!("/v1/wallets/{}/transactions?limit=100", s.from), &s.admin).await;
    let debits = txns["data"].as_array().expect("lines").iter().filter(|t| t["kind"] == "DEBIT").count();
    assert_eq!(debits, 16, "{backend:?}: one debit per executed payment");
}

per_backend!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    a_policy_change_amid_payments_binds_every_payment_after_it
);
async fn a_policy_change_amid_payments_binds_every_payment_after_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let done = std::sync::atomic::AtomicBool::new(false);
    let changed_at = tokio::sync::OnceCell::new();
    let body = json!({"from": s.from, "to": s.to, "amount": "1.00"});
    // Eight workers pay continuously; each payment notes when it started.
    let worker = || async {
        let mut seen = Vec::new();
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            let started = std::time::Instant::now();
            let (status, reply) = app.post("/v1/payments", &s.agent, body.clone()).await;
            seen.push((started, status, reply));
        }
        seen
    };
    let change = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let blocked = json!({"name": "block", "blockedRecipients": [s.to]});
        app.policy(&s.admin, &s.from, blocked).await;
        changed_at.set(std::time::Instant::now()).expect("once");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    let (seen, ()) = tokio::join!(join_all((0..8).map(|_| worker())), change);
    let changed_at = *changed_at.get().expect("changed");
    let (mut before, mut after) = (0, 0);
    for (started, status, reply) in seen.into_iter().flatten() {
        if started > changed_at {
            after += 1;
            assert_eq!(status, 403, "{backend:?}: a payment started after the policy change: {reply}");
        } else if status == 201 {
            before += 1;
        }
    }
    assert!(before > 0 && after > 0, "{backend:?}: the change landed amid payments ({before} before, {after} after)");
    let paid: rust_decimal::Decimal = app.balance(&s.admin, &s.to).await.parse().expect("balance");
    assert_eq!(paid, rust_decimal::Decimal::from(before), "{backend:?}: money moved only for the 201s");
}
