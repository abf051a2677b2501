//! Floors: what the figures are read against. Raw SQLite on the same disk (one writer, one row
//! per fsynced transaction, as the local server's data directory would see it), and DynamoDB
//! Local's own latency for one GetItem and one single-item TransactWriteItems.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use futures::stream::{self, StreamExt};

use crate::figures::{Figures, Run};

const SECTION: &str = "Floors";

pub struct SqliteFloor {
    pub rate: f64,
}

/// Single-row transactions, WAL and synchronous=FULL, one after another for `for_how_long`.
pub fn raw_sqlite(figures: &Figures, for_how_long: Duration) -> SqliteFloor {
    let dir = std::env::temp_dir().join(format!("countersign-bench-raw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let conn = rusqlite::Connection::open(dir.join("raw.db")).expect("open");
    conn.pragma_update(None, "journal_mode", "WAL").expect("wal");
    conn.pragma_update(None, "synchronous", "FULL").expect("full");
    conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)").expect("table");
    let mut latencies = Vec::new();
    let started = Instant::now();
    let mut k = 0i64;
    while started.elapsed() < for_how_long {
        let t = Instant::now();
        conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
        conn.execute("INSERT INTO t (k, v) VALUES (?1, 'x')", [k]).expect("insert");
        conn.execute_batch("COMMIT").expect("commit");
        latencies.push(t.elapsed());
        k += 1;
    }
    let run = Run::new(latencies, started.elapsed(), 0);
    drop(conn);
    let _ = std::fs::remove_dir_all(&dir);
    figures.plain(SECTION, "raw SQLite fsynced single-row tx rate (same disk)", run.rate(), "tx/s");
    figures.plain(SECTION, "raw SQLite fsynced single-row tx p50", run.p50(), "ms");
    SqliteFloor { rate: run.rate() }
}

pub struct DynamoFloor {
    pub get_p50_ms: f64,
    pub transact_p50_ms: f64,
    /// Transactions shaped like an executed payment's (8 fresh items), 16 at a time.
    pub payment_shaped_rate_16: f64,
}

fn key(pk: &str) -> std::collections::HashMap<String, AttributeValue> {
    [("pk".to_string(), AttributeValue::S(pk.into())), ("sk".to_string(), AttributeValue::S("R".into()))].into()
}

fn transact(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: String,
) -> aws_sdk_dynamodb::operation::transact_write_items::builders::TransactWriteItemsFluentBuilder {
    transact_n(client, table, pk, 1)
}

/// One transaction of `n` conditional puts of fresh items (`<pk>#<i>`), each ~300 bytes.
fn transact_n(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: String,
    n: usize,
) -> aws_sdk_dynamodb::operation::transact_write_items::builders::TransactWriteItemsFluentBuilder {
    let mut request = client.transact_write_items();
    for i in 0..n {
        let mut item = key(&if n == 1 { pk.clone() } else { format!("{pk}#{i}") });
        item.insert("v".into(), AttributeValue::N("1".into()));
        if n > 1 {
            item.insert("data".into(), AttributeValue::S("x".repeat(300)));
        }
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .expect("put");
        request = request.transact_items(TransactWriteItem::builder().put(put).build());
    }
    request
}

/// One request at a time (latency), then single-item transactions 16 at a time (rate).
pub async fn raw_dynamo(figures: &Figures, client: &aws_sdk_dynamodb::Client, table: &str) -> DynamoFloor {
    for i in 0..20 {
        transact(client, table, format!("warm#{i}")).send().await.expect("warm");
    }
    let mut gets = Vec::new();
    for _ in 0..300 {
        let t = Instant::now();
        client
            .get_item()
            .table_name(table)
            .set_key(Some(key("warm#1")))
            .consistent_read(true)
            .send()
            .await
            .expect("get");
        gets.push(t.elapsed());
    }
    let gets = Run::new(gets, Duration::from_secs(1), 0);
    let mut writes = Vec::new();
    for i in 0..300 {
        let t = Instant::now();
        transact(client, table, format!("seq#{i}")).send().await.expect("transact");
        writes.push(t.elapsed());
    }
    let writes = Run::new(writes, Duration::from_secs(1), 0);
    let started = Instant::now();
    let latencies: Vec<Duration> = stream::iter(0..2000)
        .map(|i| async move {
            let t = Instant::now();
            transact(client, table, format!("par#{i}")).send().await.expect("transact");
            t.elapsed()
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let parallel = Run::new(latencies, started.elapsed(), 0);
    // The ceiling for a payment's transaction on this emulator: 8 items, none shared.
    let started = Instant::now();
    let latencies: Vec<Duration> = stream::iter(0..600)
        .map(|i| async move {
            let t = Instant::now();
            transact_n(client, table, format!("pay#{i}"), 8).send().await.expect("transact");
            t.elapsed()
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let payment_shaped = Run::new(latencies, started.elapsed(), 0);
    figures.plain(SECTION, "DynamoDB Local GetItem p50 (one at a time)", gets.p50(), "ms");
    figures.plain(SECTION, "DynamoDB Local TransactWriteItems p50 (1 item, one at a time)", writes.p50(), "ms");
    figures.plain(SECTION, "DynamoDB Local TransactWriteItems rate (1 item, 16 at a time)", parallel.rate(), "tx/s");
    figures.plain(
        SECTION,
        "DynamoDB Local TransactWriteItems rate (8 fresh items, as a payment's, 16 at a time)",
        payment_shaped.rate(),
        "tx/s",
    );
    DynamoFloor { get_p50_ms: gets.p50(), transact_p50_ms: writes.p50(), payment_shaped_rate_16: payment_shaped.rate() }
}
