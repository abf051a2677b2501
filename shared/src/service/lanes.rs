//! In-process lanes: plans that rewrite the same record take turns instead of racing. Many
//! concurrent payments from one wallet would otherwise all plan from the same wallet version,
//! one would win and the rest replan, again and again (a replan storm). With lanes, a plan that
//! rewrites a record waits for the lane of that record, then plans from what the previous
//! holder committed. Across processes (Lambdas) conditions still decide; lanes only spare the
//! lost races within one process.
//!
//! Records map to a fixed set of striped locks (bounded memory whatever the number of wallets);
//! a plan takes its stripes in ascending order and never asks for more while holding some, so
//! two transfers between the same wallets in opposite directions cannot deadlock.

use std::hash::{Hash, Hasher};

use tokio::sync::{Mutex, MutexGuard};

use crate::ports::{Expect, Write};

const STRIPES: usize = 1024;

pub(crate) struct Lanes {
    stripes: Box<[Mutex<()>]>,
}

impl Default for Lanes {
    fn default() -> Self {
        Lanes { stripes: (0..STRIPES).map(|_| Mutex::new(())).collect() }
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

impl Lanes {
    /// The stripes of the records `writes` rewrites or deletes (conditioned on a version), and
    /// with `checked` also of those it only checks (a plan that already lost a race on one).
    /// Creates take no lane: their condition is on a fresh key.
    pub fn stripes_for(&self, writes: &[Write], checked: bool) -> Vec<usize> {
        let mut stripes: Vec<usize> = writes
            .iter()
            .filter_map(|w| match w {
                Write::Put { item, expect: Expect::Version(_) } => Some(&item.key),
                Write::Delete { key, expect: Expect::Version(_) } => Some(key),
                Write::Check { key, expect: Expect::Version(_) } if checked => Some(key),
                _ => None,
            })
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

    /// Takes `stripes` (ascending) and says whether it had to wait for another holder.
    pub async fn acquire(&self, stripes: &[usize]) -> (Held<'_>, bool) {
        let mut guards = Vec::with_capacity(stripes.len());
        let mut waited = false;
        for &s in stripes {
            let lane = &self.stripes[s];
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
    lanes: Option<&'a Lanes>,
    held: Option<Held<'a>>,
    /// A commit already lost while holding the current lanes.
    lost_holding: bool,
}

impl<'a> Turn<'a> {
    pub fn new(lanes: Option<&'a Lanes>) -> Self {
        Turn { lanes, held: None, lost_holding: false }
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
        self.lost_holding = false;
        if wanted.is_empty() {
            return true;
        }
        let (held, waited) = lanes.acquire(&wanted).await;
        self.held = Some(held);
        !waited
    }

    /// After a lost race or a stale plan: whether to back off before planning again. The first
    /// loss in turn came from reads made before the turn began: plan again at once, keeping the
    /// lanes. Another loss means a writer outside the lanes (another process): let go, back off.
    pub fn lost(&mut self) -> bool {
        if self.held.is_some() && !self.lost_holding {
            self.lost_holding = true;
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
    use crate::ports::{IndexKeys, Item, Key};

    fn put(pk: &str, expect: Expect) -> Write {
        let item = Item {
            key: Key::new(pk, "R"),
            version: 1,
            indexes: IndexKeys::default(),
            expires_at_epoch: None,
            body: json!({}),
        };
        Write::Put { item, expect }
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
        let lanes = Lanes::default();
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

    #[test]
    fn the_first_loss_in_turn_replans_at_once_the_next_backs_off() {
        let lanes = Lanes::default();
        let mut turn = Turn::new(Some(&lanes));
        let (held, _) = futures::executor::block_on(lanes.acquire(&[7]));
        turn.held = Some(held);
        assert!(!turn.lost());
        assert!(turn.lost());
        assert!(turn.held.is_none(), "lets go before backing off");
        assert!(Turn::new(None).lost(), "without lanes, every loss backs off");
    }
}
