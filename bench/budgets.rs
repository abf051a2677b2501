//! Budgets (issue 25): what a key's budgets cost intake, beside the floor (the same intake by a
//! key without budgets, in the same run, rounds alternating): held intake (each payment reserves
//! in the key's day and month counters) and a hot wallet's auto-executed payments (each one spends
//! in them), on the embedded store at concurrency 16, as `countersign serve` runs them.

use countersign_tests::{TestApp, TestStore};
use serde_json::json;

use crate::figures::{Figure, Figures};
use crate::payer::{rate, Payer};

const SECTION: &str = "Budgets per key (embedded store, concurrency 16)";
const PER_ROUND: usize = 1_000;
const ROUNDS: usize = 3;
const CONCURRENCY: usize = 16;

async fn org(app: &TestApp, budgeted: bool) -> Payer {
    let admin = app.org(if budgeted { "budgeted" } else { "unbudgeted" }).await;
    let budgets = if budgeted {
        json!([{"window": "day", "limit": "1000000000.00", "currency": "USD"},
               {"window": "month", "limit": "1000000000.00", "currency": "USD", "onExceed": "deny"}])
    } else {
        json!([])
    };
    let body = json!({"name": "agent", "permissions": ["payments:write", "payments:read"], "budgets": budgets});
    let (status, key) = app.post("/v1/api-keys", &admin, body).await;
    assert_eq!(status, 201, "{key}");
    let agent = key["secret"].as_str().expect("secret").to_string();
    let (from, to) = (app.wallet(&admin, "USD").await, app.wallet(&admin, "USD").await);
    app.fund(&admin, &from, "100000000.00").await;
    app.policy(&admin, &from, json!({"name": "review", "requireReviewAbove": "1.00"})).await;
    Payer { agent, from, to }
}

pub async fn budget_rates(figures: &Figures) {
    println!("== budgets");
    let dir = std::env::temp_dir().join(format!("countersign-bench-budgets-{}", ulid::Ulid::new()));
    let store = TestStore::Sqlite(countersign_core::adapters::sqlite::SqliteStore::open_dir(&dir).expect("store"));
    // The service `countersign serve` runs: the outbox relay, the store's queue.
    let clock = countersign_tests::ManualClock::new();
    let settings = countersign_core::service::Settings {
        operator_key_hash: Some(countersign_core::domain::org::hash_secret(countersign_tests::OPERATOR_KEY)),
        ..countersign_core::service::Settings::default()
    };
    let (service, _queue) = countersign_core::local::wire(store.store(), clock.clone(), settings).expect("wiring");
    let app = TestApp::serve(store, clock, (*service).clone()).await;
    let (plain, budgeted) = (org(&app, false).await, org(&app, true).await);
    let mut rates: [Vec<f64>; 4] = Default::default();
    for _ in 0..ROUNDS {
        rates[0].push(rate(&app, &plain, "10.00", 202, PER_ROUND, CONCURRENCY).await);
        rates[1].push(rate(&app, &budgeted, "10.00", 202, PER_ROUND, CONCURRENCY).await);
        rates[2].push(rate(&app, &plain, "0.50", 201, PER_ROUND, CONCURRENCY).await);
        rates[3].push(rate(&app, &budgeted, "0.50", 201, PER_ROUND, CONCURRENCY).await);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let rounds = |v: &[f64]| v.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(", ");
    println!(
        "held without budgets: {}; with: {}; hot wallet without: {}; with: {}",
        rounds(&rates[0]),
        rounds(&rates[1]),
        rounds(&rates[2]),
        rounds(&rates[3])
    );
    for (name, floor, with) in
        [("held intake", &rates[0], &rates[1]), ("hot wallet, executed at once", &rates[2], &rates[3])]
    {
        figures.plain(SECTION, format!("{name}, key without budgets (floor)"), mean(floor), "req/s");
        figures.add(Figure {
            section: SECTION,
            name: format!("{name}, key with a day and a month budget"),
            value: mean(with),
            unit: "req/s",
            target: "",
            floor: Some((format!("{name} without budgets"), mean(floor))),
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
}
