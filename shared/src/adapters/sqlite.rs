//! The embedded store for the local server: one SQLite file (WAL, full sync) holding the same
//! single-table layout as DynamoDB (`schema`), with the secondary indexes as partial SQL indexes. Writes go
//! through one writer thread that commits many plans per fsync (`writer`); reads run
//! concurrently on a pool of reader connections (`readers`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

use crate::ports::{Body, Index, IndexKeys, Item, Key, Query, Queued, Store, StoreError, TxToken, Write};

mod checkpointer;
mod readers;
mod schema;
#[cfg(test)]
mod tests;
mod writer;

const COLUMNS: &str = "pk, sk, version, body, ttl, g1pk, g1sk, g2pk, g2sk, g3pk, g3sk, g4pk, g4sk";

/// Reader connections: reads run in place on the runtime's threads, one per core, so one
/// connection each (and a spare).
fn reader_count() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 16) + 1
}

/// The embedded store: one writer thread with group commit (`writer`), a pool of WAL reader
/// connections (`readers`), a checkpointer thread (`checkpointer`). Cloning shares them.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    writer: mpsc::Sender<writer::Job>,
    readers: readers::Readers,
    _checkpointer: checkpointer::Stop,
    /// A throwaway store's files, removed when the store is dropped.
    _scratch: Option<Scratch>,
}

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// How long a connection waits for a lock another holds.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl SqliteStore {
    /// Opens (or creates) `countersign.db` in `dir`.
    pub fn open_dir(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(unavailable)?;
        Self::open(&dir.join("countersign.db"))
    }

    /// Opens (or creates) the store at `path`, durable: a commit survives a power cut.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::init(path, true, None, checkpointer::RESTART_AT)
    }

    /// A throwaway store (tests and benchmarks): a temporary file, not fsynced, removed when the
    /// last clone is dropped. Same code paths as a durable one.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::scratch(checkpointer::RESTART_AT)
    }

    /// A throwaway store whose WAL starts over once it holds `restart_at` frames.
    fn scratch(restart_at: i64) -> Result<Self, StoreError> {
        let path = std::env::temp_dir().join(format!("countersign-scratch-{}.db", ulid::Ulid::new()));
        Self::init(&path, false, Some(Scratch(path.clone())), restart_at)
    }

    /// The scratch store's file (tests).
    #[cfg(test)]
    fn scratch_path(&self) -> Option<&Path> {
        self.inner._scratch.as_ref().map(|s| s.0.as_path())
    }

    fn init(path: &Path, durable: bool, scratch: Option<Scratch>, restart_at: i64) -> Result<Self, StoreError> {
        let conn = open_writer(path, durable).map_err(unavailable)?;
        let readers = (0..reader_count())
            .map(|_| {
                let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let reader = Connection::open_with_flags(path, flags)?;
                // Only the writer writes; a reader that tried would be a bug, refused here.
                reader.pragma_update(None, "query_only", true)?;
                reader.busy_timeout(BUSY_TIMEOUT)?;
                Ok(reader)
            })
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(unavailable)?;
        let restart = checkpointer::Restart::at(restart_at);
        let writer = writer::spawn(conn, restart.clone()).map_err(unavailable)?;
        let checkpointer = checkpointer::spawn(path, restart).map_err(unavailable)?;
        let inner =
            Inner { writer, readers: readers::Readers::new(readers), _checkpointer: checkpointer, _scratch: scratch };
        Ok(SqliteStore { inner: Arc::new(inner) })
    }

    /// Number of stored items (tests check that refused requests wrote nothing).
    pub async fn item_count(&self) -> Result<u64, StoreError> {
        self.read(|c| c.query_row("SELECT COUNT(*) FROM items", [], |r| r.get::<_, i64>(0)).map(|n| n as u64)).await
    }

    /// Whether any organisation is stored (`countersign serve` sets up a first one when none is).
    pub async fn has_organization(&self) -> Result<bool, StoreError> {
        // Organisations are `ORG#<id>` / `ORG` (service::records::org_key): a range of the key index.
        let sql = "SELECT EXISTS (SELECT 1 FROM items WHERE pk >= 'ORG#' AND pk < 'ORG$' AND sk = 'ORG')";
        self.read(move |c| c.query_row(sql, [], |r| r.get::<_, bool>(0))).await
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.inner.readers.with(f).await
    }
}

/// The writer's connection: WAL, and with `durable` a commit returns only once the WAL is
/// fsynced (`synchronous=FULL`: NORMAL would sync only at checkpoints, so a power cut could lose
/// an acknowledged payment).
fn open_writer(path: &Path, durable: bool) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "OFF" })?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Savepoints journal the pages they change: in memory, not in a temporary file.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // The checkpointer thread checkpoints; the writer's commits never wait for it.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    // The page cache stays at SQLite's default (2 MiB), a few hundred pages: every commit that
    // splits an index page scans the writer's whole cache (the split parks a page under the
    // lock-byte page's number, past the end of the file, and the commit then drops the cached
    // pages past the end by walking every hash slot). With 64 MiB that walk cost 3-8 % of the
    // server's CPU; the pages a commit touches are in the OS cache anyway.
    // Every statement the writer runs stays prepared: its own dozen and the 16 UPDATE shapes.
    conn.set_prepared_statement_cache_capacity(48);
    schema::ensure(&mut conn)?;
    Ok(conn)
}

/// An item's four index key pairs as nullable columns, in `COLUMNS` order.
fn index_pairs(ix: &IndexKeys) -> [(Option<&str>, Option<&str>); 4] {
    fn split(p: &Option<(String, String)>) -> (Option<&str>, Option<&str>) {
        match p {
            Some((pk, sk)) => (Some(pk.as_str()), Some(sk.as_str())),
            None => (None, None),
        }
    }
    [split(&ix.by_org), split(&ix.by_status), split(&ix.by_wallet), split(&ix.due)]
}

/// The least string above every string that starts with `prefix` (text compares as UTF-8
/// bytes, which order as code points): the prefix with its last character stepped up. `None`
/// when there is no such bound (empty, or ending in the highest character).
fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

fn epoch_seconds() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
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
    // Kept as text: parsed once, straight into its record, when decoded.
    let body = row
        .get_ref(3)?
        .as_str()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(e)))?;
    let body = Body::from_text(body);
    Ok(Item {
        key: Key::new(row.get::<_, String>(0)?, row.get::<_, String>(1)?),
        version: row.get::<_, i64>(2)? as u64,
        expires_at_epoch: row.get(4)?,
        body,
        indexes: IndexKeys { by_org: pair(5)?, by_status: pair(7)?, by_wallet: pair(9)?, due: pair(11)? },
        counters: &[],
        compact: false,
    })
}

/// The SELECT that answers `q`, and its arguments in order.
fn query_sql(q: &Query) -> Result<(String, Vec<String>), StoreError> {
    let (pkc, skc) = index_columns(q.index);
    let mut sql = format!("SELECT {COLUMNS} FROM items WHERE {pkc} = ?1");
    let mut args: Vec<String> = vec![q.pk.clone()];
    if q.index == Index::Due {
        // The due index is ordered by the partition's kind first (schema): name it.
        args.push(schema::due_kind(&q.pk).to_string());
        sql += &format!(" AND g4kind = ?{}", args.len());
    }
    if let Some(prefix) = &q.sk_prefix {
        args.push(prefix.clone());
        sql += &format!(" AND substr({skc}, 1, length(?{n})) = ?{n}", n = args.len());
        // The same as a range, so the index seeks to the prefix instead of scanning the
        // whole partition (a wallet's policies beside its thousands of ledger lines).
        args.push(prefix.clone());
        sql += &format!(" AND {skc} >= ?{}", args.len());
        if let Some(upper) = prefix_upper_bound(prefix) {
            args.push(upper);
            sql += &format!(" AND {skc} < ?{}", args.len());
        }
    }
    if let Some(min) = &q.sk_at_least {
        args.push(min.clone());
        sql += &format!(" AND {skc} >= ?{}", args.len());
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
    Ok((sql, args))
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let key = key.clone();
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {COLUMNS} FROM items WHERE pk = ?1 AND sk = ?2"))?
                .query_row(params![key.pk, key.sk], read_item)
                .optional()
        })
        .await
    }

    async fn apply(&self, writes: &[Write], token: Option<&TxToken>) -> Result<(), StoreError> {
        self.queue(writes, token, &[]).await?.outcome().await
    }

    /// Queued in the writer's order: a transaction queued after this one is checked after it,
    /// in the same batch or a later one; so are the ones it comes `after` (their tokens are
    /// looked up first).
    async fn queue(&self, writes: &[Write], token: Option<&TxToken>, after: &[TxToken]) -> Result<Queued, StoreError> {
        let (reply, answer) = oneshot::channel();
        let after = after.iter().map(|t| t.as_str().to_string()).collect();
        let job = writer::Job::new(writes, token.map(|t| t.as_str().to_string()), after, reply);
        // Not queued: nothing was applied.
        self.inner.writer.send(job).await.map_err(|_| unavailable("the store's writer has stopped"))?;
        Ok(Queued::new(async move {
            // Queued but no answer: it may have committed.
            answer.await.map_err(|_| StoreError::Ambiguous("the store's writer stopped before answering".into()))?
        }))
    }

    async fn query(&self, q: Query) -> Result<Vec<Item>, StoreError> {
        let (sql, args) = query_sql(&q)?;
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), read_item)?;
            rows.collect()
        })
        .await
    }
}
