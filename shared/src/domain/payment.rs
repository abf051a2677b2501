//! Payments: what an agent asked to move, and where it stands. A payment starts pending; intake
//! completes it at once or holds it for an approval, and only a pending payment may move on
//! (`complete`, `fail`, `reject`, `expire`).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::approval::{Approval, ApprovalStatus, TransactionDetails};
use super::idempotency::IdempotencyKey;
use super::ids::{ApiKeyId, ApprovalId, OrgId, PaymentId, TransactionId, WalletId};
use super::money::{opt_decimal_string, Amount, Currency, Money};
use super::people::Person;
use super::policy::{Decision, ShadowDecision};
use super::policy_version::PolicyVersionRef;
use super::score::Score;
use rust_decimal::Decimal;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    Completed,
    PendingApproval,
    Rejected,
    Expired,
    Failed,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Completed => "COMPLETED",
            PaymentStatus::PendingApproval => "PENDING_APPROVAL",
            PaymentStatus::Rejected => "REJECTED",
            PaymentStatus::Expired => "EXPIRED",
            PaymentStatus::Failed => "FAILED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
    }
}

/// How soon a human should look (the agent's say).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Urgency {
    Low,
    Medium,
    High,
    Critical,
}

impl Urgency {
    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
    }
}

/// A payment request that passed every check needing no stored state: ids parsed, the two
/// wallets distinct, the amount's syntax (and minor units, when a currency is named), scores in
/// range, texts and metadata within limits.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPayment {
    pub from: WalletId,
    pub to: WalletId,
    /// Becomes `Money` in the source wallet's currency.
    pub amount: Amount,
    /// When given, must be the source wallet's currency.
    pub currency: Option<Currency>,
    pub description: Option<String>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub risk_score: Option<Score>,
    pub confidence_score: Option<Score>,
    pub agent_reasoning: Option<String>,
    pub urgency: Option<Urgency>,
    pub idempotency: Option<IdempotencyKey>,
}

impl NewPayment {
    /// A request to move `amount` from one wallet to another, with nothing else said.
    pub fn new(from: WalletId, to: WalletId, amount: Amount) -> Self {
        NewPayment {
            from,
            to,
            amount,
            currency: None,
            description: None,
            metadata: Default::default(),
            risk_score: None,
            confidence_score: None,
            agent_reasoning: None,
            urgency: None,
            idempotency: None,
        }
    }
}

/// (Stored and sent as `PaymentShape`: `status` with `transactionId`, `completedAt` and
/// `failureReason` beside it, as before.)
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(try_from = "PaymentShape")]
pub struct Payment {
    pub id: PaymentId,
    pub org_id: OrgId,
    pub from: WalletId,
    pub to: WalletId,
    /// `amount` and `currency` on the wire.
    pub amount: Money,
    pub description: Option<String>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub risk_score: Option<Score>,
    pub confidence_score: Option<Score>,
    pub agent_reasoning: Option<String>,
    pub urgency: Option<Urgency>,
    /// Where it stands, with what that state carries.
    pub state: PaymentState,
    pub approval_id: Option<ApprovalId>,
    pub decision: Decision,
    /// The versions of the policies the payment was decided under (the enabled payment policies
    /// of the payer's wallet; unset on payments from before policy versions).
    pub policy_versions: Option<Vec<PolicyVersionRef>>,
    /// The key that submitted the payment; it may never approve it.
    pub created_by: ApiKeyId,
    /// The person behind that key; no key of theirs may approve it.
    pub submitted_by: Option<Person>,
    /// The amount first asked for, when a reviewer approved a lower one (`amount`).
    pub original_amount: Option<Money>,
    /// Refunded so far, and held for a refund decision (together at most `amount`), in the
    /// payment's currency.
    pub refunded_amount: Option<Decimal>,
    pub refund_pending_amount: Option<Decimal>,
    /// What each shadow policy of the payer's wallet would have decided (never enforced).
    pub shadow_decisions: Vec<ShadowDecision>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A payment as stored and sent: the status beside the fields only some statuses fill (read
/// through this, written through `PaymentView`; the schema is this).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Payment)]
pub struct PaymentShape {
    pub id: PaymentId,
    pub org_id: OrgId,
    pub from: WalletId,
    pub to: WalletId,
    /// `amount` and `currency` on the wire.
    #[serde(flatten)]
    pub amount: Money,
    pub description: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub risk_score: Option<Score>,
    pub confidence_score: Option<Score>,
    pub agent_reasoning: Option<String>,
    pub urgency: Option<Urgency>,
    pub status: PaymentStatus,
    pub approval_id: Option<ApprovalId>,
    pub decision: Decision,
    /// The versions of the policies the payment was decided under (the enabled payment policies
    /// of the payer's wallet; unset on payments from before policy versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_versions: Option<Vec<PolicyVersionRef>>,
    /// The key that submitted the payment; it may never approve it.
    pub created_by: ApiKeyId,
    /// The person behind that key; no key of theirs may approve it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub submitted_by: Option<Person>,
    /// The amount first asked for, when a reviewer approved a lower one (`amount`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_amount: Option<Money>,
    /// Refunded so far, and held for a refund decision (together at most `amount`), in the
    /// payment's currency.
    #[serde(default, with = "opt_decimal_string", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]+(\.[0-9]+)?$")]
    pub refunded_amount: Option<Decimal>,
    #[serde(default, with = "opt_decimal_string", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]+(\.[0-9]+)?$")]
    pub refund_pending_amount: Option<Decimal>,
    /// What each shadow policy of the payer's wallet would have decided, alone, on this
    /// payment's facts (never enforced); absent when the wallet has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shadow_decisions: Vec<ShadowDecision>,
    pub transaction_id: Option<TransactionId>,
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// Where a payment stands, with what each state carries (a transaction and its time once
/// completed, a reason once failed), so no field is set in a state it does not belong to.
#[derive(Debug, Clone, PartialEq)]
pub enum PaymentState {
    PendingApproval,
    Completed { transaction_id: TransactionId, completed_at: DateTime<Utc> },
    Failed { reason: String },
    Rejected,
    Expired,
}

impl PaymentState {
    pub fn status(&self) -> PaymentStatus {
        match self {
            PaymentState::PendingApproval => PaymentStatus::PendingApproval,
            PaymentState::Completed { .. } => PaymentStatus::Completed,
            PaymentState::Failed { .. } => PaymentStatus::Failed,
            PaymentState::Rejected => PaymentStatus::Rejected,
            PaymentState::Expired => PaymentStatus::Expired,
        }
    }
}

/// `PaymentShape` borrowed from a payment, so writing one never copies it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PaymentView<'a> {
    id: &'a PaymentId,
    org_id: &'a OrgId,
    from: &'a WalletId,
    to: &'a WalletId,
    #[serde(flatten)]
    amount: Money,
    description: &'a Option<String>,
    metadata: &'a serde_json::Map<String, serde_json::Value>,
    risk_score: Option<Score>,
    confidence_score: Option<Score>,
    agent_reasoning: &'a Option<String>,
    urgency: Option<Urgency>,
    status: PaymentStatus,
    approval_id: &'a Option<ApprovalId>,
    decision: &'a Decision,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_versions: &'a Option<Vec<PolicyVersionRef>>,
    created_by: &'a ApiKeyId,
    #[serde(skip_serializing_if = "Option::is_none")]
    submitted_by: &'a Option<Person>,
    #[serde(skip_serializing_if = "Option::is_none")]
    original_amount: Option<Money>,
    #[serde(with = "opt_decimal_string", skip_serializing_if = "Option::is_none")]
    refunded_amount: Option<Decimal>,
    #[serde(with = "opt_decimal_string", skip_serializing_if = "Option::is_none")]
    refund_pending_amount: Option<Decimal>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    shadow_decisions: &'a [ShadowDecision],
    transaction_id: Option<&'a TransactionId>,
    failure_reason: Option<&'a str>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
}

impl Serialize for Payment {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        PaymentView {
            id: &self.id,
            org_id: &self.org_id,
            from: &self.from,
            to: &self.to,
            amount: self.amount,
            description: &self.description,
            metadata: &self.metadata,
            risk_score: self.risk_score,
            confidence_score: self.confidence_score,
            agent_reasoning: &self.agent_reasoning,
            urgency: self.urgency,
            status: self.status(),
            approval_id: &self.approval_id,
            decision: &self.decision,
            policy_versions: &self.policy_versions,
            created_by: &self.created_by,
            submitted_by: &self.submitted_by,
            original_amount: self.original_amount,
            refunded_amount: self.refunded_amount,
            refund_pending_amount: self.refund_pending_amount,
            shadow_decisions: &self.shadow_decisions,
            transaction_id: self.transaction_id(),
            failure_reason: self.failure_reason(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            completed_at: self.completed_at(),
        }
        .serialize(serializer)
    }
}

impl TryFrom<PaymentShape> for Payment {
    type Error = String;

    fn try_from(p: PaymentShape) -> Result<Self, String> {
        let state = match p.status {
            PaymentStatus::PendingApproval => PaymentState::PendingApproval,
            PaymentStatus::Completed => match (p.transaction_id, p.completed_at) {
                (Some(transaction_id), Some(completed_at)) => PaymentState::Completed { transaction_id, completed_at },
                _ => return Err("a COMPLETED payment carries transactionId and completedAt".into()),
            },
            PaymentStatus::Failed => PaymentState::Failed { reason: p.failure_reason.unwrap_or_default() },
            PaymentStatus::Rejected => PaymentState::Rejected,
            PaymentStatus::Expired => PaymentState::Expired,
        };
        Ok(Payment {
            id: p.id,
            org_id: p.org_id,
            from: p.from,
            to: p.to,
            amount: p.amount,
            description: p.description,
            metadata: p.metadata,
            risk_score: p.risk_score,
            confidence_score: p.confidence_score,
            agent_reasoning: p.agent_reasoning,
            urgency: p.urgency,
            state,
            approval_id: p.approval_id,
            decision: p.decision,
            policy_versions: p.policy_versions,
            created_by: p.created_by,
            submitted_by: p.submitted_by,
            original_amount: p.original_amount,
            refunded_amount: p.refunded_amount,
            refund_pending_amount: p.refund_pending_amount,
            shadow_decisions: p.shadow_decisions,
            created_at: p.created_at,
            updated_at: p.updated_at,
        })
    }
}

impl utoipa::PartialSchema for Payment {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <PaymentShape as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for Payment {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Payment")
    }

    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        <PaymentShape as utoipa::ToSchema>::schemas(schemas)
    }
}

/// No hold outlasts this (a year); the service caps windows far lower.
const MAX_HOLD_SECONDS: i64 = 366 * 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    #[error("payment is {}, not PENDING_APPROVAL", .0.as_str())]
    NotPending(PaymentStatus),
    #[error("a modified amount must be more than zero and at most the amount asked for")]
    NotLower,
}

/// What intake did with a payment.
// One per request and moved, never stored in bulk: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum PaymentOutcome {
    /// Policies let it through and the money moved.
    Executed { payment: Payment },
    /// Held for a human: the approval decides.
    Held { payment: Payment, approval: Approval },
}

impl PaymentOutcome {
    pub fn payment(&self) -> &Payment {
        match self {
            PaymentOutcome::Executed { payment } | PaymentOutcome::Held { payment, .. } => payment,
        }
    }
}

impl Payment {
    /// A new pending payment of `amount` as `request` describes it, decided by `decision`.
    pub fn new(
        org_id: OrgId,
        request: &NewPayment,
        amount: Money,
        decision: Decision,
        created_by: ApiKeyId,
        now: DateTime<Utc>,
    ) -> Self {
        Payment {
            id: PaymentId::next_at(now),
            org_id,
            from: request.from.clone(),
            to: request.to.clone(),
            amount,
            description: request.description.clone(),
            metadata: request.metadata.clone(),
            risk_score: request.risk_score,
            confidence_score: request.confidence_score,
            agent_reasoning: request.agent_reasoning.clone(),
            urgency: request.urgency,
            state: PaymentState::PendingApproval,
            approval_id: None,
            decision,
            policy_versions: None,
            created_by,
            submitted_by: None,
            original_amount: None,
            refunded_amount: None,
            refund_pending_amount: None,
            shadow_decisions: Vec::new(),
            created_at: now,
            updated_at: now,
        }
    }

    /// SHA-256 of the canonical details a reviewer sees and an approval binds: payment, payer,
    /// payee, amount, currency and description.
    pub fn details_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let canonical = serde_json::json!({
            "paymentId": self.id, "from": self.from, "to": self.to, "amount": self.amount.to_wire(),
            "currency": self.amount.currency().code(), "description": self.description,
        });
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }

    /// The request as the agent sent it: what a step-up's challenge and a receipt commit to
    /// (the amount asked for, before any modify).
    pub fn request_view(&self) -> serde_json::Value {
        let asked = self.original_amount.unwrap_or(self.amount);
        serde_json::json!({
            "paymentId": self.id, "from": self.from, "to": self.to, "amount": asked.to_wire(),
            "currency": asked.currency().code(), "description": self.description, "metadata": self.metadata,
            "riskScore": self.risk_score, "confidenceScore": self.confidence_score,
            "reasoning": self.agent_reasoning, "urgency": self.urgency, "submittedAt": self.created_at,
        })
    }

    /// Hex SHA-256 of the RFC 8785 canonical JSON of [`Payment::request_view`].
    pub fn payload_hash(&self) -> String {
        hex::encode(crate::proof::canonical::hash_without(&self.request_view(), &[]))
    }

    /// Whether `approval` was shown exactly this payment (approvals from before binding: yes).
    pub fn matches(&self, approval: &Approval) -> bool {
        approval.payment_id == self.id && approval.details_hash.as_ref().is_none_or(|h| *h == self.details_hash())
    }

    /// A reviewer approves a lower amount: the payment and its approval now show `amount`, and
    /// the approval is bound to the new details. Refused unless pending, same currency, more
    /// than zero and at most the current amount.
    pub fn modify(&mut self, approval: &mut Approval, amount: Money) -> Result<Money, PaymentError> {
        self.ensure_pending()?;
        if amount.currency() != self.amount.currency() || amount.is_zero() || amount > self.amount {
            return Err(PaymentError::NotLower);
        }
        let before = self.amount;
        self.original_amount.get_or_insert(before);
        approval.original_amount.get_or_insert(before);
        self.amount = amount;
        approval.transaction_details.amount = amount;
        approval.details_hash = Some(self.details_hash());
        Ok(before)
    }

    /// Where it stands (`state` without its data).
    pub fn status(&self) -> PaymentStatus {
        self.state.status()
    }

    /// The ledger transaction that moved the money, once completed.
    pub fn transaction_id(&self) -> Option<&TransactionId> {
        match &self.state {
            PaymentState::Completed { transaction_id, .. } => Some(transaction_id),
            _ => None,
        }
    }

    /// Why the money did not move, once failed.
    pub fn failure_reason(&self) -> Option<&str> {
        match &self.state {
            PaymentState::Failed { reason } => Some(reason),
            _ => None,
        }
    }

    pub fn completed_at(&self) -> Option<DateTime<Utc>> {
        match &self.state {
            PaymentState::Completed { completed_at, .. } => Some(*completed_at),
            _ => None,
        }
    }

    fn ensure_pending(&self) -> Result<(), PaymentError> {
        match self.status() {
            PaymentStatus::PendingApproval => Ok(()),
            other => Err(PaymentError::NotPending(other)),
        }
    }

    fn finish(&mut self, state: PaymentState, now: DateTime<Utc>) -> Result<(), PaymentError> {
        self.ensure_pending()?;
        self.state = state;
        self.updated_at = now;
        Ok(())
    }

    /// Holds the payment for a human: the pending approval that will decide it, open for
    /// `ttl_seconds`, needing the decision's quorum.
    pub fn hold(&mut self, ttl_seconds: u64, now: DateTime<Utc>) -> Result<Approval, PaymentError> {
        self.ensure_pending()?;
        let approval = Approval {
            id: ApprovalId::generate(),
            org_id: self.org_id.clone(),
            wallet_id: self.from.clone(),
            payment_id: self.id.clone(),
            refund_id: None,
            policy_id: self.decision.policy_id.clone(),
            transaction_details: TransactionDetails {
                amount: self.amount,
                recipient: self.to.clone(),
                description: self.description.clone(),
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
            created_by_person: self.submitted_by.clone(),
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

    /// The money moved under ledger transaction `transaction`.
    pub fn complete(&mut self, transaction: TransactionId, now: DateTime<Utc>) -> Result<(), PaymentError> {
        self.finish(PaymentState::Completed { transaction_id: transaction, completed_at: now }, now)
    }

    /// Approved, but the money could not move.
    pub fn fail(&mut self, reason: String, now: DateTime<Utc>) -> Result<(), PaymentError> {
        self.finish(PaymentState::Failed { reason }, now)
    }

    pub fn reject(&mut self, now: DateTime<Utc>) -> Result<(), PaymentError> {
        self.finish(PaymentState::Rejected, now)
    }

    pub fn expire(&mut self, now: DateTime<Utc>) -> Result<(), PaymentError> {
        self.finish(PaymentState::Expired, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::policy::Outcome;

    fn payment() -> Payment {
        let request = NewPayment {
            urgency: Some(Urgency::High),
            ..NewPayment::new(WalletId::generate(), WalletId::generate(), Amount::parse("10.00").unwrap())
        };
        let decision = Decision {
            outcome: Outcome::Hold,
            rule: "r".into(),
            reason: "held".into(),
            policy_id: None,
            approval_ttl_seconds: None,
            required_approvals: 1,
            escalation_chain: vec![],
            on_timeout: Default::default(),
        };
        let amount = request.amount.in_currency(Currency::USD).unwrap();
        Payment::new(OrgId::generate(), &request, amount, decision, ApiKeyId::generate(), Utc::now())
    }

    #[test]
    fn only_a_pending_payment_moves_on() {
        let now = Utc::now();
        let mut p = payment();
        p.complete(TransactionId::generate(), now).unwrap();
        assert_eq!((p.status(), p.completed_at()), (PaymentStatus::Completed, Some(now)));
        assert_eq!(p.reject(now), Err(PaymentError::NotPending(PaymentStatus::Completed)));
        assert_eq!(p.expire(now), Err(PaymentError::NotPending(PaymentStatus::Completed)));
        assert!(p.fail("x".into(), now).is_err());
        let mut q = payment();
        q.expire(now).unwrap();
        assert!(q.complete(TransactionId::generate(), now).is_err());
        assert_eq!(q.status(), PaymentStatus::Expired);
    }

    #[test]
    fn approvals_bind_the_details_and_modify_only_lowers() {
        let now = Utc::now();
        let mut p = payment();
        let mut a = p.hold(60, now).unwrap();
        assert!(p.matches(&a));
        let usd = |t: &str| Money::parse(t, Currency::USD).unwrap();
        assert_eq!(p.modify(&mut a, usd("10.01")), Err(PaymentError::NotLower));
        assert_eq!(p.modify(&mut a, Money::zero(Currency::USD)), Err(PaymentError::NotLower));
        assert_eq!(p.modify(&mut a, usd("4.00")), Ok(usd("10.00")));
        assert_eq!(
            (p.amount, p.original_amount, a.transaction_details.amount),
            (usd("4.00"), Some(usd("10.00")), usd("4.00"))
        );
        assert!(p.matches(&a), "bound to the modified details");
        let mut tampered = p.clone();
        tampered.amount = usd("5.00");
        assert!(!tampered.matches(&a), "anything else cannot execute");
    }

    #[test]
    fn hold_opens_an_approval_for_the_payment() {
        let now = Utc::now();
        let mut p = payment();
        let a = p.hold(60, now).unwrap();
        assert_eq!((p.approval_id.as_ref(), &a.payment_id), (Some(&a.id), &p.id));
        assert_eq!(
            (a.status, a.expires_at, a.transaction_details.amount),
            (ApprovalStatus::Pending, now + Duration::seconds(60), p.amount)
        );
        assert_eq!(a.created_by, p.created_by);
    }

    #[test]
    fn wire_shape_keeps_amount_and_currency_fields() {
        let p = payment();
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!((json["amount"].as_str(), json["currency"].as_str()), (Some("10.00"), Some("USD")));
        assert_eq!(json["urgency"], "high");
        assert_eq!(serde_json::from_value::<Payment>(json).unwrap(), p);
    }

    #[test]
    fn the_state_travels_as_status_beside_its_fields_and_back() {
        let now = Utc::now();
        let mut completed = payment();
        completed.complete(TransactionId::generate(), now).unwrap();
        let json = serde_json::to_value(&completed).unwrap();
        assert_eq!(json["status"], "COMPLETED");
        assert!(json["transactionId"].is_string() && json["completedAt"].is_string(), "{json}");
        assert!(json["failureReason"].is_null(), "{json}");
        assert_eq!(serde_json::from_value::<Payment>(json).unwrap(), completed);

        let mut failed = payment();
        failed.fail("insufficient funds".into(), now).unwrap();
        let json = serde_json::to_value(&failed).unwrap();
        assert_eq!(
            (json["status"].as_str(), json["failureReason"].as_str()),
            (Some("FAILED"), Some("insufficient funds"))
        );
        assert!(json["transactionId"].is_null() && json["completedAt"].is_null(), "{json}");
        assert_eq!(serde_json::from_value::<Payment>(json).unwrap(), failed);

        // A record that says COMPLETED without its transaction is refused, not half-read.
        let mut broken = serde_json::to_value(&completed).unwrap();
        broken["transactionId"] = serde_json::Value::Null;
        assert!(serde_json::from_value::<Payment>(broken).is_err());
    }
}
