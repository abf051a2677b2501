//! The one commit loop, for user requests and the sweep alike: prefetch what the change declares,
//! plan on a `Reader`, commit the plan as one conditional transaction, and when the commit loses
//! a race (or the plan found its reads overtaken) plan again from fresh reads. With an
//! idempotency key (Stripe-style) an earlier outcome is replayed, and concurrent duplicates
//! execute once: the idempotency record commits in the same transaction as the change.

use std::future::Future;
use std::time::Duration;

use chrono::Duration as ChronoDuration;
use rand::Rng;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::locks::Claim;
use super::plan::{Plan, PlanError, Planned};
use super::reader::{Reader, Reads};
use super::Engine;
use crate::domain::event::Event;
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::ids::{ApiKeyId, OrgId};
use crate::error::{AppError, AppResult};
use crate::layout::{self, IdempotencyRecord};
use crate::ports::{Key, StoreError, TxToken, Write};

/// How many times a plan is remade after losing a race before giving up with 503.
const MAX_ATTEMPTS: u32 = 100;
/// How long an ambiguous commit is resent (same token) before the request gives up with 503;
/// well inside the store's token window, and API Gateway's 29 s.
const AMBIGUOUS_RESOLVE_FOR: Duration = Duration::from_secs(8);
const AMBIGUOUS_FIRST_WAIT: Duration = Duration::from_millis(50);
const AMBIGUOUS_MAX_WAIT: Duration = Duration::from_secs(1);
const IDEMPOTENCY_TTL_HOURS: i64 = 24;
const BACKOFF_FIRST: Duration = Duration::from_millis(1);
/// Oldest a plan may be when it is committed: with the ambiguous-outcome resends, far inside the
/// audit log's sealing window (`service::SEAL_AFTER`, 60 s).
const MAX_PLAN_AGE: chrono::Duration = chrono::Duration::seconds(20);
/// Longest wait between two attempts: with `MAX_ATTEMPTS`, a request that keeps losing gives
/// up (503) after some 15 seconds, inside API Gateway's 29.
const BACKOFF_CAP: Duration = Duration::from_millis(256);
/// How many times writes that collided with another transaction in flight (nothing applied,
/// no condition failed) are resent as they are before the change is planned again: adjusting
/// writers of one record conflict only while committing, and their reads are still good.
const CONFLICT_RESENDS: u32 = 4;

/// An outcome, and whether it is a replay of an earlier request with the same idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed<T> {
    pub outcome: T,
    pub replayed: bool,
}

impl<T> Committed<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Committed<U> {
        Committed { outcome: f(self.outcome), replayed: self.replayed }
    }
}

/// Where an idempotency key applies: the calling API key (in its organisation) and the
/// operation (`payments`, `fund#<wallet>`), so one key may be used once per operation by each
/// caller. Two agents that happen to pick the same key never see each other's outcome. A
/// caller's wallet scope is checked before the change runs, so nothing is replayed to a key
/// that may not see it.
pub(crate) struct IdempotencyScope<'a> {
    pub org: &'a OrgId,
    pub caller: &'a ApiKeyId,
    pub operation: String,
    pub key: &'a IdempotencyKey,
}

/// An idempotency scope, with how its outcome is kept and read back.
struct Idempotency<'a, T> {
    scope: IdempotencyScope<'a>,
    encode: fn(&T) -> serde_json::Result<serde_json::Value>,
    decode: fn(serde_json::Value) -> serde_json::Result<T>,
}

/// What a use case asks of the engine besides its plan: what it will read (fetched before the
/// first attempt where reads are round trips), the records it expects to rewrite (their locks
/// are taken before the first attempt), and an idempotency key.
pub(crate) struct Change<'a, T> {
    reads: Reads,
    locks: Vec<Key>,
    idempotency: Option<Idempotency<'a, T>>,
}

impl<T> Default for Change<'_, T> {
    fn default() -> Self {
        Change { reads: Reads::default(), locks: Vec::new(), idempotency: None }
    }
}

impl<'a, T> Change<'a, T> {
    /// What the plan reads, declared before it runs.
    pub fn reads(mut self, reads: Reads) -> Self {
        self.reads = reads;
        self
    }

    /// The records the change expects to rewrite (a guess: the plan's own writes decide).
    pub fn locks(mut self, keys: Vec<Key>) -> Self {
        self.locks = keys;
        self
    }

    /// Remembers the outcome under `scope` when there is one.
    pub fn idempotent(mut self, scope: Option<IdempotencyScope<'a>>) -> Self
    where
        T: Serialize + DeserializeOwned,
    {
        self.idempotency = scope.map(|scope| Idempotency {
            scope,
            encode: |outcome| serde_json::to_value(outcome),
            decode: serde_json::from_value,
        });
        self
    }
}

enum Prior<T> {
    None,
    Outcome(T),
    Expired(u64),
}

impl Engine {
    /// `run` with nothing declared.
    pub(crate) async fn commit<T, Fut>(&self, reader: &Reader, plan: impl FnMut() -> Fut) -> AppResult<T>
    where
        Fut: Future<Output = Planned<T>>,
    {
        Ok(self.run(reader, Change::default(), plan).await?.outcome)
    }

    /// Plans and commits until the plan wins, refuses (an error), or the attempts run out. The
    /// plan reads through `reader` (what it captures), which the engine begins afresh for each
    /// attempt: what was prefetched with the caller's key is kept for the first only. A plan
    /// with no writes returns its outcome without touching the store. Within this process, plans
    /// that rewrite the same records take turns (`locks`) rather than race.
    pub(crate) async fn run<T, Fut>(
        &self,
        reader: &Reader,
        change: Change<'_, T>,
        plan: impl FnMut() -> Fut,
    ) -> AppResult<Committed<T>>
    where
        Fut: Future<Output = Planned<T>>,
    {
        let outcome = self.attempts(reader, change, plan).await;
        // Whatever the outcome, the reader sees committed state again.
        reader.begin(false, None);
        outcome
    }

    async fn attempts<T, Fut>(
        &self,
        reader: &Reader,
        change: Change<'_, T>,
        mut plan: impl FnMut() -> Fut,
    ) -> AppResult<Committed<T>>
    where
        Fut: Future<Output = Planned<T>>,
    {
        let Change { reads, locks, idempotency } = change;
        let mut claim = Claim::new(self.locks.as_ref());
        claim.reserve(&locks).await;
        let mut reads = Some(reads);
        for attempt in 0..MAX_ATTEMPTS {
            // An attempt after a lost race reads everything afresh.
            reader.begin(attempt == 0, claim.overlay());
            if let Some(mut reads) = reads.take() {
                if let Some(idem) = &idempotency {
                    reads.keys.push(idem.record_key());
                }
                reader.prefetch(reads).await;
            }
            let stale_record = match &idempotency {
                None => None,
                Some(idem) => match idem.replay(reader, self.now()).await? {
                    Prior::Outcome(outcome) => return Ok(Committed { outcome, replayed: true }),
                    Prior::Expired(version) => Some(version),
                    Prior::None => None,
                },
            };
            let planned_at = self.now();
            let result = plan().await;
            let sound = claim.planned(commits(&result, idempotency.is_some())).await;
            let plan = match result {
                Ok(plan) if sound => plan,
                Err(PlanError::Refused(e)) if sound => return Err(e),
                _ => {
                    if claim.lost() {
                        backoff(attempt).await;
                    }
                    continue;
                }
            };
            // Only where conditions alone decide do writes adjust in place.
            let plan = if self.in_place { plan } else { plan.rewriting() };
            if !claim.ready(&plan.writes, attempt).await {
                continue;
            }
            // A plan's audit entries carry its time in their ids; one that waited too long is
            // made again, so nothing commits behind the sweep's sealing window.
            if self.now() - planned_at > MAX_PLAN_AGE {
                continue;
            }
            let record = match &idempotency {
                Some(idem) if plan.remembered => Some(idem.remember(&plan.outcome, stale_record, self.now())?),
                _ => None,
            };
            if let Some((outcome, events)) = self.try_commit(plan, record, &mut claim).await? {
                drop(claim);
                self.outbox.published(events).await;
                return Ok(Committed { outcome, replayed: false });
            }
            if claim.lost() {
                backoff(attempt).await;
            }
        }
        Err(AppError::Contention)
    }

    /// One attempt: `Ok(None)` when another writer got there first; else the outcome and the
    /// events to publish (after the caller has let go of its locks). With record locks, the
    /// writes are queued in the store's commit order, published as uncommitted and the locks let
    /// go before the outcome is awaited, so the next plan of the same records builds on them.
    /// Every attempt carries its own token; an ambiguous outcome is resolved by resending the
    /// same writes with the same token (applied at most once) until the store says what
    /// happened, never by replanning: a new plan after a commit that did land would move the
    /// money twice.
    async fn try_commit<T>(
        &self,
        plan: Plan<T>,
        extra: Option<Write>,
        claim: &mut Claim<'_>,
    ) -> AppResult<Option<(T, Vec<Event>)>> {
        let Plan { mut writes, events, outcome, .. } = plan;
        writes.extend(extra);
        if writes.is_empty() {
            return Ok(Some((outcome, events)));
        }
        let mut token = TxToken::generate();
        let started = std::time::Instant::now();
        let mut conflicts = 0;
        let mut wait = AMBIGUOUS_FIRST_WAIT;
        let after = claim.after().to_vec();
        let mut result = match self.store.queue(&writes, Some(&token), &after).await {
            Ok(queued) => {
                let registration = claim.queued(&writes, &token, queued.is_known());
                let result = queued.outcome().await;
                claim.settle(registration, result.is_ok());
                result
            }
            Err(e) => Err(e),
        };
        loop {
            match result {
                Ok(()) => return Ok(Some((outcome, events))),
                Err(StoreError::Conflict) if self.prefetching && after.is_empty() && conflicts < CONFLICT_RESENDS => {
                    // Not applied: the same writes under a new token, their conditions checked
                    // again by the store.
                    conflicts += 1;
                    backoff(conflicts).await;
                    token = TxToken::generate();
                }
                Err(StoreError::ConditionFailed | StoreError::Conflict) => return Ok(None),
                Err(StoreError::Ambiguous(detail)) if started.elapsed() < AMBIGUOUS_RESOLVE_FOR => {
                    tracing::warn!(token = token.as_str(), %detail, "commit outcome unknown; resending with the same token");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(AMBIGUOUS_MAX_WAIT);
                }
                Err(e) => return Err(e.into()),
            }
            // Still after what it was planned on: a resend must not outlive a failed one.
            result = match self.store.queue(&writes, Some(&token), &after).await {
                Ok(queued) => queued.outcome().await,
                Err(e) => Err(e),
            };
        }
    }
}

impl<T> Idempotency<'_, T> {
    fn record_key(&self) -> Key {
        let scope = &self.scope;
        layout::idempotency_key(scope.org, scope.caller, &scope.operation, scope.key.key())
    }

    /// The idempotency record's write: created, or overwriting an expired one the store has not
    /// yet deleted (conditionally on its version). Either way at a fresh version
    /// (`fresh_version`), never 1 or the old one's successor: DynamoDB's TTL may delete an
    /// expired record while a retry that read it is still planning, and if a newer retry then
    /// recreated the record at a version the older one expects, both would commit.
    fn remember(
        &self,
        outcome: &T,
        stale_version: Option<u64>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> AppResult<Write> {
        let scope = &self.scope;
        let record = IdempotencyRecord {
            org_id: scope.org.clone(),
            api_key_id: scope.caller.clone(),
            scope: scope.operation.clone(),
            key: scope.key.key().to_string(),
            request_hash: scope.key.fingerprint().to_string(),
            outcome: (self.encode)(outcome).map_err(|e| AppError::Corrupt(e.to_string()))?,
            created_at: now,
            expires_at: now + ChronoDuration::hours(IDEMPOTENCY_TTL_HOURS),
        };
        let version = layout::fresh_version(now);
        match stale_version {
            Some(read) => layout::replace(&record, read, version),
            None => layout::create_at(&record, version),
        }
    }

    /// An earlier outcome under this key, read from committed state only: a replay answers at
    /// once, so it must not rest on an uncommitted write.
    async fn replay(&self, reader: &Reader, now: chrono::DateTime<chrono::Utc>) -> AppResult<Prior<T>> {
        let Some(item) = reader.get_committed(&self.record_key()).await? else {
            return Ok(Prior::None);
        };
        let stored = layout::decode::<IdempotencyRecord>(item)?;
        let record = stored.value;
        if record.expires_at <= now {
            return Ok(Prior::Expired(stored.version));
        }
        if record.request_hash != self.scope.key.fingerprint() {
            return Err(AppError::IdempotencyKeyReuse);
        }
        // A record this version cannot read still means "already done": never execute twice.
        (self.decode)(record.outcome).map(Prior::Outcome).map_err(|_| AppError::IdempotencyKeyReuse)
    }
}

/// Whether a plan's result goes to the store (its answer then waits for its own commit) rather
/// than straight back to the caller. An overtaken plan is never answered: it counts as committing.
fn commits<T>(planned: &Planned<T>, remembered_counts: bool) -> bool {
    match planned {
        Ok(plan) => !plan.writes.is_empty() || (remembered_counts && plan.remembered),
        Err(PlanError::Overtaken) => true,
        Err(PlanError::Refused(_)) => false,
    }
}

/// Exponential backoff with full jitter: a wait drawn from zero to a cap that doubles with each
/// lost race (1 ms, 2 ms, 4 ms ...) up to `BACKOFF_CAP`. Separate processes racing on one record
/// (Lambdas on a hot wallet) thin out until about one tries per commit's time instead of all
/// retrying into each other; a lone lost race retries within a few milliseconds. (Within one
/// process, record locks spare most of these races.)
async fn backoff(attempt: u32) {
    let cap = BACKOFF_FIRST.saturating_mul(1 << attempt.min(16)).min(BACKOFF_CAP);
    let wait = rand::rng().random_range(Duration::ZERO..=cap);
    tokio::time::sleep(wait).await;
}
