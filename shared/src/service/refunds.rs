//! Refunds (DESIGN §2.3): a completed payment's money back from its payee to its payer, decided by
//! the payee wallet's refund policies (`appliesTo: ["refund"]`) exactly like a payment: executed
//! at once, held for a human (an approval decided through the same routes), or denied. Every
//! refund reserves its amount on the payment in the same transaction, so concurrent partial
//! refunds never sum to more than it.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::commit::{Committed, IdempotencyScope};
use super::paging::{Page, PageRequest};
use super::payments::Listing;
use super::plan::Tx;
use super::records::{payment_key, refund_key, wallet_key, Stored};
use super::{ensure_wallet, require, Caller, Countersign};
use crate::domain::approval::{Approval, Resolution};
use crate::domain::audit::Actor;
use crate::domain::event::{kinds, Event};
use crate::domain::ids::{PaymentId, RefundId, TeamId, WalletId};
use crate::domain::ledger;
use crate::domain::org::ApiKey;
use crate::domain::payment::Payment;
use crate::domain::permission::Permission;
use crate::domain::policy::{evaluate, ActionKind, Decision, Outcome, PaymentFacts};
use crate::domain::refund::{NewRefund, Refund, RefundStatus};
use crate::domain::routing::{route, Subject};
use crate::domain::wallet::{BalanceError, Wallet};
use crate::error::{AppError, AppResult};

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

/// Remembered under an idempotency key: the outcome, or the denial (audited, nothing else).
#[allow(clippy::large_enum_variant)]
#[derive(Serialize, Deserialize)]
enum Intake {
    Decided(RefundOutcome),
    Denied(Decision),
}

impl Countersign {
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
        let committed = self
            .commit_idempotent(scope, || async {
                let mut payment: Stored<Payment> = self.read_owned(&payment_key(&request.payment_id), &org).await?;
                // The refund leaves the payee's wallet: a key bound to wallets must hold it.
                ensure_wallet(caller, &payment.value.to)?;
                let from: Stored<Wallet> = self.read_owned(&wallet_key(&payment.value.to), &org).await?;
                let to: Stored<Wallet> = self.read_owned(&wallet_key(&payment.value.from), &org).await?;
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
                    });
                }
                let policies = self.wallet_policies(&from.value.id).await?;
                let facts = PaymentFacts {
                    spent_today: from.value.spent_today(now),
                    ..PaymentFacts::new(ActionKind::Refund, amount, &to.value.id, request.risk_score)
                };
                let decision = evaluate(&policies, &facts);
                if decision.outcome == Outcome::Deny {
                    let details =
                        json!({"decision": decision, "paymentId": payment.value.id, "amount": amount.to_wire()});
                    tx.audit("refund.denied", "payment", payment.value.id.as_str(), details)?;
                    return Ok(tx.refused(Intake::Denied(decision)));
                }
                let mut refund =
                    Refund::new(&payment.value, &request, amount, decision, caller.id.clone(), caller.person(), now);
                let plan = if refund.decision.outcome == Outcome::Execute {
                    if amount > from.value.balance() {
                        // A refund that committed between our reads can make them disagree: plan
                        // again rather than answer from a stale payment.
                        let now_stored = self.read::<Payment>(&payment_key(&payment.value.id)).await?;
                        if now_stored.map(|p| p.version) != Some(payment.version) {
                            return Err(AppError::Stale);
                        }
                        let short = BalanceError::Insufficient { balance: from.value.balance(), requested: amount };
                        return Err(short.into());
                    }
                    payment.value.reserve_refund(amount, true, now)?;
                    refund = plan_refund_execution(&mut tx, refund, from, to, "refund.approved")?.0;
                    tx.update(&payment)?;
                    tx.create(&refund)?;
                    tx.done(Intake::Decided(RefundOutcome::Executed { refund }))
                } else {
                    payment.value.reserve_refund(amount, false, now)?;
                    let rules = self.org_rules(&org).await?;
                    let team: Option<TeamId> = route(&rules, &Subject::for_refund(&refund, &payment.value))
                        .map(|r| r.assign_to_team.clone())
                        .or_else(|| refund.decision.escalation_chain.first().cloned());
                    let team = self.or_default_team(&org, team).await?;
                    let ttl =
                        refund.decision.approval_ttl_seconds.unwrap_or(self.settings.default_approval_ttl_seconds);
                    let mut approval = refund.hold(ttl, now)?;
                    approval.assigned_team = team;
                    tx.check(&from);
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
        match committed.outcome {
            Intake::Decided(outcome) => Ok(Committed { outcome, replayed: committed.replayed }),
            Intake::Denied(d) => Err(AppError::PolicyDenied {
                reason: d.reason,
                rule: d.rule,
                policy_id: d.policy_id.map(|p| p.to_string()),
            }),
        }
    }

    /// A key bound to wallets may refund only payments into them (the refund leaves the
    /// payee's wallet): checked before an idempotency key could replay anything. (The plan
    /// checks it again on the payment it reads; a payment's payee never changes.)
    async fn ensure_may_refund(&self, caller: &ApiKey, payment: &PaymentId) -> AppResult<()> {
        if caller.wallet_ids.is_empty() {
            return Ok(());
        }
        let payment: Stored<Payment> = self.read_owned(&payment_key(payment), &caller.org_id).await?;
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

/// Moves a refund's money back (both wallets, two ledger lines naming it), approves the refund,
/// `refund.approved` and its audit row; when the payee's wallet is short the refund fails
/// instead (checked against the balance read). Returns the refund and whether money moved. The
/// caller writes the refund and the payment.
pub(crate) fn plan_refund_execution(
    tx: &mut Tx,
    mut refund: Refund,
    mut from: Stored<Wallet>,
    mut to: Stored<Wallet>,
    action: &str,
) -> AppResult<(Refund, bool)> {
    let now = tx.now();
    match ledger::refund(&mut from.value, &mut to.value, refund.amount, &refund.payment_id, &refund.id, now) {
        Ok(transfer) => {
            refund.complete(transfer.transaction_id, now)?;
            tx.update(&from)?;
            tx.update(&to)?;
            tx.create(&transfer.debit)?;
            tx.create(&transfer.credit)?;
            tx.event(Event::for_refund(&refund, kinds::REFUND_APPROVED, now))?;
            let details = json!({"paymentId": refund.payment_id, "amount": refund.amount.to_wire()});
            tx.audit(action, "refund", refund.id.as_str(), details)?;
            Ok((refund, true))
        }
        Err(_) => {
            let balance = from.value.balance();
            refund.fail(format!("insufficient funds: balance {} {}", balance.to_wire(), balance.currency()), now)?;
            tx.check(&from);
            tx.event(Event::for_refund(&refund, kinds::REFUND_FAILED, now))?;
            tx.audit("refund.failed", "refund", refund.id.as_str(), json!({"reason": refund.failure_reason}))?;
            Ok((refund, false))
        }
    }
}

/// An approved refund that a deny rule now stops: rejected with the rule's reason, nothing
/// moves, `refund.rejected` and a `refund.denied` audit row in the approval's history (why the
/// approval did not execute). Conditional on the payee's wallet as read (its day's total is
/// one of the facts). The caller releases the reservation and writes the refund.
fn plan_refund_denial(
    tx: &mut Tx,
    mut refund: Refund,
    approval: &Approval,
    from: &Stored<Wallet>,
    decision: &Decision,
) -> AppResult<Refund> {
    let now = tx.now();
    let reason = format!("denied by policy at execution: {}", decision.reason);
    refund.deny(reason, now).map_err(|_| AppError::Stale)?;
    tx.check(from);
    tx.event(Event::for_refund(&refund, kinds::REFUND_REJECTED, now))?;
    let details = json!({
        "refundId": refund.id, "reason": refund.failure_reason, "rule": decision.rule, "policyId": decision.policy_id
    });
    tx.audit("refund.denied", "approval", approval.id.as_str(), details)?;
    Ok(refund)
}

/// A vote on a refund's approval: the approval's event and audit row, then what its resolution
/// does to the refund (nothing yet while more approvers are needed).
pub(crate) async fn plan_refund_vote(
    service: &Countersign,
    tx: &mut Tx,
    approval: &Approval,
    payment: &mut Stored<Payment>,
    resolution: Resolution,
    note: &Option<String>,
) -> AppResult<Option<Refund>> {
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
        Some(closing) => plan_refund_closing(service, tx, approval, payment, closing).await,
        None => Ok(None),
    }
}

/// What a closed approval does to its held refund: executed (approved), or
/// released on `payment` (rejected or expired), with the refund's event and audit row; the
/// payment and refund writes join `tx`.
pub(crate) async fn plan_refund_closing(
    service: &Countersign,
    tx: &mut Tx,
    approval: &Approval,
    payment: &mut Stored<Payment>,
    closing: RefundClosing,
) -> AppResult<Option<Refund>> {
    let Some(refund_id) = &approval.refund_id else { return Ok(None) };
    let org = approval.org_id.clone();
    let mut refund: Stored<Refund> = service.read_owned(&refund_key(refund_id), &org).await?;
    let now = tx.now();
    let amount = refund.value.amount;
    match closing {
        RefundClosing::Approved => {
            if !refund.value.matches(approval) {
                return Err(AppError::PayloadMismatch);
            }
            let (from_key, to_key) = (wallet_key(&refund.value.from), wallet_key(&refund.value.to));
            let (from, to, policies) = tokio::try_join!(
                service.read_owned::<Wallet>(&from_key, &org),
                service.read_owned::<Wallet>(&to_key, &org),
                service.wallet_policies(&refund.value.from),
            )?;
            // Deny rules are checked again at execution, as a payment's are: one added while the
            // refund waited (a blocked recipient, a ceiling) stops it whatever the approvers said.
            let facts = PaymentFacts {
                spent_today: from.value.spent_today(now),
                ..PaymentFacts::new(ActionKind::Refund, amount, &to.value.id, refund.value.risk_score)
            };
            let recheck = evaluate(&policies, &facts);
            if recheck.outcome == Outcome::Deny {
                refund.value = plan_refund_denial(tx, refund.value.clone(), approval, &from, &recheck)?;
                payment.value.settle_refund(amount, false, now);
            } else {
                let (done, moved) = plan_refund_execution(tx, refund.value.clone(), from, to, "refund.approved")?;
                refund.value = done;
                payment.value.settle_refund(amount, moved, now);
            }
        }
        RefundClosing::Rejected => {
            refund.value.reject(now).map_err(|_| AppError::Stale)?;
            payment.value.settle_refund(amount, false, now);
            tx.event(Event::for_refund(&refund.value, kinds::REFUND_REJECTED, now))?;
            tx.audit("refund.rejected", "refund", refund_id.as_str(), json!({"approvalId": approval.id}))?;
        }
        RefundClosing::Expired => {
            refund.value.expire(now).map_err(|_| AppError::Stale)?;
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
pub(crate) async fn plan_refund_escalation(service: &Countersign, tx: &mut Tx, approval: &Approval) -> AppResult<()> {
    let Some(refund_id) = &approval.refund_id else { return Ok(()) };
    let mut refund: Stored<Refund> = service.read_owned(&refund_key(refund_id), &approval.org_id).await?;
    if refund.value.status == RefundStatus::Pending {
        refund.value.escalate(tx.now()).map_err(|_| AppError::Stale)?;
        tx.update(&refund)?;
    }
    Ok(())
}
