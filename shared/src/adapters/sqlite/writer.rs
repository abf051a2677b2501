//! The single writer with group commit. Conditional transactions queue to one thread, which
//! applies everything waiting in one SQLite transaction: each plan in its own savepoint, its
//! conditions checked in queue order against the plans before it, a plan whose condition fails
//! rolled back to its savepoint alone. Nobody hears back before the batch's COMMIT has returned,
//! and with `synchronous=FULL` in WAL mode that COMMIT returns after the WAL is fsynced: an
//! acknowledged plan survives a power cut.

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

use super::{epoch_seconds, index_pairs, COLUMNS};
use crate::ports::{Expect, Key, StoreError, Write, TOKEN_WINDOW};

/// Most plans in one batch: bounds how long one COMMIT holds the plans behind it.
const MAX_BATCH: usize = 512;
/// Plans waiting for the writer; a full queue makes callers wait (backpressure), not fail.
pub(super) const QUEUE: usize = 4096;

/// One conditional transaction waiting for the writer.
pub(super) struct Job {
    pub writes: Vec<Write>,
    pub token: Option<String>,
    pub reply: oneshot::Sender<Result<(), StoreError>>,
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
pub(super) fn spawn(mut conn: Connection) -> Result<mpsc::Sender<Job>, std::io::Error> {
    let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
    std::thread::Builder::new().name("countersign-sqlite-writer".into()).spawn(move || {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            // Whatever queued while the last batch was committing goes in this one.
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            run_batch(&mut conn, std::mem::take(&mut batch));
        }
    })?;
    Ok(tx)
}

pub(super) fn run_batch(conn: &mut Connection, batch: Vec<Job>) {
    let now = epoch_seconds();
    if let Err(e) = begin(conn, now) {
        let _ = conn.execute_batch("ROLLBACK");
        for job in batch {
            let _ = job.reply.send(Err(StoreError::Unavailable(e.to_string())));
        }
        return;
    }
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
                return;
            }
        }
    }
    let committed = conn.prepare_cached("COMMIT").and_then(|mut s| s.execute([]));
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
}

fn begin(conn: &Connection, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    // Tokens are remembered for the window, then forgotten (once per batch, not per plan).
    conn.prepare_cached("DELETE FROM tokens WHERE at <= ?1")?.execute(params![now - TOKEN_WINDOW.as_secs() as i64])?;
    Ok(())
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
        // (Expired tokens were deleted when the batch began.)
        let seen: Option<i64> = conn
            .prepare_cached("SELECT at FROM tokens WHERE token = ?1")?
            .query_row(params![token], |r| r.get(0))
            .optional()?;
        if seen.is_some() {
            return Ok(Applied::Before);
        }
        conn.prepare_cached("INSERT INTO tokens (token, at) VALUES (?1, ?2)")?.execute(params![token, now])?;
    }
    for w in &job.writes {
        let (key, expect) = match w {
            Write::Put { item, expect } => (&item.key, *expect),
            Write::Delete { key, expect } | Write::Check { key, expect } => (key, *expect),
        };
        if !holds(expect, current_version(conn, key)?) {
            return Ok(Applied::ConditionFailed);
        }
    }
    for w in &job.writes {
        match w {
            Write::Put { item, .. } => {
                let [(g1pk, g1sk), (g2pk, g2sk), (g3pk, g3sk), (g4pk, g4sk)] = index_pairs(&item.indexes);
                conn.prepare_cached(&format!(
                    "INSERT OR REPLACE INTO items ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
                ))?
                .execute(params![
                    item.key.pk,
                    item.key.sk,
                    item.version as i64,
                    item.body.to_string(),
                    item.expires_at_epoch,
                    g1pk,
                    g1sk,
                    g2pk,
                    g2sk,
                    g3pk,
                    g3sk,
                    g4pk,
                    g4sk
                ])?;
            }
            Write::Delete { key, .. } => {
                conn.prepare_cached("DELETE FROM items WHERE pk = ?1 AND sk = ?2")?.execute(params![key.pk, key.sk])?;
            }
            Write::Check { .. } => {}
        }
    }
    Ok(Applied::Now)
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
