//! A pool of read-only connections: reads run concurrently on WAL snapshots, never queued
//! behind the writer. A read started after a commit returned sees that commit.

use std::sync::{Arc, Mutex, TryLockError};

use rusqlite::Connection;
use tokio::sync::Semaphore;

use crate::ports::StoreError;

pub(super) struct Readers {
    slots: Arc<[Mutex<Connection>]>,
    /// One permit per connection: a holder always finds a free slot.
    permits: Semaphore,
}

impl Readers {
    pub fn new(connections: Vec<Connection>) -> Self {
        let permits = Semaphore::new(connections.len());
        Readers { slots: connections.into_iter().map(Mutex::new).collect(), permits }
    }

    /// Runs `f` on a free reader connection, in place: a read is a few page lookups in memory
    /// (tens of microseconds), cheaper than handing it to another thread and back.
    pub async fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let _permit = self.permits.acquire().await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        // The permit guarantees one slot is free; a slot is only ever locked under a permit.
        let conn = self.slots.iter().find_map(|slot| match slot.try_lock() {
            Ok(conn) => Some(conn),
            // A panic while reading leaves the connection itself usable.
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        });
        match conn {
            Some(conn) => f(&conn).map_err(|e| StoreError::Unavailable(e.to_string())),
            None => Err(StoreError::Unavailable("no reader connection".into())),
        }
    }
}
