//! Long-polls held per API key (docs/api.md, "Separation of duties", bounded waiting): a key holds at most `MAX_WAITS_PER_KEY` waits for
//! a decision at once (`POST /reviews` with `blocking`, `GET /reviews/{id}/decision?wait=`, MCP
//! `wait_for_decision`); one more is refused with 429 and `Retry-After`, other keys unaffected.
//!
//! Where the store is embedded (the local server: one process) the count lives in this process,
//! exact and free. Where it is remote (Lambda: each execution environment serves one request at
//! a time, so a count of its own never passes 1) the slots live in the store: items
//! `WAIT#<key id>` / `0`..`15`, each taken with a conditional write and deleted when the wait
//! ends. A slot carries a TTL (the wait's length plus `SLOT_MARGIN`) and counts as free once it
//! has passed, so a slot of a crashed instance frees itself. Either way a slot is an RAII guard:
//! a wait that ends, fails or is dropped (the client went away) gives it back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::domain::ids::ApiKeyId;
use crate::error::{AppError, AppResult};
use crate::layout::{self, Record};
use crate::ports::{Expect, Index, Key, Query, Store, StoreError, TxToken, Write};
use crate::service::{Caller, Countersign};

/// Waits one key may hold at once.
pub const MAX_WAITS_PER_KEY: usize = 16;
/// What a refused wait is told to wait before trying again: a few poll intervals, well within
/// the longest wait (28 s), after which a slot has surely come free.
pub const WAIT_RETRY_AFTER_SECONDS: u64 = 5;
/// How long a stored slot outlives its wait: covers what the request does around the wait (a
/// blocking create writes the review first) and clock skew between instances. Past it, the
/// slot is free to take (its holder crashed or never got to delete it).
const SLOT_MARGIN: Duration = Duration::from_secs(30);
/// Reads of a key's stored slots one request makes before it answers 429: a second read catches
/// slots given back while the first read's free slots were being taken by others.
const SLOT_READS: usize = 2;

/// Waits held in this process, by key.
#[derive(Debug, Default)]
pub(crate) struct WaitSlots {
    held: Mutex<HashMap<ApiKeyId, usize>>,
    /// Whether each wait also holds a slot item in the store (a remote store, shared by every
    /// instance), chosen once from the store at construction.
    stored: bool,
}

impl WaitSlots {
    pub fn for_store(store: &dyn Store) -> Self {
        WaitSlots { held: Mutex::default(), stored: store.reads_are_round_trips() }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ApiKeyId, usize>> {
        // A panic while holding this lock cannot leave a count half-written: keep counting.
        self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn take(self: &Arc<Self>, key: &ApiKeyId) -> AppResult<WaitSlot> {
        let mut held = self.lock();
        let count = held.entry(key.clone()).or_default();
        if *count >= MAX_WAITS_PER_KEY {
            return Err(too_many());
        }
        *count += 1;
        Ok(WaitSlot { slots: self.clone(), key: key.clone(), stored: None })
    }

    /// Counts a wait that holds `stored` (the store enforced the cap).
    fn count_in(self: &Arc<Self>, key: &ApiKeyId, stored: StoredSlot) -> WaitSlot {
        *self.lock().entry(key.clone()).or_default() += 1;
        WaitSlot { slots: self.clone(), key: key.clone(), stored: Some(stored) }
    }

    fn held(&self, key: &ApiKeyId) -> usize {
        self.lock().get(key).copied().unwrap_or(0)
    }
}

fn too_many() -> AppError {
    AppError::TooManyWaits { limit: MAX_WAITS_PER_KEY, retry_after_seconds: WAIT_RETRY_AFTER_SECONDS }
}

/// A wait slot as stored (remote stores only).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HeldWait {
    api_key_id: ApiKeyId,
    slot: usize,
    /// After this the slot is free, held or not (its TTL).
    held_until: DateTime<Utc>,
}

/// The partition of a key's stored wait slots.
pub fn wait_partition(key: &ApiKeyId) -> String {
    format!("WAIT#{key}")
}

impl Record for HeldWait {
    const NAME: &'static str = "wait slot";
    fn key(&self) -> Key {
        Key::new(wait_partition(&self.api_key_id), self.slot.to_string())
    }
    fn expires_at_epoch(&self) -> Option<i64> {
        Some(self.held_until.timestamp())
    }
}

/// The stored item of a slot this wait holds.
struct StoredSlot {
    store: Arc<dyn Store>,
    key: Key,
    version: u64,
}

impl StoredSlot {
    /// Deletes the slot if it is still this wait's. Best effort: on failure its TTL frees it.
    async fn delete(self) {
        let delete = Write::Delete { key: self.key, expect: Expect::Version(self.version) };
        if let Err(e) = self.store.apply(&[delete], None).await {
            tracing::debug!(error = %e, "could not give a wait slot back; its TTL will");
        }
    }
}

/// One wait's place among its key's; given back when dropped (or, sooner, by `release`).
pub struct WaitSlot {
    slots: Arc<WaitSlots>,
    key: ApiKeyId,
    stored: Option<StoredSlot>,
}

impl std::fmt::Debug for WaitSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitSlot")
            .field("key", &self.key)
            .field("stored", &self.stored.as_ref().map(|s| &s.key))
            .finish()
    }
}

impl WaitSlot {
    /// Gives the slot back before the response goes out. On Lambda an execution environment
    /// may be frozen as soon as it has answered, so a delete left to a task spawned by `Drop`
    /// could wait for the next request; this one is done first.
    pub async fn release(mut self) {
        if let Some(stored) = self.stored.take() {
            stored.delete().await;
        }
    }
}

impl Drop for WaitSlot {
    fn drop(&mut self) {
        // Not released (the wait failed, or its request was dropped): delete in the background,
        // as `drop` cannot await. Without a runtime, the TTL frees the slot.
        if let Some(stored) = self.stored.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(stored.delete());
            }
        }
        let mut held = self.slots.lock();
        if let Some(count) = held.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.key);
            }
        }
    }
}

impl Countersign {
    /// A place for one more wait of up to `wait` by the caller's key, or 429
    /// `RATE_LIMIT_EXCEEDED` when it already holds `MAX_WAITS_PER_KEY`. Taken before anything
    /// is written (a blocking create). Callers `release` it when the wait ends.
    pub async fn wait_slot(&self, caller: &Caller, wait: Duration) -> AppResult<WaitSlot> {
        let key = &caller.key()?.id;
        if !self.waits.stored {
            return self.waits.take(key);
        }
        // Every wait this process counts holds a stored slot, so its count is a lower bound of
        // the key's: at the cap already, the store need not be asked.
        if self.waits.held(key) >= MAX_WAITS_PER_KEY {
            return Err(too_many());
        }
        let stored = self.take_stored_slot(key, wait).await?;
        Ok(self.waits.count_in(key, stored))
    }

    /// Takes a free stored slot of `key`: one read of the partition, then a conditional write of
    /// a free slot (absent, or its TTL passed). A write lost to another wait tries the read's
    /// next free slot (each loss is a slot someone else took, so this is bounded by the cap);
    /// when the read's free slots are all gone, reads again once, then 429.
    async fn take_stored_slot(&self, key: &ApiKeyId, wait: Duration) -> AppResult<StoredSlot> {
        let wait = wait.min(Duration::from_secs(crate::service::MAX_REVIEW_WAIT_SECONDS));
        let mut query = Query::new(Index::Primary, wait_partition(key), MAX_WAITS_PER_KEY + 1);
        query.newest_first = false;
        for _ in 0..SLOT_READS {
            let now = self.now();
            let mut expects: Vec<Option<Expect>> = vec![Some(Expect::Absent); MAX_WAITS_PER_KEY];
            for item in self.store().query(query.clone()).await? {
                let slot = item.key.sk.parse::<usize>().ok().and_then(|n| expects.get_mut(n));
                if let Some(expect) = slot {
                    let expired = item.expires_at_epoch.is_some_and(|ttl| ttl <= now.timestamp());
                    *expect = expired.then_some(Expect::Version(item.version));
                }
            }
            let free: Vec<(usize, Expect)> =
                expects.into_iter().enumerate().filter_map(|(n, e)| e.map(|e| (n, e))).collect();
            if free.is_empty() {
                return Err(too_many());
            }
            // Start at a random free slot, so concurrent waits of one key seldom pick the same.
            let start = rand::rng().random_range(0..free.len());
            for &(slot, expect) in free[start..].iter().chain(&free[..start]) {
                // Never repeats: a late delete by a former holder must not match a new holder.
                let version = layout::fresh_version(now);
                let held_until = now + (wait + SLOT_MARGIN);
                let record = HeldWait { api_key_id: key.clone(), slot, held_until };
                let write = match expect {
                    Expect::Version(read) => layout::replace(&record, read, version)?,
                    _ => layout::create_at(&record, version)?,
                };
                if self.put_slot(write).await? {
                    return Ok(StoredSlot { store: self.store().clone(), key: record.key(), version });
                }
            }
        }
        Err(too_many())
    }

    /// Writes a slot; `false` when another wait took it first. An outcome the store cannot tell
    /// is resent once under the same token, which applies it at most once.
    async fn put_slot(&self, write: Write) -> AppResult<bool> {
        let token = TxToken::generate();
        let writes = [write];
        let mut outcome = self.store().apply(&writes, Some(&token)).await;
        if let Err(StoreError::Ambiguous(_)) = outcome {
            outcome = self.store().apply(&writes, Some(&token)).await;
        }
        match outcome {
            Ok(()) => Ok(true),
            Err(StoreError::ConditionFailed | StoreError::Conflict) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// How many waits `key` holds in this process now (counted once their slot is taken; on a
    /// remote store the key may hold more through other instances).
    pub fn waits_held(&self, key: &ApiKeyId) -> usize {
        self.waits.held(key)
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::adapters::sqlite::SqliteStore;
    use crate::ports::{Clock, Item, Queued};

    #[test]
    fn a_key_holds_sixteen_waits_and_gets_each_back_when_dropped() {
        let slots = Arc::new(WaitSlots::default());
        let (mine, theirs) = (ApiKeyId::generate(), ApiKeyId::generate());
        let held: Vec<WaitSlot> = (0..MAX_WAITS_PER_KEY).map(|_| slots.take(&mine).expect("slot")).collect();
        assert!(matches!(slots.take(&mine), Err(AppError::TooManyWaits { limit: MAX_WAITS_PER_KEY, .. })));
        let other = slots.take(&theirs).expect("another key is not held back");
        drop(held);
        assert_eq!((slots.held(&mine), slots.held(&theirs)), (0, 1));
        drop(other);
        assert!(slots.lock().is_empty(), "no entry left behind");
        assert!(slots.take(&mine).is_ok());
    }

    /// The embedded store, claiming to be remote: slots go to the store.
    struct Remote(SqliteStore);

    #[async_trait]
    impl Store for Remote {
        async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
            self.0.get(key).await
        }
        fn reads_are_round_trips(&self) -> bool {
            true
        }
        async fn apply(&self, writes: &[Write], token: Option<&TxToken>) -> Result<(), StoreError> {
            self.0.apply(writes, token).await
        }
        async fn queue(
            &self,
            writes: &[Write],
            token: Option<&TxToken>,
            after: &[TxToken],
        ) -> Result<Queued, StoreError> {
            self.0.queue(writes, token, after).await
        }
        async fn query(&self, query: Query) -> Result<Vec<Item>, StoreError> {
            self.0.query(query).await
        }
    }

    struct At(Mutex<DateTime<Utc>>);

    impl Clock for At {
        fn now(&self) -> DateTime<Utc> {
            *self.0.lock().unwrap()
        }
    }

    fn too_many_waits<T>(result: AppResult<T>) -> bool {
        matches!(result, Err(AppError::TooManyWaits { limit: MAX_WAITS_PER_KEY, .. }))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn stored_slots_cap_a_key_under_races_and_free_themselves_after_their_ttl() {
        let store: Arc<dyn Store> = Arc::new(Remote(SqliteStore::in_memory().unwrap()));
        let clock = Arc::new(At(Mutex::new(Utc::now())));
        // Two instances over one store.
        let one = Countersign::new(store.clone(), clock.clone(), Default::default());
        let two = Countersign::new(store.clone(), clock.clone(), Default::default());
        let (mine, theirs) = (ApiKeyId::generate(), ApiKeyId::generate());
        let wait = Duration::from_secs(25);
        // 16 at once: a write lost to another takes the next free slot, never a 429.
        let takes = (0..MAX_WAITS_PER_KEY).map(|n| {
            let (service, key) = (if n % 2 == 0 { &one } else { &two }, &mine);
            async move { service.take_stored_slot(key, wait).await }
        });
        let mut held: Vec<StoredSlot> = futures::future::try_join_all(takes).await.expect("16 slots");
        assert!(too_many_waits(one.take_stored_slot(&mine, wait).await));
        assert!(too_many_waits(two.take_stored_slot(&mine, wait).await));
        let other = two.take_stored_slot(&theirs, wait).await.expect("another key is not held back");

        // One given back: one more may wait.
        held.pop().expect("slot").delete().await;
        held.push(one.take_stored_slot(&mine, wait).await.expect("the slot given back"));
        assert!(too_many_waits(two.take_stored_slot(&mine, wait).await));

        // Holders that never give their slots back (crashed): free once the TTL has passed.
        *clock.0.lock().unwrap() += wait + SLOT_MARGIN;
        let taken_over = two.take_stored_slot(&mine, wait).await.expect("an expired slot");
        // The former holder's late delete leaves the new holder's slot alone.
        for slot in held.drain(..).filter(|s| s.key == taken_over.key) {
            slot.delete().await;
        }
        assert!(store.get(&taken_over.key).await.unwrap().is_some(), "the new holder keeps its slot");
        other.delete().await;
        let left = store.query(Query::new(Index::Primary, wait_partition(&theirs), 20)).await.unwrap();
        assert!(left.is_empty(), "a slot given back is deleted: {left:?}");
    }
}
