//! Benchmarks that print figures (never assertions), each beside its floor:
//! 1. floors: raw SQLite fsynced transactions on this disk, DynamoDB Local's own latency;
//! 2. the embedded store in-process, then the real local server binary (`--server <path>`) under load at concurrency 16: held
//!    intake, approve, one hot wallet, beside `/health` on the same server;
//! 3. DynamoDB requests and sequential round trips per operation, measured on the wire by a
//!    counting proxy in front of DynamoDB Local (`COUNTERSIGN_TEST_DYNAMODB_ENDPOINT`), and one
//!    hot wallet's sustained rate there;
//! 4. the event figures: sweep reads, backlog, fan-out, hanging-peer isolation, and another
//!    organisation's delivery while one endpoint hangs (`--only org-isolation` runs it alone).
//!
//! `--figures <file>` appends every figure as a tab-separated row for `bench/report.py`.
//! 5. sealing the audit log: entries sealed per second by one sweep, beside hashing alone.
//!
//! 6. notifications: held intake with Slack connected beside the same intake without it, and how
//!    fast requests reach (a fake of) Slack end to end.
//!
//! 7. cost per operation: DynamoDB capacity (table and each index, reads and writes) and the
//!    on-demand price per 1M operations, on DynamoDB Local (bench/cost.rs).
//!
//! 8. policy backtest: one backtest over 10,000 payments, on the embedded store and on DynamoDB
//!    Local (bench/backtest.rs).
//!
//! `--only <floors|store|local|dynamo|events|org-isolation|seal|notify|budgets|cost|backtest>` (repeatable) runs some sections.
//! `make-table` creates a table on DynamoDB Local with one organization in it and prints, as JSON,
//! its name, an agent key and two wallets (for `init_time.py`'s first invokes).

mod backtest;
mod budgets;
mod cost;
mod dynamo;
mod events;
mod figures;
mod floors;
mod local;
mod notify;
mod payer;
mod seal;
mod store;
mod wrk;

use std::time::Duration;

use countersign_tests::{Backend, TestStore};

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (mut server, mut out, mut only) = (None, None, Vec::new());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--server" => server = args.next(),
            "--figures" => out = args.next(),
            "--only" => only.extend(args.next()),
            "make-table" => {
                println!("{}", dynamo::seeded_table().await);
                return;
            }
            other => panic!("unknown argument {other}"),
        }
    }
    let runs = |section: &str| only.is_empty() || only.iter().any(|o| o == section);
    let figures = figures::Figures::default();

    let sqlite = floors::raw_sqlite(&figures, Duration::from_secs(3));
    let endpoint = std::env::var(countersign_tests::ENDPOINT_ENV).ok();
    let dynamo_floor = match &endpoint {
        Some(_) if runs("floors") || runs("dynamo") => {
            let TestStore::Dynamo { client, table, .. } = TestStore::new(Backend::Dynamo).await else { unreachable!() };
            Some(floors::raw_dynamo(&figures, &client, &table).await)
        }
        _ => None,
    };
    if runs("store") {
        store::embedded(&figures, sqlite.rate).await;
    }
    if runs("local") {
        match &server {
            Some(path) => local::server_throughput(path, &sqlite, &figures).await,
            None => eprintln!("--server <path to countersign> not given: skipping the local-server benchmark"),
        }
    }
    if runs("dynamo") {
        let (Some(endpoint), Some(floor)) = (&endpoint, &dynamo_floor) else {
            panic!("{} is not set: start DynamoDB Local", countersign_tests::ENDPOINT_ENV)
        };
        let proxy = countersign_tests::proxy::Proxy::start(endpoint).await;
        let auto_transaction = dynamo::requests_per_operation(&figures, &proxy, floor).await;
        dynamo::hot_wallet(&figures, floor, endpoint, &auto_transaction).await;
    }
    if runs("seal") {
        seal::seal_rate(&figures, endpoint.is_some()).await;
    }
    if runs("notify") {
        notify::notify_rates(&figures).await;
    }
    if runs("budgets") {
        budgets::budget_rates(&figures).await;
    }
    if runs("backtest") {
        backtest::backtest_time(&figures, endpoint.is_some()).await;
    }
    if runs("cost") {
        cost::cost_per_operation(&figures).await;
    }
    if runs("events") {
        events::sweep_reads(&figures).await;
        events::sweep_backlog(&figures).await;
        events::fanout_throughput(&figures).await;
        events::healthy_latency_with_hanging_peer(&figures).await;
        events::other_org_while_one_hangs(&figures).await;
    } else if only.iter().any(|o| o == "org-isolation") {
        events::other_org_while_one_hangs(&figures).await;
    }
    if let Some(path) = out {
        figures.write_tsv(&path).expect("write figures");
    }
}
