//! The store's tables, and the migration of a data directory made by an earlier version.
//!
//! Items live in a rowid table with a unique index on `(pk, sk)`: a record's body (JSON, often
//! over a kilobyte) stays out of the key B-tree, whose small cells keep lookups to a few pages.
//! (Version 0 kept items in a WITHOUT ROWID table keyed by `(pk, sk)`, whose cells carried the
//! whole body: every key comparison could reach into overflow pages.)

use rusqlite::{Connection, OptionalExtension};

/// `PRAGMA user_version` of the current layout. Version 2 dropped the index of tokens by commit
/// time: tokens are ULIDs, whose text sorts by when they were made, so the purge deletes a range
/// of the table's own key (one index fewer to write on every commit). Version 3 orders the due
/// index by kind (`due_kind`) before the partition. Version 4 indexes the items that expire
/// (`ttl`), for the writer's purge of expired ones. Version 5 lists every organisation in the
/// by-org index (`ORGS`), where the sweep finds the audit logs to seal.
const VERSION: i64 = 5;

/// Version 4 → 5: organisations made before they were listed (their record's by-org keys).
const LIST_ORGANISATIONS: &str =
    "UPDATE items SET g1pk = 'ORGS', g1sk = substr(pk, 5) WHERE sk = 'ORG' AND pk LIKE 'ORG#%' AND g1pk IS NULL;";

/// The due partition's kind: its text before the first `#` (`APPROVAL` for the shard
/// `APPROVAL#7`). The due index is ordered by it first, so a kind's shards share their tail
/// pages: sharding spreads DynamoDB's partitions, but here each of 16 shards appending at its own
/// tail cost a page per due entry on every commit. A query still names its exact partition,
/// which the index carries last, so the other shards' entries are skipped without reading rows.
const DUE_KIND: &str =
    "g4kind TEXT GENERATED ALWAYS AS (CASE WHEN instr(g4pk, '#') > 0 THEN substr(g4pk, 1, instr(g4pk, '#') - 1) ELSE g4pk END) VIRTUAL";

/// `due_kind`'s value for a partition, as the generated column computes it.
pub(super) fn due_kind(partition: &str) -> &str {
    partition.split('#').next().unwrap_or(partition)
}

fn tables() -> String {
    format!(
        "
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    pk TEXT NOT NULL, sk TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL, ttl INTEGER,
    g1pk TEXT, g1sk TEXT, g2pk TEXT, g2sk TEXT, g3pk TEXT, g3sk TEXT, g4pk TEXT, g4sk TEXT,
    {DUE_KIND}
);
CREATE UNIQUE INDEX IF NOT EXISTS items_key ON items (pk, sk);
CREATE INDEX IF NOT EXISTS by_org ON items (g1pk, g1sk, pk, sk) WHERE g1pk IS NOT NULL;
CREATE INDEX IF NOT EXISTS by_status ON items (g2pk, g2sk, pk, sk) WHERE g2pk IS NOT NULL;
CREATE INDEX IF NOT EXISTS by_wallet ON items (g3pk, g3sk, pk, sk) WHERE g3pk IS NOT NULL;
CREATE INDEX IF NOT EXISTS due ON items (g4kind, g4sk, pk, sk, g4pk) WHERE g4pk IS NOT NULL;
CREATE INDEX IF NOT EXISTS expiring ON items (ttl) WHERE ttl IS NOT NULL;
CREATE TABLE IF NOT EXISTS tokens (token TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID;
DROP INDEX IF EXISTS tokens_at;
"
    )
}

/// Version 0 → 1: the items move to the rowid table, in one transaction.
const FROM_V0: &str = "
ALTER TABLE items RENAME TO items_v0;
DROP INDEX IF EXISTS by_org;
DROP INDEX IF EXISTS by_status;
DROP INDEX IF EXISTS by_wallet;
DROP INDEX IF EXISTS due;
";

/// Creates the tables, or brings an older layout up to date.
pub(super) fn ensure(conn: &mut Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version >= VERSION {
        return conn.execute_batch(&tables());
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let existing: Option<String> = tx
        .query_row("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'items'", [], |r| r.get(0))
        .optional()?;
    let from_v0 = existing.as_deref().is_some_and(|sql| sql.to_uppercase().contains("WITHOUT ROWID"));
    let has_kind = tx.prepare("SELECT 1 FROM pragma_table_xinfo('items') WHERE name = 'g4kind'")?.exists([])?;
    if from_v0 {
        tx.execute_batch(FROM_V0)?;
    } else if existing.is_some() && !has_kind {
        // Versions 1 and 2: the kind column, and the due index rebuilt on it.
        tx.execute_batch(&format!("DROP INDEX IF EXISTS due; ALTER TABLE items ADD COLUMN {DUE_KIND};"))?;
    }
    tx.execute_batch(&tables())?;
    if from_v0 {
        tx.execute_batch(
            "INSERT INTO items (pk, sk, version, body, ttl, g1pk, g1sk, g2pk, g2sk, g3pk, g3sk, g4pk, g4sk)
             SELECT pk, sk, version, body, ttl, g1pk, g1sk, g2pk, g2sk, g3pk, g3sk, g4pk, g4sk FROM items_v0;
             DROP TABLE items_v0;",
        )?;
    }
    tx.execute_batch(LIST_ORGANISATIONS)?;
    tx.pragma_update(None, "user_version", VERSION)?;
    tx.commit()
}
