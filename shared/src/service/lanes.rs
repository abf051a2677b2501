//! In-process lanes: plans that rewrite the same record take turns instead of racing, and
//! pipeline through the store's write queue instead of waiting for each other's fsync.
//!
//! Without lanes, many concurrent payments from one wallet all plan from the same wallet
//! version; one wins and the rest replan, again and again (a replan storm). With lanes, a plan
//! that rewrites a record waits for the lane of that record. The holder plans, queues its
//! transaction in the store's commit order (`Store::queue`), publishes what it wrote as pending,
//! and lets go: the next holder plans on top of the pending writes, and its transaction, queued
//! behind, is checked after it (often in the same group commit). Nothing is acknowledged before
//! its own commit; a plan built on a pending write is queued after that write's transaction
//! (`Store::queue`'s `after`) and fails unless it committed, then is planned again (its version
//! condition alone could not tell: another write may have committed the version the failed one
//! would have made). Only plans see
//! pending writes: every other read sees committed state. A plan that commits nothing (or
//! refuses) after reading pending writes waits for them to commit first, so no answer rests on
//! a write that never lands.
//!
//! Across processes (Lambdas) conditions alone decide; lanes only spare the lost races within
//! one process. Records map to a fixed set of striped locks (bounded memory whatever the number
//! of wallets); a plan takes its stripes in ascending order and never asks for more while
//! holding some, so two transfers between the same wallets in opposite directions cannot
//! deadlock. Pending writes are held only while their transaction is in the queue.

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use tokio::sync::MutexGuard;

use super::pending::{settled, Pending, PlanReads, Registration, PLANNING};
use crate::ports::{Expect, Key, TxToken, Write};

const STRIPES: usize = 1024;

pub(crate) struct Lanes {
    stripes: Box<[tokio::sync::Mutex<()>]>,
    pending: Arc<Pending>,
}

impl Default for Lanes {
    fn default() -> Self {
        Lanes { stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(), pending: Arc::default() }
    }
}

/// Stripes held by one plan, ascending.
pub(crate) struct Held<'a> {
    stripes: Vec<usize>,
    _guards: Vec<MutexGuard<'a, ()>>,
}

impl Held<'_> {
    pub fn covers(&self, wanted: &[usize]) -> bool {
        wanted.iter().all(|s| self.stripes.binary_search(s).is_ok())
    }
}

/// The stripes (locks) of the lanes of `keys`, ascending (the order they are taken in), once each.
fn stripes_of<'k>(keys: impl Iterator<Item = &'k Key>) -> Vec<usize> {
    let mut stripes: Vec<usize> = keys
        .map(|key| {
            let mut h = std::hash::DefaultHasher::new();
            key.hash(&mut h);
            (h.finish() % STRIPES as u64) as usize
        })
        .collect();
    stripes.sort_unstable();
    stripes.dedup();
    stripes
}

impl Lanes {
    /// The stripes of the records `writes` rewrites or deletes (conditioned on a version), and
    /// with `checked` also of those it only checks (a plan that already lost a race on one).
    /// Creates take no lane: their condition is on a fresh key.
    pub fn stripes_for(&self, writes: &[Write], checked: bool) -> Vec<usize> {
        stripes_of(writes.iter().filter_map(|w| match w {
            Write::Put { item, expect: Expect::Version(_) } => Some(&item.key),
            Write::Delete { key, expect: Expect::Version(_) } => Some(key),
            Write::Check { key, expect: Expect::Version(_) } if checked => Some(key),
            _ => None,
        }))
    }

    /// Takes `stripes` (ascending) and says whether it had to wait for another holder.
    pub async fn acquire(&self, stripes: &[usize]) -> (Held<'_>, bool) {
        let mut guards = Vec::with_capacity(stripes.len());
        let mut waited = false;
        for lane in stripes.iter().filter_map(|&s| self.stripes.get(s)) {
            let guard = match lane.try_lock() {
                Ok(guard) => guard,
                Err(_) => {
                    waited = true;
                    lane.lock().await
                }
            };
            guards.push(guard);
        }
        (Held { stripes: stripes.to_vec(), _guards: guards }, waited)
    }
}

/// One request's turn across its attempts: the lanes it holds, if any.
pub(crate) struct Turn<'a> {
    lanes: Option<&'a Arc<Lanes>>,
    held: Option<Held<'a>>,
    /// What the last plan read (for the pending writes of its transaction).
    reads: Option<Arc<PlanReads>>,
    /// The queued transactions whose pending writes the last plan built on: its own
    /// transaction is queued after them, and fails unless they all committed.
    after: Vec<TxToken>,
    /// A race already lost by this request.
    lost_once: bool,
}

/// A plan's result, and whether it may be answered: `false` when it commits nothing (or
/// refuses) but read a pending write that did not land, so it must be made again.
pub(crate) struct Planned<P> {
    pub result: P,
    pub sound: bool,
}

impl<'a> Turn<'a> {
    pub fn new(lanes: Option<&'a Arc<Lanes>>) -> Self {
        Turn { lanes, held: None, reads: None, after: Vec::new(), lost_once: false }
    }

    /// Runs a plan so that its reads see pending writes. `commits` says of its result whether
    /// it will be committed (its answer then waits for its own commit, queued behind what it
    /// read); otherwise the pending writes it read must land before it is answered.
    pub async fn plan<P>(&mut self, plan: impl Future<Output = P>, commits: impl FnOnce(&P) -> bool) -> Planned<P> {
        let Some(lanes) = self.lanes else { return Planned { result: plan.await, sound: true } };
        let reads = PlanReads::new(lanes.pending.clone());
        let result = PLANNING.scope(reads.clone(), plan).await;
        let (waits, mut after): (Vec<_>, Vec<_>) = reads.take_used().into_iter().map(|b| (b.done, b.token)).unzip();
        after.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        after.dedup();
        self.after = after;
        self.reads = Some(reads);
        let sound = waits.is_empty() || commits(&result) || settled(waits).await;
        Planned { result, sound }
    }

    /// Before the first plan: takes the lanes of `keys`, the records the request expects to
    /// rewrite, so that its plan is made in turn once rather than made, found overtaken by the
    /// holder it waited for, and made again. Only a guess: `ready` still checks the plan's own
    /// writes against what is held.
    pub async fn reserve(&mut self, keys: &[Key]) {
        let Some(lanes) = self.lanes else { return };
        if keys.is_empty() || self.held.is_some() {
            return;
        }
        self.held = Some(lanes.acquire(&stripes_of(keys.iter())).await.0);
    }

    /// Before committing a plan: takes the lanes it needs. `false` when it had to wait for
    /// another holder: the plan was made from reads the holder has since overtaken, so it is
    /// made again, now in turn.
    pub async fn ready(&mut self, writes: &[Write], attempt: u32) -> bool {
        let Some(lanes) = self.lanes else { return true };
        let wanted = lanes.stripes_for(writes, attempt > 0);
        if self.held.as_ref().is_some_and(|held| held.covers(&wanted)) {
            return true;
        }
        // Never wait for a lane while holding one.
        self.held = None;
        if wanted.is_empty() {
            return !lanes.pending.overtakes(writes);
        }
        let (held, waited) = lanes.acquire(&wanted).await;
        self.held = Some(held);
        // Uncontended, yet another plan may have come and gone between this plan's reads and
        // now: if what is queued has moved on, plan again (in turn) rather than lose the race.
        !waited && !lanes.pending.overtakes(writes)
    }

    /// The queued transactions the last plan built on (`Store::queue`'s `after`).
    pub fn after(&self) -> &[TxToken] {
        &self.after
    }

    /// After queueing a transaction: publishes its writes as pending and lets go of the lanes,
    /// so the next plan builds on them. Without lanes, or when the store already answered (no
    /// write queue), nothing to publish: nothing can be built on a write that may have failed.
    pub fn queued(&mut self, writes: &[Write], token: &TxToken, known: bool) -> Option<Registration> {
        let lanes = self.lanes?;
        let registration = (!known).then(|| lanes.pending.register(writes, token, self.reads.as_deref()));
        self.held = None;
        registration
    }

    /// The queued transaction's outcome is known: its writes are no longer pending.
    pub fn settle(&self, registration: Option<Registration>, committed: bool) {
        if let Some(registration) = registration {
            registration.complete(committed);
        }
    }

    /// After a lost race or a stale plan: whether to back off before planning again. Within the
    /// lanes the first loss came from reads made just before the turn (or from building on a
    /// write that then failed): plan again at once, keeping any lanes held. Another loss means
    /// a writer outside the lanes (another process): let go, back off.
    pub fn lost(&mut self) -> bool {
        if self.lanes.is_some() && !self.lost_once {
            self.lost_once = true;
            return false;
        }
        self.held = None;
        true
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ports::{IndexKeys, Item, Key, StoreError};

    fn item(pk: &str, version: u64) -> Item {
        Item {
            key: Key::new(pk, "R"),
            version,
            indexes: IndexKeys::default(),
            expires_at_epoch: None,
            body: json!({}).into(),
        }
    }

    fn put(pk: &str, expect: Expect) -> Write {
        Write::Put { item: item(pk, 1), expect }
    }

    #[test]
    fn rewrites_take_lanes_creates_do_not_checks_only_after_a_loss() {
        let lanes = Lanes::default();
        let check = Write::Check { key: Key::new("WALLET#a", "R"), expect: Expect::Version(3) };
        let writes = vec![put("NEW", Expect::Absent), check.clone()];
        assert!(lanes.stripes_for(&writes, false).is_empty());
        assert_eq!(lanes.stripes_for(&writes, true).len(), 1);
        let both = vec![put("WALLET#b", Expect::Version(1)), put("WALLET#a", Expect::Version(1))];
        let stripes = lanes.stripes_for(&both, false);
        assert!(stripes.windows(2).all(|w| w[0] < w[1]), "ascending, so crossing transfers cannot deadlock");
    }

    #[tokio::test]
    async fn a_plan_that_waited_for_its_lane_is_made_again_then_commits_in_turn() {
        let lanes = Arc::new(Lanes::default());
        let writes = vec![put("WALLET#hot", Expect::Version(1))];
        let mut first = Turn::new(Some(&lanes));
        assert!(first.ready(&writes, 0).await, "uncontended: commit the plan as made");
        let second = async {
            let mut turn = Turn::new(Some(&lanes));
            let commit_at_once = turn.ready(&writes, 0).await;
            let then = turn.ready(&writes, 1).await;
            (commit_at_once, then)
        };
        let release = async {
            tokio::task::yield_now().await;
            drop(first);
        };
        let ((commit_at_once, then), ()) = tokio::join!(second, release);
        assert!(!commit_at_once, "waited: its reads may be stale");
        assert!(then, "holding the lane: the new plan commits");
    }

    #[tokio::test]
    async fn a_turn_reserved_before_planning_waits_once_and_plans_once() {
        let lanes = Arc::new(Lanes::default());
        let keys = [Key::new("WALLET#hot", "R"), Key::new("APPROVAL#a", "R")];
        let writes = vec![put("WALLET#hot", Expect::Version(1)), put("APPROVAL#a", Expect::Version(1))];
        let mut first = Turn::new(Some(&lanes));
        first.reserve(&keys).await;
        assert!(first.ready(&writes, 0).await, "its plan was made in turn: commit it as made");
        let second = async {
            let mut turn = Turn::new(Some(&lanes));
            // Waits here, before planning, for the holder to let go ...
            turn.reserve(&keys).await;
            // ... so the plan made now is current.
            turn.ready(&writes, 0).await
        };
        let release = async {
            tokio::task::yield_now().await;
            drop(first);
        };
        let (commit_at_once, ()) = tokio::join!(second, release);
        assert!(commit_at_once, "no second plan after waiting");
        // A guess that misses a record the plan writes still takes that lane before committing.
        let mut guessed = Turn::new(Some(&lanes));
        guessed.reserve(&keys[..1]).await;
        let (other, _) = lanes.acquire(&lanes.stripes_for(&writes[1..], false)).await;
        let ready = async { guessed.ready(&writes, 0).await };
        let (ready, ()) = tokio::join!(ready, async {
            tokio::task::yield_now().await;
            drop(other);
        });
        assert!(!ready, "the lane it lacked was held by another: plan again, in turn");
    }

    #[test]
    fn the_first_loss_in_turn_replans_at_once_the_next_backs_off() {
        let lanes = Arc::new(Lanes::default());
        let mut turn = Turn::new(Some(&lanes));
        let (held, _) = futures::executor::block_on(lanes.acquire(&[7]));
        turn.held = Some(held);
        assert!(!turn.lost());
        assert!(turn.lost());
        assert!(turn.held.is_none(), "lets go before backing off");
        assert!(Turn::new(None).lost(), "without lanes, every loss backs off");
    }

    fn store() -> (super::super::pending::PlanStore, crate::adapters::sqlite::SqliteStore) {
        let committed = crate::adapters::sqlite::SqliteStore::in_memory().expect("store");
        (super::super::pending::PlanStore::new(Arc::new(committed.clone())), committed)
    }

    #[tokio::test]
    async fn queued_writes_are_seen_by_plans_only_until_their_outcome() {
        use crate::ports::Store;
        let (store, _committed) = store();
        let lanes = Arc::new(Lanes::default());
        let key = Key::new("WALLET#hot", "R");
        let mut turn = Turn::new(Some(&lanes));
        assert!(turn.ready(&[put("WALLET#hot", Expect::Version(1))], 0).await);
        let registration = turn.queued(
            &[Write::Put { item: item("WALLET#hot", 2), expect: Expect::Version(1) }],
            &TxToken::generate(),
            false,
        );
        assert!(turn.held.is_none(), "the lane is let go once the transaction is queued");

        assert_eq!(store.get(&key).await.expect("get"), None, "outside a plan: committed state only");
        let mut next = Turn::new(Some(&lanes));
        let seen = next.plan(store.get(&key), |_| true).await;
        assert_eq!(seen.result.expect("get").map(|i| i.version), Some(2), "a plan builds on the queued write");
        assert!(seen.sound);

        turn.settle(registration, true);
        let after = next.plan(store.get(&key), |_| true).await;
        assert_eq!(after.result.expect("get"), None, "settled: read from the store again");
    }

    #[tokio::test]
    async fn a_plan_that_commits_nothing_waits_for_what_it_read_and_is_remade_if_it_failed() {
        use crate::ports::Store;
        let (store, _committed) = store();
        let lanes = Arc::new(Lanes::default());
        let key = Key::new("APPROVAL#a", "R");
        let mut first = Turn::new(Some(&lanes));
        let registration = first.queued(
            &[Write::Put { item: item("APPROVAL#a", 2), expect: Expect::Version(1) }],
            &TxToken::generate(),
            false,
        );
        let mut reader = Turn::new(Some(&lanes));
        let answered = reader.plan(store.get(&key), |_| false);
        let fail = async {
            tokio::task::yield_now().await;
            first.settle(registration, false);
        };
        let (planned, ()) = tokio::join!(answered, fail);
        assert!(planned.result.expect("get").is_some(), "it read the pending write");
        assert!(!planned.sound, "which did not land: plan again");
    }

    #[tokio::test]
    async fn a_query_in_a_plan_waits_for_pending_writes_that_could_show_in_it() {
        use crate::ports::{Index, Query, Store};
        let (store, committed) = store();
        let lanes = Arc::new(Lanes::default());
        let mut policy = item("WALLET#w", 1);
        policy.key.sk = "POLICY#1".into();
        let mut first = Turn::new(Some(&lanes));
        let writes = vec![Write::Put { item: policy, expect: Expect::Absent }];
        let queued = committed.queue(&writes, None, &[]).await.expect("queued");
        let registration = first.queued(&writes, &TxToken::generate(), false);
        let mut policies = Query::new(Index::Primary, "WALLET#w", 50);
        policies.sk_prefix = Some("POLICY#".into());
        let mut other = Query::new(Index::Primary, "WALLET#w", 50);
        other.sk_prefix = Some("TXN#".into());
        let mut reader = Turn::new(Some(&lanes));
        let unrelated = reader.plan(store.query(other), |_| true).await;
        assert!(unrelated.result.expect("query").is_empty(), "nothing pending could show: no wait");
        let counted = reader.plan(store.query(policies), |_| true);
        let land = async {
            tokio::task::yield_now().await;
            let outcome = queued.outcome().await;
            first.settle(registration, outcome.is_ok());
        };
        let (counted, ()) = tokio::join!(counted, land);
        assert_eq!(counted.result.expect("query").len(), 1, "the query saw the policy it waited for");
    }

    #[tokio::test]
    async fn a_request_cancelled_while_queued_leaves_nothing_pending() {
        use crate::ports::Store;
        let (store, _committed) = store();
        let lanes = Arc::new(Lanes::default());
        let key = Key::new("WALLET#gone", "R");
        let mut first = Turn::new(Some(&lanes));
        let registration = first.queued(
            &[Write::Put { item: item("WALLET#gone", 2), expect: Expect::Version(1) }],
            &TxToken::generate(),
            false,
        );
        let mut reader = Turn::new(Some(&lanes));
        let answered = reader.plan(store.get(&key), |_| false);
        let cancel = async {
            tokio::task::yield_now().await;
            drop(registration);
        };
        let (planned, ()) = tokio::join!(answered, cancel);
        assert!(!planned.sound, "what it built on has no known outcome: plan again");
        let again = reader.plan(store.get(&key), |_| false).await;
        assert_eq!(again.result.expect("get"), None, "committed state again");
    }

    /// A write that commits in another plan's place while it is made (no lane taken, nothing
    /// pending yet) makes the version that plan's doomed write would make: a plan built on the
    /// doomed write must fail with it, not commit on the other write's version.
    #[tokio::test]
    async fn a_plan_built_on_a_queued_write_that_fails_fails_too() {
        use crate::ports::Store;
        let (store, committed) = store();
        let lanes = Arc::new(Lanes::default());
        let key = Key::new("WALLET#hot", "R");
        committed.apply(&[Write::Put { item: item("WALLET#hot", 1), expect: Expect::Absent }], None).await.expect("v1");
        // X: version 1 -> 2, straight to the store.
        let x = [Write::Put { item: item("WALLET#hot", 2), expect: Expect::Version(1) }];
        committed.apply(&x, Some(&TxToken::generate())).await.expect("x");
        // A, planned on version 1 before X: its write is doomed.
        let a_writes = [Write::Put { item: item("WALLET#hot", 2), expect: Expect::Version(1) }];
        let mut a = Turn::new(Some(&lanes));
        assert!(a.ready(&a_writes, 0).await, "nothing pending, lane free");
        let a_token = TxToken::generate();
        let a_queued = store.queue(&a_writes, Some(&a_token), a.after()).await.expect("queued");
        let a_registration = a.queued(&a_writes, &a_token, a_queued.is_known());
        // B builds on A's pending version 2.
        let mut b = Turn::new(Some(&lanes));
        let seen = b.plan(store.get(&key), |_| true).await;
        assert_eq!(seen.result.expect("get").map(|i| i.version), Some(2));
        assert_eq!(b.after(), std::slice::from_ref(&a_token), "B knows it built on A");
        let b_writes = [Write::Put { item: item("WALLET#hot", 3), expect: Expect::Version(2) }];
        assert!(b.ready(&b_writes, 0).await);
        let b_token = TxToken::generate();
        let b_queued = store.queue(&b_writes, Some(&b_token), b.after()).await.expect("queued");
        let a_outcome = a_queued.outcome().await;
        a.settle(a_registration, a_outcome.is_ok());
        assert_eq!(a_outcome, Err(StoreError::ConditionFailed), "A planned before X");
        assert_eq!(b_queued.outcome().await, Err(StoreError::ConditionFailed), "B rests on A, not on X");
        assert_eq!(committed.get(&key).await.expect("get").map(|i| i.version), Some(2), "X's write stands");
    }
}
