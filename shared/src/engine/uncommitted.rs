//! Uncommitted writes: transactions queued in the store's commit order but not yet committed,
//! as the plans after them under the same record locks see them (`locks`). A plan's `Reader`
//! answers a record's uncommitted write, if any, instead of the stored one, and a plan's query
//! first waits for the uncommitted writes that could show in it, so point reads and queries
//! agree. Only plans see uncommitted writes: every other read is of committed state. Entries
//! live only while their transaction is in the queue (bounded by the requests in flight).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use crate::ports::{Expect, Index, IndexKeys, Item, Key, Query, TxToken, Write};

const INDEXES: [Index; 4] = [Index::ByOrg, Index::ByStatus, Index::ByWallet, Index::Due];

/// The latest uncommitted write of each key.
#[derive(Default)]
pub(crate) struct Uncommitted {
    entries: Mutex<HashMap<Key, Entry>>,
    next: AtomicU64,
}

struct Entry {
    /// Which queued transaction wrote it.
    seq: u64,
    /// That transaction's token: a plan that builds on this write is queued after it.
    token: TxToken,
    /// The item it writes; `None` for a delete.
    item: Option<Item>,
    /// The index entries of the item it replaces, when the plan read it (so a query of the
    /// partition it leaves waits for it too); `None` when unknown.
    replaced: Option<IndexKeys>,
    /// Its transaction's outcome once known: committed or not.
    done: watch::Receiver<Option<bool>>,
}

/// One queued transaction's uncommitted writes, withdrawn when its outcome is known, or when it is
/// dropped without one (the request was cancelled while its transaction was queued: plans then
/// read committed state again, and whoever built on it learns it is unknown).
pub(crate) struct Registration {
    uncommitted: Arc<Uncommitted>,
    seq: u64,
    keys: Vec<Key>,
    done: watch::Sender<Option<bool>>,
}

impl Registration {
    fn withdraw(&self) {
        let mut entries = self.uncommitted.entries.lock().unwrap_or_else(PoisonError::into_inner);
        for key in &self.keys {
            // A later transaction's write of the same key stays until its own outcome.
            if entries.get(key).is_some_and(|e| e.seq == self.seq) {
                entries.remove(key);
            }
        }
    }

    /// The transaction's outcome is known: its writes are no longer uncommitted.
    pub fn complete(self, committed: bool) {
        self.withdraw();
        let _ = self.done.send(Some(committed));
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // After `complete` this finds nothing left to withdraw.
        self.withdraw();
    }
}

impl Uncommitted {
    /// Publishes `writes` (just queued) as uncommitted; `reads` is what their plan read.
    pub fn register(self: &Arc<Self>, writes: &[Write], token: &TxToken, reads: Option<&AttemptReads>) -> Registration {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let (done, watching) = watch::channel(None);
        let read = reads.map(|r| r.read.lock().unwrap_or_else(PoisonError::into_inner));
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let mut keys = Vec::with_capacity(writes.len());
        for w in writes {
            let (key, item) = match w {
                Write::Put { item, .. } => (&item.key, Some(item.clone())),
                Write::Delete { key, .. } => (key, None),
                Write::Check { .. } | Write::Adjust { .. } | Write::Require { .. } => continue,
            };
            let replaced = read.as_ref().and_then(|r| r.get(key).cloned());
            let token = token.clone();
            entries.insert(key.clone(), Entry { seq, token, item, replaced, done: watching.clone() });
            keys.push(key.clone());
        }
        drop(entries);
        drop(read);
        Registration { uncommitted: self.clone(), seq, keys, done }
    }

    /// Whether what is queued has moved past what `writes` expect (a plan made before it).
    pub fn overtakes(&self, writes: &[Write]) -> bool {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        writes.iter().any(|w| {
            let (key, expect) = match w {
                Write::Put { item, expect } => (&item.key, *expect),
                Write::Delete { key, expect } | Write::Check { key, expect } => (key, *expect),
                // Plans under record locks never adjust in place (`Plan::rewriting`).
                Write::Adjust { .. } | Write::Require { .. } => return false,
            };
            entries.get(key).is_some_and(|e| match (expect, &e.item) {
                (Expect::Absent, pending) => pending.is_some(),
                (Expect::Version(v), Some(item)) => item.version != v,
                (Expect::Version(_), None) => true,
            })
        })
    }

    /// The outcomes to wait for before `query` reads committed state that agrees with them.
    fn shown_in(&self, query: &Query) -> Vec<watch::Receiver<Option<bool>>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.iter().filter(|(key, e)| e.could_show_in(key, query)).map(|(_, e)| e.done.clone()).collect()
    }
}

fn in_range(query: &Query, sk: &str) -> bool {
    query.sk_prefix.as_deref().is_none_or(|p| sk.starts_with(p))
        && query.sk_at_least.as_deref().is_none_or(|m| sk >= m)
        && query.sk_at_most.as_deref().is_none_or(|m| sk <= m)
}

impl Entry {
    fn could_show_in(&self, key: &Key, query: &Query) -> bool {
        if query.index == Index::Primary {
            return key.pk == query.pk && in_range(query, &key.sk);
        }
        let at = |ix: &IndexKeys| ix.get(query.index).is_some_and(|(pk, sk)| *pk == query.pk && in_range(query, sk));
        let written = self.item.as_ref().is_some_and(|item| at(&item.indexes));
        let left = match &self.replaced {
            Some(ix) => at(ix),
            // What it replaces is unknown: it may be leaving this very partition.
            None => INDEXES.contains(&query.index),
        };
        written || left
    }
}

/// A uncommitted write a plan read: its transaction's outcome, once known, and its token.
pub(crate) struct BuiltOn {
    pub done: watch::Receiver<Option<bool>>,
    pub token: TxToken,
}

/// What one attempt of a plan read: the uncommitted writes it built on (their outcomes)
/// and the index entries of every record it read.
pub(crate) struct AttemptReads {
    uncommitted: Arc<Uncommitted>,
    used: Mutex<Vec<BuiltOn>>,
    read: Mutex<HashMap<Key, IndexKeys>>,
}

impl AttemptReads {
    pub fn new(uncommitted: Arc<Uncommitted>) -> Arc<Self> {
        Arc::new(AttemptReads { uncommitted, used: Mutex::default(), read: Mutex::default() })
    }

    /// The uncommitted writes this plan built on, to wait for when it commits nothing.
    pub fn take_used(&self) -> Vec<BuiltOn> {
        std::mem::take(&mut *self.used.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The uncommitted write of `key` this attempt builds on, if there is one (`None` inside: a
    /// delete); noted, so the plan waits for it or is queued after it.
    pub fn build_on(&self, key: &Key) -> Option<Option<Item>> {
        let (item, built) = {
            let entries = self.uncommitted.entries.lock().unwrap_or_else(PoisonError::into_inner);
            let e = entries.get(key)?;
            (e.item.clone(), BuiltOn { done: e.done.clone(), token: e.token.clone() })
        };
        self.used.lock().unwrap_or_else(PoisonError::into_inner).push(built);
        Some(item)
    }

    /// The outcomes to wait for before `query` reads committed state that agrees with them.
    pub fn shown_in(&self, query: &Query) -> Vec<watch::Receiver<Option<bool>>> {
        self.uncommitted.shown_in(query)
    }

    /// Notes the index entries of a record read (a query of a partition it leaves waits for it).
    pub fn remember(&self, item: &Option<Item>) {
        if let Some(item) = item {
            self.read.lock().unwrap_or_else(PoisonError::into_inner).insert(item.key.clone(), item.indexes.clone());
        }
    }
}

/// Waits for uncommitted writes; `false` if any of them did not commit.
pub(crate) async fn settled(waits: Vec<watch::Receiver<Option<bool>>>) -> bool {
    let mut all = true;
    for mut done in waits {
        match done.wait_for(Option::is_some).await {
            Ok(outcome) => all &= *outcome == Some(true),
            // The committer went away without an outcome (cancelled): unknown.
            Err(_) => all = false,
        }
    }
    all
}
