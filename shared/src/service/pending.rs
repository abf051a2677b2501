//! Pending writes: transactions queued in the store's commit order but not yet committed, as
//! the plans behind them in their lanes see them (`lanes`). A plan reads a record's pending
//! write, if any, instead of the stored one; a plan's query first waits for the pending writes
//! that could show in it, so point reads and queries agree. Only plans see pending writes: the
//! store seen by everything else is the committed one. Entries live only while their
//! transaction is in the queue (bounded by the requests in flight).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use tokio::sync::watch;

use super::ahead;
use crate::ports::{Expect, Index, IndexKeys, Item, Key, Query, Queued, Store, StoreError, TxToken, Write};

const INDEXES: [Index; 4] = [Index::ByOrg, Index::ByStatus, Index::ByWallet, Index::Due];

/// The latest pending write of each key.
#[derive(Default)]
pub(crate) struct Pending {
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

/// One queued transaction's pending writes, withdrawn when its outcome is known, or when it is
/// dropped without one (the request was cancelled while its transaction was queued: plans then
/// read committed state again, and whoever built on it learns it is unknown).
pub(crate) struct Registration {
    pending: Arc<Pending>,
    seq: u64,
    keys: Vec<Key>,
    done: watch::Sender<Option<bool>>,
}

impl Registration {
    fn withdraw(&self) {
        let mut entries = self.pending.entries.lock().unwrap_or_else(PoisonError::into_inner);
        for key in &self.keys {
            // A later transaction's write of the same key stays until its own outcome.
            if entries.get(key).is_some_and(|e| e.seq == self.seq) {
                entries.remove(key);
            }
        }
    }

    /// The transaction's outcome is known: its writes are no longer pending.
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

impl Pending {
    /// Publishes `writes` (just queued) as pending; `reads` is what their plan read.
    pub fn register(self: &Arc<Self>, writes: &[Write], token: &TxToken, reads: Option<&PlanReads>) -> Registration {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let (done, watching) = watch::channel(None);
        let read = reads.map(|r| r.read.lock().unwrap_or_else(PoisonError::into_inner));
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let mut keys = Vec::with_capacity(writes.len());
        for w in writes {
            let (key, item) = match w {
                Write::Put { item, .. } => (&item.key, Some(item.clone())),
                Write::Delete { key, .. } => (key, None),
                Write::Check { .. } => continue,
            };
            let replaced = read.as_ref().and_then(|r| r.get(key).cloned());
            let token = token.clone();
            entries.insert(key.clone(), Entry { seq, token, item, replaced, done: watching.clone() });
            keys.push(key.clone());
        }
        drop(entries);
        drop(read);
        Registration { pending: self.clone(), seq, keys, done }
    }

    /// Whether what is queued has moved past what `writes` expect (a plan made before it).
    pub fn overtakes(&self, writes: &[Write]) -> bool {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        writes.iter().any(|w| {
            let (key, expect) = match w {
                Write::Put { item, expect } => (&item.key, *expect),
                Write::Delete { key, expect } | Write::Check { key, expect } => (key, *expect),
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
    query.sk_prefix.as_deref().is_none_or(|p| sk.starts_with(p)) && query.sk_at_most.as_deref().is_none_or(|m| sk <= m)
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

/// A pending write a plan read: its transaction's outcome, once known, and its token.
pub(crate) struct Built {
    pub done: watch::Receiver<Option<bool>>,
    pub token: TxToken,
}

/// What the plan running in this task read: the pending writes it built on (their outcomes)
/// and the index entries of every record it read.
pub(crate) struct PlanReads {
    pending: Arc<Pending>,
    used: Mutex<Vec<Built>>,
    read: Mutex<HashMap<Key, IndexKeys>>,
}

impl PlanReads {
    pub fn new(pending: Arc<Pending>) -> Arc<Self> {
        Arc::new(PlanReads { pending, used: Mutex::default(), read: Mutex::default() })
    }

    /// The pending writes this plan built on, to wait for when it commits nothing.
    pub fn take_used(&self) -> Vec<Built> {
        std::mem::take(&mut *self.used.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn remember(&self, item: &Option<Item>) {
        if let Some(item) = item {
            self.read.lock().unwrap_or_else(PoisonError::into_inner).insert(item.key.clone(), item.indexes.clone());
        }
    }
}

tokio::task_local! {
    pub(crate) static PLANNING: Arc<PlanReads>;
}

/// Waits for pending writes; `false` if any of them did not commit.
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

/// The store as the service sees it: the committed store, except inside a plan running in its
/// lanes, where pending writes show (see the module documentation).
pub(crate) struct PlanStore {
    inner: Arc<dyn Store>,
}

impl PlanStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        PlanStore { inner }
    }
}

impl PlanStore {
    /// Committed state: what was read ahead (`ahead`), else the store.
    async fn committed_get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        match ahead::take_item(key) {
            Some(item) => Ok(item),
            None => self.inner.get(key).await,
        }
    }
}

#[async_trait]
impl Store for PlanStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let Ok(reads) = PLANNING.try_with(Arc::clone) else { return self.committed_get(key).await };
        let pending = {
            let entries = reads.pending.entries.lock().unwrap_or_else(PoisonError::into_inner);
            entries.get(key).map(|e| (e.item.clone(), Built { done: e.done.clone(), token: e.token.clone() }))
        };
        let item = match pending {
            Some((item, built)) => {
                // Newer than anything read ahead of it.
                let _ = ahead::take_item(key);
                reads.used.lock().unwrap_or_else(PoisonError::into_inner).push(built);
                item
            }
            None => self.committed_get(key).await?,
        };
        reads.remember(&item);
        Ok(item)
    }

    async fn apply(&self, writes: &[Write], token: Option<&TxToken>) -> Result<(), StoreError> {
        self.inner.apply(writes, token).await
    }

    async fn queue(&self, writes: &[Write], token: Option<&TxToken>, after: &[TxToken]) -> Result<Queued, StoreError> {
        self.inner.queue(writes, token, after).await
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.inner.transact(writes).await
    }

    async fn query(&self, query: Query) -> Result<Vec<Item>, StoreError> {
        if let Ok(reads) = PLANNING.try_with(Arc::clone) {
            // Whatever is queued that could show in this query commits (or fails) first; what
            // was read ahead of those commits is then out of date.
            let waits = reads.pending.shown_in(&query);
            if !waits.is_empty() {
                settled(waits).await;
                let _ = ahead::take_query(&query);
                return self.inner.query(query).await;
            }
        }
        match ahead::take_query(&query) {
            Some(items) => Ok(items),
            None => self.inner.query(query).await,
        }
    }

    fn reads_are_round_trips(&self) -> bool {
        self.inner.reads_are_round_trips()
    }
}
