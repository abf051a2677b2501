//! The embedded store for the local server: one SQLite file (WAL, full sync) holding the same
//! single-table layout as DynamoDB, with the secondary indexes as partial SQL indexes.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::ports::{Expect, Index, IndexKeys, Item, Key, Query, Store, StoreError, TxToken, Write, TOKEN_WINDOW};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS items (
    pk TEXT NOT NULL, sk TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL, ttl INTEGER,
    g1pk TEXT, g1sk TEXT, g2pk TEXT, g2sk TEXT, g3pk TEXT, g3sk TEXT, g4pk TEXT, g4sk TEXT,
    PRIMARY KEY (pk, sk)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS by_org ON items (g1pk, g1sk, pk, sk) WHERE g1pk IS NOT NULL;
CREATE INDEX IF NOT EXISTS by_status ON items (g2pk, g2sk, pk, sk) WHERE g2pk IS NOT NULL;
CREATE INDEX IF NOT EXISTS by_wallet ON items (g3pk, g3sk, pk, sk) WHERE g3pk IS NOT NULL;
CREATE INDEX IF NOT EXISTS due ON items (g4pk, g4sk, pk, sk) WHERE g4pk IS NOT NULL;
CREATE TABLE IF NOT EXISTS tokens (token TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tokens_at ON tokens (at);
";

const COLUMNS: &str = "pk, sk, version, body, ttl, g1pk, g1sk, g2pk, g2sk, g3pk, g3sk, g4pk, g4sk";

#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl SqliteStore {
    /// Opens (or creates) `countersign.db` in `dir`.
    pub fn open_dir(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(unavailable)?;
        Self::open(&dir.join("countersign.db"))
    }

    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(unavailable)?;
        Self::init(conn)
    }

    /// A throwaway in-memory store (tests and benchmarks).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().map_err(unavailable)?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL").map_err(unavailable)?;
        // Money: a committed transaction must survive a power cut.
        conn.pragma_update(None, "synchronous", "FULL").map_err(unavailable)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(unavailable)?;
        conn.execute_batch(SCHEMA).map_err(unavailable)?;
        Ok(SqliteStore { conn: Arc::new(Mutex::new(conn)) })
    }

    /// Number of stored items (tests check that refused requests wrote nothing).
    pub async fn item_count(&self) -> Result<u64, StoreError> {
        self.with_conn(|c| c.query_row("SELECT COUNT(*) FROM items", [], |r| r.get::<_, i64>(0)).map(|n| n as u64))
            .await
    }

    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| unavailable("store lock poisoned"))?;
            f(&mut guard).map_err(unavailable)
        })
        .await
        .map_err(unavailable)?
    }
}

fn index_columns(index: Index) -> (&'static str, &'static str) {
    match index {
        Index::Primary => ("pk", "sk"),
        Index::ByOrg => ("g1pk", "g1sk"),
        Index::ByStatus => ("g2pk", "g2sk"),
        Index::ByWallet => ("g3pk", "g3sk"),
        Index::Due => ("g4pk", "g4sk"),
    }
}

fn read_item(row: &rusqlite::Row<'_>) -> rusqlite::Result<Item> {
    let pair = |a: usize| -> rusqlite::Result<Option<(String, String)>> {
        let pk: Option<String> = row.get(a)?;
        let sk: Option<String> = row.get(a + 1)?;
        Ok(pk.zip(sk))
    };
    let body: String = row.get(3)?;
    let body = serde_json::from_str(&body)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(e)))?;
    Ok(Item {
        key: Key::new(row.get::<_, String>(0)?, row.get::<_, String>(1)?),
        version: row.get::<_, i64>(2)? as u64,
        expires_at_epoch: row.get(4)?,
        body,
        indexes: IndexKeys { by_org: pair(5)?, by_status: pair(7)?, by_wallet: pair(9)?, due: pair(11)? },
    })
}

fn current_version(tx: &rusqlite::Transaction<'_>, key: &Key) -> rusqlite::Result<Option<u64>> {
    tx.query_row("SELECT version FROM items WHERE pk = ?1 AND sk = ?2", params![key.pk, key.sk], |r| r.get::<_, i64>(0))
        .optional()
        .map(|v| v.map(|v| v as u64))
}

fn epoch_seconds() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn holds(expect: Expect, current: Option<u64>) -> bool {
    match expect {
        Expect::Absent => current.is_none(),
        Expect::Version(v) => current == Some(v),
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let key = key.clone();
        self.with_conn(move |c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM items WHERE pk = ?1 AND sk = ?2"),
                params![key.pk, key.sk],
                read_item,
            )
            .optional()
        })
        .await
    }

    async fn apply(&self, writes: &[Write], token: Option<&TxToken>) -> Result<(), StoreError> {
        let writes = writes.to_vec();
        let token = token.map(|t| t.as_str().to_string());
        let outcome = self
            .with_conn(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let now = epoch_seconds();
                if let Some(token) = &token {
                    // As DynamoDB: a transaction already applied under this token is not applied again.
                    let window = TOKEN_WINDOW.as_secs() as i64;
                    let seen: Option<i64> = tx
                        .query_row("SELECT at FROM tokens WHERE token = ?1", params![token], |r| r.get(0))
                        .optional()?;
                    if seen.is_some_and(|at| at > now - window) {
                        return Ok(true);
                    }
                    tx.execute("DELETE FROM tokens WHERE at <= ?1", params![now - window])?;
                    tx.execute("INSERT OR REPLACE INTO tokens (token, at) VALUES (?1, ?2)", params![token, now])?;
                }
                for w in &writes {
                    let (key, expect) = match w {
                        Write::Put { item, expect } => (&item.key, *expect),
                        Write::Delete { key, expect } | Write::Check { key, expect } => (key, *expect),
                    };
                    if !holds(expect, current_version(&tx, key)?) {
                        return Ok(false); // dropping `tx` rolls back
                    }
                }
                for w in writes {
                    match w {
                        Write::Put { item, .. } => {
                            let ix = &item.indexes;
                            let split = |p: &Option<(String, String)>| p.clone().unzip();
                            let (g1pk, g1sk) = split(&ix.by_org);
                            let (g2pk, g2sk) = split(&ix.by_status);
                            let (g3pk, g3sk) = split(&ix.by_wallet);
                            let (g4pk, g4sk) = split(&ix.due);
                            tx.execute(
                                &format!("INSERT OR REPLACE INTO items ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"),
                                params![
                                    item.key.pk, item.key.sk, item.version as i64, item.body.to_string(), item.expires_at_epoch,
                                    g1pk, g1sk, g2pk, g2sk, g3pk, g3sk, g4pk, g4sk
                                ],
                            )?;
                        }
                        Write::Delete { key, .. } => {
                            tx.execute("DELETE FROM items WHERE pk = ?1 AND sk = ?2", params![key.pk, key.sk])?;
                        }
                        Write::Check { .. } => {}
                    }
                }
                tx.commit()?;
                Ok(true)
            })
            .await?;
        if outcome {
            Ok(())
        } else {
            Err(StoreError::ConditionFailed)
        }
    }

    async fn query(&self, q: Query) -> Result<Vec<Item>, StoreError> {
        let (pkc, skc) = index_columns(q.index);
        let mut sql = format!("SELECT {COLUMNS} FROM items WHERE {pkc} = ?1");
        let mut args: Vec<String> = vec![q.pk.clone()];
        if let Some(prefix) = &q.sk_prefix {
            args.push(prefix.clone());
            sql += &format!(" AND substr({skc}, 1, length(?{n})) = ?{n}", n = args.len());
        }
        if let Some(max) = &q.sk_at_most {
            args.push(max.clone());
            sql += &format!(" AND {skc} <= ?{}", args.len());
        }
        let dir = if q.newest_first { "DESC" } else { "ASC" };
        let cmp = if q.newest_first { "<" } else { ">" };
        if let Some(after) = &q.after {
            let index_sk = match (q.index, &after.index_sk) {
                (Index::Primary, _) => after.sk.clone(),
                (_, Some(sk)) => sk.clone(),
                (_, None) => return Err(StoreError::InvalidCursor),
            };
            args.extend([index_sk, after.pk.clone(), after.sk.clone()]);
            let n = args.len();
            sql += &format!(" AND ({skc}, pk, sk) {cmp} (?{}, ?{}, ?{})", n - 2, n - 1, n);
        }
        sql += &format!(" ORDER BY {skc} {dir}, pk {dir}, sk {dir} LIMIT {}", q.limit);
        self.with_conn(move |c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), read_item)?;
            rows.collect()
        })
        .await
    }
}
