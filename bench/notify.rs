//! Notifications (issue 24): what planning and posting Slack messages costs held intake, beside
//! its floor (the same intake by an organisation without Slack, in the same run, rounds
//! alternating), and how fast requests reach Slack end to end (commit → outbox relay → plan →
//! `chat.postMessage` to a local fake of Slack's Web API, as `countersign serve` wires it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use countersign_core::adapters::slack_api::HttpSlackApi;
use countersign_core::domain::encryption::EncryptionKey;
use countersign_core::service::Settings;
use countersign_tests::fake_slack::FakeSlack;
use countersign_tests::{ManualClock, TestApp, TestStore};
use serde_json::json;

use crate::figures::{Figure, Figures};
use crate::payer::{rate, Payer};

const SECTION: &str = "Notifications: Slack requests (embedded store, concurrency 16)";
const PER_ROUND: usize = 1_000;
const ROUNDS: usize = 3;
const CONCURRENCY: usize = 16;

async fn org(app: &TestApp, slack: bool) -> Payer {
    let admin = app.org(if slack { "with slack" } else { "without slack" }).await;
    let agent = app.key(&admin, &["payments:write", "payments:read"]).await;
    let (from, to) = (app.wallet(&admin, "USD").await, app.wallet(&admin, "USD").await);
    app.fund(&admin, &from, "100000000.00").await;
    app.policy(&admin, &from, json!({"name": "review", "requireReviewAbove": "1.00"})).await;
    if slack {
        let body = json!({"botToken": "xoxb-bench", "signingSecret": "0123456789abcdef0123456789abcdef",
                          "defaultChannel": "C0BENCH"});
        let (status, body) = app.call("PUT", "/v1/integrations/slack", Some(&admin), Some(body)).await;
        assert_eq!(status, 200, "{body}");
    }
    Payer { agent, from, to }
}

pub async fn notify_rates(figures: &Figures) {
    println!("== notifications");
    let slack = FakeSlack::start().await;
    let dir = std::env::temp_dir().join(format!("countersign-bench-notify-{}", ulid::Ulid::new()));
    let store = TestStore::Sqlite(countersign_core::adapters::sqlite::SqliteStore::open_dir(&dir).expect("store"));
    let clock = ManualClock::new();
    let settings = Settings {
        operator_key_hash: Some(countersign_core::domain::org::hash_secret(countersign_tests::OPERATOR_KEY)),
        encryption_key: Some(Arc::new(EncryptionKey::parse(&EncryptionKey::generate_text()).expect("key"))),
        ..Settings::default()
    };
    let api = HttpSlackApi::new(slack.base_url.clone(), Duration::from_secs(5)).expect("slack client");
    let (service, queue) = countersign_core::local::wire_with(store.store(), clock.clone(), settings, |w| {
        w.slack = Arc::new(api);
    })
    .expect("wiring");
    tokio::spawn(countersign_core::local::run_queue_worker(service.clone(), queue, Duration::from_millis(20)));
    let app = TestApp::serve(store, clock, (*service).clone()).await;
    let (plain, connected) = (org(&app, false).await, org(&app, true).await);

    let (mut without, mut with, mut posted) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        without.push(rate(&app, &plain, "10.00", 202, PER_ROUND, CONCURRENCY).await);
        let before = slack.calls("chat.postMessage").len();
        let started = Instant::now();
        with.push(rate(&app, &connected, "10.00", 202, PER_ROUND, CONCURRENCY).await);
        let deadline = Instant::now() + Duration::from_secs(120);
        while slack.calls("chat.postMessage").len() < before + PER_ROUND {
            assert!(Instant::now() < deadline, "round {round}: not every request reached Slack");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        posted.push(PER_ROUND as f64 / started.elapsed().as_secs_f64());
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let rounds = |v: &[f64]| v.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(", ");
    println!("rounds without Slack: {}; with Slack: {}; posted: {}", rounds(&without), rounds(&with), rounds(&posted));
    let floor = Some(("the same intake without Slack".to_string(), mean(&without)));
    figures.plain(SECTION, "held intake, organisation without Slack (floor)", mean(&without), "req/s");
    figures.add(Figure {
        section: SECTION,
        name: "held intake, organisation with Slack".into(),
        value: mean(&with),
        unit: "req/s",
        target: "",
        floor: floor.clone(),
    });
    figures.add(Figure {
        section: SECTION,
        name: "requests posted to Slack, first request to last post".into(),
        value: mean(&posted),
        unit: "msgs/s",
        target: "",
        floor,
    });
    let _ = std::fs::remove_dir_all(&dir);
}
