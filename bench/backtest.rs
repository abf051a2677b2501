//! Policy backtest (issue 27): one `POST /v1/wallets/{id}/policies/backtest` over a window of
//! 10,000 payments (the most one replays), through the real router, on the embedded store and on
//! DynamoDB Local. The payments are written straight into the store (`countersign_tests::seed`,
//! 100 to a transaction: intake would take minutes on DynamoDB Local), nine in ten completed,
//! one in ten pending; the draft has a daily limit, so the day before the window is read too.

use std::time::Instant;

use chrono::{DateTime, Duration, DurationRound, Utc};
use countersign_core::domain::ids::{OrgId, WalletId};
use countersign_tests::{seed, Backend, TestApp};
use serde_json::json;

use crate::figures::Figures;

const SECTION: &str = "Policy backtest (10,000 payments in the window)";
const PAYMENTS: usize = 10_000;
const REPETITIONS: usize = 7;

/// (seconds to seed, every backtest's milliseconds, sorted).
async fn timed(backend: Backend) -> (f64, Vec<f64>) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10.00").await;
    let (_, wallet) = app.get(&format!("/v1/wallets/{}", s.from), &s.admin).await;
    let org = OrgId::parse(wallet["orgId"].as_str().expect("org")).expect("org id");
    let (from, to) = (WalletId::parse(&s.from).expect("from"), WalletId::parse(&s.to).expect("to"));
    // From noon two days ago, one payment every 5 s (about 14 hours).
    let now: DateTime<Utc> = countersign_core::ports::Clock::now(app.clock.as_ref());
    let start = now.duration_trunc(Duration::days(1)).expect("day") - Duration::days(2) + Duration::hours(12);
    let seeding = Instant::now();
    seed::payments(app.store.store(), &org, &from, &to, PAYMENTS, start, Duration::seconds(5)).await;
    let seeded = seeding.elapsed().as_secs_f64();
    let body = json!({
        "policy": {"name": "cap", "maxTransactionAmount": "25.00", "dailySpendingLimit": "20000.00"},
        "since": start.to_rfc3339(), "until": now.to_rfc3339(),
    });
    let path = format!("/v1/wallets/{}/policies/backtest", s.from);
    let mut times = Vec::new();
    for _ in 0..REPETITIONS {
        let started = Instant::now();
        let (status, reply) = app.post(&path, &s.admin, body.clone()).await;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!((status, reply["payments"].as_u64()), (200, Some(PAYMENTS as u64)), "{reply}");
    }
    times.sort_by(f64::total_cmp);
    (seeded, times)
}

pub async fn backtest_time(figures: &Figures, dynamo: bool) {
    println!("== policy backtest");
    let mut stores = vec![("embedded store", Backend::Sqlite)];
    if dynamo {
        stores.push(("DynamoDB Local", Backend::Dynamo));
    }
    for (name, backend) in stores {
        let (seeded, times) = timed(backend).await;
        let shown: Vec<String> = times.iter().map(|t| format!("{t:.0}")).collect();
        println!("{name}: seeded {PAYMENTS} payments in {seeded:.1} s; backtests (ms, sorted): {}", shown.join(", "));
        figures.plain(SECTION, format!("backtest p50, {name}"), times[times.len() / 2], "ms");
        figures.plain(SECTION, format!("backtest fastest, {name}"), times[0], "ms");
        figures.plain(
            SECTION,
            format!("payments replayed per second (p50), {name}"),
            PAYMENTS as f64 / (times[times.len() / 2] / 1000.0),
            "payments/s",
        );
    }
}
