//! Refunds (docs/api.md, "Refunds"): a completed payment's money back from its payee to its payer, decided by
//! the payee wallet's refund policies (`appliesTo: ["refund"]`) exactly like a payment: executed
//! at once, held for a human (an approval decided through the same routes), or denied. Every
//! refund reserves its amount on the payment in the same transaction, so concurrent partial
//! refunds never sum to more than it.

use crate::engine::Reader;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::domain::approval::{Approval, ApprovalSubject, Resolution};
use crate::domain::audit::Actor;
use crate::domain::event::{kinds, Event};
use crate::domain::ids::{PaymentId, RefundId, WalletId};
use crate::domain::org::ApiKey;
use crate::domain::payment::Payment;
use crate::domain::permission::Permission;
use crate::domain::policy::{evaluate, ActionKind, Outcome, PaymentFacts};
use crate::domain::policy_version::applied_versions;
use crate::domain::refund::{NewRefund, Refund, RefundStatus};
use crate::domain::routing::Subject;
use crate::domain::wallet::{BalanceError, Wallet};
use crate::engine::plan::{overtaken, PlanError, Tx};
use crate::engine::{Change, Committed, IdempotencyScope};
use crate::error::{AppError, AppResult};
use crate::layout::{payment_key, refund_key, wallet_key, Stored};
use crate::service::money::execution::{plan_denied_execution, plan_execution, Audited};
use crate::service::money::freeze::ensure_not_frozen;
use crate::service::money::payments::{with_shadow, Listing};
use crate::service::money::step_up::step_up_threshold;
use crate::service::paging::{Page, PageRequest};
use crate::service::{ensure_wallet, require, Caller, UseCases};

/// Which refunds a listing shows.
#[derive(Debug, Default)]
pub struct RefundFilter {
    /// The payee's wallet (the one refunds leave).
    pub wallet_id: Option<WalletId>,
    pub status: Option<RefundStatus>,
    pub payment_id: Option<PaymentId>,
}

/// What a refund request did.
#[allow(clippy::large_enum_variant)] // one per request, moved once
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RefundOutcome {
    /// Policies let it through and the money moved back.
    Executed { refund: Refund },
    /// Held for a human: the approval decides.
    Held { refund: Refund, approval: Approval },
}

impl RefundOutcome {
    pub fn refund(&self) -> &Refund {
        match self {
            RefundOutcome::Executed { refund } | RefundOutcome::Held { refund, .. } => refund,
        }
    }
}

type Intake = super::intake::Intake<RefundOutcome>;

impl UseCases {
    /// `POST /v1/refunds`.
    pub async fn create_refund(&self, caller: &Caller, request: NewRefund) -> AppResult<Committed<RefundOutcome>> {
        let caller = caller.key()?;
        require(caller, Permission::RefundsWrite)?;
        let org = caller.org_id.clone();
        if request.idempotency.is_some() {
            self.ensure_may_refund(caller, &request.payment_id).await?;
        }
        let scope = request.idempotency.as_ref().map(|key| IdempotencyScope {
            org: &org,
            caller: &caller.id,
            operation: "refunds".into(),
            key,
        });
        let r = self.reader();
        let committed = self
            .engine
            .run(&r, Change::default().idempotent(scope), || async {
                let mut payment: Stored<Payment> = r.read_owned(&payment_key(&request.payment_id), &org).await?;
                // The refund leaves the payee's wallet: a key bound to wallets must hold it.
                ensure_wallet(caller, &payment.value.to)?;
                let from: Stored<Wallet> = r.read_owned(&wallet_key(&payment.value.to), &org).await?;
                let to: Stored<Wallet> = r.read_owned(&wallet_key(&payment.value.from), &org).await?;
                ensure_not_frozen([&from.value, &to.value], false)?;
                let left = payment.value.refundable();
                let amount = match request.amount {
                    Some(asked) => asked.in_currency(payment.value.amount.currency())?,
                    None => left,
                };
                let mut tx = Tx::new(&org, Actor::Key(caller.id.clone()), self.now());
                let now = tx.now();
                // Checked before the policies, so a refund that can never happen is not audited.
                payment.value.clone().reserve_refund(amount, false, now)?;
                if amount.is_zero() {
                    return Err(AppError::RefundExceedsPayment {
                        remaining: left.to_wire(),
                        currency: left.currency().code().into(),
                    }
                    .into());
                }
                let policies = r.wallet_policies(&from.value.id).await?;
                let shadows = r.shadows(&org, &from.value.id, &policies, ActionKind::Refund).await?;
                let facts = PaymentFacts {
                    spent_today: from.value.spent_today(now),
                    ..PaymentFacts::new(ActionKind::Refund, amount, &to.value.id, request.risk_score)
                };
                let decision = evaluate(&policies, &facts);
                let shadow = shadows.record(&mut tx, &facts, decision.outcome)?;
                if decision.outcome == Outcome::Deny {
                    let details = with_shadow(
                        json!({"decision": decision, "paymentId": payment.value.id, "amount": amount.to_wire()}),
                        &shadow,
                    );
                    tx.audit("refund.denied", "payment", payment.value.id.as_str(), details)?;
                    return Ok(tx.refused(Intake::Denied(decision)));
                }
                let mut refund =
                    Refund::new(&payment.value, &request, amount, decision, caller.id.clone(), caller.person(), now);
                refund.shadow_decisions = shadow;
                refund.policy_versions = Some(applied_versions(&policies, ActionKind::Refund));
                let plan = if refund.decision.outcome == Outcome::Execute {
                    if amount > from.value.balance() {
                        // A refund that committed between our reads can make them disagree: plan
                        // again rather than answer from a stale payment.
                        let now_stored = r.read::<Payment>(&payment_key(&payment.value.id)).await?;
                        if now_stored.map(|p| p.version) != Some(payment.version) {
                            return Err(PlanError::Overtaken);
                        }
                        let short = BalanceError::Insufficient { balance: from.value.balance(), requested: amount };
                        return Err(short.into());
                    }
                    payment.value.reserve_refund(amount, true, now)?;
                    policies.check(&mut tx);
                    let details = json!({"paymentId": refund.payment_id, "amount": refund.amount.to_wire()});
                    refund = plan_execution(&mut tx, refund, from, to, "refund.approved", details, None)?.0;
                    tx.update(&payment)?;
                    tx.create(&refund)?;
                    tx.done(Intake::Decided(RefundOutcome::Executed { refund }))
                } else {
                    payment.value.reserve_refund(amount, false, now)?;
                    let subject = Subject::for_refund(&refund, &payment.value);
                    let team = r.team_for(&org, &subject, &refund.decision).await?;
                    let ttl =
                        refund.decision.approval_ttl_seconds.unwrap_or(self.settings.default_approval_ttl_seconds);
                    let mut approval = refund.hold(ttl, now)?;
                    approval.assigned_team = team;
                    approval.step_up_above = step_up_threshold(&policies, ActionKind::Refund);
                    tx.update(&payment)?;
                    tx.create(&approval)?;
                    tx.event(Event::for_approval(&approval, kinds::APPROVAL_CREATED, now))?;
                    tx.event(Event::for_refund(&refund, kinds::REFUND_PENDING, now))?;
                    let details =
                        json!({"decision": refund.decision, "approvalId": approval.id, "paymentId": refund.payment_id});
                    tx.audit("refund.held", "refund", refund.id.as_str(), details)?;
                    tx.create(&refund)?;
                    tx.done(Intake::Decided(RefundOutcome::Held { refund, approval }))
                };
                Ok(plan)
            })
            .await?;
        Intake::answer(committed)
    }

    /// A key bound to wallets may refund only payments into them (the refund leaves the
    /// payee's wallet): checked before an idempotency key could replay anything. (The plan
    /// checks it again on the payment it reads; a payment's payee never changes.)
    async fn ensure_may_refund(&self, caller: &ApiKey, payment: &PaymentId) -> AppResult<()> {
        if caller.wallet_ids.is_empty() {
            return Ok(());
        }
        let payment: Stored<Payment> = self.reader().read_owned(&payment_key(payment), &caller.org_id).await?;
        ensure_wallet(caller, &payment.value.to)
    }

    pub async fn get_refund(&self, caller: &Caller, id: &RefundId) -> AppResult<Refund> {
        self.read_between(caller, &refund_key(id)).await
    }

    pub async fn list_refunds(
        &self,
        caller: &Caller,
        filter: &RefundFilter,
        page: &PageRequest,
    ) -> AppResult<Page<Refund>> {
        let status = filter.status.map(|s| s.as_str().to_uppercase());
        let listing = Listing { kind: "REFUND", wallet: filter.wallet_id.as_ref(), status: status.as_deref() };
        let of_payment = |r: &Refund| filter.payment_id.as_ref().is_none_or(|p| *p == r.payment_id);
        self.list_between(caller, listing, page, of_payment).await
    }
}

/// A vote on a refund's approval: the approval's event and audit row, then what its resolution
/// does to the refund (nothing yet while more approvers are needed).
pub(crate) async fn plan_refund_vote(
    r: &Reader,
    tx: &mut Tx,
    approval: &Approval,
    payment: &mut Stored<Payment>,
    resolution: Resolution,
    note: &Option<String>,
) -> Result<Option<Refund>, PlanError> {
    let (closing, kind, action) = match resolution {
        Resolution::AwaitingMoreApprovals => (None, None, "approval.voted"),
        Resolution::Approved => (Some(RefundClosing::Approved), Some(kinds::APPROVAL_APPROVED), "approval.approved"),
        Resolution::Rejected => (Some(RefundClosing::Rejected), Some(kinds::APPROVAL_REJECTED), "approval.rejected"),
    };
    if let Some(kind) = kind {
        tx.event(Event::for_approval(approval, kind, tx.now()))?;
    }
    tx.audit(action, "approval", approval.id.as_str(), json!({"note": note, "refundId": approval.refund_id}))?;
    match closing {
        Some(closing) => plan_refund_closing(r, tx, approval, payment, closing).await,
        None => Ok(None),
    }
}

/// What a closed approval does to its held refund: executed (approved), or
/// released on `payment` (rejected or expired), with the refund's event and audit row; the
/// payment and refund writes join `tx`.
pub(crate) async fn plan_refund_closing(
    r: &Reader,
    tx: &mut Tx,
    approval: &Approval,
    payment: &mut Stored<Payment>,
    closing: RefundClosing,
) -> Result<Option<Refund>, PlanError> {
    let ApprovalSubject::Refund { refund: refund_id, .. } = approval.subject() else { return Ok(None) };
    let org = approval.org_id.clone();
    let mut refund: Stored<Refund> = r.read_owned(&refund_key(refund_id), &org).await?;
    let now = tx.now();
    let amount = refund.value.amount;
    match closing {
        RefundClosing::Approved => {
            if !refund.value.matches(approval) {
                return Err(AppError::PayloadMismatch.into());
            }
            let (from_key, to_key) = (wallet_key(&refund.value.from), wallet_key(&refund.value.to));
            let (from, to, policies) = tokio::try_join!(
                r.read_owned::<Wallet>(&from_key, &org),
                r.read_owned::<Wallet>(&to_key, &org),
                r.wallet_policies(&refund.value.from),
            )?;
            // Deny rules are checked again at execution, as a payment's are: one added while the
            // refund waited (a blocked recipient, a ceiling) stops it whatever the approvers said.
            let facts = PaymentFacts {
                spent_today: from.value.spent_today(now),
                ..PaymentFacts::new(ActionKind::Refund, amount, &to.value.id, refund.value.risk_score)
            };
            let recheck = evaluate(&policies, &facts);
            policies.check(tx);
            if recheck.outcome == Outcome::Deny {
                let audited = Audited { action: "refund.denied", resource: "approval", id: approval.id.as_str() };
                let extra = Some(("refundId", refund_id.as_str()));
                refund.value = plan_denied_execution(tx, refund.value.clone(), &recheck, audited, extra)?;
                payment.value.settle_refund(amount, false, now);
            } else {
                let details = json!({"paymentId": refund.value.payment_id, "amount": amount.to_wire()});
                let (done, moved) =
                    plan_execution(tx, refund.value.clone(), from, to, "refund.approved", details, None)?;
                refund.value = done;
                payment.value.settle_refund(amount, moved, now);
            }
        }
        RefundClosing::Rejected => {
            refund.value.reject(now).map_err(overtaken)?;
            payment.value.settle_refund(amount, false, now);
            tx.event(Event::for_refund(&refund.value, kinds::REFUND_REJECTED, now))?;
            tx.audit("refund.rejected", "refund", refund_id.as_str(), json!({"approvalId": approval.id}))?;
        }
        RefundClosing::Expired => {
            refund.value.expire(now).map_err(overtaken)?;
            payment.value.settle_refund(amount, false, now);
            tx.event(Event::for_refund(&refund.value, kinds::REFUND_EXPIRED, now))?;
            tx.audit("refund.expired", "refund", refund_id.as_str(), json!({"approvalId": approval.id}))?;
        }
    }
    tx.update(payment)?;
    tx.update(&refund)?;
    Ok(Some(refund.value))
}

/// How an approval of a refund closed (or moved on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefundClosing {
    Approved,
    Rejected,
    Expired,
}

/// An approval of a refund went to another team: the refund shows `escalated` (once).
pub(crate) async fn plan_refund_escalation(r: &Reader, tx: &mut Tx, approval: &Approval) -> Result<(), PlanError> {
    let ApprovalSubject::Refund { refund: refund_id, .. } = approval.subject() else { return Ok(()) };
    let mut refund: Stored<Refund> = r.read_owned(&refund_key(refund_id), &approval.org_id).await?;
    if refund.value.status == RefundStatus::Pending {
        refund.value.escalate(tx.now()).map_err(overtaken)?;
        tx.update(&refund)?;
    }
    Ok(())
}
