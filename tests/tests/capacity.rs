//! The capacity meter on DynamoDB Local: the write units DynamoDB Local reports are AWS's
//! documented rules (`countersign_core::adapters::capacity`), so the cost benchmark may take writes
//! as reported; and the store meters every request, reads also computed (DynamoDB Local reports
//! an empty Query as free; AWS charges it the minimum).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, Put, ReturnConsumedCapacity, ScalarAttributeType, TransactWriteItem,
};
use countersign_core::adapters::capacity::{
    index_write_units, item_bytes, item_write_units, CapacityMeter, IndexEntry, Units, WriteKind, TABLE,
};
use countersign_core::ports::{Index, IndexKeys, Item, Key, Query, Store, Write};
use countersign_tests::TestStore;

type Attrs = HashMap<String, AttributeValue>;

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

/// An item of about `size` bytes, in index `all` (ALL projection) under `org`/`sort` and in
/// `keys` (KEYS_ONLY) when `keyed`.
fn item(pk: &str, size: usize, sort: &str, keyed: bool) -> Attrs {
    let mut item = HashMap::from([
        ("pk".to_string(), s(pk)),
        ("sk".to_string(), s("a")),
        ("data".to_string(), s(&"x".repeat(size))),
        ("g1".to_string(), s("org")),
        ("g1s".to_string(), s(sort)),
    ]);
    if keyed {
        item.insert("g2".into(), s("st"));
        item.insert("g2s".into(), s(pk));
    }
    item
}

/// The KEYS_ONLY index's entry of `item`: the table's keys and its own.
fn keys_entry(item: &Attrs) -> Option<IndexEntry<'_>> {
    let part = |n: &str| match item.get(n) {
        Some(AttributeValue::S(v)) => Some(v.as_str()),
        _ => None,
    };
    let projected: Attrs =
        ["pk", "sk", "g2", "g2s"].iter().filter_map(|n| item.get(*n).map(|v| (n.to_string(), v.clone()))).collect();
    Some(IndexEntry { key: (part("g2")?, part("g2s")?), bytes: item_bytes(&projected) })
}

/// The ALL index's entry of `item`: the whole item.
fn all_entry(item: &Attrs) -> Option<IndexEntry<'_>> {
    match (item.get("g1"), item.get("g1s")) {
        (Some(AttributeValue::S(p)), Some(AttributeValue::S(s))) => {
            Some(IndexEntry { key: (p.as_str(), s.as_str()), bytes: item_bytes(item) })
        }
        _ => None,
    }
}

async fn table(client: &aws_sdk_dynamodb::Client) -> String {
    let name = format!("capacity-{}", ulid::Ulid::new());
    let key = |n: &str, t: KeyType| KeySchemaElement::builder().attribute_name(n).key_type(t).build().expect("key");
    let attr = |n: &str| {
        AttributeDefinition::builder().attribute_name(n).attribute_type(ScalarAttributeType::S).build().expect("attr")
    };
    let index = |name: &str, pk: &str, sk: &str, projection: ProjectionType| {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(pk, KeyType::Hash))
            .key_schema(key(sk, KeyType::Range))
            .projection(Projection::builder().projection_type(projection).build())
            .build()
            .expect("index")
    };
    client
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .set_attribute_definitions(Some(["pk", "sk", "g1", "g1s", "g2", "g2s"].map(attr).to_vec()))
        .global_secondary_indexes(index("all", "g1", "g1s", ProjectionType::All))
        .global_secondary_indexes(index("keys", "g2", "g2s", ProjectionType::KeysOnly))
        .send()
        .await
        .expect("create table");
    name
}

/// Runs one transaction; what DynamoDB Local reported, by target.
async fn reported(client: &aws_sdk_dynamodb::Client, writes: Vec<TransactWriteItem>) -> HashMap<String, f64> {
    let out = client
        .transact_write_items()
        .set_transact_items(Some(writes))
        .return_consumed_capacity(ReturnConsumedCapacity::Indexes)
        .send()
        .await
        .expect("transaction");
    let meter = CapacityMeter::default();
    meter.reported(true, out.consumed_capacity());
    meter.take().reported.into_iter().map(|(target, u)| (target, u.write)).filter(|(_, w)| *w > 0.0).collect()
}

fn put(table: &str, item: &Attrs) -> TransactWriteItem {
    TransactWriteItem::builder()
        .put(Put::builder().table_name(table).set_item(Some(item.clone())).build().expect("put"))
        .build()
}

fn key(pk: &str) -> Attrs {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s("a"))])
}

/// What the rules say one transactional write from `before` to `after` costs, by target.
fn expected(before: Option<&Attrs>, after: Option<&Attrs>) -> HashMap<String, f64> {
    let tx = WriteKind::Transactional;
    let changed = before != after;
    let costs = [
        (TABLE, item_write_units(before.map(item_bytes), after.map(item_bytes), tx)),
        ("all", index_write_units(before.and_then(all_entry), after.and_then(all_entry), changed, tx)),
        (
            "keys",
            index_write_units(
                before.and_then(keys_entry),
                after.and_then(keys_entry),
                before.and_then(keys_entry).map(|e| e.bytes) != after.and_then(keys_entry).map(|e| e.bytes),
                tx,
            ),
        ),
    ];
    costs.into_iter().filter(|(_, w)| *w > 0.0).map(|(t, w)| (t.to_string(), w)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn dynamodb_local_reports_writes_as_aws_documents_them() {
    let client = countersign_tests::dynamo_client().await;
    let t = table(&client).await;
    let small = item("p1", 10, "s1", true);
    let big = item("p1", 3_000, "s1", true);
    let moved = item("p1", 3_000, "s2", true);
    let unkeyed = item("p1", 3_000, "s2", false);

    let steps: [(&str, Option<&Attrs>, Option<&Attrs>); 4] = [
        ("a new small item enters both indexes", None, Some(&small)),
        ("grown to 3 KB: the ALL entry is rewritten, the KEYS_ONLY one untouched", Some(&small), Some(&big)),
        ("its ALL index key moved: delete + put there", Some(&big), Some(&moved)),
        ("its KEYS_ONLY key removed: it leaves that index", Some(&moved), Some(&unkeyed)),
    ];
    for (what, before, after) in steps {
        let got = reported(&client, vec![put(&t, after.expect("after"))]).await;
        assert_eq!(got, expected(before, after), "{what}");
    }
    let delete = TransactWriteItem::builder()
        .delete(Delete::builder().table_name(&t).set_key(Some(key("p1"))).build().expect("delete"))
        .build();
    assert_eq!(reported(&client, vec![delete]).await, expected(Some(&unkeyed), None), "deleted");

    // A ConditionCheck: AWS's pages do not spell its price out; DynamoDB Local charges it as a
    // 1 KB transactional write whatever the item's size (the benchmark takes that figure).
    let seed = item("p2", 3_000, "s3", true);
    reported(&client, vec![put(&t, &seed)]).await;
    let check = TransactWriteItem::builder()
        .condition_check(
            ConditionCheck::builder()
                .table_name(&t)
                .set_key(Some(key("p2")))
                .condition_expression("attribute_exists(pk)")
                .build()
                .expect("check"),
        )
        .build();
    assert_eq!(reported(&client, vec![check]).await, HashMap::from([(TABLE.to_string(), 2.0)]));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_store_meters_every_request() {
    let store = TestStore::metered_dynamo().await;
    let TestStore::Dynamo { store: dynamo, .. } = &store else { unreachable!("dynamo") };
    let meter = dynamo.capacity();
    let key = Key::new("cap#1", "item");
    let item = Item {
        key: key.clone(),
        version: 1,
        indexes: IndexKeys { by_org: Some(("org#cap".into(), "1".into())), ..IndexKeys::default() },
        expires_at_epoch: None,
        body: serde_json::json!({"note": "x"}).into(),
        counters: &[],
        compact: false,
    };
    let token = countersign_core::ports::TxToken::generate();
    let put = |item: Item| Write::Put { item, expect: countersign_core::ports::Expect::Absent };
    dynamo.apply(&[put(item.clone())], Some(&token)).await.expect("put");
    let written = meter.take();
    assert_eq!(written.reported[TABLE], Units::writes(2.0), "a small item, transactional");
    assert_eq!(written.reported["byOrg"], Units::writes(2.0), "and its byOrg entry");
    assert!(written.computed.is_empty(), "no read");
    // A lone write without a token is a plain PutItem: half the units.
    let plain = Item { key: Key::new("cap#2", "item"), ..item };
    dynamo.apply(&[put(plain)], None).await.expect("put");
    let written = meter.take();
    assert_eq!((written.reported[TABLE], written.reported["byOrg"]), (Units::writes(1.0), Units::writes(1.0)));

    dynamo.get(&key).await.expect("get");
    dynamo.get(&Key::new("cap#none", "item")).await.expect("get");
    let read = meter.take();
    assert_eq!(read.computed[TABLE], Units::reads(2.0), "two strongly consistent reads, found or not");
    assert_eq!(read.reported[TABLE].read, 2.0);

    let empty = Query::new(Index::Due, "due#nothing", 10);
    assert!(dynamo.query(empty).await.expect("query").is_empty());
    let read = meter.take();
    assert_eq!(read.computed["due"], Units::reads(0.5), "an empty index Query costs the minimum on AWS");
    assert_eq!(read.reported.get("due").map_or(0.0, |u| u.read), 0.0, "DynamoDB Local reports it free");
    assert_eq!(read.billed()["due"], Units::reads(0.5));
}

/// As deployed, the store does not ask DynamoDB for capacity: nothing in the service reads it,
/// and it is about a tenth of a transaction's time on DynamoDB Local. Reads are still computed.
#[tokio::test(flavor = "multi_thread")]
async fn the_service_store_does_not_ask_for_capacity() {
    let store = TestStore::new(countersign_tests::Backend::Dynamo).await;
    let TestStore::Dynamo { store: dynamo, .. } = &store else { unreachable!("dynamo") };
    let key = Key::new("cap#1", "item");
    let item = Item {
        key: key.clone(),
        version: 1,
        indexes: IndexKeys::default(),
        expires_at_epoch: None,
        body: serde_json::json!({"note": "x"}).into(),
        counters: &[],
        compact: false,
    };
    let put = Write::Put { item, expect: countersign_core::ports::Expect::Absent };
    let token = countersign_core::ports::TxToken::generate();
    dynamo.apply(&[put], Some(&token)).await.expect("put");
    dynamo.get(&key).await.expect("get");
    let consumed = dynamo.capacity().take();
    assert!(consumed.reported.is_empty(), "nothing reported: {:?}", consumed.reported);
    assert_eq!(consumed.computed[TABLE], Units::reads(1.0), "the read, computed");
}
