//! What the service measures (`domain::metric`), each recorded once what it measures has
//! committed: never inside a plan, which the engine may make again.

use std::future::Future;
use std::time::Instant;

use crate::domain::approval::{Approval, ApprovalStatus};
use crate::domain::metric::{Metric, Outcome};
use crate::domain::payment::PaymentOutcome;
use crate::engine::Committed;
use crate::error::{AppError, AppResult};
use crate::service::{Countersign, RefundOutcome, UseCases};

/// What an intake decided: executed at once, or held for a person.
pub trait IntakeDecision {
    fn held(&self) -> bool;
}

impl IntakeDecision for PaymentOutcome {
    fn held(&self) -> bool {
        matches!(self, PaymentOutcome::Held { .. })
    }
}

impl IntakeDecision for RefundOutcome {
    fn held(&self) -> bool {
        matches!(self, RefundOutcome::Held { .. })
    }
}

impl UseCases {
    pub(crate) fn record(&self, metric: Metric, value: f64) {
        self.metrics.record(metric, value);
    }

    /// A vote, once it has committed: an approval it closed counts as approved, modified or
    /// rejected, with its time to decision; a vote that leaves the approval open counts nothing.
    pub(crate) fn record_vote(&self, approval: &Approval) {
        let outcome = match approval.status {
            ApprovalStatus::Approved if approval.original_amount.is_some() => Outcome::Modified,
            ApprovalStatus::Approved => Outcome::Approved,
            ApprovalStatus::Rejected => Outcome::Rejected,
            _ => return,
        };
        self.record(Metric::Decisions(outcome), 1.0);
        let decided_at = approval.resolved_at.unwrap_or_else(|| self.now());
        let millis = (decided_at - approval.created_at).num_milliseconds().max(0);
        self.record(Metric::TimeToDecision, millis as f64 / 1000.0);
    }
}

impl Countersign {
    /// Runs `intake` (`POST /v1/payments` or `/v1/refunds`, from any door) timed, and counts
    /// its decision once it has committed: executed, held, or denied by a policy or a budget.
    /// A replay of an idempotent request is timed but decided nothing new. A request refused
    /// before any decision (its key, its body, short funds) is neither: fast refusals would hide
    /// a slow decision path in the latency. A denial replayed under its idempotency key cannot
    /// be told from a new one and is counted again (rare: a client retrying a 403).
    pub async fn metered_intake<T: IntakeDecision>(
        &self,
        intake: impl Future<Output = AppResult<Committed<T>>>,
    ) -> AppResult<Committed<T>> {
        let started = Instant::now();
        let result = intake.await;
        let decided = match &result {
            Ok(c) if c.replayed => None,
            Ok(c) if c.outcome.held() => Some(Outcome::Held),
            Ok(_) => Some(Outcome::Executed),
            Err(AppError::PolicyDenied { .. } | AppError::BudgetExceeded(_)) => Some(Outcome::Denied),
            Err(_) => {
                return result;
            }
        };
        self.record(Metric::IntakeLatency, started.elapsed().as_secs_f64() * 1000.0);
        if let Some(outcome) = decided {
            self.record(Metric::Decisions(outcome), 1.0);
        }
        result
    }
}
