//! The one commit loop: plan from a fresh read, commit as one conditional transaction, and on a
//! lost race plan again, for user requests and the sweep alike. With an idempotency key
//! (Stripe-style) an earlier outcome is replayed, and concurrent duplicates execute once: the
//! idempotency record commits in the same transaction as the change.

use std::future::Future;
use std::time::Duration;

use chrono::Duration as ChronoDuration;
use rand::Rng;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::ahead;
use super::lanes::Turn;
use super::plan::Plan;
use super::records::{self, IdempotencyRecord};
use super::Countersign;
use crate::domain::event::Event;
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::ids::{ApiKeyId, OrgId};
use crate::error::{AppError, AppResult};
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
/// Longest wait between two attempts: with `MAX_ATTEMPTS`, a request that keeps losing gives
/// up (503) after some 15 seconds, inside API Gateway's 29.
const BACKOFF_CAP: Duration = Duration::from_millis(256);

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
/// caller's wallet scope is checked before `commit_idempotent` runs, so nothing is replayed to
/// a key that may not see it.
pub(crate) struct IdempotencyScope<'a> {
    pub org: &'a OrgId,
    pub caller: &'a ApiKeyId,
    pub operation: String,
    pub key: &'a IdempotencyKey,
}

enum Prior<T> {
    None,
    Outcome(T),
    Expired(u64),
}

impl Countersign {
    /// Plans and commits until the plan wins, refuses (an error), or the attempts run out. A lost
    /// race, or a plan that found its reads overtaken (`AppError::Stale`), is planned again. A
    /// plan with no writes returns its outcome without touching the store. Within this process,
    /// plans that rewrite the same records take turns (`lanes`) rather than race.
    pub(crate) async fn commit<T, F, Fut>(&self, plan: F) -> AppResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = AppResult<Plan<T>>>,
    {
        self.commit_in_turn(&[], plan).await
    }

    /// `commit`, its first plan made in the lanes of `expected` (`Turn::reserve`): the records
    /// the request expects to rewrite, where many requests rewrite the same ones (a wallet).
    pub(crate) async fn commit_in_turn<T, F, Fut>(&self, expected: &[Key], mut plan: F) -> AppResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = AppResult<Plan<T>>>,
    {
        let mut turn = Turn::new(self.lanes.as_ref());
        turn.reserve(expected).await;
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                ahead::forget();
            }
            let planned = turn.plan(plan(), |p| commits(p, false)).await;
            match planned.result {
                _ if !planned.sound => {}
                Ok(plan) => {
                    if !turn.ready(&plan.writes, attempt).await {
                        continue;
                    }
                    if let Some((outcome, events)) = self.try_commit(plan, None, &mut turn).await? {
                        drop(turn);
                        self.publish_committed(events).await;
                        return Ok(outcome);
                    }
                }
                Err(AppError::Stale) => {}
                Err(e) => return Err(e),
            }
            if turn.lost() {
                backoff(attempt).await;
            }
        }
        Err(AppError::Contention)
    }

    /// `commit`, remembering the outcome under an idempotency key when there is one.
    pub(crate) async fn commit_idempotent<T, F, Fut>(
        &self,
        scope: Option<IdempotencyScope<'_>>,
        mut plan: F,
    ) -> AppResult<Committed<T>>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut() -> Fut,
        Fut: Future<Output = AppResult<Plan<T>>>,
    {
        let Some(scope) = scope else {
            return Ok(Committed { outcome: self.commit(plan).await?, replayed: false });
        };
        let mut turn = Turn::new(self.lanes.as_ref());
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                ahead::forget();
            }
            // Committed state only: a replay answers at once, so it must not rest on pending writes.
            let stale_version = match self.replay::<T>(&scope).await? {
                Prior::Outcome(outcome) => return Ok(Committed { outcome, replayed: true }),
                Prior::Expired(version) => Some(version),
                Prior::None => None,
            };
            let planned = turn.plan(plan(), |p| commits(p, true)).await;
            let plan = match planned.result {
                Ok(plan) if planned.sound => plan,
                Err(e) if planned.sound && !matches!(e, AppError::Stale) => return Err(e),
                _ => {
                    if turn.lost() {
                        backoff(attempt).await;
                    }
                    continue;
                }
            };
            if !turn.ready(&plan.writes, attempt).await {
                continue;
            }
            let record =
                if plan.remembered { Some(self.remember(&scope, &plan.outcome, stale_version)?) } else { None };
            if let Some((outcome, events)) = self.try_commit(plan, record, &mut turn).await? {
                drop(turn);
                self.publish_committed(events).await;
                return Ok(Committed { outcome, replayed: false });
            }
            if turn.lost() {
                backoff(attempt).await;
            }
        }
        Err(AppError::Contention)
    }

    /// One attempt: `Ok(None)` when another writer got there first; else the outcome and the
    /// events to publish (after the caller has let go of its lanes). With lanes, the writes are
    /// queued in the store's commit order, published as pending and the lanes let go before the
    /// outcome is awaited, so the next plan of the same records builds on them. Every attempt
    /// carries its own token; an ambiguous outcome is resolved by resending the same writes
    /// with the same token (applied at most once) until the store says what happened, never by
    /// replanning: a new plan after a commit that did land would move the money twice.
    async fn try_commit<T>(
        &self,
        plan: Plan<T>,
        extra: Option<Write>,
        turn: &mut Turn<'_>,
    ) -> AppResult<Option<(T, Vec<Event>)>> {
        let Plan { mut writes, events, outcome, .. } = plan;
        writes.extend(extra);
        if writes.is_empty() {
            return Ok(Some((outcome, events)));
        }
        let token = TxToken::generate();
        let started = std::time::Instant::now();
        let mut wait = AMBIGUOUS_FIRST_WAIT;
        let after = turn.after().to_vec();
        let mut result = match self.store.queue(&writes, Some(&token), &after).await {
            Ok(queued) => {
                let registration = turn.queued(&writes, &token, queued.is_known());
                let result = queued.outcome().await;
                turn.settle(registration, result.is_ok());
                result
            }
            Err(e) => Err(e),
        };
        loop {
            match result {
                Ok(()) => return Ok(Some((outcome, events))),
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

    /// The idempotency record's write: created, or overwriting an expired one the store has not
    /// yet deleted (conditionally on its version). Either way at a fresh version
    /// (`fresh_version`), never 1 or the old one's successor: DynamoDB's TTL may delete an
    /// expired record while a retry that read it is still planning, and if a newer retry then
    /// recreated the record at a version the older one expects, both would commit.
    fn remember<T: Serialize>(
        &self,
        scope: &IdempotencyScope<'_>,
        outcome: &T,
        stale_version: Option<u64>,
    ) -> AppResult<Write> {
        let now = self.now();
        let record = IdempotencyRecord {
            org_id: scope.org.clone(),
            api_key_id: scope.caller.clone(),
            scope: scope.operation.clone(),
            key: scope.key.key().to_string(),
            request_hash: scope.key.fingerprint().to_string(),
            outcome: serde_json::to_value(outcome).map_err(|e| AppError::Corrupt(e.to_string()))?,
            created_at: now,
            expires_at: now + ChronoDuration::hours(IDEMPOTENCY_TTL_HOURS),
        };
        let version = records::fresh_version(now);
        match stale_version {
            Some(read) => records::replace(&record, read, version),
            None => records::create_at(&record, version),
        }
    }

    async fn replay<T: DeserializeOwned>(&self, scope: &IdempotencyScope<'_>) -> AppResult<Prior<T>> {
        let key = records::idempotency_key(scope.org, scope.caller, &scope.operation, scope.key.key());
        let Some(stored) = self.read::<IdempotencyRecord>(&key).await? else {
            return Ok(Prior::None);
        };
        let record = stored.value;
        if record.expires_at <= self.now() {
            return Ok(Prior::Expired(stored.version));
        }
        if record.request_hash != scope.key.fingerprint() {
            return Err(AppError::IdempotencyKeyReuse);
        }
        // A record this version cannot read still means "already done": never execute twice.
        serde_json::from_value(record.outcome).map(Prior::Outcome).map_err(|_| AppError::IdempotencyKeyReuse)
    }
}

/// Whether a plan's result goes to the store (its answer then waits for its own commit) rather
/// than straight back to the caller. A stale plan is never answered: it counts as committing.
fn commits<T>(planned: &AppResult<Plan<T>>, remembered_counts: bool) -> bool {
    match planned {
        Ok(plan) => !plan.writes.is_empty() || (remembered_counts && plan.remembered),
        Err(AppError::Stale) => true,
        Err(_) => false,
    }
}

/// Exponential backoff with full jitter: a wait drawn from zero to a cap that doubles with each
/// lost race (1 ms, 2 ms, 4 ms ...) up to `BACKOFF_CAP`. Separate processes racing on one record
/// (Lambdas on a hot wallet) thin out until about one tries per commit's time instead of all
/// retrying into each other; a lone lost race retries within a few milliseconds. (Within one
/// process, lanes spare most of these races.)
async fn backoff(attempt: u32) {
    let cap = BACKOFF_FIRST.saturating_mul(1 << attempt.min(16)).min(BACKOFF_CAP);
    let wait = rand::rng().random_range(Duration::ZERO..=cap);
    tokio::time::sleep(wait).await;
}
