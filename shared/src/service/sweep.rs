//! The scheduled sweep (EventBridge schedule in AWS, a timer in the local server): expire due
//! approvals and reviews, re-queue deliveries whose queue message was lost, re-publish stuck outbox events.
//! Each phase reads every shard of its due partition concurrently, page by page, and runs on
//! its own: one that fails is logged and counted and the others still run.

use std::future::Future;
use std::ops::AddAssign;
use std::time::Duration;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use futures::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::json;

use super::money::budgets::{settle_reservation, Settlement};
use super::money::refunds::{plan_refund_closing, plan_refund_escalation, RefundClosing};
use super::stats::{record_closing, record_escalation};
use super::{Countersign, UseCases};
use crate::domain::approval::{Approval, ApprovalSubject};
use crate::domain::audit::Actor;
use crate::domain::event::{kinds, Event};
use crate::domain::ids::ApprovalId;
use crate::domain::metric::{Metric, Outcome};
use crate::domain::payment::Payment;
use crate::domain::policy::OnTimeout;
use crate::domain::review::Review;
use crate::engine::plan::{overtaken, Plan, Tx};
use crate::error::{AppError, AppResult};
use crate::layout::{self, approval_key, due_partitions, payment_key, sort_time, Stored, DUE_APPROVALS, DUE_REVIEWS};
use crate::ports::{Index, Item, Position, Query};

/// The sweep's phases: expire, re-queue, notify, re-publish, seal. It fails only when all of them did.
const SWEEP_PHASES: usize = 5;
/// Shards of one due kind read at once.
const SHARD_CONCURRENCY: usize = 4;
/// Expirations of one page committed at once.
const EXPIRE_CONCURRENCY: usize = 8;
/// Time kept in hand before the invocation's deadline: enough for a whole page of every shard
/// in flight to finish.
const DEADLINE_GUARD: Duration = Duration::from_secs(10);

/// What one scheduled sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepSummary {
    pub approvals_read: usize,
    /// Approvals and reviews expired (reviews are read from their own due partitions).
    pub approvals_expired: usize,
    pub approvals_skipped: usize,
    pub events_republished: usize,
    pub deliveries_requeued: usize,
    /// Notifications handed to the queue: reminders come due, attempts whose message was lost.
    pub notifications_queued: usize,
    /// Audit checkpoints made, and the entries they sealed.
    pub checkpoints_sealed: usize,
    pub entries_sealed: usize,
    /// Phases that failed (each logged); the others ran.
    pub phases_failed: usize,
    pub out_of_time: bool,
}

/// What expiry did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpirySummary {
    /// Items read from the due index.
    pub read: usize,
    pub expired: usize,
    pub skipped: usize,
}

impl AddAssign for ExpirySummary {
    fn add_assign(&mut self, other: Self) {
        self.read += other.read;
        self.expired += other.expired;
        self.skipped += other.skipped;
    }
}

/// One page of one shard: what it did, how many items it read, where it stopped.
pub(crate) type PageDone<T> = (T, usize, Option<Position>);

impl UseCases {
    /// Expires up to `limit` due approvals per shard, oldest first, with no deadline (tests and
    /// tools). Safe to run concurrently with anything: each transition is conditional, and a
    /// lost race (approved meanwhile, or expired by another sweep) is skipped.
    pub async fn expire_due(&self, limit: usize) -> AppResult<ExpirySummary> {
        Ok(self.expire_phase(limit, &|| false).await?.0)
    }

    async fn expire_phase(
        &self,
        page: usize,
        time_left: &(dyn Fn() -> bool + Sync),
    ) -> AppResult<(ExpirySummary, bool)> {
        let cutoff = format!("{}#~", sort_time(self.now()));
        let cutoff = &cutoff;
        let (mut done, late) = self
            .each_due_page(DUE_APPROVALS, page, time_left, move |partition, after| async move {
                self.expire_page(&partition, cutoff, page, after).await
            })
            .await?;
        if late {
            return Ok((done, late));
        }
        // Reviews have their own due kind; counted with the approvals.
        let (reviews, late) = self
            .each_due_page(DUE_REVIEWS, page, time_left, move |partition, after| async move {
                self.expire_page(&partition, cutoff, page, after).await
            })
            .await?;
        done += reviews;
        Ok((done, late))
    }

    /// Runs `step` over every shard of `kind` concurrently, each shard page by page after its
    /// own cursor, until it is drained or time runs out. Returns the summed outcome and whether
    /// time ran out.
    pub(crate) async fn each_due_page<T, F, Fut>(
        &self,
        kind: &str,
        page: usize,
        time_left: &(dyn Fn() -> bool + Sync),
        step: F,
    ) -> AppResult<(T, bool)>
    where
        T: Default + AddAssign,
        F: Fn(String, Option<Position>) -> Fut,
        Fut: Future<Output = AppResult<PageDone<T>>>,
    {
        let step = &step;
        let shards: Vec<AppResult<(T, bool)>> = stream::iter(due_partitions(kind))
            .map(|partition| async move {
                let mut total = T::default();
                let mut after = None;
                loop {
                    let (done, read, last) = step(partition.clone(), after).await?;
                    total += done;
                    after = last;
                    if read < page {
                        return Ok((total, false));
                    }
                    if !time_left() {
                        return Ok((total, true));
                    }
                }
            })
            .buffer_unordered(SHARD_CONCURRENCY)
            .collect()
            .await;
        let mut total = T::default();
        let mut late = false;
        for shard in shards {
            let (done, out_of_time) = shard?;
            total += done;
            late |= out_of_time;
        }
        Ok((total, late))
    }

    /// Up to `limit` items of one due partition with sort keys up to `cutoff`, oldest first, after
    /// `after`; with how many were read and where the page stopped.
    pub(crate) async fn due_page(
        &self,
        partition: &str,
        cutoff: &str,
        limit: usize,
        after: Option<Position>,
    ) -> AppResult<PageDone<Vec<Item>>> {
        let mut query = Query::new(Index::Due, partition, limit.max(1));
        query.newest_first = false;
        query.sk_at_most = Some(cutoff.to_string());
        query.after = after;
        let items = self.store().query(query).await?;
        let (read, last) = (items.len(), items.last().map(|i| i.position(Index::Due)));
        Ok((items, read, last))
    }

    /// One page of one shard of the due index after `after`, expired concurrently.
    async fn expire_page(
        &self,
        partition: &str,
        cutoff: &str,
        limit: usize,
        after: Option<Position>,
    ) -> AppResult<PageDone<ExpirySummary>> {
        let (due, read, last) = self.due_page(partition, cutoff, limit, after).await?;
        let outcomes: Vec<AppResult<bool>> = stream::iter(due)
            .map(|item| async move {
                let key = item.key.clone();
                let outcome = if key.pk.starts_with("REVIEW#") {
                    match layout::decode::<Review>(item) {
                        Ok(review) => self.expire_review(&review.value.id).await,
                        Err(e) => Err(e),
                    }
                } else {
                    match layout::decode::<Approval>(item) {
                        Ok(approval) => self.expire_one(&approval.value.id).await.map(|timed_out| {
                            // Once, after the commit: what the window's end did to the approval.
                            if let Some(outcome) = timed_out {
                                self.record(Metric::Decisions(outcome), 1.0);
                            }
                            timed_out.is_some()
                        }),
                        Err(e) => Err(e),
                    }
                };
                match outcome {
                    Err(e @ AppError::Store(_)) => Err(e),
                    Err(AppError::Contention) => Ok(false),
                    // A bad record is logged and skipped so it cannot block every approval behind it.
                    Err(e) => {
                        tracing::error!(item = %key.pk, error = %e, "cannot expire approval; skipped");
                        Ok(false)
                    }
                    Ok(expired) => Ok(expired),
                }
            })
            .buffer_unordered(EXPIRE_CONCURRENCY)
            .collect()
            .await;
        let mut summary = ExpirySummary { read, ..Default::default() };
        for outcome in outcomes {
            // The store being down ends the phase (the next run retries).
            if outcome? {
                summary.expired += 1;
            } else {
                summary.skipped += 1;
            }
        }
        Ok((summary, read, last))
    }

    /// Applies the approval's `onTimeout` once its window has closed: escalate to the chain's
    /// next tier, reject, or expire (also when the chain has ended); which of them it did, or
    /// `None` when it is no longer due (decided meanwhile).
    async fn expire_one(&self, id: &ApprovalId) -> AppResult<Option<Outcome>> {
        let r = self.reader();
        self.engine
            .commit(&r, || async {
                let Some(mut approval) = r.read::<Approval>(&approval_key(id)).await? else {
                    return Ok(Plan::nothing(None));
                };
                let org = approval.value.org_id.clone();
                let mut tx = Tx::new(&org, Actor::System, self.now());
                let now = tx.now();
                if !approval.value.is_open() || now < approval.value.expires_at {
                    return Ok(Plan::nothing(None));
                }
                let approval_id = approval.value.id.clone();
                if approval.value.on_timeout == OnTimeout::Escalate {
                    // The chain's next tier, while the chain's time bound leaves any; else the
                    // approval ends below as if it had no tier left.
                    let from = approval.value.assigned_team.clone();
                    let escalated = match approval.value.escalation_target(None, None, false) {
                        Ok(next) => approval.value.escalate(next.clone(), now).is_ok().then_some(next),
                        Err(_) => None,
                    };
                    if let Some(next) = escalated {
                        record_escalation(&mut tx, &approval, from.clone(), None)?;
                        tx.update(&approval)?;
                        plan_refund_escalation(&r, &mut tx, &approval.value).await?;
                        tx.event(Event::for_approval(&approval.value, kinds::APPROVAL_ESCALATED, now))?;
                        let details = json!({"fromTeam": from, "toTeam": next, "reason": "no decision in time"});
                        tx.audit("approval.escalated", "approval", approval_id.as_str(), details)?;
                        return Ok(tx.done(Some(Outcome::Escalated)));
                    }
                }
                let mut payment: Stored<Payment> = r.read_owned(&payment_key(&approval.value.payment_id), &org).await?;
                if let ApprovalSubject::Refund { .. } = approval.value.subject() {
                    // A refund's approval: the refund is released; the refunded payment stays COMPLETED.
                    let (closing, kind, action, outcome) = if approval.value.on_timeout == OnTimeout::Reject {
                        approval.value.reject_on_timeout(now)?;
                        (RefundClosing::Rejected, kinds::APPROVAL_REJECTED, "approval.rejected", Outcome::Rejected)
                    } else {
                        approval.value.expire(now)?;
                        (RefundClosing::Expired, kinds::APPROVAL_EXPIRED, "approval.expired", Outcome::Expired)
                    };
                    record_closing(&mut tx, &approval, None)?;
                    tx.update(&approval)?;
                    tx.event(Event::for_approval(&approval.value, kind, now))?;
                    let details = json!({"reason": "no decision in time", "refundId": approval.value.refund_id});
                    tx.audit(action, "approval", approval_id.as_str(), details)?;
                    plan_refund_closing(&r, &mut tx, &approval.value, &mut payment, closing).await?;
                    return Ok(tx.done(Some(outcome)));
                }
                // What the held payment reserved in its key's budgets is free again.
                settle_reservation(&r, &mut tx, &mut approval.value, Settlement::Release).await?;
                if approval.value.on_timeout == OnTimeout::Reject {
                    approval.value.reject_on_timeout(now)?;
                    payment.value.reject(now).map_err(overtaken)?;
                    record_closing(&mut tx, &approval, None)?;
                    tx.update(&approval)?;
                    tx.update(&payment)?;
                    tx.event(Event::for_approval(&approval.value, kinds::APPROVAL_REJECTED, now))?;
                    let details = json!({"reason": "no decision in time", "paymentId": payment.value.id});
                    tx.audit("approval.rejected", "approval", approval_id.as_str(), details)?;
                    return Ok(tx.done(Some(Outcome::Rejected)));
                }
                approval.value.expire(now)?;
                payment.value.expire(now).map_err(overtaken)?;
                record_closing(&mut tx, &approval, None)?;
                tx.update(&approval)?;
                tx.update(&payment)?;
                tx.event(Event::for_approval(&approval.value, kinds::APPROVAL_EXPIRED, now))?;
                tx.audit(
                    "approval.expired",
                    "approval",
                    approval.value.id.as_str(),
                    json!({"paymentId": payment.value.id}),
                )?;
                Ok(tx.done(Some(Outcome::Expired)))
            })
            .await
    }
}

impl Countersign {
    /// Records the backlogs the sweep watches, every run: the age of the oldest event waiting
    /// in the outbox (0 when none does, so the graph and its alarm always see a value) and the
    /// webhook deliveries waiting for a retry. Measurements, not phases: failing one fails
    /// nothing else.
    async fn measure_backlog(&self) {
        match self.oldest_unpublished().await {
            Ok(oldest) => {
                let age = oldest.map_or(0, |at| (self.now() - at).num_seconds().max(0));
                self.record(Metric::OutboxUnpublishedAge, age as f64);
            }
            Err(e) => tracing::warn!(error = %e, "measuring the outbox's oldest event failed"),
        }
        match self.deliveries_pending().await {
            Ok(pending) => self.record(Metric::DeliveriesPending, pending as f64),
            Err(e) => tracing::warn!(error = %e, "counting pending deliveries failed"),
        }
    }

    /// The scheduled sweep. Stops early, leaving the rest for the next run, when `deadline`
    /// nears; every shard always runs one page, so a run always makes progress. Fails only when
    /// every phase failed.
    pub async fn sweep(&self, deadline: Option<DateTime<Utc>>, page: usize) -> AppResult<SweepSummary> {
        // The deadline is the Lambda's wall-clock deadline, so it is compared with real time.
        let guard = ChronoDuration::from_std(DEADLINE_GUARD).unwrap_or_default();
        let time_left = move || deadline.is_none_or(|d| Utc::now() + guard < d);
        let mut summary = SweepSummary::default();
        let mut first_error = None;
        let mut failures = 0;
        let mut failed = |phase: &str, e: AppError| {
            tracing::error!(phase, error = %e, "sweep phase failed; the other phases still run");
            failures += 1;
            first_error.get_or_insert(e);
        };
        match self.expire_phase(page, &time_left).await {
            Ok((done, late)) => {
                summary.approvals_read = done.read;
                summary.approvals_expired = done.expired;
                summary.approvals_skipped = done.skipped;
                summary.out_of_time |= late;
            }
            Err(e) => failed("expire", e),
        }
        match self.requeue_phase(page, &time_left).await {
            Ok((n, late)) => {
                summary.deliveries_requeued = n;
                summary.out_of_time |= late;
            }
            Err(e) => failed("requeue", e),
        }
        match self.notifications_phase(page, &time_left).await {
            Ok((n, late)) => {
                summary.notifications_queued = n;
                summary.out_of_time |= late;
            }
            Err(e) => failed("notify", e),
        }
        match self.republish_phase(page, &time_left).await {
            Ok((n, late)) => {
                summary.events_republished = n;
                summary.out_of_time |= late;
            }
            Err(e) => failed("republish", e),
        }
        self.measure_backlog().await;
        // Last: what the other phases just audited is sealed on a later run, once old enough.
        match self.seal_audit_logs(&time_left).await {
            Ok((sealed, late)) => {
                summary.checkpoints_sealed = sealed.checkpoints;
                summary.entries_sealed = sealed.entries_sealed;
                summary.out_of_time |= late;
            }
            Err(e) => failed("seal", e),
        }
        summary.phases_failed = failures;
        match first_error {
            Some(e) if failures == SWEEP_PHASES => Err(e),
            _ => Ok(summary),
        }
    }
}
