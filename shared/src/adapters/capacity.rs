//! DynamoDB capacity consumed, per table and per index, reads and writes apart, from two sources:
//!
//! - **reported**: what DynamoDB answers to `ReturnConsumedCapacity: INDEXES` (a store built
//!   `DynamoStore::metered`, as the cost benchmark's, asks on every request; the service's does
//!   not);
//! - **computed**: read units worked out from the items a read returned, by AWS's documented rules
//!   ("DynamoDB item sizes and formats", "DynamoDB read and write operations", the Query and
//!   BatchGetItem API references): an item's size is the sum of its attribute names and values;
//!   a read costs one unit per 4 KB, rounded up (a Query rounds the sum of what it returned, a
//!   GetItem and each key of a BatchGetItem round their own item), and at least one unit even when
//!   nothing matched; strongly consistent 1×, eventually consistent (every index) ½×,
//!   transactional 2×.
//!
//! Why both: DynamoDB Local (the engine the tests and the benchmarks run on) reports write units as
//! AWS documents them (checked in `tests/tests/capacity.rs`: puts, replacements, deletes, index
//! entries added, rewritten, moved and dropped, 2× in a transaction), but under-reports reads: an
//! empty Query and a BatchGetItem key that finds nothing cost it 0, and an index Query rounds down.
//! [`Consumed::billed`] takes reads as computed and writes as reported; on AWS itself the reported
//! figures are the bill, and the computed reads are a check on them.
//!
//! Capacity units are measures, not money: `f64` is fine here (units are multiples of ½).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// The base table's entry in a [`Consumed`] map (the others are index names).
pub const TABLE: &str = "table";

/// Bytes per read unit (rounded up, per item or per Query page).
pub const READ_UNIT_BYTES: u64 = 4096;
/// Bytes per write unit (rounded up, per item).
pub const WRITE_UNIT_BYTES: u64 = 1024;

/// Read and write capacity units.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Units {
    pub read: f64,
    pub write: f64,
}

impl Units {
    pub fn reads(read: f64) -> Self {
        Units { read, write: 0.0 }
    }

    pub fn writes(write: f64) -> Self {
        Units { read: 0.0, write }
    }

    fn add(&mut self, other: Units) {
        self.read += other.read;
        self.write += other.write;
    }
}

/// Where a figure comes from (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Reported,
    Computed,
}

/// Units by target ([`TABLE`] or an index name), from each source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Consumed {
    pub reported: BTreeMap<String, Units>,
    pub computed: BTreeMap<String, Units>,
}

impl Consumed {
    /// What on-demand capacity bills, as well as DynamoDB Local lets it be known: reads as
    /// computed from the items returned, writes as reported.
    pub fn billed(&self) -> BTreeMap<String, Units> {
        let mut billed: BTreeMap<String, Units> = BTreeMap::new();
        for (target, units) in &self.computed {
            billed.entry(target.clone()).or_default().read += units.read;
        }
        for (target, units) in &self.reported {
            billed.entry(target.clone()).or_default().write += units.write;
        }
        billed
    }

    /// The sum over every target of `map`.
    pub fn total(map: &BTreeMap<String, Units>) -> Units {
        let mut total = Units::default();
        for units in map.values() {
            total.add(*units);
        }
        total
    }

    /// Every figure divided by `n` (an average over `n` operations).
    pub fn per(&self, n: usize) -> Consumed {
        let n = n.max(1) as f64;
        let scale = |m: &BTreeMap<String, Units>| {
            m.iter().map(|(k, u)| (k.clone(), Units { read: u.read / n, write: u.write / n })).collect()
        };
        Consumed { reported: scale(&self.reported), computed: scale(&self.computed) }
    }
}

/// A thread-safe accumulator of consumed capacity; clones share it.
#[derive(Debug, Clone, Default)]
pub struct CapacityMeter {
    ledger: Arc<Mutex<Consumed>>,
}

impl CapacityMeter {
    pub fn add(&self, source: Source, target: &str, units: Units) {
        let mut ledger = self.ledger.lock().unwrap_or_else(PoisonError::into_inner);
        let map = match source {
            Source::Reported => &mut ledger.reported,
            Source::Computed => &mut ledger.computed,
        };
        map.entry(target.to_string()).or_default().add(units);
    }

    /// What was consumed so far.
    pub fn snapshot(&self) -> Consumed {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// What was consumed so far, starting again from zero.
    pub fn take(&self) -> Consumed {
        std::mem::take(&mut *self.ledger.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// How a read is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    /// ½ unit per 4 KB; every read of a global secondary index.
    Eventual,
    /// 1 unit per 4 KB.
    Strong,
    /// 2 units per 4 KB (TransactGetItems).
    Transactional,
}

/// How a write is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// 1 unit per KB.
    Standard,
    /// 2 units per KB (every write of a TransactWriteItems).
    Transactional,
}

/// One read of `bytes` (one item, or everything one Query page returned): 4 KB units, rounded up,
/// at least one.
pub fn read_units(bytes: u64, kind: ReadKind) -> f64 {
    let units = bytes.div_ceil(READ_UNIT_BYTES).max(1) as f64;
    match kind {
        ReadKind::Eventual => units * 0.5,
        ReadKind::Strong => units,
        ReadKind::Transactional => units * 2.0,
    }
}

/// One write of an item of `bytes`: 1 KB units, rounded up, at least one.
pub fn write_units(bytes: u64, kind: WriteKind) -> f64 {
    let units = bytes.div_ceil(WRITE_UNIT_BYTES).max(1) as f64;
    match kind {
        WriteKind::Standard => units,
        WriteKind::Transactional => units * 2.0,
    }
}

/// A write to the table: an item put (`before` absent), replaced or updated (the larger of the
/// two sizes), or deleted (`after` absent).
pub fn item_write_units(before: Option<u64>, after: Option<u64>, kind: WriteKind) -> f64 {
    match before.max(after) {
        Some(bytes) => write_units(bytes, kind),
        None => 0.0,
    }
}

/// An item as one global secondary index holds it: its index key and its projected size (keys
/// and projected attributes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry<'a> {
    pub key: (&'a str, &'a str),
    pub bytes: u64,
}

/// What a table write costs one global secondary index: nothing if the item is not in it before
/// or after, or if neither its key nor a projected attribute changed; a put of the new entry, or a
/// delete of the old one, when it enters or leaves the index; both when its index key changes;
/// one write of the larger entry when only projected attributes changed.
pub fn index_write_units(
    before: Option<IndexEntry<'_>>,
    after: Option<IndexEntry<'_>>,
    projection_changed: bool,
    kind: WriteKind,
) -> f64 {
    match (before, after) {
        (None, None) => 0.0,
        (None, Some(entry)) | (Some(entry), None) => write_units(entry.bytes, kind),
        (Some(old), Some(new)) if old.key != new.key => write_units(old.bytes, kind) + write_units(new.bytes, kind),
        (Some(old), Some(new)) if projection_changed => write_units(old.bytes.max(new.bytes), kind),
        (Some(_), Some(_)) => 0.0,
    }
}

/// The size of a number as DynamoDB counts it: one byte per two significant digits (leading and
/// trailing zeros trimmed), plus one.
pub fn number_bytes(text: &str) -> u64 {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0');
    (significant.len() as u64).div_ceil(2) + 1
}

#[cfg(feature = "aws")]
pub use sdk::*;

#[cfg(feature = "aws")]
mod sdk {
    use std::collections::HashMap;

    use aws_sdk_dynamodb::types::{AttributeValue, ConsumedCapacity};

    use super::{number_bytes, read_units, CapacityMeter, ReadKind, Source, Units, TABLE};

    /// An attribute value's size (without its name): strings and binaries their bytes, numbers
    /// per [`number_bytes`], booleans and nulls 1, lists and maps 3 plus 1 per element plus the
    /// elements (a map's element with its name), sets the sum of their members.
    pub fn value_bytes(value: &AttributeValue) -> u64 {
        match value {
            AttributeValue::S(s) => s.len() as u64,
            AttributeValue::N(n) => number_bytes(n),
            AttributeValue::B(b) => b.as_ref().len() as u64,
            AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
            AttributeValue::L(items) => 3 + items.iter().map(|v| 1 + value_bytes(v)).sum::<u64>(),
            AttributeValue::M(map) => 3 + map.iter().map(|(k, v)| 1 + k.len() as u64 + value_bytes(v)).sum::<u64>(),
            AttributeValue::Ss(set) => set.iter().map(|s| s.len() as u64).sum(),
            AttributeValue::Ns(set) => set.iter().map(|n| number_bytes(n)).sum(),
            AttributeValue::Bs(set) => set.iter().map(|b| b.as_ref().len() as u64).sum(),
            _ => 0,
        }
    }

    /// An item's size: the sum of its attribute names and values.
    pub fn item_bytes(item: &HashMap<String, AttributeValue>) -> u64 {
        item.iter().map(|(name, value)| name.len() as u64 + value_bytes(value)).sum()
    }

    impl CapacityMeter {
        /// Records what DynamoDB reported for one request (`write`: a write request, whose
        /// units are writes; otherwise reads). DynamoDB Local answers only `CapacityUnits`.
        pub fn reported(&self, write: bool, consumed: &[ConsumedCapacity]) {
            let units =
                |n: Option<f64>| if write { Units::writes(n.unwrap_or(0.0)) } else { Units::reads(n.unwrap_or(0.0)) };
            for c in consumed {
                match (&c.table, &c.global_secondary_indexes) {
                    (None, None) => self.add(Source::Reported, TABLE, units(c.capacity_units)),
                    (table, indexes) => {
                        if let Some(t) = table {
                            self.add(Source::Reported, TABLE, units(t.capacity_units));
                        }
                        for (name, capacity) in indexes.iter().flatten() {
                            self.add(Source::Reported, name, units(capacity.capacity_units));
                        }
                    }
                }
            }
        }

        /// A GetItem (strongly consistent) that found `item` or nothing.
        pub fn computed_get(&self, item: Option<&HashMap<String, AttributeValue>>) {
            self.add(Source::Computed, TABLE, Units::reads(read_units(item.map_or(0, item_bytes), ReadKind::Strong)));
        }

        /// One BatchGetItem round (strongly consistent): `asked` keys, the items it answered and
        /// the keys it left unprocessed (not read, asked again). Each key is its own read.
        pub fn computed_batch(&self, asked: usize, answered: &[HashMap<String, AttributeValue>], unprocessed: usize) {
            let found: f64 = answered.iter().map(|i| read_units(item_bytes(i), ReadKind::Strong)).sum();
            let missing = asked.saturating_sub(answered.len() + unprocessed) as f64 * read_units(0, ReadKind::Strong);
            self.add(Source::Computed, TABLE, Units::reads(found + missing));
        }

        /// One Query page on the table (`index` none, strongly consistent) or an index
        /// (eventually consistent): the sum of what it returned, rounded up, at least one unit.
        pub fn computed_query(&self, index: Option<&str>, items: &[HashMap<String, AttributeValue>]) {
            let bytes = items.iter().map(item_bytes).sum();
            let kind = if index.is_some() { ReadKind::Eventual } else { ReadKind::Strong };
            self.add(Source::Computed, index.unwrap_or(TABLE), Units::reads(read_units(bytes, kind)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_round_up_to_4_kb_and_cost_at_least_one_unit() {
        assert_eq!(read_units(0, ReadKind::Strong), 1.0, "an empty Query or a missing item still costs");
        assert_eq!(read_units(0, ReadKind::Eventual), 0.5);
        assert_eq!(read_units(3_500, ReadKind::Strong), 1.0, "AWS's example: 3,500 bytes is one 4 KB unit");
        assert_eq!(read_units(4_096, ReadKind::Strong), 1.0);
        assert_eq!(read_units(4_097, ReadKind::Strong), 2.0);
        assert_eq!(read_units(8_192, ReadKind::Eventual), 1.0, "an eventually consistent 8 KB read is one unit");
        assert_eq!(read_units(8_192, ReadKind::Transactional), 4.0, "a transactional 8 KB read is four");
        // A Query rounds the sum of its items: 10 items of 4.08 KB (40.8 KB) are 11 units (44 KB).
        assert_eq!(read_units(10 * 4_178, ReadKind::Strong), 11.0);
    }

    #[test]
    fn writes_round_up_to_1_kb_and_double_in_a_transaction() {
        assert_eq!(write_units(1, WriteKind::Standard), 1.0);
        assert_eq!(write_units(1_024, WriteKind::Standard), 1.0);
        assert_eq!(write_units(3 * 1_024, WriteKind::Standard), 3.0, "AWS's example: a 3 KB item, 3 units");
        assert_eq!(write_units(3 * 1_024, WriteKind::Transactional), 6.0, "and 6 in a transaction");
        assert_eq!(write_units(2_500, WriteKind::Transactional), 6.0);
    }

    #[test]
    fn a_replacement_costs_the_larger_of_before_and_after() {
        let tx = WriteKind::Transactional;
        assert_eq!(item_write_units(None, Some(100), tx), 2.0, "a new small item");
        assert_eq!(item_write_units(Some(100), Some(3_030), tx), 6.0, "grown to 3 KB");
        assert_eq!(item_write_units(Some(3_030), Some(100), tx), 6.0, "shrunk from 3 KB");
        assert_eq!(item_write_units(Some(3_030), None, tx), 6.0, "deleted");
    }

    /// The cases probed on DynamoDB Local (which reports them so), items of about 3 KB.
    #[test]
    fn index_writes_follow_the_entry() {
        let tx = WriteKind::Transactional;
        let at = |sk, bytes| Some(IndexEntry { key: ("org", sk), bytes });
        assert_eq!(index_write_units(None, at("a", 3_030), false, tx), 6.0, "enters the index");
        assert_eq!(index_write_units(at("a", 3_030), None, false, tx), 6.0, "leaves it");
        assert_eq!(index_write_units(at("a", 3_030), at("b", 3_030), true, tx), 12.0, "key moved: delete + put");
        assert_eq!(index_write_units(at("a", 100), at("a", 3_030), true, tx), 6.0, "projection rewritten");
        assert_eq!(index_write_units(at("a", 40), at("a", 40), false, tx), 0.0, "untouched (a KEYS_ONLY entry)");
        assert_eq!(index_write_units(None, None, true, tx), 0.0, "never in the index");
        let keys_only = |sk| Some(IndexEntry { key: ("s", sk), bytes: 20 });
        assert_eq!(index_write_units(None, keys_only("a"), false, tx), 2.0, "a keys-only entry is one 1 KB unit");
    }

    #[test]
    fn numbers_count_significant_digits() {
        assert_eq!(number_bytes("0"), 1);
        assert_eq!(number_bytes("7"), 2);
        assert_eq!(number_bytes("12"), 2);
        assert_eq!(number_bytes("123"), 3);
        assert_eq!(number_bytes("1000"), 2, "trailing zeros trimmed");
        assert_eq!(number_bytes("-0012.50"), 3, "sign, point and zeros are not digits");
        assert_eq!(number_bytes("1733500000"), 4, "17335: five significant digits");
    }

    #[test]
    fn the_meter_adds_per_source_and_target_and_takes() {
        let meter = CapacityMeter::default();
        let clone = meter.clone();
        meter.add(Source::Reported, TABLE, Units::writes(6.0));
        clone.add(Source::Reported, "byOrg", Units::writes(2.0));
        meter.add(Source::Reported, TABLE, Units::reads(0.0));
        meter.add(Source::Computed, TABLE, Units::reads(1.0));
        meter.add(Source::Computed, "due", Units::reads(0.5));
        let seen = meter.snapshot();
        assert_eq!(seen.reported[TABLE], Units { read: 0.0, write: 6.0 });
        let billed = seen.billed();
        assert_eq!(billed[TABLE], Units { read: 1.0, write: 6.0 }, "reads computed, writes reported");
        assert_eq!(billed["due"], Units::reads(0.5));
        assert_eq!(Consumed::total(&billed), Units { read: 1.5, write: 8.0 });
        assert_eq!(seen.per(2).billed()[TABLE], Units { read: 0.5, write: 3.0 });
        assert_eq!(meter.take(), seen);
        assert_eq!(clone.snapshot(), Consumed::default(), "taken from every clone");
    }

    #[cfg(feature = "aws")]
    #[test]
    fn item_sizes_are_names_plus_values() {
        use aws_sdk_dynamodb::types::AttributeValue;
        use std::collections::HashMap;
        let item = HashMap::from([
            ("pk".to_string(), AttributeValue::S("wal_1".into())),
            ("v".to_string(), AttributeValue::N("12".into())),
            ("ok".to_string(), AttributeValue::Bool(true)),
            (
                "data".to_string(),
                AttributeValue::M(HashMap::from([
                    ("a".to_string(), AttributeValue::S("xyz".into())),
                    (
                        "l".to_string(),
                        AttributeValue::L(vec![AttributeValue::N("1".into()), AttributeValue::Null(true)]),
                    ),
                ])),
            ),
        ]);
        // pk: 2 + 5; v: 1 + 2; ok: 2 + 1; data: 4 + 3 + (1 + 1 + 3) + (1 + 1 + (3 + (1 + 2) + (1 + 1))).
        assert_eq!(item_bytes(&item), 7 + 3 + 3 + (4 + 3 + 5 + 10));
    }
}
