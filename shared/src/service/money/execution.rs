//! Executing money that policies or people let through, one way for payments and refunds: the
//! transfer (both wallets, two ledger lines), the payment or refund completed, its event and
//! audit row; or, when the paying wallet is short, or a deny rule added while it waited refuses
//! it at execution, the failure decided on the wallet version read. The ledger's ids are made
//! here and the clock comes from the plan (`Tx`), so the domain functions stay pure.

use serde_json::{json, Value};

use crate::domain::event::{kinds, Event};
use crate::domain::ids::TransactionId;
use crate::domain::ledger::{self, EntryIds, Purpose};
use crate::domain::money::Money;
use crate::domain::payment::Payment;
use crate::domain::policy::Decision;
use crate::domain::refund::Refund;
use crate::domain::wallet::Wallet;
use crate::engine::plan::{overtaken, PlanError, Tx};
use crate::layout::{Record, Stored};
use crate::ports::Guard;
use crate::service::money::in_place;

/// Money that moves between two wallets once let through: a payment, or a refund of one.
pub(crate) trait Movement: Record {
    /// The audit log's resource type (`payment`, `refund`).
    const RESOURCE: &'static str;
    /// Event kinds: executed; failed for want of funds; refused at execution by a deny rule.
    const EXECUTED: &'static str;
    const SHORT: &'static str;
    const DENIED: &'static str;

    fn id_str(&self) -> &str;
    fn amount(&self) -> Money;
    fn purpose(&self) -> Purpose<'_>;
    fn event(&self, kind: &str, now: chrono::DateTime<chrono::Utc>) -> Event;
    fn failure_reason(&self) -> Option<&str>;
    fn complete(&mut self, transaction: TransactionId, now: chrono::DateTime<chrono::Utc>) -> Result<(), PlanError>;
    fn fail(&mut self, reason: String, now: chrono::DateTime<chrono::Utc>) -> Result<(), PlanError>;
    /// Refused at execution by a deny rule (a payment fails, a refund is rejected).
    fn deny(&mut self, reason: String, now: chrono::DateTime<chrono::Utc>) -> Result<(), PlanError>;
}

/// Moves the money and completes `moving`, with its event and an audit row `action` carrying
/// `details`. The wallets change in place (`in_place`): the payer's balance only while it
/// covers the amount, today's spend within `daily_limit` (when it was let through under one),
/// neither while frozen. When the paying wallet is short it fails instead, on the condition
/// that it still is (a concurrent fund makes the plan be made again), and returns `false`. The
/// caller writes `moving` (a create on intake, an update on approval) and checks the policies it
/// was decided on.
pub(crate) fn plan_execution<M: Movement>(
    tx: &mut Tx,
    mut moving: M,
    mut from: Stored<Wallet>,
    mut to: Stored<Wallet>,
    action: &str,
    details: Value,
    daily_limit: Option<rust_decimal::Decimal>,
) -> Result<(M, bool), PlanError> {
    let now = tx.now();
    let ids = EntryIds::generate();
    let debit = in_place::debit(&from.value, moving.amount(), now, daily_limit);
    let credit = in_place::credit(moving.amount(), now);
    match ledger::transfer(&mut from.value, &mut to.value, moving.amount(), moving.purpose(), ids, now) {
        Ok(transfer) => {
            // The audit row names the ledger lines, so a receipt reads them by key and the
            // sealed row proves them.
            let mut details = details;
            if let Some(map) = details.as_object_mut() {
                map.insert("transactionId".into(), json!(transfer.transaction_id));
                let lines = [&transfer.debit, &transfer.credit].map(|l| json!({"walletId": l.wallet_id, "id": l.id}));
                map.insert("ledgerLines".into(), json!(lines));
            }
            moving.complete(transfer.transaction_id, now)?;
            tx.adjust(&from, debit)?;
            tx.adjust(&to, credit)?;
            tx.create(&transfer.debit)?;
            tx.create(&transfer.credit)?;
            tx.event(moving.event(M::EXECUTED, now))?;
            tx.audit(action, M::RESOURCE, moving.id_str(), details)?;
            Ok((moving, true))
        }
        Err(_) => {
            let balance = from.value.balance();
            moving.fail(format!("insufficient funds: balance {} {}", balance.to_wire(), balance.currency()), now)?;
            tx.require(&from, vec![Guard::Below("balance", moving.amount().amount())]);
            tx.event(moving.event(M::SHORT, now))?;
            let action = format!("{}.failed", M::RESOURCE);
            tx.audit(&action, M::RESOURCE, moving.id_str(), json!({"reason": moving.failure_reason()}))?;
            Ok((moving, false))
        }
    }
}

/// Where a refusal at execution is audited: the action, and the resource it is filed under.
pub(crate) struct Audited<'a> {
    pub action: &'a str,
    pub resource: &'a str,
    pub id: &'a str,
}

/// `moving` was approved, but a deny rule added while it waited refuses it now: it fails (or is
/// rejected) with the rule, nothing moves (the caller checks the policies it was decided on).
/// `extra` joins the audit row's details.
pub(crate) fn plan_denied_execution<M: Movement>(
    tx: &mut Tx,
    mut moving: M,
    decision: &Decision,
    audited: Audited<'_>,
    extra: Option<(&str, &str)>,
) -> Result<M, PlanError> {
    let now = tx.now();
    moving.deny(format!("denied by policy at execution: {}", decision.reason), now)?;
    tx.event(moving.event(M::DENIED, now))?;
    let mut details = json!({"reason": moving.failure_reason(), "rule": decision.rule, "policyId": decision.policy_id});
    if let (Some((name, value)), Some(map)) = (extra, details.as_object_mut()) {
        map.insert(name.into(), value.into());
    }
    tx.audit(audited.action, audited.resource, audited.id, details)?;
    Ok(moving)
}

impl Movement for Payment {
    const RESOURCE: &'static str = "payment";
    const EXECUTED: &'static str = kinds::PAYMENT_COMPLETED;
    const SHORT: &'static str = kinds::PAYMENT_FAILED;
    const DENIED: &'static str = kinds::PAYMENT_FAILED;

    fn id_str(&self) -> &str {
        self.id.as_str()
    }
    fn amount(&self) -> Money {
        self.amount
    }
    fn purpose(&self) -> Purpose<'_> {
        Purpose { payment: &self.id, refund: None }
    }
    fn event(&self, kind: &str, now: chrono::DateTime<chrono::Utc>) -> Event {
        Event::for_payment(self, kind, now)
    }
    fn failure_reason(&self) -> Option<&str> {
        Payment::failure_reason(self)
    }
    // A payment that cannot move on was read after another writer moved it (its approval, read
    // first, still said pending): the plan is made again.
    fn complete(&mut self, transaction: TransactionId, now: chrono::DateTime<chrono::Utc>) -> Result<(), PlanError> {
        Payment::complete(self, transaction, now).map_err(overtaken)
    }
    fn fail(&mut self, reason: String, now: chrono::DateTime<chrono::Utc>) -> Result<(), PlanError> {
        Payment::fail(self, reason, now).map_err(overtaken)
    }
    fn deny(&mut self, reason: String, now: chrono::DateTime<chrono::Utc>) -> Result<(), PlanError> {
        Payment::fail(self, reason, now).map_err(overtaken)
    }
}

impl Movement for Refund {
    const RESOURCE: &'static str = "refund";
    const EXECUTED: &'static str = kinds::REFUND_APPROVED;
    const SHORT: &'static str = kinds::REFUND_FAILED;
    const DENIED: &'static str = kinds::REFUND_REJECTED;

    fn id_str(&self) -> &str {
        self.id.as_str()
    }
    fn amount(&self) -> Money {
        self.amount
    }
    fn purpose(&self) -> Purpose<'_> {
        Purpose { payment: &self.payment_id, refund: Some(&self.id) }
    }
    fn event(&self, kind: &str, now: chrono::DateTime<chrono::Utc>) -> Event {
        Event::for_refund(self, kind, now)
    }
    fn failure_reason(&self) -> Option<&str> {
        self.failure_reason.as_deref()
    }
    fn complete(&mut self, transaction: TransactionId, now: chrono::DateTime<chrono::Utc>) -> Result<(), PlanError> {
        Ok(Refund::complete(self, transaction, now)?)
    }
    fn fail(&mut self, reason: String, now: chrono::DateTime<chrono::Utc>) -> Result<(), PlanError> {
        Ok(Refund::fail(self, reason, now)?)
    }
    fn deny(&mut self, reason: String, now: chrono::DateTime<chrono::Utc>) -> Result<(), PlanError> {
        Refund::deny(self, reason, now).map_err(overtaken)
    }
}
