//! The engine: every state change in three phases, apart from the use cases that describe it.
//!
//! 1. **Prefetch.** A use case declares what it will read (`Reads`: keys and queries, as data)
//!    before it runs. Where every read is a round trip (DynamoDB) the engine fetches them all at
//!    once; where reads are cheap (the embedded store) it fetches nothing ahead.
//! 2. **Plan.** The use case's plan runs on a `Reader` passed to it: prefetched answers, the
//!    uncommitted writes it may build on (embedded store, under record locks), else the store.
//!    It returns a `Plan` (the writes of one conditional transaction, its events, its outcome)
//!    or a `PlanError`.
//! 3. **Commit.** The engine alone commits: one conditional transaction, resent with the same
//!    token when its outcome is unknown, planned again from fresh reads when it loses a race,
//!    with the idempotency record in the same transaction. Events are published after the commit.
//!
//! Which machinery runs is chosen once, at construction, from the store: record locks with
//! uncommitted writes (the embedded store's pipelined group commit), prefetch (a remote store).

mod locks;
pub(crate) mod plan;
pub(crate) mod reader;
mod run;
mod uncommitted;

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::event::Event;
use crate::ports::{Clock, Store};

pub use reader::{Owned, Reader};
pub use run::Committed;
pub(crate) use run::{Change, IdempotencyScope};

/// What happens to a change's events once it has committed (the service's outbox publisher).
#[async_trait]
pub(crate) trait Outbox: Send + Sync {
    async fn published(&self, events: Vec<Event>);
}

/// Events stay in the store's outbox for the sweep.
struct KeepInOutbox;

#[async_trait]
impl Outbox for KeepInOutbox {
    async fn published(&self, _: Vec<Event>) {}
}

/// The commit engine over one store.
#[derive(Clone)]
pub(crate) struct Engine {
    /// Committed state.
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// Whether reads are declared and fetched ahead (the store's reads are round trips).
    prefetching: bool,
    /// Plans that rewrite the same records take turns within this process (`None`: they race).
    locks: Option<Arc<locks::RecordLocks>>,
    /// Whether counters change in place (`Tx::adjust`) rather than by rewriting the record
    /// conditional on its version: where conditions alone decide (a remote store).
    in_place: bool,
    outbox: Arc<dyn Outbox>,
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        let prefetching = store.reads_are_round_trips();
        let locks = Some(Arc::default());
        Engine { store, clock, prefetching, locks, in_place: prefetching, outbox: Arc::new(KeepInOutbox) }
    }

    /// Records are rewritten whole, conditional on the version read, even where counters could
    /// change in place: how payments wrote before in-place counters (benchmarks compare).
    pub fn rewriting_counters(mut self) -> Self {
        self.in_place = false;
        self
    }

    /// Plans race on their conditions alone, as separate processes do: benchmarks model many
    /// Lambda instances this way.
    pub fn without_locks(mut self) -> Self {
        self.locks = None;
        self
    }

    pub fn with_outbox(mut self, outbox: Arc<dyn Outbox>) -> Self {
        self.outbox = outbox;
        self
    }

    /// The store itself: committed state, for what is not a planned change.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// A reader of committed state (prefetching where the store's reads are round trips).
    pub fn reader(&self) -> Reader {
        Reader::new(self.store.clone(), self.prefetching)
    }

    /// The records a change expects to rewrite, guessed by `guess` from committed state, for
    /// record locks taken before its first plan. Only where locks pay (the embedded store, where
    /// this read costs microseconds); where every read is a round trip, conditions alone decide
    /// and nothing is read.
    pub async fn guess_locks<Fut>(&self, guess: impl FnOnce(Reader) -> Fut) -> Vec<crate::ports::Key>
    where
        Fut: std::future::Future<Output = Vec<crate::ports::Key>>,
    {
        if self.prefetching || self.locks.is_none() {
            return Vec::new();
        }
        guess(self.reader()).await
    }
}
