//! Record locks (embedded store): plans that rewrite the same record take turns instead of
//! racing, and pipeline through the store's write queue instead of waiting for each other's fsync.
//!
//! Without record locks, many concurrent payments from one wallet all plan from the same wallet
//! version; one wins and the rest replan, again and again (a replan storm). With them, a plan
//! that rewrites a record waits for that record's lock. The holder plans, queues its transaction
//! in the store's commit order (`Store::queue`), publishes what it wrote as uncommitted
//! (`uncommitted`), and lets go: the next holder plans on top of the uncommitted writes, and its
//! transaction, queued behind, is checked after it (often in the same group commit). Nothing is
//! acknowledged before its own commit; a plan built on an uncommitted write is queued after that
//! write's transaction (`Store::queue`'s `after`) and fails unless it committed, then is planned
//! again (its version condition alone could not tell: another write may have committed the
//! version the failed one would have made). Only plans see uncommitted writes (through their
//! `Reader`): every other read sees committed state. A plan that commits nothing (or refuses)
//! after reading uncommitted writes waits for them to commit first, so no answer rests on a
//! write that never lands.
//!
//! Across processes (Lambdas) conditions alone decide; record locks only spare the lost races
//! within one process. Records map to a fixed set of striped locks (bounded memory whatever the
//! number of wallets); a plan takes its stripes in ascending order and never asks for more while
//! holding some, so two transfers between the same wallets in opposite directions cannot
//! deadlock. Uncommitted writes are held only while their transaction is in the queue.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use tokio::sync::MutexGuard;

use super::uncommitted::{settled, AttemptReads, Registration, Uncommitted};
use crate::ports::{Expect, Key, TxToken, Write};

const STRIPES: usize = 1024;

pub(crate) struct RecordLocks {
    stripes: Box<[tokio::sync::Mutex<()>]>,
    uncommitted: Arc<Uncommitted>,
}

impl Default for RecordLocks {
    fn default() -> Self {
        RecordLocks {
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            uncommitted: Arc::default(),
        }
    }
}

/// Stripes held by one plan, ascending.
pub(crate) struct Guards<'a> {
    stripes: Vec<usize>,
    _guards: Vec<MutexGuard<'a, ()>>,
}

impl Guards<'_> {
    pub fn covers(&self, wanted: &[usize]) -> bool {
        wanted.iter().all(|s| self.stripes.binary_search(s).is_ok())
    }
}

/// The stripes (locks) of the locks of `keys`, ascending (the order they are taken in), once each.
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

impl RecordLocks {
    /// The stripes of the records `writes` rewrites or deletes (conditioned on a version), and
    /// with `checked` also of those it only checks (a plan that already lost a race on one).
    /// Creates take no lock: their condition is on a fresh key.
    pub fn stripes_for(&self, writes: &[Write], checked: bool) -> Vec<usize> {
        stripes_of(writes.iter().filter_map(|w| match w {
            Write::Put { item, expect: Expect::Version(_) } => Some(&item.key),
            Write::Delete { key, expect: Expect::Version(_) } => Some(key),
            Write::Check { key, expect: Expect::Version(_) } if checked => Some(key),
            _ => None,
        }))
    }

    /// Takes `stripes` (ascending) and says whether it had to wait for another holder.
    pub async fn acquire(&self, stripes: &[usize]) -> (Guards<'_>, bool) {
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
        (Guards { stripes: stripes.to_vec(), _guards: guards }, waited)
    }
}

/// One request's turn across its attempts: the record locks it holds, if any.
pub(crate) struct Claim<'a> {
    locks: Option<&'a Arc<RecordLocks>>,
    guards: Option<Guards<'a>>,
    /// What the last plan read (for the uncommitted writes of its transaction).
    reads: Option<Arc<AttemptReads>>,
    /// The queued transactions whose uncommitted writes the last plan built on: its own
    /// transaction is queued after them, and fails unless they all committed.
    after: Vec<TxToken>,
    /// A race already lost by this request.
    lost_once: bool,
}

impl<'a> Claim<'a> {
    pub fn new(locks: Option<&'a Arc<RecordLocks>>) -> Self {
        Claim { locks, guards: None, reads: None, after: Vec::new(), lost_once: false }
    }

    /// The overlay of uncommitted writes for the next attempt's `Reader` (none without locks).
    pub fn overlay(&mut self) -> Option<Arc<AttemptReads>> {
        let locks = self.locks?;
        let reads = AttemptReads::new(locks.uncommitted.clone());
        self.reads = Some(reads.clone());
        Some(reads)
    }

    /// After a plan: whether its result may be answered. `commits` says whether it will be
    /// committed (its answer then waits for its own commit, queued after what it read);
    /// otherwise the uncommitted writes it read must land first, and if one did not, `false`:
    /// the plan is made again.
    pub async fn planned(&mut self, commits: bool) -> bool {
        let Some(reads) = &self.reads else { return true };
        let (waits, mut after): (Vec<_>, Vec<_>) = reads.take_used().into_iter().map(|b| (b.done, b.token)).unzip();
        after.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        after.dedup();
        self.after = after;
        waits.is_empty() || commits || settled(waits).await
    }

    /// Before the first plan: takes the locks of `keys`, the records the request expects to
    /// rewrite, so that its plan is made in turn once rather than made, found overtaken by the
    /// holder it waited for, and made again. Only a guess: `ready` still checks the plan's own
    /// writes against what is held.
    pub async fn reserve(&mut self, keys: &[Key]) {
        let Some(locks) = self.locks else { return };
        if keys.is_empty() || self.guards.is_some() {
            return;
        }
        self.guards = Some(locks.acquire(&stripes_of(keys.iter())).await.0);
    }

    /// Before committing a plan: takes the record locks it needs. `false` when it had to wait for
    /// another holder: the plan was made from reads the holder has since overtaken, so it is
    /// made again, now in turn.
    pub async fn ready(&mut self, writes: &[Write], attempt: u32) -> bool {
        let Some(locks) = self.locks else { return true };
        let wanted = locks.stripes_for(writes, attempt > 0);
        if self.guards.as_ref().is_some_and(|held| held.covers(&wanted)) {
            return true;
        }
        // Never wait for a lock while holding one.
        self.guards = None;
        if wanted.is_empty() {
            return !locks.uncommitted.overtakes(writes);
        }
        let (held, waited) = locks.acquire(&wanted).await;
        self.guards = Some(held);
        // Uncontended, yet another plan may have come and gone between this plan's reads and
        // now: if what is queued has moved on, plan again (in turn) rather than lose the race.
        !waited && !locks.uncommitted.overtakes(writes)
    }

    /// The queued transactions the last plan built on (`Store::queue`'s `after`).
    pub fn after(&self) -> &[TxToken] {
        &self.after
    }

    /// After queueing a transaction: publishes its writes as uncommitted and lets go of its locks,
    /// so the next plan builds on them. Without record locks, or when the store already answered (no
    /// write queue), nothing to publish: nothing can be built on a write that may have failed.
    pub fn queued(&mut self, writes: &[Write], token: &TxToken, known: bool) -> Option<Registration> {
        let locks = self.locks?;
        let registration = (!known).then(|| locks.uncommitted.register(writes, token, self.reads.as_deref()));
        self.guards = None;
        registration
    }

    /// The queued transaction's outcome is known: its writes are no longer uncommitted.
    pub fn settle(&self, registration: Option<Registration>, committed: bool) {
        if let Some(registration) = registration {
            registration.complete(committed);
        }
    }

    /// After a lost race or a stale plan: whether to back off before planning again. Within the
    /// locks the first loss came from reads made just before the turn (or from building on a
    /// write that then failed): plan again at once, keeping any locks held. Another loss means
    /// a writer outside the locks (another process): let go, back off.
    pub fn lost(&mut self) -> bool {
        if self.locks.is_some() && !self.lost_once {
            self.lost_once = true;
            return false;
        }
        self.guards = None;
        true
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::engine::reader::Reader;
    use crate::ports::{IndexKeys, Item, Key, StoreError};

    fn item(pk: &str, version: u64) -> Item {
        Item {
            key: Key::new(pk, "R"),
            version,
            indexes: IndexKeys::default(),
            expires_at_epoch: None,
            body: json!({}).into(),
            counters: &[],
            compact: false,
        }
    }

    fn put(pk: &str, expect: Expect) -> Write {
        Write::Put { item: item(pk, 1), expect }
    }

    #[test]
    fn rewrites_take_locks_creates_do_not_checks_only_after_a_loss() {
        let locks = RecordLocks::default();
        let check = Write::Check { key: Key::new("WALLET#a", "R"), expect: Expect::Version(3) };
        let writes = vec![put("NEW", Expect::Absent), check.clone()];
        assert!(locks.stripes_for(&writes, false).is_empty());
        assert_eq!(locks.stripes_for(&writes, true).len(), 1);
        let both = vec![put("WALLET#b", Expect::Version(1)), put("WALLET#a", Expect::Version(1))];
        let stripes = locks.stripes_for(&both, false);
        assert!(stripes.windows(2).all(|w| w[0] < w[1]), "ascending, so crossing transfers cannot deadlock");
    }

    #[tokio::test]
    async fn a_plan_that_waited_for_its_lane_is_made_again_then_commits_in_turn() {
        let locks = Arc::new(RecordLocks::default());
        let writes = vec![put("WALLET#hot", Expect::Version(1))];
        let mut first = Claim::new(Some(&locks));
        assert!(first.ready(&writes, 0).await, "uncontended: commit the plan as made");
        let second = async {
            let mut turn = Claim::new(Some(&locks));
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
        assert!(then, "holding the lock: the new plan commits");
    }

    #[tokio::test]
    async fn a_turn_reserved_before_planning_waits_once_and_plans_once() {
        let locks = Arc::new(RecordLocks::default());
        let keys = [Key::new("WALLET#hot", "R"), Key::new("APPROVAL#a", "R")];
        let writes = vec![put("WALLET#hot", Expect::Version(1)), put("APPROVAL#a", Expect::Version(1))];
        let mut first = Claim::new(Some(&locks));
        first.reserve(&keys).await;
        assert!(first.ready(&writes, 0).await, "its plan was made in turn: commit it as made");
        let second = async {
            let mut turn = Claim::new(Some(&locks));
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
        // A guess that misses a record the plan writes still takes that lock before committing.
        let mut guessed = Claim::new(Some(&locks));
        guessed.reserve(&keys[..1]).await;
        let (other, _) = locks.acquire(&locks.stripes_for(&writes[1..], false)).await;
        let ready = async { guessed.ready(&writes, 0).await };
        let (ready, ()) = tokio::join!(ready, async {
            tokio::task::yield_now().await;
            drop(other);
        });
        assert!(!ready, "the lock it lacked was held by another: plan again, in turn");
    }

    #[test]
    fn the_first_loss_in_turn_replans_at_once_the_next_backs_off() {
        let locks = Arc::new(RecordLocks::default());
        let mut turn = Claim::new(Some(&locks));
        let (held, _) = futures::executor::block_on(locks.acquire(&[7]));
        turn.guards = Some(held);
        assert!(!turn.lost());
        assert!(turn.lost());
        assert!(turn.guards.is_none(), "lets go before backing off");
        assert!(Claim::new(None).lost(), "without record locks, every loss backs off");
    }

    fn store() -> (Arc<dyn crate::ports::Store>, crate::adapters::sqlite::SqliteStore) {
        let committed = crate::adapters::sqlite::SqliteStore::in_memory().expect("store");
        (Arc::new(committed.clone()), committed)
    }

    /// One attempt's read of `key` under `claim`, and whether its answer may be given.
    async fn attempt_get(
        claim: &mut Claim<'_>,
        store: &Arc<dyn crate::ports::Store>,
        key: &Key,
        commits: bool,
    ) -> (Option<Item>, bool) {
        let reader = Reader::new(store.clone(), false);
        reader.begin(false, claim.overlay());
        let item = reader.get(key).await.expect("get");
        (item, claim.planned(commits).await)
    }

    async fn attempt_query(
        claim: &mut Claim<'_>,
        store: &Arc<dyn crate::ports::Store>,
        query: crate::ports::Query,
    ) -> Vec<Item> {
        let reader = Reader::new(store.clone(), false);
        reader.begin(false, claim.overlay());
        let items = reader.query(query).await.expect("query");
        claim.planned(true).await;
        items
    }

    #[tokio::test]
    async fn queued_writes_are_seen_by_plans_only_until_their_outcome() {
        let (store, _committed) = store();
        let locks = Arc::new(RecordLocks::default());
        let key = Key::new("WALLET#hot", "R");
        let mut turn = Claim::new(Some(&locks));
        assert!(turn.ready(&[put("WALLET#hot", Expect::Version(1))], 0).await);
        let registration = turn.queued(
            &[Write::Put { item: item("WALLET#hot", 2), expect: Expect::Version(1) }],
            &TxToken::generate(),
            false,
        );
        assert!(turn.guards.is_none(), "the lock is let go once the transaction is queued");

        assert_eq!(store.get(&key).await.expect("get"), None, "outside a plan: committed state only");
        let mut next = Claim::new(Some(&locks));
        let (seen, sound) = attempt_get(&mut next, &store, &key, true).await;
        assert_eq!(seen.map(|i| i.version), Some(2), "a plan builds on the queued write");
        assert!(sound);

        turn.settle(registration, true);
        let (after, _) = attempt_get(&mut next, &store, &key, true).await;
        assert_eq!(after, None, "settled: read from the store again");
    }

    #[tokio::test]
    async fn a_plan_that_commits_nothing_waits_for_what_it_read_and_is_remade_if_it_failed() {
        let (store, _committed) = store();
        let locks = Arc::new(RecordLocks::default());
        let key = Key::new("APPROVAL#a", "R");
        let mut first = Claim::new(Some(&locks));
        let registration = first.queued(
            &[Write::Put { item: item("APPROVAL#a", 2), expect: Expect::Version(1) }],
            &TxToken::generate(),
            false,
        );
        let mut reader = Claim::new(Some(&locks));
        let answered = attempt_get(&mut reader, &store, &key, false);
        let fail = async {
            tokio::task::yield_now().await;
            first.settle(registration, false);
        };
        let ((read, sound), ()) = tokio::join!(answered, fail);
        assert!(read.is_some(), "it read the uncommitted write");
        assert!(!sound, "which did not land: plan again");
    }

    #[tokio::test]
    async fn a_query_in_a_plan_waits_for_uncommitted_writes_that_could_show_in_it() {
        use crate::ports::{Index, Query, Store};
        let (store, committed) = store();
        let locks = Arc::new(RecordLocks::default());
        let mut policy = item("WALLET#w", 1);
        policy.key.sk = "POLICY#1".into();
        let mut first = Claim::new(Some(&locks));
        let writes = vec![Write::Put { item: policy, expect: Expect::Absent }];
        let queued = committed.queue(&writes, None, &[]).await.expect("queued");
        let registration = first.queued(&writes, &TxToken::generate(), false);
        let mut policies = Query::new(Index::Primary, "WALLET#w", 50);
        policies.sk_prefix = Some("POLICY#".into());
        let mut other = Query::new(Index::Primary, "WALLET#w", 50);
        other.sk_prefix = Some("TXN#".into());
        let mut reader = Claim::new(Some(&locks));
        let unrelated = attempt_query(&mut reader, &store, other).await;
        assert!(unrelated.is_empty(), "nothing uncommitted could show: no wait");
        let counted = attempt_query(&mut reader, &store, policies);
        let land = async {
            tokio::task::yield_now().await;
            let outcome = queued.outcome().await;
            first.settle(registration, outcome.is_ok());
        };
        let (counted, ()) = tokio::join!(counted, land);
        assert_eq!(counted.len(), 1, "the query saw the policy it waited for");
    }

    #[tokio::test]
    async fn a_request_cancelled_while_queued_leaves_nothing_uncommitted() {
        let (store, _committed) = store();
        let locks = Arc::new(RecordLocks::default());
        let key = Key::new("WALLET#gone", "R");
        let mut first = Claim::new(Some(&locks));
        let registration = first.queued(
            &[Write::Put { item: item("WALLET#gone", 2), expect: Expect::Version(1) }],
            &TxToken::generate(),
            false,
        );
        let mut reader = Claim::new(Some(&locks));
        let answered = attempt_get(&mut reader, &store, &key, false);
        let cancel = async {
            tokio::task::yield_now().await;
            drop(registration);
        };
        let ((_, sound), ()) = tokio::join!(answered, cancel);
        assert!(!sound, "what it built on has no known outcome: plan again");
        let (again, _) = attempt_get(&mut reader, &store, &key, false).await;
        assert_eq!(again, None, "committed state again");
    }

    /// A write that commits in another plan's place while it is made (no lock taken, nothing
    /// pending yet) makes the version that plan's doomed write would make: a plan built on the
    /// doomed write must fail with it, not commit on the other write's version.
    #[tokio::test]
    async fn a_plan_built_on_a_queued_write_that_fails_fails_too() {
        use crate::ports::Store;
        let (store, committed) = store();
        let locks = Arc::new(RecordLocks::default());
        let key = Key::new("WALLET#hot", "R");
        committed.apply(&[Write::Put { item: item("WALLET#hot", 1), expect: Expect::Absent }], None).await.expect("v1");
        // X: version 1 -> 2, straight to the store.
        let x = [Write::Put { item: item("WALLET#hot", 2), expect: Expect::Version(1) }];
        committed.apply(&x, Some(&TxToken::generate())).await.expect("x");
        // A, planned on version 1 before X: its write is doomed.
        let a_writes = [Write::Put { item: item("WALLET#hot", 2), expect: Expect::Version(1) }];
        let mut a = Claim::new(Some(&locks));
        assert!(a.ready(&a_writes, 0).await, "nothing uncommitted, lock free");
        let a_token = TxToken::generate();
        let a_queued = store.queue(&a_writes, Some(&a_token), a.after()).await.expect("queued");
        let a_registration = a.queued(&a_writes, &a_token, a_queued.is_known());
        // B builds on A's uncommitted version 2.
        let mut b = Claim::new(Some(&locks));
        let (seen, _) = attempt_get(&mut b, &store, &key, true).await;
        assert_eq!(seen.map(|i| i.version), Some(2));
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
