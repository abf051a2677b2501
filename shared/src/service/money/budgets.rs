//! Budgets per key, applied: the counters a payment is checked against and counted in (in the
//! payment's own transaction, conditional on the counters read, so racing payments cannot both
//! take the last of a budget), the settling of a held payment's reservation when it is decided,
//! and `GET /v1/api-keys/{id}/budgets`.

use chrono::{DateTime, Utc};

use crate::domain::approval::Approval;
use crate::domain::budget::{BudgetCounter, BudgetStanding, BudgetUse, Charge, OnExceed, Reservation};
use crate::domain::ids::{ApiKeyId, OrgId};
use crate::domain::money::{Currency, Money};
use crate::domain::org::ApiKey;
use crate::domain::permission::Permission;
use crate::engine::plan::{PlanError, Tx};
use crate::engine::Reader;
use crate::error::{AppError, AppResult};
use crate::layout::{api_key_key, budget_counter_key, Stored};
use crate::service::money::in_place;
use crate::service::{require, Caller, UseCases};

/// A key's budgets in one currency, each with its counter for the current period as read.
pub(crate) struct KeyBudgets {
    org_id: OrgId,
    key_id: ApiKeyId,
    now: DateTime<Utc>,
    uses: Vec<BudgetUse>,
    counters: Vec<Option<Stored<BudgetCounter>>>,
}

impl Reader {
    /// The budgets of `key` in `currency` at `now`, with their counters (read together; nothing
    /// is read for a key without budgets in that currency).
    pub(crate) async fn key_budgets(
        &self,
        key: &ApiKey,
        currency: Currency,
        now: DateTime<Utc>,
    ) -> AppResult<KeyBudgets> {
        let budgets: Vec<_> = key.budgets.iter().filter(|b| b.currency == currency).cloned().collect();
        let keys: Vec<_> = budgets.iter().map(|b| budget_counter_key(&key.id, currency, b.period_at(now))).collect();
        let counters = futures::future::try_join_all(keys.iter().map(|k| self.read::<BudgetCounter>(k))).await?;
        let uses = budgets
            .into_iter()
            .zip(&counters)
            .map(|(b, c)| BudgetUse::new(b, c.as_ref().map(|c| &c.value), now))
            .collect();
        Ok(KeyBudgets { org_id: key.org_id.clone(), key_id: key.id.clone(), now, uses, counters })
    }
}

impl KeyBudgets {
    /// The instant they were read for.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Each budget as it stands.
    pub fn standings(&self) -> Vec<BudgetStanding> {
        self.uses.iter().map(BudgetUse::standing).collect()
    }

    /// The budget `amount` would exceed, if any (a `deny` budget before a `hold` one).
    pub fn exceeded_by(&self, amount: Money) -> Option<&BudgetUse> {
        crate::domain::budget::assess(&self.uses, amount)
    }

    /// Counts `amount` in every budget, conditional on each counter as read. Returns what a
    /// held payment reserved (`None` when the key has no budget in this currency).
    pub fn charge(self, tx: &mut Tx, amount: Money, how: Charge) -> AppResult<Option<Reservation>> {
        if self.uses.is_empty() {
            return Ok(None);
        }
        let now = tx.now();
        let mut periods = Vec::with_capacity(self.uses.len());
        for (standing, counter) in self.uses.into_iter().zip(self.counters) {
            let period = standing.budget.period_at(now);
            periods.push(period);
            match counter {
                Some(mut stored) => {
                    // Spent only if within every budget; reserved beyond a `hold` budget (the
                    // payment is held for it), never beyond a `deny` one.
                    let guarded = how == Charge::Spend || standing.budget.on_exceed == OnExceed::Deny;
                    let limit = guarded.then_some(standing.budget.limit);
                    let change = in_place::charge_budget(amount, how, limit, now);
                    stored.value.charge(amount, how, now);
                    tx.adjust(&stored, change)?;
                }
                None => {
                    let (org, key) = (self.org_id.clone(), self.key_id.clone());
                    let mut fresh = BudgetCounter::new(org, key, amount.currency(), period, now);
                    fresh.charge(amount, how, now);
                    tx.create(&fresh)?;
                }
            }
        }
        Ok(Some(Reservation { amount, periods }))
    }
}

/// How a held payment's reservation ends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Settlement {
    /// Rejected, expired, or refused at execution: released.
    Release,
    /// Executed: released and counted as spent (the amount that moved).
    Spend(Money),
    /// Modified while more approvals are awaited: the reservation shrinks to this amount.
    Shrink(Money),
}

/// Settles what `approval` reserved, in the counters it reserved in (read now, updated in this
/// transaction), and records what it still reserves on the approval (the caller writes it).
/// Nothing for an approval that reserved nothing.
pub(crate) async fn settle_reservation(
    r: &Reader,
    tx: &mut Tx,
    approval: &mut Approval,
    settlement: Settlement,
) -> Result<(), PlanError> {
    let Some(reservation) = approval.reservation.clone() else { return Ok(()) };
    let (released, spent, left) = match settlement {
        Settlement::Release => (reservation.amount, None, None),
        Settlement::Spend(amount) => (reservation.amount, Some(amount), None),
        Settlement::Shrink(to) => {
            let less = reservation.amount.checked_sub(to).unwrap_or(Money::zero(to.currency()));
            (less, None, Some(to))
        }
    };
    let currency = reservation.amount.currency();
    let keys: Vec<_> =
        reservation.periods.iter().map(|p| budget_counter_key(&approval.created_by, currency, *p)).collect();
    let counters = futures::future::try_join_all(keys.iter().map(|k| r.read::<BudgetCounter>(k))).await?;
    // A counter DynamoDB's TTL removed long after its period holds nothing left to settle.
    for mut counter in counters.into_iter().flatten() {
        let change = in_place::settle_budget(&counter.value, released, spent, tx.now());
        counter.value.settle(released, spent, tx.now());
        tx.adjust(&counter, change)?;
    }
    approval.reservation = left.map(|amount| Reservation { amount, periods: reservation.periods });
    Ok(())
}

impl UseCases {
    /// `GET /v1/api-keys/{id}/budgets`: each budget's spend, reservations and what is left this
    /// period. The key itself may read its own (an agent asking what it may still spend); other
    /// keys need `api_keys:write` over it.
    pub async fn key_budget_standing(&self, caller: &Caller, id: &ApiKeyId) -> AppResult<Vec<BudgetStanding>> {
        let caller = caller.key()?;
        let r = self.reader();
        let key = if &caller.id == id {
            caller.clone()
        } else {
            require(caller, Permission::ApiKeysWrite)?;
            let key = r.read_owned::<ApiKey>(&api_key_key(id), &caller.org_id).await?.value;
            if !caller.covers(&key.wallet_ids) {
                return Err(AppError::WalletNotAllowed);
            }
            key
        };
        let now = self.now();
        let mut currencies: Vec<Currency> = Vec::new();
        for budget in &key.budgets {
            if !currencies.contains(&budget.currency) {
                currencies.push(budget.currency);
            }
        }
        let mut out = Vec::with_capacity(key.budgets.len());
        for currency in currencies {
            let budgets = r.key_budgets(&key, currency, now).await?;
            out.extend(budgets.standings());
        }
        Ok(out)
    }
}
