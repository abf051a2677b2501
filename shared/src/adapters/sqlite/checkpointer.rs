//! Checkpoints off the writer's path: the writer never checkpoints (its commits would stall
//! behind copying WAL pages into the database file); this thread copies them, on its own
//! connection, concurrently with the writer and the readers (PASSIVE: it never blocks either).
//!
//! A passive checkpoint copies frames but never starts the WAL over: under steady writes some
//! frames are always newer than the last copy and some reader always holds a snapshot in the
//! WAL, so the file would grow without bound (a gigabyte in seconds under load, every append
//! allocating new blocks). Once the WAL holds `RESTART_AT` frames the checkpointer asks the
//! writer to start it over between two batches (`Restart`), when nothing new is being written.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use rusqlite::Connection;

/// Often: each pass then copies a few hundred pages, and its fsync of the database file (which
/// the writer's next WAL fsync may queue behind) stays short, as does what a restart has left
/// to copy on the writer's thread. A/B at full load: p99 of held intakes 8.5-9.3 ms every 15 ms,
/// 13.5-15 ms every 50 ms, 17-18.5 ms every 200 ms.
const EVERY: Duration = Duration::from_millis(15);
/// WAL length (frames) past which the writer is asked to start the WAL over: 64 MiB of 4 KiB
/// pages, under half a second of writes at full load (bench: held intakes write about 45 KB of
/// WAL each). Each restart holds the writer for a few milliseconds (what is left to copy, and
/// the database file's fsync), so not much more often than that.
pub(super) const RESTART_AT: i64 = 16384;
/// How the writer waits for readers still in the old WAL: in short steps (SQLite's own busy
/// timeout sleeps a millisecond at least), giving up after 20 ms until the checkpointer asks
/// again (a long listing may hold its snapshot for a while).
fn readers_grace(attempts: i32) -> bool {
    std::thread::sleep(Duration::from_micros(100));
    attempts < 200
}

/// Set by the checkpointer when the WAL has grown past `at_frames`; taken by the writer.
#[derive(Clone)]
pub(super) struct Restart {
    asked: Arc<AtomicBool>,
    at_frames: i64,
}

impl Restart {
    pub(super) fn at(frames: i64) -> Self {
        Restart { asked: Arc::default(), at_frames: frames }
    }

    fn ask_if_long(&self, frames: i64) {
        if frames >= self.at_frames {
            self.asked.store(true, Ordering::Relaxed);
        }
    }

    /// Starts the WAL over if the checkpointer asked: everything left is copied into the
    /// database file and, once the readers still in the WAL are done, the next commit writes
    /// from its start again (the file keeps its size, so its blocks are reused). Run by the
    /// writer between batches, so no frame is appended meanwhile.
    pub(super) fn if_asked(&self, writer: &Connection) {
        if !self.asked.swap(false, Ordering::Relaxed) {
            return;
        }
        let _ = writer.busy_handler(Some(readers_grace));
        let started = std::time::Instant::now();
        // (busy: readers kept it from starting over, frames in the WAL, frames copied)
        match writer.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get::<_, i64>(0)) {
            Ok(busy) => tracing::debug!(busy, took_us = started.elapsed().as_micros() as u64, "WAL restart"),
            Err(e) => tracing::debug!(error = %e, "WAL restart deferred"),
        }
        let _ = writer.busy_timeout(super::BUSY_TIMEOUT);
    }
}

/// Stops the checkpointer when dropped (with the store).
pub(super) struct Stop {
    _tell: mpsc::Sender<()>,
}

pub(super) fn spawn(path: &Path, restart: Restart) -> Result<Stop, String> {
    let conn = Connection::open(path).map_err(|e| e.to_string())?;
    conn.busy_timeout(super::BUSY_TIMEOUT).map_err(|e| e.to_string())?;
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("countersign-sqlite-checkpointer".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                // (busy, frames in the WAL, frames copied)
                match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1)) {
                    Ok(frames) => restart.ask_if_long(frames),
                    Err(e) => tracing::warn!(error = %e, "checkpoint failed; the next one retries"),
                }
            }
            // The store is closing: fold the WAL into the database file.
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        })
        .map_err(|e| e.to_string())?;
    Ok(Stop { _tell: stop })
}
