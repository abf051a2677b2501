//! Refunds (docs/api.md, "Refunds"; RefundKit): money back from a completed payment's payee to its payer,
//! decided by the payee wallet's refund policies like a payment. pending → approved | rejected |
//! expired (| failed when the payee no longer holds the money at approval); escalated is pending
//! with another team. What has been refunded, or is held for a decision, is reserved on the
//! payment, so refunds never sum to more than it.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::approval::{Approval, ApprovalStatus, TransactionDetails};
use super::idempotency::IdempotencyKey;
use super::ids::{ApiKeyId, ApprovalId, OrgId, PaymentId, RefundId, TransactionId, WalletId};
use super::money::{Amount, Money};
use super::payment::{Payment, PaymentStatus};
use super::people::Person;
use super::policy::{Decision, ShadowDecision};
use super::policy_version::PolicyVersionRef;
use super::score::Score;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RefundStatus {
    Pending,
    Approved,
    Rejected,
    Escalated,
    Expired,
    /// Approved, but the payee's wallet no longer held the amount: nothing moved.
    Failed,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Pending => "pending",
            RefundStatus::Approved => "approved",
            RefundStatus::Rejected => "rejected",
            RefundStatus::Escalated => "escalated",
            RefundStatus::Expired => "expired",
            RefundStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
    }

    fn is_open(self) -> bool {
        matches!(self, RefundStatus::Pending | RefundStatus::Escalated)
    }
}

/// A refund request that passed every check needing no stored state.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRefund {
    pub payment_id: PaymentId,
    /// Default: what is left to refund.
    pub amount: Option<Amount>,
    pub reason: Option<String>,
    pub risk_score: Option<Score>,
    pub idempotency: Option<IdempotencyKey>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Refund {
    pub id: RefundId,
    pub org_id: OrgId,
    pub payment_id: PaymentId,
    /// The payee's wallet: the money leaves it.
    pub from: WalletId,
    /// The payer's wallet: the money returns to it.
    pub to: WalletId,
    /// `amount` and `currency` on the wire.
    #[serde(flatten)]
    pub amount: Money,
    pub reason: Option<String>,
    pub risk_score: Option<Score>,
    pub status: RefundStatus,
    pub approval_id: Option<ApprovalId>,
    pub decision: Decision,
    /// The versions of the policies the refund was decided under (the enabled refund policies
    /// of the payee's wallet; unset on refunds from before policy versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_versions: Option<Vec<PolicyVersionRef>>,
    pub created_by: ApiKeyId,
    #[schema(value_type = String)]
    pub submitted_by: Person,
    pub transaction_id: Option<TransactionId>,
    pub failure_reason: Option<String>,
    /// What each shadow policy of the payee's wallet would have decided, alone, on this
    /// refund's facts (never enforced); absent when the wallet has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shadow_decisions: Vec<ShadowDecision>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RefundError {
    #[error("only a COMPLETED payment can be refunded; this one is {}", .0.as_str())]
    NotRefundable(PaymentStatus),
    #[error("the refund is more than is left to refund ({} {})", .0.to_wire(), .0.currency().code())]
    Exceeds(Money),
    #[error("refund is {}, not pending", .0.as_str())]
    NotPending(RefundStatus),
}

/// No hold outlasts a year (the service caps windows far lower).
const MAX_HOLD_SECONDS: i64 = 366 * 24 * 3600;

impl Payment {
    fn in_own_currency(&self, amount: Option<rust_decimal::Decimal>) -> Money {
        Money::from_decimal(amount.unwrap_or_default(), self.amount.currency())
    }

    /// Refunded so far.
    pub fn refunded(&self) -> Money {
        self.in_own_currency(self.refunded_amount)
    }

    /// Held for refund decisions.
    pub fn refund_pending(&self) -> Money {
        self.in_own_currency(self.refund_pending_amount)
    }

    /// What is left to refund: the amount less what is refunded or held for a refund decision.
    pub fn refundable(&self) -> Money {
        let zero = Money::zero(self.amount.currency());
        let taken = self.refunded().checked_add(self.refund_pending());
        taken.and_then(|t| self.amount.checked_sub(t)).unwrap_or(zero)
    }

    /// Reserves `amount` for a refund: executed at once (`refunded`) or held for a decision.
    pub fn reserve_refund(&mut self, amount: Money, executed: bool, now: DateTime<Utc>) -> Result<(), RefundError> {
        if self.status() != PaymentStatus::Completed {
            return Err(RefundError::NotRefundable(self.status()));
        }
        let left = self.refundable();
        if amount.currency() != left.currency() || amount > left {
            return Err(RefundError::Exceeds(left));
        }
        let current = if executed { self.refunded() } else { self.refund_pending() };
        let total = current.checked_add(amount).ok_or(RefundError::Exceeds(left))?;
        let bucket = if executed { &mut self.refunded_amount } else { &mut self.refund_pending_amount };
        *bucket = Some(total.amount());
        self.updated_at = now;
        Ok(())
    }

    /// Settles a held refund of `amount`: refunded when `executed`, else released.
    pub fn settle_refund(&mut self, amount: Money, executed: bool, now: DateTime<Utc>) {
        let pending = self.refund_pending().checked_sub(amount).unwrap_or(Money::zero(amount.currency()));
        self.refund_pending_amount = (!pending.is_zero()).then(|| pending.amount());
        if executed {
            self.refunded_amount = self.refunded().checked_add(amount).map(|m| m.amount());
        }
        self.updated_at = now;
    }
}

impl Refund {
    /// The refund as requested: what a step-up's challenge and a receipt commit to.
    pub fn request_view(&self) -> serde_json::Value {
        serde_json::json!({
            "refundId": self.id, "paymentId": self.payment_id, "from": self.from, "to": self.to,
            "amount": self.amount.to_wire(), "currency": self.amount.currency().code(), "reason": self.reason,
            "riskScore": self.risk_score, "submittedAt": self.created_at,
        })
    }

    /// Hex SHA-256 of the RFC 8785 canonical JSON of [`Refund::request_view`].
    pub fn payload_hash(&self) -> String {
        hex::encode(crate::proof::canonical::hash_without(&self.request_view(), &[]))
    }

    /// A refund of `amount` of `payment`, decided by `decision`.
    pub fn new(
        payment: &Payment,
        request: &NewRefund,
        amount: Money,
        decision: Decision,
        created_by: ApiKeyId,
        submitted_by: Person,
        now: DateTime<Utc>,
    ) -> Self {
        Refund {
            id: RefundId::generate(),
            org_id: payment.org_id.clone(),
            payment_id: payment.id.clone(),
            from: payment.to.clone(),
            to: payment.from.clone(),
            amount,
            reason: request.reason.clone(),
            risk_score: request.risk_score,
            status: RefundStatus::Pending,
            approval_id: None,
            decision,
            policy_versions: None,
            created_by,
            submitted_by,
            transaction_id: None,
            failure_reason: None,
            shadow_decisions: Vec::new(),
            created_at: now,
            updated_at: now,
            completed_at: None,
        }
    }

    /// SHA-256 of what an approver is shown; a decision executes only this refund.
    pub fn details_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let canonical = serde_json::json!({
            "refundId": self.id, "paymentId": self.payment_id, "from": self.from, "to": self.to,
            "amount": self.amount.to_wire(), "currency": self.amount.currency().code(),
        });
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }

    /// Whether `approval` was shown exactly this refund.
    pub fn matches(&self, approval: &Approval) -> bool {
        approval.refund_id.as_ref() == Some(&self.id) && approval.details_hash.as_deref() == Some(&self.details_hash())
    }

    /// Holds the refund for a human: the approval that decides it.
    pub fn hold(&mut self, ttl_seconds: u64, now: DateTime<Utc>) -> Result<Approval, RefundError> {
        self.ensure_open()?;
        let approval = Approval {
            id: ApprovalId::generate(),
            org_id: self.org_id.clone(),
            wallet_id: self.from.clone(),
            payment_id: self.payment_id.clone(),
            refund_id: Some(self.id.clone()),
            policy_id: self.decision.policy_id.clone(),
            transaction_details: TransactionDetails {
                amount: self.amount,
                recipient: self.to.clone(),
                description: self.reason.clone(),
            },
            status: ApprovalStatus::Pending,
            reason: self.decision.reason.clone(),
            required_approvals: self.decision.required_approvals,
            votes: vec![],
            expires_at: now + Duration::seconds(i64::try_from(ttl_seconds).unwrap_or(i64::MAX).min(MAX_HOLD_SECONDS)),
            resolved_at: None,
            resolved_by: None,
            resolution_note: None,
            created_by: self.created_by.clone(),
            created_by_person: Some(self.submitted_by.clone()),
            assigned_team: None,
            details_hash: Some(self.details_hash()),
            original_amount: None,
            escalation_chain: self.decision.escalation_chain.clone(),
            on_timeout: self.decision.on_timeout,
            window_seconds: ttl_seconds,
            previous_teams: Vec::new(),
            reservation: None,
            policy_versions: self.policy_versions.clone(),
            step_up_above: None,
            created_at: now,
        };
        self.approval_id = Some(approval.id.clone());
        Ok(approval)
    }

    fn ensure_open(&self) -> Result<(), RefundError> {
        if self.status.is_open() {
            Ok(())
        } else {
            Err(RefundError::NotPending(self.status))
        }
    }

    fn finish(&mut self, status: RefundStatus, now: DateTime<Utc>) -> Result<(), RefundError> {
        self.ensure_open()?;
        self.status = status;
        self.updated_at = now;
        Ok(())
    }

    pub fn complete(&mut self, transaction: TransactionId, now: DateTime<Utc>) -> Result<(), RefundError> {
        self.finish(RefundStatus::Approved, now)?;
        self.transaction_id = Some(transaction);
        self.completed_at = Some(now);
        Ok(())
    }

    pub fn fail(&mut self, reason: String, now: DateTime<Utc>) -> Result<(), RefundError> {
        self.finish(RefundStatus::Failed, now)?;
        self.failure_reason = Some(reason);
        Ok(())
    }

    pub fn reject(&mut self, now: DateTime<Utc>) -> Result<(), RefundError> {
        self.finish(RefundStatus::Rejected, now)
    }

    /// Rejected by policy although a human approved it: a deny rule (added while it waited)
    /// holds when it would execute. `reason` says which.
    pub fn deny(&mut self, reason: String, now: DateTime<Utc>) -> Result<(), RefundError> {
        self.finish(RefundStatus::Rejected, now)?;
        self.failure_reason = Some(reason);
        Ok(())
    }

    pub fn expire(&mut self, now: DateTime<Utc>) -> Result<(), RefundError> {
        self.finish(RefundStatus::Expired, now)
    }

    /// Its approval went to another team.
    pub fn escalate(&mut self, now: DateTime<Utc>) -> Result<(), RefundError> {
        self.finish(RefundStatus::Escalated, now)
    }
}
