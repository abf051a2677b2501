//! Deciding an approval: load what the decision needs, cast the caller's vote, then one short
//! arm per outcome. Approving executes the payment exactly once: the vote, the payment, both
//! wallets, the ledger lines, the audit rows and the events commit in one conditional transaction.

use serde_json::json;

use crate::domain::approval::{Approval, ApprovalSubject, Resolution, Vote, VoteDecision};
use crate::domain::audit::Actor;
use crate::domain::event::{kinds, Event};
use crate::domain::ids::{ApprovalId, OrgId};
use crate::domain::org::ApiKey;
use crate::domain::payment::{Payment, PaymentError};
use crate::domain::permission::Permission;
use crate::domain::policy::{evaluate, ActionKind, Outcome, PaymentFacts};
use crate::domain::refund::Refund;
use crate::domain::step_up::VotePasskey;
use crate::domain::wallet::Wallet;
use crate::engine::plan::{overtaken, PlanError, Tx};
use crate::engine::reader::Reads;
use crate::engine::{Change, Reader};
use crate::error::{AppError, AppResult};
use crate::layout::{approval_key, payment_key, refund_key, settings_key, team_key, wallet_key, Stored};
use crate::passkey::StepUpDecision;
use crate::ports::Key;
use crate::service::money::allow_rules::plan_allow_rule;
use crate::service::money::approvals::{DecideRequest, Decided};
use crate::service::money::budgets::{settle_reservation, Settlement};
use crate::service::money::execution::{plan_denied_execution, plan_execution, Audited};
use crate::service::money::freeze::ensure_not_frozen;
use crate::service::money::policies::WalletPolicies;
use crate::service::money::refunds::plan_refund_vote;
use crate::service::money::step_up::{check_step_up, step_up_threshold, StepUpCase};
use crate::service::stats::record_closing;
use crate::service::{ensure_wallet, require, Caller, Countersign, UseCases};

/// What a decision reads: the approval, its payment, and (when the vote may execute the
/// payment) both wallets and the payer's policies, which execution checks again.
struct Loaded {
    approval: Stored<Approval>,
    payment: Stored<Payment>,
    execution: Option<Execution>,
}

struct Execution {
    from: Stored<Wallet>,
    to: Stored<Wallet>,
    policies: WalletPolicies,
}

impl UseCases {
    /// `POST /v1/approvals/{id}/approve` and `/reject`.
    pub async fn decide_approval(
        &self,
        caller: &Caller,
        id: &ApprovalId,
        request: DecideRequest,
    ) -> AppResult<Decided> {
        self.decide(caller, id, request, self.reader()).await
    }

    async fn decide(&self, caller: &Caller, id: &ApprovalId, request: DecideRequest, r: Reader) -> AppResult<Decided> {
        let caller = caller.key()?;
        require(caller, Permission::ApprovalsWrite)?;
        let locks =
            self.engine.guess_locks(async |guess| decision_locks(&guess, caller, id, request.decision).await).await;
        let reads = Reads { keys: vec![approval_key(id)], queries: Vec::new() };
        let change = Change::default().reads(reads).locks(locks);
        let decided = self
            .engine
            .run(&r, change, || async {
                let Loaded { mut approval, mut payment, execution } = load(&r, caller, id, request.decision).await?;
                let mut tx = Tx::new(&caller.org_id, Actor::Key(caller.id.clone()), self.now());
                // The real refusals first (closed, own request, voted already), then the step-up.
                approval.value.ensure_may_vote(&caller.person(), &caller.id, request.decision, tx.now())?;
                let approving = request.decision == VoteDecision::Approve;
                if approving {
                    ensure_wallets_open(&r, &approval.value, execution.as_ref()).await?;
                    if request.always_allow.is_some() {
                        ensure_may_always_allow(&approval.value)?;
                    }
                }
                let passkey = if approving {
                    let case = step_up_case(&r, &approval.value, &payment.value, execution.as_ref(), &request).await?;
                    check_step_up(&r, &mut tx, &self.settings, caller, case, request.step_up.as_ref()).await?
                } else {
                    None
                };
                let resolution = cast(&mut tx, caller, &request, passkey, &mut approval, &mut payment)?;
                let note = &request.note;
                let mut allow_rule = None;
                let refund = match (approval.value.subject(), resolution) {
                    (ApprovalSubject::Refund { .. }, resolution) => {
                        plan_refund_vote(&r, &mut tx, &approval.value, &mut payment, resolution, note).await?
                    }
                    (ApprovalSubject::Payment(_), Resolution::AwaitingMoreApprovals) => {
                        tx.audit("approval.voted", "approval", approval.value.id.as_str(), json!({"note": note}))?;
                        if request.modify_to.is_some() {
                            let lower = Settlement::Shrink(payment.value.amount);
                            settle_reservation(&r, &mut tx, &mut approval.value, lower).await?;
                        }
                        None
                    }
                    (ApprovalSubject::Payment(_), Resolution::Rejected) => {
                        reject_payment(&mut tx, &approval.value, &mut payment, note)?;
                        settle_reservation(&r, &mut tx, &mut approval.value, Settlement::Release).await?;
                        None
                    }
                    (ApprovalSubject::Payment(_), Resolution::Approved) => {
                        let moved = execute_payment(&mut tx, &approval.value, &mut payment, execution, note)?;
                        let settlement =
                            if moved { Settlement::Spend(payment.value.amount) } else { Settlement::Release };
                        settle_reservation(&r, &mut tx, &mut approval.value, settlement).await?;
                        if let Some(asked) = request.always_allow {
                            let currency = payment.value.amount.currency();
                            allow_rule =
                                Some(plan_allow_rule(&r, &mut tx, caller, &approval.value, asked, currency).await?);
                        }
                        None
                    }
                };
                record_closing(&mut tx, &approval, Some(caller.person()))?;
                tx.update(&approval)?;
                Ok(tx.done(Decided { approval: approval.value, payment: payment.value, refund, allow_rule }))
            })
            .await?;
        // Once, after the commit: every door's vote (REST, dashboard, Slack, reviews, bulk) comes here.
        self.record_vote(&decided.outcome.approval);
        Ok(decided.outcome)
    }
}

/// Reads the approval, then (prefetched together where reads are round trips) the team check,
/// the payment and what executing it needs.
async fn load(r: &Reader, caller: &ApiKey, id: &ApprovalId, decision: VoteDecision) -> Result<Loaded, PlanError> {
    let org = &caller.org_id;
    let approval = r.read_owned::<Approval>(&approval_key(id), org).await?;
    ensure_wallet(caller, &approval.value.wallet_id)?;
    let a = &approval.value;
    let approving = decision == VoteDecision::Approve;
    r.prefetch(decision_reads(caller, a, approving)).await;
    let executes = approving && matches!(a.subject(), ApprovalSubject::Payment(_));
    let payment_at = payment_key(&a.payment_id);
    let (_, payment, execution) =
        tokio::try_join!(r.ensure_assigned(caller, a), r.read_owned::<Payment>(&payment_at, org), async {
            if !executes {
                return Ok(None);
            }
            let (from_key, to_key) = (wallet_key(&a.wallet_id), wallet_key(&a.transaction_details.recipient));
            let (from, to, policies) = tokio::try_join!(
                r.read_owned::<Wallet>(&from_key, org),
                r.read_owned::<Wallet>(&to_key, org),
                r.wallet_policies(&a.wallet_id),
            )?;
            Ok::<_, AppError>(Some(Execution { from, to, policies }))
        },)?;
    Ok(Loaded { approval, payment, execution })
}

/// What an approve vote's step-up is checked against: the request's payload hash, the step-up
/// threshold the approval was held under, and the amount that would execute.
async fn step_up_case<'a>(
    r: &Reader,
    approval: &'a Approval,
    payment: &Payment,
    execution: Option<&Execution>,
    request: &DecideRequest,
) -> Result<StepUpCase<'a>, PlanError> {
    let (kind, payload_hash, asked) = match approval.subject() {
        ApprovalSubject::Payment(_) => (ActionKind::Payment, payment.payload_hash(), payment.amount),
        ApprovalSubject::Refund { refund, .. } => {
            let refund = r.read_owned::<Refund>(&refund_key(refund), &approval.org_id).await?.value;
            (ActionKind::Refund, refund.payload_hash(), refund.amount)
        }
    };
    // The threshold of the policies it was held under; an approval from before versions
    // follows the wallet's current policies.
    let threshold = match approval.pinned_step_up() {
        Some(pinned) => pinned,
        None => match execution {
            Some(e) => step_up_threshold(&e.policies, kind),
            None => step_up_threshold(&r.wallet_policies(&approval.wallet_id).await?, kind),
        },
    };
    let (decision, mut amount) = match request.modify_to {
        Some(lower) => (StepUpDecision::Modify, lower.in_currency(asked.currency()).map_err(AppError::from)?),
        None => (StepUpDecision::Approve, asked),
    };
    // An allow rule lets later payments up to its cap through: above the step-up threshold,
    // the approver proves who they are as if approving the cap.
    if let Some(allow) = &request.always_allow {
        let cap = allow.max_amount.in_currency(asked.currency()).map_err(|source| {
            AppError::Input(crate::domain::input::InputError::Amount { field: "alwaysAllow.maxAmount", source })
        })?;
        if cap > amount {
            amount = cap;
        }
    }
    Ok(StepUpCase { approval, payload_hash, decision, amount, threshold })
}

/// Casts the caller's vote (and its lower amount, when it modifies) on the approval.
fn cast(
    tx: &mut Tx,
    caller: &ApiKey,
    request: &DecideRequest,
    passkey: Option<VotePasskey>,
    approval: &mut Stored<Approval>,
    payment: &mut Stored<Payment>,
) -> Result<Resolution, PlanError> {
    let now = tx.now();
    let modified_action = match (request.decision, request.modify_to) {
        (VoteDecision::Approve, Some(asked)) => Some(modify(tx, request, approval, payment, asked)?),
        _ => None,
    };
    let vote = Vote {
        key_id: caller.id.clone(),
        person: Some(caller.person()),
        decision: request.decision,
        note: request.note.clone(),
        modified_action,
        reviewer_name: request.reviewer_name.clone(),
        at: now,
        passkey,
    };
    // The approval is written by the caller, once everything this vote settles is on it.
    let resolution = approval.value.cast(vote, now)?;
    let modified = request.decision == VoteDecision::Approve && request.modify_to.is_some();
    if resolution == Resolution::AwaitingMoreApprovals && modified {
        tx.update(payment)?;
    }
    Ok(resolution)
}

/// Approves a lower amount: the payment and the approval now show it. Returns the vote's
/// modified action in words.
fn modify(
    tx: &mut Tx,
    request: &DecideRequest,
    approval: &mut Stored<Approval>,
    payment: &mut Stored<Payment>,
    asked: crate::domain::money::Amount,
) -> Result<String, PlanError> {
    if matches!(approval.value.subject(), ApprovalSubject::Refund { .. }) {
        return Err(AppError::RefundNotModifiable.into());
    }
    let amount = asked.in_currency(payment.value.amount.currency())?;
    let before = payment.value.modify(&mut approval.value, amount).map_err(|e| match e {
        PaymentError::NotPending(_) => PlanError::Overtaken,
        other => other.into(),
    })?;
    tx.event(Event::for_approval(&approval.value, kinds::APPROVAL_MODIFIED, tx.now()))?;
    let details = json!({"from": before.to_wire(), "to": amount.to_wire(), "note": request.note});
    tx.audit("approval.modified", "approval", approval.value.id.as_str(), details)?;
    Ok(request.modified_action.clone().unwrap_or_else(|| {
        let code = amount.currency().code();
        format!("Pay {} {code} instead of {} {code}", amount.to_wire(), before.to_wire())
    }))
}

fn reject_payment(
    tx: &mut Tx,
    approval: &Approval,
    payment: &mut Stored<Payment>,
    note: &Option<String>,
) -> Result<(), PlanError> {
    payment.value.reject(tx.now()).map_err(overtaken)?;
    tx.update(payment)?;
    tx.event(Event::for_approval(approval, kinds::APPROVAL_REJECTED, tx.now()))?;
    let details = json!({"reason": note, "paymentId": payment.value.id});
    tx.audit("approval.rejected", "approval", approval.id.as_str(), details)?;
    Ok(())
}

/// The approval is complete: the payment executes (or fails on a deny rule added meanwhile, or
/// for want of funds), bound to what the approvers were shown. Returns whether money moved.
fn execute_payment(
    tx: &mut Tx,
    approval: &Approval,
    payment: &mut Stored<Payment>,
    execution: Option<Execution>,
    note: &Option<String>,
) -> Result<bool, PlanError> {
    if !payment.value.matches(approval) {
        return Err(AppError::PayloadMismatch.into());
    }
    tx.event(Event::for_approval(approval, kinds::APPROVAL_APPROVED, tx.now()))?;
    let details = json!({"note": note, "paymentId": payment.value.id});
    tx.audit("approval.approved", "approval", approval.id.as_str(), details)?;
    // Loaded for an approve vote on a payment's approval: its absence means the approval was
    // read before another writer moved it on.
    let Execution { from, to, policies } = execution.ok_or(PlanError::Overtaken)?;
    if (&from.value.id, &to.value.id) != (&payment.value.from, &payment.value.to) {
        return Err(AppError::PayloadMismatch.into());
    }
    let p = &payment.value;
    let facts = PaymentFacts {
        spent_today: from.value.spent_today(tx.now()),
        ..PaymentFacts::new(ActionKind::Payment, p.amount, &p.to, p.risk_score)
    };
    let recheck = evaluate(&policies, &facts);
    policies.check(tx);
    let moved;
    (payment.value, moved) = if recheck.outcome == Outcome::Deny {
        let audited = Audited { action: "payment.failed", resource: "payment", id: payment.value.id.as_str() };
        (plan_denied_execution(tx, payment.value.clone(), &recheck, audited, None)?, false)
    } else {
        let details = json!({"amount": payment.value.amount.to_wire()});
        plan_execution(tx, payment.value.clone(), from, to, "payment.completed", details, None)?
    };
    tx.update(payment)?;
    Ok(moved)
}

/// No approve vote while the money's wallets are frozen: nothing would execute (409).
async fn ensure_wallets_open(r: &Reader, approval: &Approval, execution: Option<&Execution>) -> Result<(), PlanError> {
    match execution {
        Some(e) => ensure_not_frozen([&e.from.value, &e.to.value], true)?,
        None => {
            // A refund's approval: the wallets were fetched with the decision's reads.
            let org = &approval.org_id;
            let (from_key, to_key) =
                (wallet_key(&approval.wallet_id), wallet_key(&approval.transaction_details.recipient));
            let (from, to) =
                tokio::try_join!(r.read_owned::<Wallet>(&from_key, org), r.read_owned::<Wallet>(&to_key, org))?;
            ensure_not_frozen([&from.value, &to.value], true)?;
        }
    }
    Ok(())
}

/// `alwaysAllow` stands in for a person's look at later payments: only on a payment's approval
/// that one approver completes (a policy wanting more must keep getting more).
fn ensure_may_always_allow(approval: &Approval) -> Result<(), PlanError> {
    if !matches!(approval.subject(), ApprovalSubject::Payment(_)) {
        return Err(AppError::AlwaysAllowRefused("only a payment's approval can allow its payee").into());
    }
    if approval.required_approvals > 1 {
        return Err(AppError::AlwaysAllowRefused("this approval needs more than one approver").into());
    }
    Ok(())
}

/// The records a decision expects to rewrite (the approval, its payment, and both wallets
/// when this vote can complete it and so execute the payment), so its plan is made under their
/// locks from the start: approvals from one wallet then take turns once each instead of
/// planning, finding the wallet overtaken and planning again. Nothing for a caller the plan
/// will refuse (it reports why).
async fn decision_locks(r: &Reader, caller: &ApiKey, id: &ApprovalId, decision: VoteDecision) -> Vec<Key> {
    let Ok(approval) = r.read_owned::<Approval>(&approval_key(id), &caller.org_id).await else {
        return Vec::new();
    };
    let a = approval.value;
    if ensure_wallet(caller, &a.wallet_id).is_err() {
        return Vec::new();
    }
    let mut keys = vec![approval_key(id), payment_key(&a.payment_id)];
    let approvals = a.votes.iter().filter(|v| v.decision == VoteDecision::Approve).count();
    let completes = approvals + 1 >= a.required_approvals.max(1) as usize;
    if decision == VoteDecision::Approve && completes && matches!(a.subject(), ApprovalSubject::Payment(_)) {
        keys.extend([wallet_key(&a.wallet_id), wallet_key(&a.transaction_details.recipient)]);
    }
    keys
}

/// What deciding `approval` reads once it has read the approval: the assigned team (or, when it
/// has none, the settings that name the default team; neither for an admin), the payment (and a
/// refund's refund), and when the decision may execute it, both wallets and the policies of the
/// wallet the money leaves (the payer's; a refund's payee), which execution checks again.
fn decision_reads(caller: &ApiKey, approval: &Approval, approving: bool) -> Reads {
    let mut reads = Reads { keys: vec![payment_key(&approval.payment_id)], queries: Vec::new() };
    if let ApprovalSubject::Refund { refund, .. } = approval.subject() {
        reads.keys.push(refund_key(refund));
    }
    if !caller.is_org_admin() {
        reads.keys.push(match &approval.assigned_team {
            Some(team) => team_key(&caller.org_id, team),
            None => settings_key(&caller.org_id),
        });
    }
    if approving {
        reads.keys.push(wallet_key(&approval.wallet_id));
        reads.keys.push(wallet_key(&approval.transaction_details.recipient));
        reads.keys.push(crate::layout::policy_set_key(&approval.wallet_id));
    }
    reads
}

impl Countersign {
    /// `POST /v1/approvals/{id}/approve` and `/reject` as the door sees them: a bearer token
    /// and the parsed body (or why it did not parse, answered once the caller may know). On a
    /// remote store the key and the approval are read in one round trip, what the decision
    /// needs in a second, and the transaction is the third.
    pub async fn decide_approval_from(
        &self,
        bearer: Option<&str>,
        id: &ApprovalId,
        request: AppResult<DecideRequest>,
    ) -> AppResult<Decided> {
        let ahead = |_: Option<&OrgId>| Reads { keys: vec![approval_key(id)], queries: Vec::new() };
        let (caller, reader) = self.authenticate_prefetching(bearer, Permission::ApprovalsWrite, ahead).await?;
        self.decide(&caller, id, request?, reader).await
    }
}
