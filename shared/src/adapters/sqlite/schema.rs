//! The store's tables, and the migration of a data directory made by an earlier version.
//!
//! Items live in a rowid table with a unique index on `(pk, sk)`: a record's body (JSON, often
//! over a kilobyte) stays out of the key B-tree, whose small cells keep lookups to a few pages.
//! (Version 0 kept items in a WITHOUT ROWID table keyed by `(pk, sk)`, whose cells carried the
//! whole body: every key comparison could reach into overflow pages.)

use rusqlite::{Connection, OptionalExtension};

/// `PRAGMA user_version` of the current layout. Version 2 dropped the index of tokens by commit
/// time: tokens are ULIDs, whose text sorts by when they were made, so the purge deletes a range
/// of the table's own key (one index fewer to write on every commit).
const VERSION: i64 = 2;

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    pk TEXT NOT NULL, sk TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL, ttl INTEGER,
    g1pk TEXT, g1sk TEXT, g2pk TEXT, g2sk TEXT, g3pk TEXT, g3sk TEXT, g4pk TEXT, g4sk TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS items_key ON items (pk, sk);
CREATE INDEX IF NOT EXISTS by_org ON items (g1pk, g1sk, pk, sk) WHERE g1pk IS NOT NULL;
CREATE INDEX IF NOT EXISTS by_status ON items (g2pk, g2sk, pk, sk) WHERE g2pk IS NOT NULL;
CREATE INDEX IF NOT EXISTS by_wallet ON items (g3pk, g3sk, pk, sk) WHERE g3pk IS NOT NULL;
CREATE INDEX IF NOT EXISTS due ON items (g4pk, g4sk, pk, sk) WHERE g4pk IS NOT NULL;
CREATE TABLE IF NOT EXISTS tokens (token TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID;
DROP INDEX IF EXISTS tokens_at;
";

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
        return conn.execute_batch(TABLES);
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let existing: Option<String> = tx
        .query_row("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'items'", [], |r| r.get(0))
        .optional()?;
    let from_v0 = existing.is_some_and(|sql| sql.to_uppercase().contains("WITHOUT ROWID"));
    if from_v0 {
        tx.execute_batch(FROM_V0)?;
    }
    tx.execute_batch(TABLES)?;
    if from_v0 {
        tx.execute_batch(
            "INSERT INTO items (pk, sk, version, body, ttl, g1pk, g1sk, g2pk, g2sk, g3pk, g3sk, g4pk, g4sk)
             SELECT pk, sk, version, body, ttl, g1pk, g1sk, g2pk, g2sk, g3pk, g3sk, g4pk, g4sk FROM items_v0;
             DROP TABLE items_v0;",
        )?;
    }
    tx.pragma_update(None, "user_version", VERSION)?;
    tx.commit()
}
