//! Checkpoints off the writer's path: the writer never checkpoints (its commits would stall
//! behind copying WAL pages into the database file); this thread copies them, on its own
//! connection, concurrently with the writer and the readers (PASSIVE: it never blocks either).

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;

const EVERY: Duration = Duration::from_millis(200);

/// Stops the checkpointer when dropped (with the store).
pub(super) struct Stop {
    _tell: mpsc::Sender<()>,
}

pub(super) fn spawn(path: &Path) -> Result<Stop, String> {
    let conn = Connection::open(path).map_err(|e| e.to_string())?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(|e| e.to_string())?;
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("countersign-sqlite-checkpointer".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "checkpoint failed; the next one retries");
                }
            }
            // The store is closing: fold the WAL into the database file.
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        })
        .map_err(|e| e.to_string())?;
    Ok(Stop { _tell: stop })
}
