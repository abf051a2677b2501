//! One contract suite for the store port, run against the SQLite store and DynamoDB Local.

use countersign_core::ports::{Expect, Index, IndexKeys, Item, Key, Query, StoreError, TxToken, Write};
use countersign_tests::{per_backend, Backend, TestStore};
use serde_json::json;

fn item(pk: &str, sk: &str, version: u64) -> Item {
    Item {
        key: Key::new(pk, sk),
        version,
        indexes: IndexKeys::default(),
        expires_at_epoch: None,
        body: json!({"n": version, "s": "x", "nested": {"a": [1, "b", null]}}).into(),
        counters: &[],
        compact: false,
    }
}

fn indexed(pk: &str, org_sk: &str, status: &str) -> Item {
    let mut i = item(pk, "REC", 1);
    i.indexes.by_org = Some(("ORG#o#T".into(), org_sk.into()));
    i.indexes.by_wallet = Some(("W#1".into(), format!("{status}#{org_sk}")));
    i.indexes.due = Some(("DUE".into(), org_sk.into()));
    i
}

fn put(item: Item, expect: Expect) -> Write {
    Write::Put { item, expect }
}

per_backend!(put_if_absent_then_versioned_update);
async fn put_if_absent_then_versioned_update(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let s = ts.store();
    let key = Key::new("A", "1");
    assert_eq!(s.get(&key).await.unwrap(), None, "{backend:?}");
    s.transact(vec![put(item("A", "1", 1), Expect::Absent)]).await.unwrap();
    let got = s.get(&key).await.unwrap().expect("stored");
    assert_eq!(got, item("A", "1", 1), "{backend:?}: round trip keeps body and version");
    assert_eq!(s.transact(vec![put(item("A", "1", 1), Expect::Absent)]).await, Err(StoreError::ConditionFailed));
    assert_eq!(s.transact(vec![put(item("A", "1", 3), Expect::Version(2))]).await, Err(StoreError::ConditionFailed));
    s.transact(vec![put(item("A", "1", 2), Expect::Version(1))]).await.unwrap();
    assert_eq!(s.get(&key).await.unwrap().unwrap().version, 2);
}

per_backend!(many_reads_answer_in_the_order_asked);
async fn many_reads_answer_in_the_order_asked(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let s = ts.store();
    // More DynamoDB batches (100 keys each) than it sends at once (4), with gaps and a key
    // asked twice.
    let stored: Vec<Item> = (0..650).filter(|n| n % 3 != 0).map(|n| item("M", &format!("{n:03}"), 1)).collect();
    for chunk in stored.chunks(25) {
        s.transact(chunk.iter().map(|i| put(i.clone(), Expect::Absent)).collect()).await.unwrap();
    }
    let mut keys: Vec<Key> = (0..650).rev().map(|n| Key::new("M", format!("{n:03}"))).collect();
    keys.push(Key::new("M", "001"));
    keys.push(Key::new("elsewhere", "001"));
    let got = s.get_many(&keys).await.unwrap();
    assert_eq!(got.len(), keys.len(), "{backend:?}: one answer per key asked");
    for (key, answer) in keys.iter().zip(&got) {
        let expected = stored.iter().find(|i| i.key == *key);
        assert_eq!(answer.as_ref(), expected, "{backend:?}: {key:?}");
    }
    assert_eq!(s.get_many(&[]).await.unwrap(), Vec::<Option<Item>>::new(), "{backend:?}: nothing asked");
    // Strongly consistent: a write acknowledged just before is read.
    s.transact(vec![put(item("M", "001", 2), Expect::Version(1))]).await.unwrap();
    let got = s.get_many(&[Key::new("M", "001")]).await.unwrap();
    assert_eq!(got[0].as_ref().map(|i| i.version), Some(2), "{backend:?}");
}

per_backend!(transactions_are_all_or_nothing);
async fn transactions_are_all_or_nothing(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let s = ts.store();
    s.transact(vec![put(item("B", "1", 1), Expect::Absent)]).await.unwrap();
    let failing = vec![
        put(item("B", "2", 1), Expect::Absent),
        put(item("B", "1", 2), Expect::Version(7)), // wrong version
    ];
    assert_eq!(s.transact(failing).await, Err(StoreError::ConditionFailed), "{backend:?}");
    assert_eq!(s.get(&Key::new("B", "2")).await.unwrap(), None, "{backend:?}: nothing from a failed transaction");
    // A check that fails blocks the write beside it.
    let checked = vec![
        Write::Check { key: Key::new("B", "1"), expect: Expect::Version(9) },
        put(item("B", "3", 1), Expect::Absent),
    ];
    assert_eq!(s.transact(checked).await, Err(StoreError::ConditionFailed));
    assert_eq!(s.get(&Key::new("B", "3")).await.unwrap(), None);
    // Delete with a condition.
    assert_eq!(
        s.transact(vec![Write::Delete { key: Key::new("B", "1"), expect: Expect::Version(2) }]).await,
        Err(StoreError::ConditionFailed)
    );
    s.transact(vec![Write::Delete { key: Key::new("B", "1"), expect: Expect::Version(1) }]).await.unwrap();
    assert_eq!(s.get(&Key::new("B", "1")).await.unwrap(), None);
    assert_eq!(ts.item_count().await, 0);
}

per_backend!(concurrent_conditional_writes_have_one_winner);
async fn concurrent_conditional_writes_have_one_winner(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let s = ts.store();
    s.transact(vec![put(item("C", "1", 1), Expect::Absent)]).await.unwrap();
    let attempts = (0..20).map(|_| {
        let s = s.clone();
        async move { s.transact(vec![put(item("C", "1", 2), Expect::Version(1))]).await }
    });
    let results = futures::future::join_all(attempts).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{backend:?}: {results:?}");
    assert!(results.iter().all(|r| matches!(r, Ok(()) | Err(StoreError::ConditionFailed | StoreError::Conflict))));
}

per_backend!(queries_page_in_order_with_prefix_and_bounds);
async fn queries_page_in_order_with_prefix_and_bounds(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let s = ts.store();
    let ids: Vec<String> = (0..7).map(|i| format!("id{i}")).collect();
    let writes = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            put(indexed(&format!("P#{id}"), id, if i % 2 == 0 { "PENDING" } else { "DONE" }), Expect::Absent)
        })
        .collect();
    s.transact(writes).await.unwrap();

    // Newest first, paged by position.
    let mut q = Query::new(Index::ByOrg, "ORG#o#T", 3);
    let first = s.query(q.clone()).await.unwrap();
    let sks: Vec<_> = first.iter().map(|i| i.indexes.by_org.clone().unwrap().1).collect();
    assert_eq!(sks, ["id6", "id5", "id4"], "{backend:?}");
    q.after = Some(first[2].position(Index::ByOrg));
    let second = s.query(q.clone()).await.unwrap();
    let sks: Vec<_> = second.iter().map(|i| i.indexes.by_org.clone().unwrap().1).collect();
    assert_eq!(sks, ["id3", "id2", "id1"]);

    // Prefix narrows by status.
    let mut pending = Query::new(Index::ByWallet, "W#1", 10);
    pending.sk_prefix = Some("PENDING#".into());
    assert_eq!(s.query(pending).await.unwrap().len(), 4);

    // A key range within one status (a backtest's window of ids), both ends included.
    let mut range = Query::new(Index::ByWallet, "W#1", 10);
    range.newest_first = false;
    range.sk_at_least = Some("PENDING#id1".into());
    range.sk_at_most = Some("PENDING#id4".into());
    let sks: Vec<_> = s.query(range).await.unwrap().iter().map(|i| i.indexes.by_wallet.clone().unwrap().1).collect();
    assert_eq!(sks, ["PENDING#id2", "PENDING#id4"], "{backend:?}");

    // Due reads stop at the bound, oldest first.
    let mut due = Query::new(Index::Due, "DUE", 10);
    due.newest_first = false;
    due.sk_at_most = Some("id2".into());
    let sks: Vec<_> = s.query(due).await.unwrap().iter().map(|i| i.indexes.due.clone().unwrap().1).collect();
    assert_eq!(sks, ["id0", "id1", "id2"]);

    // Primary partition reads by sort-key prefix.
    s.transact(vec![
        put(item("WALLET#w", "POLICY#1", 1), Expect::Absent),
        put(item("WALLET#w", "TXN#1", 1), Expect::Absent),
    ])
    .await
    .unwrap();
    let mut policies = Query::new(Index::Primary, "WALLET#w", 10);
    policies.sk_prefix = Some("POLICY#".into());
    assert_eq!(s.query(policies).await.unwrap().len(), 1);
}

per_backend!(removing_index_keys_removes_the_item_from_the_index);
async fn removing_index_keys_removes_the_item_from_the_index(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let s = ts.store();
    s.transact(vec![put(indexed("D#1", "a", "PENDING"), Expect::Absent)]).await.unwrap();
    let mut updated = indexed("D#1", "a", "PENDING");
    updated.version = 2;
    updated.indexes.due = None;
    s.transact(vec![put(updated, Expect::Version(1))]).await.unwrap();
    let due = s.query(Query::new(Index::Due, "DUE", 10)).await.unwrap();
    assert!(due.is_empty(), "{backend:?}: sparse index must drop the item");
}

per_backend!(an_update_moves_only_the_index_entries_that_change);
async fn an_update_moves_only_the_index_entries_that_change(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let s = ts.store();
    s.transact(vec![put(indexed("U#1", "a", "PENDING"), Expect::Absent)]).await.unwrap();
    // by_org stays put, by_wallet moves to another sort key, due to another partition with
    // the same sort key, by_status is added.
    let mut updated = indexed("U#1", "a", "DONE");
    updated.version = 2;
    updated.indexes.by_status = Some(("ORG#o#T#DONE".into(), "a".into()));
    updated.indexes.due = Some(("DUE#2".into(), "a".into()));
    updated.body = json!({"n": 2, "moved": true}).into();
    // A stale version changes nothing.
    assert_eq!(s.transact(vec![put(updated.clone(), Expect::Version(5))]).await, Err(StoreError::ConditionFailed));
    let mut absent = updated.clone();
    absent.key = Key::new("U#missing", "REC");
    assert_eq!(s.transact(vec![put(absent, Expect::Version(1))]).await, Err(StoreError::ConditionFailed));
    let mut was_pending = Query::new(Index::ByWallet, "W#1", 10);
    was_pending.sk_prefix = Some("PENDING#".into());
    assert_eq!(s.query(was_pending.clone()).await.unwrap().len(), 1, "{backend:?}");
    s.transact(vec![put(updated.clone(), Expect::Version(1))]).await.unwrap();
    assert!(s.query(was_pending).await.unwrap().is_empty(), "{backend:?}: left its old sort key");
    assert!(
        s.query(Query::new(Index::Due, "DUE", 10)).await.unwrap().is_empty(),
        "{backend:?}: left its old partition"
    );
    for index in [Index::ByOrg, Index::ByWallet, Index::Due] {
        let pk = updated.indexes.get(index).expect("indexed").0.clone();
        let found = s.query(Query::new(index, pk, 10)).await.unwrap();
        assert_eq!(found, vec![updated.clone()], "{backend:?}: {index:?} answers the new body once");
    }
    let found = s.query(Query::new(Index::ByStatus, "ORG#o#T#DONE", 10)).await.unwrap();
    assert_eq!(found, vec![updated.clone()], "{backend:?}: added to by_status");
    assert_eq!(s.get(&updated.key).await.unwrap(), Some(updated), "{backend:?}");
}

/// The template defines exactly the indexes the adapter queries, with the same key attributes.
#[test]
fn template_indexes_match_the_adapter() {
    let mut template = countersign_tests::template::template_indexes();
    template.sort();
    let mut code: Vec<(String, String, String)> = countersign_core::adapters::dynamodb::INDEXES
        .iter()
        .map(|(_, name, pk, sk)| (name.to_string(), pk.to_string(), sk.to_string()))
        .collect();
    code.sort();
    assert_eq!(template, code);
}

per_backend!(a_resend_with_the_same_token_applies_once);
async fn a_resend_with_the_same_token_applies_once(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let s = ts.store();
    let token = TxToken::generate();
    let writes = vec![put(item("T", "1", 1), Expect::Absent), put(item("T", "2", 1), Expect::Absent)];
    s.apply(&writes, Some(&token)).await.unwrap();
    // The answer was lost; the same writes with the same token succeed without applying again.
    assert_eq!(s.apply(&writes, Some(&token)).await, Ok(()), "{backend:?}");
    assert_eq!(s.get(&Key::new("T", "1")).await.unwrap().map(|i| i.version), Some(1));
    // A new token is a new transaction: its conditions are checked again.
    assert_eq!(s.apply(&writes, Some(&TxToken::generate())).await, Err(StoreError::ConditionFailed), "{backend:?}");
    // A transaction that failed under its token reports the failure.
    let failed = TxToken::generate();
    let bump = vec![put(item("T", "1", 2), Expect::Version(5))];
    assert_eq!(s.apply(&bump, Some(&failed)).await, Err(StoreError::ConditionFailed));
}

per_backend!(concurrent_plans_beside_failing_ones_commit);
/// Many plans at once (on SQLite, committed together in few batches): the ones whose condition
/// fails write nothing, the others all commit.
async fn concurrent_plans_beside_failing_ones_commit(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let s = ts.store();
    let attempts = (0..40).map(|i| {
        let s = s.clone();
        async move {
            let mut writes = vec![put(item(&format!("G#{i}"), "1", 1), Expect::Absent)];
            if i % 5 == 0 {
                // Its second write expects an item that does not exist.
                writes.push(put(item(&format!("G#missing{i}"), "1", 2), Expect::Version(1)));
            }
            (i, s.apply(&writes, Some(&TxToken::generate())).await)
        }
    });
    for (i, result) in futures::future::join_all(attempts).await {
        let stored = s.get(&Key::new(format!("G#{i}"), "1")).await.unwrap();
        if i % 5 == 0 {
            assert_eq!(result, Err(StoreError::ConditionFailed), "{backend:?}: plan {i}");
            assert_eq!(stored, None, "{backend:?}: plan {i} wrote nothing");
        } else {
            assert_eq!(result, Ok(()), "{backend:?}: plan {i}");
            assert_eq!(stored.map(|i| i.version), Some(1), "{backend:?}: plan {i}");
        }
    }
}

per_backend!(concurrent_sends_with_one_token_apply_once);
/// The same transaction sent many times at once under one token (resends racing the first
/// send): applied once, and no send is told its condition failed.
async fn concurrent_sends_with_one_token_apply_once(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let s = ts.store();
    s.transact(vec![put(item("K", "1", 1), Expect::Absent)]).await.unwrap();
    let token = TxToken::generate();
    let writes = vec![put(item("K", "1", 2), Expect::Version(1)), put(item("K", "2", 1), Expect::Absent)];
    let sends = (0..10).map(|_| {
        let (s, writes, token) = (s.clone(), writes.clone(), token.clone());
        async move { s.apply(&writes, Some(&token)).await }
    });
    let results = futures::future::join_all(sends).await;
    // DynamoDB answers a send racing one still in progress as ambiguous: resent, it succeeds.
    assert!(results.iter().all(|r| matches!(r, Ok(()) | Err(StoreError::Ambiguous(_)))), "{backend:?}: {results:?}");
    assert!(results.iter().any(Result::is_ok), "{backend:?}: {results:?}");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(s.apply(&writes, Some(&token)).await, Ok(()), "{backend:?}: a later resend");
    assert_eq!(s.get(&Key::new("K", "1")).await.unwrap().map(|i| i.version), Some(2), "{backend:?}");
}

per_backend!(an_acknowledged_write_is_seen_by_every_later_read);
/// Reads run on other connections than the writer (SQLite) or replicas (DynamoDB's strongly
/// consistent reads): a read that starts after the write was acknowledged sees it.
async fn an_acknowledged_write_is_seen_by_every_later_read(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let s = ts.store();
    let rounds = (0..30).map(|i| {
        let s = s.clone();
        async move {
            let key = Key::new(format!("V#{i}"), "1");
            for version in 1..=3u64 {
                let expect = if version == 1 { Expect::Absent } else { Expect::Version(version - 1) };
                s.apply(&[put(item(&key.pk, "1", version), expect)], None).await.unwrap();
                assert_eq!(s.get(&key).await.unwrap().map(|i| i.version), Some(version), "{backend:?}");
            }
        }
    });
    futures::future::join_all(rounds).await;
}

fn wallet_like(pk: &str) -> Item {
    Item {
        body: json!({"balance": "10.00", "count": "0", "frozenAt": null, "day": "2026-12-05", "name": "w"}).into(),
        counters: &["balance", "count"],
        ..item(pk, "W", 1)
    }
}

fn field(item: &Item, name: &str) -> serde_json::Value {
    item.body.value().expect("json")[name].clone()
}

fn decimal(item: &Item, name: &str) -> rust_decimal::Decimal {
    field(item, name).as_str().expect("a decimal string").parse().expect("decimal")
}

fn d(text: &str) -> rust_decimal::Decimal {
    text.parse().expect("decimal")
}

per_backend!(adjustments_move_counters_in_place_under_guards);
async fn adjustments_move_counters_in_place_under_guards(backend: Backend) {
    use countersign_core::ports::{Adjustment, Guard};
    let ts = TestStore::new(backend).await;
    let s = ts.store();
    let key = Key::new("ADJ", "W");
    s.transact(vec![put(wallet_like("ADJ"), Expect::Absent)]).await.unwrap();
    let debit = |amount: &str| Adjustment {
        add: vec![("balance", -d(amount)), ("count", d("1"))],
        set: vec![("day", json!("2026-12-06"))],
        guards: vec![Guard::AtLeast("balance", d(amount)), Guard::Is("frozenAt", serde_json::Value::Null)],
    };
    let adjust = |adjustment| Write::Adjust { key: key.clone(), adjustment };
    s.transact(vec![adjust(debit("2.50"))]).await.unwrap();
    let got = s.get(&key).await.unwrap().expect("stored");
    assert_eq!((decimal(&got, "balance"), decimal(&got, "count")), (d("7.50"), d("1")), "{backend:?}");
    assert_eq!((field(&got, "day"), field(&got, "name"), got.version), (json!("2026-12-06"), json!("w"), 2));

    // A guard that fails refuses the whole transaction; so does an item that is not there.
    let create = put(item("ADJ", "OTHER", 1), Expect::Absent);
    assert_eq!(s.transact(vec![create.clone(), adjust(debit("7.51"))]).await, Err(StoreError::ConditionFailed));
    let elsewhere = Write::Adjust { key: Key::new("ADJ", "NONE"), adjustment: debit("1") };
    assert_eq!(s.transact(vec![create.clone(), elsewhere]).await, Err(StoreError::ConditionFailed));
    let guarded = |guards| Write::Require { key: key.clone(), guards };
    let wrong_day = guarded(vec![Guard::Is("day", json!("2026-12-05"))]);
    assert_eq!(s.transact(vec![create.clone(), wrong_day]).await, Err(StoreError::ConditionFailed));
    assert_eq!(s.get(&Key::new("ADJ", "OTHER")).await.unwrap(), None, "{backend:?}: nothing applied");
    let unchanged = s.get(&key).await.unwrap().expect("stored");
    assert_eq!((decimal(&unchanged, "balance"), unchanged.version), (d("7.50"), 2));

    // Guards that hold let it commit (a check writes nothing); the balance may reach zero.
    let holds = guarded(vec![Guard::Below("balance", d("7.51")), Guard::AtMost("count", d("1"))]);
    s.transact(vec![create, holds]).await.unwrap();
    assert_eq!(s.get(&key).await.unwrap().expect("stored").version, 2, "{backend:?}: a check writes nothing");
    s.transact(vec![adjust(debit("7.50"))]).await.unwrap();
    let got = s.get(&key).await.unwrap().expect("stored");
    assert_eq!((decimal(&got, "balance"), decimal(&got, "count"), got.version), (d("0"), d("2"), 3), "{backend:?}");

    // A frozen record refuses; a whole rewrite at its version keeps the counters it carries.
    let mut frozen = wallet_like("ADJ");
    frozen.version = 4;
    frozen.body = json!({"balance": "5.00", "count": "2", "frozenAt": "2026-12-06T00:00:00Z", "name": "w"}).into();
    s.transact(vec![put(frozen, Expect::Version(3))]).await.unwrap();
    assert_eq!(s.transact(vec![adjust(debit("1.00"))]).await, Err(StoreError::ConditionFailed));
    let got = s.get(&key).await.unwrap().expect("stored");
    assert_eq!((decimal(&got, "balance"), got.version), (d("5.00"), 4), "{backend:?}");
}

per_backend!(concurrent_adjustments_all_apply_and_never_overdraw);
async fn concurrent_adjustments_all_apply_and_never_overdraw(backend: Backend) {
    use countersign_core::ports::{Adjustment, Guard};
    let ts = TestStore::new(backend).await;
    let s = ts.store();
    s.transact(vec![put(wallet_like("HOT"), Expect::Absent)]).await.unwrap();
    let key = Key::new("HOT", "W");
    // 30 debits of 1.00 from 10.00, each resent while it only collided with another in flight.
    let attempts = (0..30).map(|_| {
        let (s, key) = (s.clone(), key.clone());
        async move {
            let debit = Adjustment {
                add: vec![("balance", d("-1.00"))],
                guards: vec![Guard::AtLeast("balance", d("1.00"))],
                ..Default::default()
            };
            loop {
                match s.transact(vec![Write::Adjust { key: key.clone(), adjustment: debit.clone() }]).await {
                    Err(StoreError::Conflict) => tokio::time::sleep(std::time::Duration::from_millis(3)).await,
                    other => return other,
                }
            }
        }
    });
    let results = futures::future::join_all(attempts).await;
    let applied = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(applied, 10, "{backend:?}: {results:?}");
    assert!(results.iter().all(|r| matches!(r, Ok(()) | Err(StoreError::ConditionFailed))), "{results:?}");
    let got = s.get(&key).await.unwrap().expect("stored");
    assert_eq!((decimal(&got, "balance"), got.version), (d("0"), 11), "{backend:?}");
}

per_backend!(compact_items_round_trip_and_are_listed);
async fn compact_items_round_trip_and_are_listed(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let s = ts.store();
    let mut event = indexed("EVT", "0001", "PENDING");
    event.compact = true;
    event.body =
        json!({"type": "payment.completed", "data": {"amount": "1.00", "note": null, "list": [1, "a"]}}).into();
    s.transact(vec![put(event.clone(), Expect::Absent)]).await.unwrap();
    let got = s.get(&Key::new("EVT", "REC")).await.unwrap().expect("stored");
    assert_eq!((got.body, got.version), (event.body.clone(), 1), "{backend:?}");
    let listed = s.query(Query::new(Index::Due, "DUE", 10)).await.unwrap();
    assert_eq!(listed.iter().map(|i| &i.body).collect::<Vec<_>>(), vec![&event.body], "{backend:?}");
    let mut marked = event.clone();
    (marked.version, marked.indexes.due) = (2, None);
    s.transact(vec![put(marked, Expect::Version(1))]).await.unwrap();
    assert!(s.query(Query::new(Index::Due, "DUE", 10)).await.unwrap().is_empty(), "{backend:?}: left the due index");
}
