//! The single writer with group commit. Conditional transactions queue to one thread, which
//! applies everything waiting in one SQLite transaction: each plan in its own savepoint, its
//! conditions checked in queue order against the plans before it, a plan whose condition fails
//! rolled back to its savepoint alone. Nobody hears back before the batch's COMMIT has returned,
//! and with `synchronous=FULL` in WAL mode that COMMIT returns after the WAL is fsynced: an
//! acknowledged plan survives a power cut.

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

use super::checkpointer::Restart;
use super::{epoch_seconds, index_pairs};
use crate::ports::{Expect, Item, Key, StoreError, Write, TOKEN_WINDOW};

/// Most plans in one batch: bounds how long one COMMIT holds the plans behind it.
const MAX_BATCH: usize = 512;
/// How often expired transaction tokens are deleted: not every batch, whose commit would write
/// those pages each time. A token may so be remembered a minute past its window (never less).
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// Most expired items (DynamoDB's TTL, here) one purge deletes: bounds what it adds to the
/// batch it runs in. While a purge finds a full chunk the next batch purges again, so a backlog
/// (a store upgraded with a day of records, a burst that expired together) goes in chunks.
pub(super) const EXPIRED_CHUNK: usize = 500;
/// How long a batch may wait to fill (`fill_window`): a fraction of one fsynced commit.
const FILL_WINDOW: std::time::Duration = std::time::Duration::from_micros(250);
/// A writer left waiting this long for the next plan is idle: the next batch is not sized by
/// the last (longer than a plan takes to come back from its reply under load).
const IDLE: std::time::Duration = std::time::Duration::from_millis(5);
/// Plans waiting for the writer; a full queue makes callers wait (backpressure), not fail.
pub(super) const QUEUE: usize = 4096;

/// One conditional transaction waiting for the writer. Its puts' bodies are the caller's JSON
/// text, shared: nothing is printed or copied on the writer's thread.
pub(super) struct Job {
    writes: Vec<Write>,
    token: Option<String>,
    /// Tokens of the transactions this one was planned on: each must have committed.
    after: Vec<String>,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

impl Job {
    pub fn new(
        writes: &[Write],
        token: Option<String>,
        after: Vec<String>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    ) -> Self {
        Job { writes: writes.to_vec(), token, after, reply }
    }
}

/// What one plan came to inside its batch (before the batch commits).
enum Applied {
    /// Written in this batch.
    Now,
    /// Its token committed earlier: succeeds without writing again.
    Before,
    ConditionFailed,
    /// SQLite refused a statement of this plan alone; nothing of it is kept.
    Failed(String),
}

/// Runs the writer on its own thread until every sender is dropped.
pub(super) fn spawn(mut conn: Connection, restart: Restart) -> Result<mpsc::Sender<Job>, std::io::Error> {
    let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
    std::thread::Builder::new().name("countersign-sqlite-writer".into()).spawn(move || {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut stats = Stats::default();
        let mut purged: Option<std::time::Instant> = None;
        let mut backlog = false;
        let mut last_batch = 0;
        loop {
            let idle_since = std::time::Instant::now();
            let Some(first) = rx.blocking_recv() else { break };
            last_batch = guide(last_batch, idle_since.elapsed());
            batch.push(first);
            // Whatever queued while the last batch was committing goes in this one.
            drain(&mut rx, &mut batch);
            if fill_window(batch.len(), last_batch) {
                std::thread::sleep(FILL_WINDOW);
                drain(&mut rx, &mut batch);
            }
            last_batch = batch.len();
            let started = std::time::Instant::now();
            let plans = batch.len();
            let purge = backlog || purged.is_none_or(|at| at.elapsed() >= PURGE_EVERY);
            if purge {
                purged = Some(started);
            }
            let ran = run_batch(&mut conn, std::mem::take(&mut batch), purge);
            backlog = ran.expired == EXPIRED_CHUNK;
            stats.add(plans, started.elapsed(), ran.committing);
            restart.if_asked(&conn);
        }
    })?;
    Ok(tx)
}

/// Moves what is queued into the batch, up to `MAX_BATCH`.
fn drain(rx: &mut mpsc::Receiver<Job>, batch: &mut Vec<Job>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

/// The last batch's size, to guide the next (`fill_window`), unless the writer was idle since:
/// the load that sized it is over.
fn guide(last_batch: usize, idle_for: std::time::Duration) -> usize {
    if idle_for >= IDLE {
        0
    } else {
        last_batch
    }
}

/// Whether to wait `FILL_WINDOW` for more plans before starting a batch: only under load, when
/// fewer are waiting than the last batch held (the rest are on their way from requests being
/// planned). Each batch's commit writes every page it touches once, however many plans touched
/// it, and pays one fsync: more plans per batch is less disk and CPU per plan. A lone request
/// never waits: not after a batch of one, nor after the writer was idle (`IDLE`).
fn fill_window(waiting: usize, last_batch: usize) -> bool {
    last_batch > 1 && waiting < last_batch
}

/// Batch sizes and busy time, logged at debug level every few seconds (for tuning).
#[derive(Default)]
struct Stats {
    since: Option<std::time::Instant>,
    batches: u64,
    plans: u64,
    busy: std::time::Duration,
    committing: std::time::Duration,
}

impl Stats {
    fn add(&mut self, plans: usize, took: std::time::Duration, committing: std::time::Duration) {
        let since = *self.since.get_or_insert_with(std::time::Instant::now);
        self.batches += 1;
        self.plans += plans as u64;
        self.busy += took;
        self.committing += committing;
        let elapsed = since.elapsed();
        if elapsed >= std::time::Duration::from_secs(5) {
            tracing::debug!(
                batches = self.batches,
                plans = self.plans,
                plans_per_batch = self.plans as f64 / self.batches as f64,
                busy_share = self.busy.as_secs_f64() / elapsed.as_secs_f64(),
                commit_share = self.committing.as_secs_f64() / elapsed.as_secs_f64(),
                "sqlite writer"
            );
            *self = Stats::default();
        }
    }
}

/// What one batch did besides its plans.
#[derive(Debug, Default)]
pub(super) struct Ran {
    /// How long its COMMIT took.
    pub committing: std::time::Duration,
    /// Expired items it deleted (at most `EXPIRED_CHUNK`; committed only with the batch).
    pub expired: usize,
}

/// Applies and commits one batch, answers every plan in it. With `purge`, the batch first
/// forgets old tokens and deletes a chunk of expired items.
pub(super) fn run_batch(conn: &mut Connection, batch: Vec<Job>, purge: bool) -> Ran {
    let now = epoch_seconds();
    let expired = match begin(conn, now, purge) {
        Ok(expired) => expired,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            for job in batch {
                let _ = job.reply.send(Err(StoreError::Unavailable(e.to_string())));
            }
            return Ran::default();
        }
    };
    let mut outcomes = Vec::with_capacity(batch.len());
    for job in &batch {
        match in_savepoint(conn, job, now) {
            Ok(applied) => outcomes.push(applied),
            Err(e) => {
                // The savepoint machinery itself failed: nothing in this batch can be trusted.
                let _ = conn.execute_batch("ROLLBACK");
                for job in batch {
                    let _ = job.reply.send(Err(StoreError::Unavailable(e.to_string())));
                }
                return Ran::default();
            }
        }
    }
    let commit_started = std::time::Instant::now();
    let committed = conn.prepare_cached("COMMIT").and_then(|mut s| s.execute([]));
    let committing = commit_started.elapsed();
    if let Err(e) = &committed {
        let _ = conn.execute_batch("ROLLBACK");
        tracing::error!(error = %e, plans = batch.len(), "group commit failed");
    }
    for (job, applied) in batch.into_iter().zip(outcomes) {
        let result = match (&committed, applied) {
            (Ok(_), Applied::Now | Applied::Before) => Ok(()),
            (Ok(_), Applied::ConditionFailed) => Err(StoreError::ConditionFailed),
            (_, Applied::Failed(e)) => Err(StoreError::Unavailable(e)),
            // A failed COMMIT may still have reached the disk: only a resend with the token can tell.
            (Err(e), Applied::Now | Applied::Before) => Err(StoreError::Ambiguous(e.to_string())),
            // Checked against plans that did not commit either: nothing of it was applied.
            (Err(e), Applied::ConditionFailed) => Err(StoreError::Unavailable(e.to_string())),
        };
        let _ = job.reply.send(result);
    }
    Ran { committing, expired: if committed.is_ok() { expired } else { 0 } }
}

/// Starts the batch's transaction; with `purge`, forgets old tokens and deletes up to
/// `EXPIRED_CHUNK` expired items, returning how many.
fn begin(conn: &Connection, now: i64, purge: bool) -> rusqlite::Result<usize> {
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    if !purge {
        return Ok(0);
    }
    // Tokens are remembered for the window, then forgotten, a while later at most.
    conn.prepare_cached("DELETE FROM tokens WHERE token < ?1")?.execute(params![forgotten_before(now)])?;
    delete_expired(conn, now)
}

/// Deletes up to `EXPIRED_CHUNK` items whose TTL has passed (idempotency records, dashboard
/// sessions, used review links), oldest first, as DynamoDB's TTL does in the deployed store:
/// without it the file would only grow. The `expiring` index finds them without a scan.
pub(super) fn delete_expired(conn: &Connection, now: i64) -> rusqlite::Result<usize> {
    conn.prepare_cached("DELETE FROM items WHERE id IN (SELECT id FROM items WHERE ttl < ?1 ORDER BY ttl LIMIT ?2)")?
        .execute(params![now, EXPIRED_CHUNK as i64])
}

/// The least token still remembered at `now` (epoch seconds). Tokens are ULIDs (`TxToken`), whose
/// text sorts by the millisecond they were made: those made more than the window and a purge
/// interval ago were committed, if ever, longer than the window ago (a plan commits or fails
/// within seconds of making its token).
fn forgotten_before(now: i64) -> String {
    let cutoff = now - (TOKEN_WINDOW + PURGE_EVERY).as_secs() as i64;
    ulid::Ulid::from_parts(cutoff.max(0) as u64 * 1000, 0).to_string()
}

/// Applies one plan in its own savepoint; `Err` only when the savepoint cannot be managed.
fn in_savepoint(conn: &Connection, job: &Job, now: i64) -> rusqlite::Result<Applied> {
    conn.prepare_cached("SAVEPOINT plan")?.execute([])?;
    let applied = match apply(conn, job, now) {
        Ok(applied) => applied,
        Err(e) => Applied::Failed(e.to_string()),
    };
    if matches!(applied, Applied::ConditionFailed | Applied::Failed(_)) {
        conn.prepare_cached("ROLLBACK TO plan")?.execute([])?;
    }
    conn.prepare_cached("RELEASE plan")?.execute([])?;
    Ok(applied)
}

fn apply(conn: &Connection, job: &Job, now: i64) -> rusqlite::Result<Applied> {
    if let Some(token) = &job.token {
        // As DynamoDB: a transaction already applied under this token is not applied again.
        match conn.prepare_cached("INSERT INTO tokens (token, at) VALUES (?1, ?2)")?.execute(params![token, now]) {
            Ok(_) => {}
            Err(e) if is_conflict(&e) => return Ok(Applied::Before),
            Err(e) => return Err(e),
        }
    }
    // Planned on queued transactions: each was checked before this one (queue order), in an
    // earlier batch or an earlier savepoint of this one, and left its token if it committed.
    for before in &job.after {
        let committed = conn.prepare_cached("SELECT 1 FROM tokens WHERE token = ?1")?.exists(params![before])?;
        if !committed {
            return Ok(Applied::ConditionFailed);
        }
    }
    // Each write checks its own condition as it applies (one statement, no read first); the
    // first that fails rolls the plan back to its savepoint.
    for w in &job.writes {
        let held = match w {
            Write::Put { item, expect: Expect::Absent } => insert(conn, item)?,
            Write::Put { item, expect: Expect::Version(v) } => update(conn, item, *v)?,
            Write::Delete { key, expect: Expect::Version(v) } => {
                conn.prepare_cached("DELETE FROM items WHERE pk = ?1 AND sk = ?2 AND version = ?3")?
                    .execute(params![key.pk, key.sk, *v as i64])?
                    == 1
            }
            // Nothing there to delete: holds when it is indeed absent.
            Write::Delete { key, expect: Expect::Absent } => current_version(conn, key)?.is_none(),
            Write::Check { key, expect } => holds(*expect, current_version(conn, key)?),
            Write::Adjust { key, adjustment } => adjust(conn, key, |body| adjustment.apply_to(body).is_ok())?,
            Write::Require { key, guards } => {
                stored_body(conn, key)?.is_some_and(|(_, body)| crate::ports::adjust_check(guards, &body).is_ok())
            }
        };
        if !held {
            return Ok(Applied::ConditionFailed);
        }
    }
    Ok(Applied::Now)
}

/// A primary-key (or unique) conflict: the row is there already.
fn is_conflict(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

/// Creates the item; `false` when something is stored at its key.
fn insert(conn: &Connection, item: &Item) -> rusqlite::Result<bool> {
    let [(g1pk, g1sk), (g2pk, g2sk), (g3pk, g3sk), (g4pk, g4sk)] = index_pairs(&item.indexes);
    let inserted = conn
        .prepare_cached(
            "INSERT INTO items (pk, sk, version, body, ttl, g1pk, g1sk, g2pk, g2sk, g3pk, g3sk, g4pk, g4sk) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?
        .execute(params![
            item.key.pk,
            item.key.sk,
            item.version as i64,
            item.body.as_str(),
            item.expires_at_epoch,
            g1pk,
            g1sk,
            g2pk,
            g2sk,
            g3pk,
            g3sk,
            g4pk,
            g4sk
        ]);
    match inserted {
        Ok(_) => Ok(true),
        Err(e) if is_conflict(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Replaces the item stored at version `expected`; `false` when the stored one is not that.
/// Only the index columns whose values change are set: SQLite rewrites the entries of every
/// index whose columns an UPDATE sets, changed or not, and each such index page is one more page
/// in the commit (a wallet's debit leaves its index entries where they are).
fn update(conn: &Connection, item: &Item, expected: u64) -> rusqlite::Result<bool> {
    let new = index_pairs(&item.indexes);
    let stored = conn
        .prepare_cached(
            "SELECT id, version, g1pk, g1sk, g2pk, g2sk, g3pk, g3sk, g4pk, g4sk FROM items WHERE pk = ?1 AND sk = ?2",
        )?
        .query_row(params![item.key.pk, item.key.sk], |row| {
            let mut changed = [false; 4];
            for (n, (pk, sk)) in new.iter().enumerate() {
                let same = |column: usize, value: &Option<&str>| -> rusqlite::Result<bool> {
                    Ok(row.get_ref(column)?.as_str_or_null()? == *value)
                };
                changed[n] = !(same(2 + 2 * n, pk)? && same(3 + 2 * n, sk)?);
            }
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, changed))
        })
        .optional()?;
    let Some((id, version, changed)) = stored else { return Ok(false) };
    if version != expected as i64 {
        return Ok(false);
    }
    let (version, body) = (item.version as i64, item.body.as_str());
    let mut values: Vec<&dyn rusqlite::ToSql> = vec![&version, &body, &item.expires_at_epoch];
    for (n, (pk, sk)) in new.iter().enumerate() {
        if changed[n] {
            values.push(pk);
            values.push(sk);
        }
    }
    values.push(&id);
    Ok(conn.prepare_cached(update_statement(changed))?.execute(values.as_slice())? == 1)
}

/// The UPDATE that sets the body and the index columns marked `changed`, by row id.
fn update_statement(changed: [bool; 4]) -> &'static str {
    static STATEMENTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let statements = STATEMENTS.get_or_init(|| {
        (0..16)
            .map(|mask: usize| {
                let mut sql = String::from("UPDATE items SET version = ?, body = ?, ttl = ?");
                for n in (0..4).filter(|n| mask & (1 << n) != 0) {
                    sql.push_str(&format!(", g{0}pk = ?, g{0}sk = ?", n + 1));
                }
                sql + " WHERE id = ?"
            })
            .collect()
    });
    let mask = changed.iter().enumerate().filter(|(_, c)| **c).fold(0, |m, (n, _)| m | (1 << n));
    &statements[mask]
}

/// The stored item's row id and body, parsed (`None`: nothing there, or a body that is not an
/// object).
fn stored_body(
    conn: &Connection,
    key: &Key,
) -> rusqlite::Result<Option<(i64, serde_json::Map<String, serde_json::Value>)>> {
    let row = conn
        .prepare_cached("SELECT id, body FROM items WHERE pk = ?1 AND sk = ?2")?
        .query_row(params![key.pk, key.sk], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .optional()?;
    Ok(row.and_then(|(id, text)| match serde_json::from_str(&text) {
        Ok(serde_json::Value::Object(body)) => Some((id, body)),
        _ => None,
    }))
}

/// Changes the stored body in place with `change` (false: refused, nothing written) and bumps
/// the version; `false` when nothing is stored at `key`.
fn adjust(
    conn: &Connection,
    key: &Key,
    change: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>) -> bool,
) -> rusqlite::Result<bool> {
    let Some((id, mut body)) = stored_body(conn, key)? else { return Ok(false) };
    if !change(&mut body) {
        return Ok(false);
    }
    let text = serde_json::Value::Object(body).to_string();
    conn.prepare_cached("UPDATE items SET version = version + 1, body = ?1 WHERE id = ?2")?
        .execute(params![text, id])?;
    Ok(true)
}

fn current_version(conn: &Connection, key: &Key) -> rusqlite::Result<Option<u64>> {
    conn.prepare_cached("SELECT version FROM items WHERE pk = ?1 AND sk = ?2")?
        .query_row(params![key.pk, key.sk], |r| r.get::<_, i64>(0))
        .optional()
        .map(|v| v.map(|v| v as u64))
}

fn holds(expect: Expect, current: Option<u64>) -> bool {
    match expect {
        Expect::Absent => current.is_none(),
        Expect::Version(v) => current == Some(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_waits_to_fill_only_under_load() {
        // A lone request, or the first batch: never waits.
        assert!(!fill_window(1, 1));
        assert!(!fill_window(1, 0));
        // Fewer waiting than the last batch held: more are on their way.
        assert!(fill_window(2, 6));
        // As many as last time (or more): the batch is already full enough.
        assert!(!fill_window(6, 6));
        assert!(!fill_window(9, 6));
        // After a burst, a lone request that finds the writer idle does not wait either.
        assert!(!fill_window(1, guide(20, IDLE)));
        assert!(fill_window(1, guide(20, std::time::Duration::from_micros(300))), "still under load");
    }

    #[test]
    fn an_update_sets_only_the_index_columns_that_change() {
        assert_eq!(update_statement([false; 4]), "UPDATE items SET version = ?, body = ?, ttl = ? WHERE id = ?");
        assert_eq!(
            update_statement([false, true, false, true]),
            "UPDATE items SET version = ?, body = ?, ttl = ?, g2pk = ?, g2sk = ?, g4pk = ?, g4sk = ? WHERE id = ?"
        );
    }
}
