//! The embedded store alone, in-process (no HTTP): concurrent reads, group-committed
//! conditional writes at concurrency 16, and one record rewritten by 16 writers in turn. What
//! the local server's figures are made of, on the same disk (synchronous=FULL).

use std::sync::Arc;
use std::time::{Duration, Instant};

use countersign_core::adapters::sqlite::SqliteStore;
use countersign_core::ports::{Expect, IndexKeys, Item, Key, Store, TxToken, Write};
use futures::stream::{self, StreamExt};
use serde_json::json;

use crate::figures::{Figure, Figures, Run};

const SECTION: &str = "Embedded store in-process (SQLite, synchronous=FULL), concurrency 16";

fn item(pk: String, version: u64) -> Item {
    Item {
        key: Key::new(pk, "R"),
        version,
        indexes: IndexKeys { by_org: Some(("ORG#bench".into(), ulid::Ulid::new().to_string())), ..Default::default() },
        expires_at_epoch: None,
        body: json!({"amount": "10.00", "currency": "USD", "status": "PENDING", "note": "a typical record body"})
            .into(),
        counters: &[],
        compact: false,
    }
}

async fn timed<F, Fut>(n: usize, f: F) -> Run
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    let latencies: Vec<Duration> = stream::iter(0..n)
        .map(|i| {
            let fut = f(i);
            async move {
                let t = Instant::now();
                fut.await;
                t.elapsed()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    Run::new(latencies, started.elapsed(), 0)
}

pub async fn embedded(figures: &Figures, raw_rate: f64) {
    let dir = std::env::temp_dir().join(format!("countersign-bench-store-{}", std::process::id()));
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_dir(&dir).expect("store"));
    println!("== embedded store in-process ({})", dir.display());
    let floor = Some(("raw SQLite fsynced tx/s, 1 writer".to_string(), raw_rate));
    let f = |name: &str, value: f64, unit: &'static str, floor: Option<(String, f64)>| {
        figures.add(Figure { section: SECTION, name: name.into(), value, unit, target: "", floor })
    };

    // Plans of 5 creates each, as a held intake's.
    let writes = timed(20_000, |i| {
        let store = store.clone();
        async move {
            let writes: Vec<Write> =
                (0..5).map(|k| Write::Put { item: item(format!("P#{i}#{k}"), 1), expect: Expect::Absent }).collect();
            store.apply(&writes, Some(&TxToken::generate())).await.expect("apply");
        }
    })
    .await;
    f("5-item conditional transactions (group commit)", writes.rate(), "tx/s", floor.clone());
    f("5-item conditional transaction p99", writes.p99(), "ms", None);

    let reads = timed(100_000, |i| {
        let store = store.clone();
        async move {
            store.get(&Key::new(format!("P#{}#0", i % 20_000), "R")).await.expect("get");
        }
    })
    .await;
    f("point reads (reader pool)", reads.rate(), "reads/s", None);
    f("point read p99", reads.p99(), "ms", None);

    // One record, 16 writers: read, then rewrite conditioned on the version read; lost races retry.
    store.apply(&[Write::Put { item: item("HOT".into(), 1), expect: Expect::Absent }], None).await.expect("seed");
    let lost = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let hot = timed(2_000, |_| {
        let (store, lost) = (store.clone(), lost.clone());
        async move {
            loop {
                let current = store.get(&Key::new("HOT", "R")).await.expect("get").expect("hot");
                let next = Write::Put {
                    item: item("HOT".into(), current.version + 1),
                    expect: Expect::Version(current.version),
                };
                match store.apply(&[next], None).await {
                    Ok(()) => return,
                    Err(_) => {
                        lost.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        }
    })
    .await;
    f("one record rewritten by 16 racing writers (no lanes)", hot.rate(), "tx/s", floor);
    f("lost races per rewrite", lost.load(std::sync::atomic::Ordering::Relaxed) as f64 / 2_000.0, "retries", None);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
