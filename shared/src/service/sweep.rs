//! The scheduled sweep (EventBridge schedule in AWS, a timer in the local server): expire due
//! approvals, re-queue deliveries whose queue message was lost, re-publish stuck outbox events.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::Serialize;
use serde_json::json;

use super::plan::{stale, Plan, Tx};
use super::records::{self, approval_key, payment_key, Stored, DUE_APPROVALS};
use super::Countersign;
use crate::domain::approval::Approval;
use crate::domain::audit::Actor;
use crate::domain::event::{kinds, Event};
use crate::domain::ids::ApprovalId;
use crate::domain::payment::Payment;
use crate::error::{AppError, AppResult};
use crate::ports::{Index, Position, Query};

/// What one scheduled sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepSummary {
    pub approvals_read: usize,
    pub approvals_expired: usize,
    pub approvals_skipped: usize,
    pub events_republished: usize,
    pub deliveries_requeued: usize,
    pub out_of_time: bool,
}

/// What one page of expiry did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpirySummary {
    /// Items read from the due index.
    pub read: usize,
    pub expired: usize,
    pub skipped: usize,
}

impl Countersign {
    /// The scheduled sweep: expire due approvals page by page while time remains, re-queue
    /// overdue deliveries, then re-publish stuck outbox events. Stops early, leaving the rest for
    /// the next run, when `deadline` nears.
    pub async fn sweep(&self, deadline: Option<DateTime<Utc>>, page: usize) -> AppResult<SweepSummary> {
        let mut summary = SweepSummary::default();
        // The deadline is the Lambda's wall-clock deadline, so it is compared with real time. One
        // page of each kind always runs, so a run always makes progress.
        let time_left = || deadline.is_none_or(|d| Utc::now() + ChronoDuration::seconds(3) < d);
        let mut after = None;
        loop {
            let (pass, last) = self.expire_due_after(page, after).await?;
            after = last;
            summary.approvals_read += pass.read;
            summary.approvals_expired += pass.expired;
            summary.approvals_skipped += pass.skipped;
            if pass.read < page {
                break;
            }
            if !time_left() {
                summary.out_of_time = true;
                return Ok(summary);
            }
        }
        let mut after = None;
        loop {
            let (requeued, last) = self.requeue_overdue_deliveries(page, after).await?;
            after = last;
            summary.deliveries_requeued += requeued;
            if requeued < page {
                break;
            }
            if !time_left() {
                summary.out_of_time = true;
                return Ok(summary);
            }
        }
        loop {
            let republished = self.republish_stuck(page).await?;
            summary.events_republished += republished;
            if republished < page {
                break;
            }
            if !time_left() {
                summary.out_of_time = true;
                return Ok(summary);
            }
        }
        Ok(summary)
    }

    /// Expires up to `limit` pending approvals whose window has passed, oldest first. Reads only
    /// due items (sparse index). Safe to run concurrently: each transition is conditional, and a
    /// lost race (approved meanwhile, or expired by another sweep) is skipped.
    pub async fn expire_due(&self, limit: usize) -> AppResult<ExpirySummary> {
        Ok(self.expire_due_after(limit, None).await?.0)
    }

    /// One page of the due index after `after`; returns what it did and where it stopped, so a
    /// sweep moves past records it had to skip instead of reading them again.
    async fn expire_due_after(
        &self,
        limit: usize,
        after: Option<Position>,
    ) -> AppResult<(ExpirySummary, Option<Position>)> {
        let mut query = Query::new(Index::Due, DUE_APPROVALS, limit.max(1));
        query.newest_first = false;
        query.sk_at_most = Some(format!("{}#~", records::sort_time(self.now())));
        query.after = after;
        let due = self.store.query(query).await?;
        let mut summary = ExpirySummary { read: due.len(), ..Default::default() };
        let last = due.last().map(|item| item.position(Index::Due));
        for item in due {
            let key = item.key.clone();
            let outcome = match records::decode::<Approval>(item) {
                Ok(approval) => self.expire_one(&approval.value.id).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(true) => summary.expired += 1,
                Ok(false) | Err(AppError::Contention) => summary.skipped += 1,
                // The store being down ends the sweep (the next run retries); a bad record is
                // logged and skipped so it cannot block every approval behind it.
                Err(e @ AppError::Store(_)) => return Err(e),
                Err(e) => {
                    tracing::error!(item = %key.pk, error = %e, "cannot expire approval; skipped");
                    summary.skipped += 1;
                }
            }
        }
        Ok((summary, last))
    }

    /// Expires one approval and its payment; `false` when it is no longer due (decided meanwhile).
    async fn expire_one(&self, id: &ApprovalId) -> AppResult<bool> {
        self.commit(|| async {
            let Some(mut approval) = self.read::<Approval>(&approval_key(id)).await? else {
                return Ok(Plan::nothing(false));
            };
            let org = approval.value.org_id.clone();
            let mut tx = Tx::new(&org, Actor::System, self.now());
            let now = tx.now();
            if approval.value.expire(now).is_err() {
                return Ok(Plan::nothing(false));
            }
            let mut payment: Stored<Payment> = self.read_owned(&payment_key(&approval.value.payment_id), &org).await?;
            payment.value.expire(now).map_err(stale)?;
            tx.update(&approval)?;
            tx.update(&payment)?;
            tx.event(Event::for_approval(&approval.value, kinds::APPROVAL_EXPIRED, now))?;
            tx.audit(
                "approval.expired",
                "approval",
                approval.value.id.as_str(),
                json!({"paymentId": payment.value.id}),
            )?;
            Ok(tx.done(true))
        })
        .await
    }
}
