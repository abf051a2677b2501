//! The reads of one plan, as an explicit argument: a `Reader` answers from what was prefetched,
//! from the uncommitted writes its attempt may build on (embedded store, under record locks:
//! `uncommitted`), or else from the store.
//!
//! Prefetch: where every read is a network round trip (DynamoDB), the records a request will
//! read are declared up front (`Reads`: keys and queries as data) and fetched together, point
//! reads in one batch (BatchGetItem) and queries alongside it. Each prefetched answer is used
//! once; a second read of the same key goes to the store, and an attempt made after a lost race
//! gets a new reader with nothing prefetched. Where reads are cheap (the embedded store) the
//! engine prefetches nothing: the reads themselves go to the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::uncommitted::{settled, AttemptReads};
use crate::domain::ids::OrgId;
use crate::error::{AppError, AppResult};
use crate::layout::{decode, Record, Stored};
use crate::ports::{Item, Key, Query, Store, StoreError};

/// What a use case will read: declared before it runs, so a remote store fetches it all at once.
#[derive(Debug, Default)]
pub(crate) struct Reads {
    pub keys: Vec<Key>,
    pub queries: Vec<Query>,
}

impl Reads {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.queries.is_empty()
    }
}

/// Answers fetched ahead and not yet read.
#[derive(Default)]
struct Prefetched {
    items: HashMap<Key, Option<Item>>,
    queries: Vec<(Query, Vec<Item>)>,
}

impl Prefetched {
    /// What of `reads` is not already here, each once (a batch read refuses repeated keys).
    fn missing(&self, reads: Reads) -> Reads {
        let mut keys: Vec<Key> = Vec::with_capacity(reads.keys.len());
        for key in reads.keys {
            if !self.items.contains_key(&key) && !keys.contains(&key) {
                keys.push(key);
            }
        }
        let mut queries: Vec<Query> = Vec::with_capacity(reads.queries.len());
        for query in reads.queries {
            if !self.queries.iter().any(|(asked, _)| *asked == query) && !queries.contains(&query) {
                queries.push(query);
            }
        }
        Reads { keys, queries }
    }
}

/// The reads of one request: of its plan's current attempt (the engine begins each attempt
/// afresh), or of committed state outside any plan.
pub struct Reader {
    store: Arc<dyn Store>,
    /// Whether `prefetch` fetches (a store whose reads are round trips).
    prefetching: bool,
    attempt: Mutex<Attempt>,
}

#[derive(Default)]
struct Attempt {
    prefetched: Prefetched,
    /// The uncommitted writes this attempt may build on, and what it read of them.
    overlay: Option<Arc<AttemptReads>>,
}

impl Reader {
    pub(crate) fn new(store: Arc<dyn Store>, prefetching: bool) -> Self {
        Reader { store, prefetching, attempt: Mutex::default() }
    }

    /// A new attempt: nothing prefetched (after a lost race everything is read afresh) unless
    /// `keep`, and the overlay of uncommitted writes it may build on.
    pub(crate) fn begin(&self, keep: bool, overlay: Option<Arc<AttemptReads>>) {
        let mut attempt = self.attempt();
        if !keep {
            attempt.prefetched = Prefetched::default();
        }
        attempt.overlay = overlay;
    }

    fn attempt(&self) -> std::sync::MutexGuard<'_, Attempt> {
        self.attempt.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fetches `reads` (what is not already prefetched) in one round trip, for the reads that
    /// follow. Nothing on a store whose reads are cheap. Best effort: if it fails, the reads
    /// themselves go to the store and report what fails.
    pub(crate) async fn prefetch(&self, reads: Reads) {
        if !self.prefetching {
            return;
        }
        let reads = self.attempt().prefetched.missing(reads);
        if reads.is_empty() {
            return;
        }
        let store = &self.store;
        let queries = futures::future::try_join_all(reads.queries.iter().map(|q| store.query(q.clone())));
        let (Ok(items), Ok(answers)) = futures::join!(store.get_many(&reads.keys), queries) else {
            return;
        };
        let mut attempt = self.attempt();
        attempt.prefetched.items.extend(reads.keys.into_iter().zip(items));
        attempt.prefetched.queries.extend(reads.queries.into_iter().zip(answers));
    }

    fn take_item(&self, key: &Key) -> Option<Option<Item>> {
        self.attempt().prefetched.items.remove(key)
    }

    fn take_query(&self, query: &Query) -> Option<Vec<Item>> {
        let mut attempt = self.attempt();
        let at = attempt.prefetched.queries.iter().position(|(asked, _)| asked == query)?;
        Some(attempt.prefetched.queries.swap_remove(at).1)
    }

    fn overlay(&self) -> Option<Arc<AttemptReads>> {
        self.attempt().overlay.clone()
    }

    /// Committed state only (prefetched, else the store), whatever is uncommitted: what a
    /// replay answers at once must not rest on a write that may not land.
    pub(crate) async fn get_committed(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        match self.take_item(key) {
            Some(item) => Ok(item),
            None => self.store.get(key).await,
        }
    }

    /// The item at `key`: an uncommitted write of it this attempt may build on, else committed state.
    pub(crate) async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let Some(overlay) = self.overlay() else { return self.get_committed(key).await };
        let item = match overlay.build_on(key) {
            Some(item) => {
                // Newer than anything prefetched of it.
                let _ = self.take_item(key);
                item
            }
            None => self.get_committed(key).await?,
        };
        overlay.remember(&item);
        Ok(item)
    }

    /// The items `query` finds. Uncommitted writes that could show in it commit (or fail)
    /// first, so point reads and queries agree; what was prefetched before them is then out of date.
    pub(crate) async fn query(&self, query: Query) -> Result<Vec<Item>, StoreError> {
        if let Some(overlay) = self.overlay() {
            let waits = overlay.shown_in(&query);
            if !waits.is_empty() {
                settled(waits).await;
                let _ = self.take_query(&query);
                return self.store.query(query).await;
            }
        }
        match self.take_query(&query) {
            Some(items) => Ok(items),
            None => self.store.query(query).await,
        }
    }

    /// Reads a record by key.
    pub(crate) async fn read<R: Record>(&self, key: &Key) -> AppResult<Option<Stored<R>>> {
        self.get(key).await?.map(decode).transpose()
    }

    /// Reads a record that must belong to `org`; another org's record is reported as missing.
    pub(crate) async fn read_owned<R: Record + Owned>(&self, key: &Key, org: &OrgId) -> AppResult<Stored<R>> {
        match self.read::<R>(key).await? {
            Some(r) if r.value.org_id() == org => Ok(r),
            _ => Err(AppError::NotFound(R::NAME)),
        }
    }

    /// Every record `query` finds.
    pub(crate) async fn all_of<R: Record>(&self, query: Query) -> AppResult<Vec<R>> {
        self.query(query).await?.into_iter().map(|i| decode::<R>(i).map(|s| s.value)).collect()
    }
}

/// Records that belong to one organisation.
pub trait Owned {
    fn org_id(&self) -> &OrgId;
}

macro_rules! owned {
    ($($t:ty),*) => {$(
        impl Owned for $t {
            fn org_id(&self) -> &OrgId { &self.org_id }
        }
    )*};
}
owned!(
    crate::domain::wallet::Wallet,
    crate::domain::payment::Payment,
    crate::domain::approval::Approval,
    crate::domain::policy::Policy,
    crate::domain::policy_version::PolicyVersion,
    crate::domain::webhook::Webhook,
    crate::domain::delivery::Delivery,
    crate::domain::people::Member,
    crate::domain::people::Team,
    crate::domain::routing::RoutingRule,
    crate::domain::review::Review,
    crate::domain::refund::Refund,
    crate::domain::org::ApiKey,
    crate::domain::allow_rule::AllowRule,
    crate::domain::policy_change::PolicyChange
);
