//! DynamoDB adapter: one table, four sparse GSIs, every write a conditional TransactWriteItems.
//!
//! Item layout: `pk`, `sk` (S), `v` (N, version), `data` (M, the record), `ttl` (N, optional) and
//! the index keys `gsi1pk/gsi1sk` (byOrg), `gsi2pk/gsi2sk` (byStatus), `gsi3pk/gsi3sk`
//! (byWallet), `duepk/duesk` (due), and each of the record's counters (`Item::counters`) as a
//! number `c_<field>` beside `data`, so that `Write::Adjust` is an UpdateItem that ADDs to it
//! under a condition (`c_balance >= :amount`) instead of a rewrite conditional on the version.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, KeysAndAttributes, Put, ReturnConsumedCapacity, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use futures::{StreamExt, TryStreamExt};
use serde_dynamo::aws_sdk_dynamodb_1::{from_attribute_value, to_attribute_value};

use super::capacity::CapacityMeter;
use crate::ports::{
    Adjustment, Body, Expect, Guard, Index, IndexKeys, Item, Key, Query, Store, StoreError, TxToken, Write,
};

/// Index names and their key attributes, shared with `infra/template.yaml`.
pub const INDEXES: [(Index, &str, &str, &str); 4] = [
    (Index::ByOrg, "byOrg", "gsi1pk", "gsi1sk"),
    (Index::ByStatus, "byStatus", "gsi2pk", "gsi2sk"),
    (Index::ByWallet, "byWallet", "gsi3pk", "gsi3sk"),
    (Index::Due, "due", "duepk", "duesk"),
];

/// The IAM actions this adapter's requests need, on the table and its indexes (compared with
/// each function's policy in `infra/template.yaml` by `tests/tests/iam.rs`). `get` is GetItem,
/// `get_many` is BatchGetItem, `query` is Query (table and indexes), and `transact` is
/// TransactWriteItems, which IAM
/// authorises per item: Put → PutItem, Update → UpdateItem (in-place counters), Delete →
/// DeleteItem, ConditionCheck → ConditionCheckItem (there is no `dynamodb:TransactWriteItems`
/// action).
pub const IAM_ACTIONS: &[&str] = &[
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:ConditionCheckItem",
];

/// Counters are kept beside `data` under this prefix (`c_balance`).
const COUNTER_PREFIX: &str = "c_";

/// BatchGetItem's limit of keys per request.
const BATCH_GET_MAX: usize = 100;
/// How many BatchGetItem requests one `get_many` has in flight at most.
const BATCHES_AT_ONCE: usize = 4;
/// How many times keys DynamoDB left unprocessed (throttling) are asked for again.
const UNPROCESSED_RETRIES: u32 = 8;

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    requests: Arc<AtomicU64>,
    /// Capacity consumed, as DynamoDB reports it and as computed from the items read.
    capacity: CapacityMeter,
    /// Whether requests ask DynamoDB for the capacity they consumed (`metered`).
    report_capacity: Option<ReturnConsumedCapacity>,
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn unavailable<E: std::error::Error + 'static>(e: E) -> StoreError {
    StoreError::Unavailable(DisplayErrorContext(e).to_string())
}

fn index_attrs(index: Index) -> Option<(&'static str, &'static str, &'static str)> {
    INDEXES.iter().find(|(i, ..)| *i == index).map(|(_, name, pk, sk)| (*name, *pk, *sk))
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            requests: Arc::new(AtomicU64::new(0)),
            capacity: CapacityMeter::default(),
            report_capacity: None,
        }
    }

    /// Asks DynamoDB, on every request, for the capacity it consumed per table and index
    /// (`capacity`), as the cost benchmark and its tests read it. Off in service: nothing there
    /// reads it, and DynamoDB Local spends about a tenth of a transaction's time working it out.
    pub fn metered(mut self) -> Self {
        self.report_capacity = Some(ReturnConsumedCapacity::Indexes);
        self
    }

    /// DynamoDB requests sent so far (benchmarks count requests per operation).
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Capacity consumed so far (reported only when `metered`; reads computed always).
    pub fn capacity(&self) -> &CapacityMeter {
        &self.capacity
    }

    fn count(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    fn to_attributes(&self, item: &Item) -> Result<HashMap<String, AttributeValue>, StoreError> {
        let mut map = HashMap::new();
        map.insert("pk".into(), s(&item.key.pk));
        map.insert("sk".into(), s(&item.key.sk));
        map.insert("v".into(), AttributeValue::N(item.version.to_string()));
        // DynamoDB keeps the body as a map (readable in the console, in streams and exports),
        // its counters as numbers beside it.
        let mut body = item.body.value().map_err(unavailable)?;
        if let Some(fields) = body.as_object_mut() {
            for name in item.counters {
                if let Some(serde_json::Value::String(n)) = fields.get(*name) {
                    if n.parse::<rust_decimal::Decimal>().is_ok() {
                        map.insert(format!("{COUNTER_PREFIX}{name}"), AttributeValue::N(n.clone()));
                        fields.remove(*name);
                    }
                }
            }
        }
        let data: AttributeValue = if item.compact {
            AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(deflate(item.body.as_str())?))
        } else {
            to_attribute_value(body).map_err(unavailable)?
        };
        map.insert("data".into(), data);
        if let Some(ttl) = item.expires_at_epoch {
            map.insert("ttl".into(), AttributeValue::N(ttl.to_string()));
        }
        for (index, _, pk, sk) in INDEXES {
            if let Some((ipk, isk)) = item.indexes.get(index) {
                map.insert(pk.into(), s(ipk));
                map.insert(sk.into(), s(isk));
            }
        }
        Ok(map)
    }

    /// A write's condition expression and its values (none for `Absent`).
    fn condition(expect: Expect) -> (String, Option<HashMap<String, AttributeValue>>) {
        match expect {
            Expect::Absent => ("attribute_not_exists(pk)".into(), None),
            Expect::Version(v) => {
                ("v = :expected".into(), Some(HashMap::from([(":expected".into(), AttributeValue::N(v.to_string()))])))
            }
        }
    }

    fn key_map(key: &Key) -> HashMap<String, AttributeValue> {
        HashMap::from([("pk".to_string(), s(&key.pk)), ("sk".to_string(), s(&key.sk))])
    }

    /// One BatchGetItem (strongly consistent) for up to `BATCH_GET_MAX` distinct keys, asking
    /// again for the keys DynamoDB leaves unprocessed, with a jittered backoff.
    async fn batch_get(&self, keys: &[&Key]) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::with_capacity(keys.len());
        if keys.is_empty() {
            return Ok(items);
        }
        let consistent = |keys| KeysAndAttributes::builder().set_keys(Some(keys)).consistent_read(true).build();
        let mut wanted = consistent(keys.iter().map(|k| Self::key_map(k)).collect()).map_err(unavailable)?;
        for attempt in 0..=UNPROCESSED_RETRIES {
            if attempt > 0 {
                let cap = 10u64 << attempt.min(6);
                tokio::time::sleep(std::time::Duration::from_millis(rand::random_range(1..=cap))).await;
            }
            self.count();
            let asked = wanted.keys().len();
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, wanted)
                .set_return_consumed_capacity(self.report_capacity.clone())
                .send()
                .await
                .map_err(unavailable)?;
            self.capacity.reported(false, out.consumed_capacity());
            let answered = out.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default();
            let unprocessed =
                out.unprocessed_keys.as_ref().and_then(|u| u.get(&self.table)).map_or(0, |k| k.keys().len());
            self.capacity.computed_batch(asked, &answered, unprocessed);
            for attributes in answered {
                items.push(from_attributes(attributes)?);
            }
            match out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                Some(left) if !left.keys().is_empty() => {
                    wanted = consistent(left.keys().to_vec()).map_err(unavailable)?;
                }
                _ => return Ok(items),
            }
        }
        Err(StoreError::Unavailable("BatchGetItem left keys unprocessed after retries".into()))
    }

    fn transact_item(&self, write: &Write) -> Result<TransactWriteItem, StoreError> {
        let item = match write {
            Write::Put { item, expect } => {
                let (cond, value) = Self::condition(*expect);
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(self.to_attributes(item)?))
                    .condition_expression(cond)
                    .set_expression_attribute_values(value)
                    .build()
                    .map_err(unavailable)?;
                TransactWriteItem::builder().put(put).build()
            }
            Write::Delete { key, expect } => {
                let (cond, value) = Self::condition(*expect);
                let delete = Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(Self::key_map(key)))
                    .condition_expression(cond)
                    .set_expression_attribute_values(value)
                    .build()
                    .map_err(unavailable)?;
                TransactWriteItem::builder().delete(delete).build()
            }
            Write::Check { key, expect } => {
                let (cond, value) = Self::condition(*expect);
                let check = ConditionCheck::builder()
                    .table_name(&self.table)
                    .set_key(Some(Self::key_map(key)))
                    .condition_expression(cond)
                    .set_expression_attribute_values(value)
                    .build()
                    .map_err(unavailable)?;
                TransactWriteItem::builder().condition_check(check).build()
            }
            Write::Adjust { key, adjustment } => {
                let e = Expression::adjusting(adjustment)?;
                let update = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(Self::key_map(key)))
                    .update_expression(e.update)
                    .condition_expression(e.condition.join(" AND "))
                    .set_expression_attribute_names(Some(e.names))
                    .set_expression_attribute_values(Some(e.values))
                    .build()
                    .map_err(unavailable)?;
                TransactWriteItem::builder().update(update).build()
            }
            Write::Require { key, guards } => {
                let mut e = Expression::default();
                e.guard(guards)?;
                let check = ConditionCheck::builder()
                    .table_name(&self.table)
                    .set_key(Some(Self::key_map(key)))
                    .condition_expression(e.condition.join(" AND "))
                    .set_expression_attribute_names((!e.names.is_empty()).then_some(e.names))
                    .set_expression_attribute_values((!e.values.is_empty()).then_some(e.values))
                    .build()
                    .map_err(unavailable)?;
                TransactWriteItem::builder().condition_check(check).build()
            }
        };
        Ok(item)
    }
}

/// An UpdateItem's or ConditionCheck's expressions, placeholders numbered as they are added.
#[derive(Default)]
struct Expression {
    update: String,
    condition: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expression {
    /// `ADD c_<field> :delta` per counter (each must exist), `SET data.<field> = :value` per
    /// field, the version up by one; on an existing item where every guard holds.
    fn adjusting(adjustment: &Adjustment) -> Result<Self, StoreError> {
        let mut e = Expression::default();
        e.values.insert(":one".into(), AttributeValue::N("1".into()));
        if !adjustment.set.is_empty() {
            e.names.insert("#data".into(), "data".into());
        }
        let mut set = vec!["v = v + :one".to_string()];
        let mut add = Vec::new();
        for (n, (field, delta)) in adjustment.add.iter().enumerate() {
            e.names.insert(format!("#a{n}"), format!("{COUNTER_PREFIX}{field}"));
            e.values.insert(format!(":a{n}"), AttributeValue::N(delta.to_string()));
            e.condition.push(format!("attribute_exists(#a{n})"));
            add.push(format!("#a{n} :a{n}"));
        }
        for (n, (field, value)) in adjustment.set.iter().enumerate() {
            e.names.insert(format!("#s{n}"), (*field).to_string());
            e.values.insert(format!(":s{n}"), to_attribute_value(value).map_err(unavailable)?);
            set.push(format!("#data.#s{n} = :s{n}"));
        }
        e.update = format!("SET {}", set.join(", "));
        if !add.is_empty() {
            e.update += &format!(" ADD {}", add.join(", "));
        }
        e.guard(&adjustment.guards)?;
        Ok(e)
    }

    /// The item exists and every guard holds: counter guards compare `c_<field>`, `Is` guards
    /// the body's field.
    fn guard(&mut self, guards: &[Guard]) -> Result<(), StoreError> {
        self.condition.push("attribute_exists(pk)".into());
        for (n, guard) in guards.iter().enumerate() {
            let (name, value) = (format!("#g{n}"), format!(":g{n}"));
            let compare = |op: &str, bound: &rust_decimal::Decimal, e: &mut Self, field: &str| {
                e.names.insert(name.clone(), format!("{COUNTER_PREFIX}{field}"));
                e.values.insert(value.clone(), AttributeValue::N(bound.to_string()));
                e.condition.push(format!("{name} {op} {value}"));
            };
            match guard {
                Guard::AtLeast(field, bound) => compare(">=", bound, self, field),
                Guard::AtMost(field, bound) => compare("<=", bound, self, field),
                Guard::Below(field, bound) => compare("<", bound, self, field),
                Guard::Is(field, serde_json::Value::Null) => {
                    self.names.insert("#data".into(), "data".into());
                    self.names.insert(name.clone(), (*field).to_string());
                    self.values.insert(":null".into(), AttributeValue::S("NULL".into()));
                    self.condition
                        .push(format!("(attribute_not_exists(#data.{name}) OR attribute_type(#data.{name}, :null))"));
                }
                Guard::Is(field, wanted) => {
                    self.names.insert("#data".into(), "data".into());
                    self.names.insert(name.clone(), (*field).to_string());
                    self.values.insert(value.clone(), to_attribute_value(wanted).map_err(unavailable)?);
                    self.condition.push(format!("#data.{name} = {value}"));
                }
            }
        }
        Ok(())
    }
}

/// A compact item's body, deflated (`Item::compact`).
fn deflate(text: &str) -> Result<Vec<u8>, StoreError> {
    use std::io::Write as _;
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(text.as_bytes()).map_err(unavailable)?;
    encoder.finish().map_err(unavailable)
}

fn inflate(bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
    use std::io::Read as _;
    let mut text = Vec::new();
    flate2::read::DeflateDecoder::new(bytes).read_to_end(&mut text).map_err(unavailable)?;
    Ok(text)
}

/// The table key of an index entry.
fn key_of(mut entry: HashMap<String, AttributeValue>) -> Result<Key, StoreError> {
    let mut take = |name: &str| match entry.remove(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(StoreError::Unavailable(format!("index entry without {name}"))),
    };
    Ok(Key::new(take("pk")?, take("sk")?))
}

/// Whether `item`, as read now, is still where query `q` found it in its index.
fn still_listed(item: &Item, q: &Query) -> bool {
    item.indexes.get(q.index).is_some_and(|(pk, sk)| {
        *pk == q.pk
            && q.sk_prefix.as_deref().is_none_or(|p| sk.starts_with(p))
            && q.sk_at_least.as_deref().is_none_or(|m| sk.as_str() >= m)
            && q.sk_at_most.as_deref().is_none_or(|m| sk.as_str() <= m)
    })
}

impl DynamoStore {
    /// A single conditional PutItem (`apply` of one put without a token).
    async fn put_one(&self, item: &Item, expect: Expect) -> Result<(), StoreError> {
        let (cond, value) = Self::condition(expect);
        self.count();
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.to_attributes(item)?))
            .condition_expression(cond)
            .set_expression_attribute_values(value)
            .set_return_consumed_capacity(self.report_capacity.clone())
            .send()
            .await
            .map_err(single_write_error)?;
        self.capacity.reported(true, out.consumed_capacity.as_slice());
        Ok(())
    }

    /// A single conditional DeleteItem (`apply` of one delete without a token).
    async fn delete_one(&self, key: &Key, expect: Expect) -> Result<(), StoreError> {
        let (cond, value) = Self::condition(expect);
        self.count();
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key_map(key)))
            .condition_expression(cond)
            .set_expression_attribute_values(value)
            .set_return_consumed_capacity(self.report_capacity.clone())
            .send()
            .await
            .map_err(single_write_error)?;
        self.capacity.reported(true, out.consumed_capacity.as_slice());
        Ok(())
    }
}

/// A single write's failure: its condition failing is `ConditionFailed`, a timeout or 5xx
/// `Ambiguous` (as a transaction's).
fn single_write_error<E: ProvideErrorMetadata + std::error::Error + 'static>(e: SdkError<E>) -> StoreError {
    match &e {
        SdkError::ServiceError(s) if s.err().code() == Some("ConditionalCheckFailedException") => {
            StoreError::ConditionFailed
        }
        SdkError::ServiceError(s) if s.raw().status().is_server_error() => {
            StoreError::Ambiguous(DisplayErrorContext(&e).to_string())
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Ambiguous(DisplayErrorContext(&e).to_string())
        }
        _ => unavailable(e),
    }
}

/// An item as DynamoDB returned it (counters back in the body, a compact body inflated): for
/// tests that read the table directly.
pub fn from_attributes(mut map: HashMap<String, AttributeValue>) -> Result<Item, StoreError> {
    let corrupt = |what: &str| StoreError::Unavailable(format!("malformed item: {what}"));
    let mut take_s = |name: &str| match map.remove(name) {
        Some(AttributeValue::S(v)) => Some(v),
        _ => None,
    };
    let key = Key::new(take_s("pk").ok_or_else(|| corrupt("pk"))?, take_s("sk").ok_or_else(|| corrupt("sk"))?);
    let mut pair = |pk: &str, sk: &str| take_s(pk).zip(take_s(sk));
    let indexes = IndexKeys {
        by_org: pair("gsi1pk", "gsi1sk"),
        by_status: pair("gsi2pk", "gsi2sk"),
        by_wallet: pair("gsi3pk", "gsi3sk"),
        due: pair("duepk", "duesk"),
    };
    let number = |v: Option<&AttributeValue>| match v {
        Some(AttributeValue::N(n)) => n.parse::<i64>().ok(),
        _ => None,
    };
    let version = number(map.get("v")).ok_or_else(|| corrupt("v"))? as u64;
    let expires_at_epoch = number(map.get("ttl"));
    let mut body: serde_json::Value = match map.remove("data").ok_or_else(|| corrupt("data"))? {
        AttributeValue::B(compressed) => serde_json::from_slice(&inflate(compressed.as_ref())?).map_err(unavailable)?,
        data => from_attribute_value(data).map_err(unavailable)?,
    };
    // Counters kept beside the body go back into it, as the decimal strings they were.
    if let Some(fields) = body.as_object_mut() {
        for (name, value) in map {
            if let (Some(field), AttributeValue::N(n)) = (name.strip_prefix(COUNTER_PREFIX), value) {
                fields.insert(field.to_string(), serde_json::Value::String(n));
            }
        }
    }
    let body = Body::from(body);
    Ok(Item { key, version, indexes, expires_at_epoch, body, counters: &[], compact: false })
}

/// Sorts a failed TransactWriteItems into: lost a race (condition, conflict), not applied
/// (`Unavailable`), or unknown (`Ambiguous`: what the SDK's own retries left undecided — a
/// timeout or broken connection after sending, a 5xx, the same token still in progress).
fn transact_error(e: SdkError<TransactWriteItemsError>) -> StoreError {
    let ambiguous = |e: &SdkError<TransactWriteItemsError>| StoreError::Ambiguous(DisplayErrorContext(e).to_string());
    match &e {
        SdkError::ServiceError(service) => match service.err() {
            TransactWriteItemsError::TransactionCanceledException(cancel) => {
                let codes: Vec<&str> = cancel.cancellation_reasons().iter().filter_map(|r| r.code()).collect();
                if codes.contains(&"ConditionalCheckFailed") {
                    StoreError::ConditionFailed
                } else if codes.contains(&"TransactionConflict") {
                    StoreError::Conflict
                } else {
                    unavailable(e)
                }
            }
            TransactWriteItemsError::TransactionInProgressException(_)
            | TransactWriteItemsError::InternalServerError(_) => ambiguous(&e),
            _ if service.raw().status().is_server_error() => ambiguous(&e),
            _ => unavailable(e),
        },
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => ambiguous(&e),
        _ => unavailable(e),
    }
}

#[async_trait]
impl Store for DynamoStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.count();
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key_map(key)))
            .consistent_read(true)
            .set_return_consumed_capacity(self.report_capacity.clone())
            .send()
            .await
            .map_err(unavailable)?;
        self.capacity.reported(false, out.consumed_capacity.as_slice());
        self.capacity.computed_get(out.item.as_ref());
        out.item.map(from_attributes).transpose()
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        // BatchGetItem refuses a key named twice.
        let mut unique: Vec<&Key> = keys.iter().collect();
        unique.sort_by(|a, b| (&a.pk, &a.sk).cmp(&(&b.pk, &b.sk)));
        unique.dedup();
        // A few batches at a time: a long list (a statistics page naming thousands of keys)
        // must not fire all its requests at once.
        let requests: Vec<_> = unique.chunks(BATCH_GET_MAX).map(|chunk| self.batch_get(chunk)).collect();
        let batches: Vec<Vec<Item>> =
            futures::stream::iter(requests).buffer_unordered(BATCHES_AT_ONCE).try_collect().await?;
        let mut found: HashMap<Key, Item> = HashMap::with_capacity(unique.len());
        for batch in batches {
            found.extend(batch.into_iter().map(|item| (item.key.clone(), item)));
        }
        Ok(keys.iter().map(|key| found.get(key).cloned()).collect())
    }

    fn reads_are_round_trips(&self) -> bool {
        true
    }

    async fn apply(&self, writes: &[Write], token: Option<&TxToken>) -> Result<(), StoreError> {
        // One put or delete with nothing to deduplicate (an outbox mark, a key's lastUsedAt):
        // a plain conditional write, half a transaction's write units.
        match (writes, token) {
            ([Write::Put { item, expect }], None) => return self.put_one(item, *expect).await,
            ([Write::Delete { key, expect }], None) => return self.delete_one(key, *expect).await,
            _ => {}
        }
        let items = writes.iter().map(|w| self.transact_item(w)).collect::<Result<Vec<_>, _>>()?;
        self.count();
        let out = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .set_client_request_token(token.map(|t| t.as_str().to_string()))
            .set_return_consumed_capacity(self.report_capacity.clone())
            .send()
            .await
            .map_err(transact_error)?;
        self.capacity.reported(true, out.consumed_capacity());
        Ok(())
    }

    async fn query(&self, q: Query) -> Result<Vec<Item>, StoreError> {
        let (index_name, pk_attr, sk_attr) = match q.index {
            Index::Primary => (None, "pk", "sk"),
            other => {
                let (name, pk, sk) = index_attrs(other).ok_or(StoreError::InvalidCursor)?;
                (Some(name), pk, sk)
            }
        };
        let mut condition = "#pk = :pk".to_string();
        let mut names = HashMap::from([("#pk".to_string(), pk_attr.to_string())]);
        let mut values = HashMap::from([(":pk".to_string(), s(&q.pk))]);
        // An empty prefix matches every sort key (as on SQLite); DynamoDB refuses an empty
        // string as a key condition value, so it is no condition at all.
        if let Some(prefix) = q.sk_prefix.as_ref().filter(|p| !p.is_empty()) {
            condition += " AND begins_with(#sk, :prefix)";
            names.insert("#sk".into(), sk_attr.into());
            values.insert(":prefix".into(), s(prefix));
        }
        // One sort-key condition: a range when both ends are given.
        match (&q.sk_at_least, &q.sk_at_most) {
            (Some(min), Some(max)) => {
                condition += " AND #sk BETWEEN :min AND :max";
                values.insert(":min".into(), s(min));
                values.insert(":max".into(), s(max));
            }
            (Some(min), None) => {
                condition += " AND #sk >= :min";
                values.insert(":min".into(), s(min));
            }
            (None, Some(max)) => {
                condition += " AND #sk <= :max";
                values.insert(":max".into(), s(max));
            }
            (None, None) => {}
        }
        if q.sk_at_least.is_some() || q.sk_at_most.is_some() {
            names.insert("#sk".into(), sk_attr.into());
        }
        let start = match &q.after {
            None => None,
            Some(after) => {
                let mut start = Self::key_map(&Key::new(after.pk.clone(), after.sk.clone()));
                if q.index != Index::Primary {
                    let sk = after.index_sk.clone().ok_or(StoreError::InvalidCursor)?;
                    start.insert(pk_attr.into(), s(&q.pk));
                    start.insert(sk_attr.into(), s(&sk));
                }
                Some(start)
            }
        };
        // DynamoDB stops a Query at 1 MB; follow LastEvaluatedKey until `limit` items or the end,
        // so callers never mistake a short page for the end of the partition.
        let mut items = Vec::new();
        let mut start = start;
        let first_call_has_cursor = q.after.is_some();
        loop {
            let remaining = q.limit.saturating_sub(items.len()).clamp(1, 1000);
            self.count();
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(index_name.map(str::to_string))
                .key_condition_expression(&condition)
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .scan_index_forward(!q.newest_first)
                .limit(remaining as i32)
                .set_exclusive_start_key(start.take())
                .consistent_read(q.index == Index::Primary)
                .set_return_consumed_capacity(self.report_capacity.clone())
                .send()
                .await
                .map_err(|e| {
                    // A forged cursor that DynamoDB rejects is the client's fault, not an outage.
                    if first_call_has_cursor && items.is_empty() && e.code() == Some("ValidationException") {
                        StoreError::InvalidCursor
                    } else {
                        unavailable(e)
                    }
                })?;
            self.capacity.reported(false, out.consumed_capacity.as_slice());
            self.capacity.computed_query(index_name, out.items.as_deref().unwrap_or_default());
            let page = out.items.unwrap_or_default();
            if q.index == Index::Primary {
                for item in page {
                    items.push(from_attributes(item)?);
                }
            } else {
                // The indexes project keys only (an index write then costs one unit, not the
                // item's size): the items are read by key, strongly consistent, and one whose
                // index entry has moved on since (the index lags) is left out.
                let keys = page.into_iter().map(key_of).collect::<Result<Vec<_>, _>>()?;
                let fresh = self.get_many(&keys).await?;
                items.extend(fresh.into_iter().flatten().filter(|item| still_listed(item, &q)));
            }
            match out.last_evaluated_key {
                Some(next) if items.len() < q.limit => start = Some(next),
                _ => return Ok(items),
            }
        }
    }
}
