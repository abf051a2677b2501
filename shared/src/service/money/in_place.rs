//! What a payment changes in the records every payment of a wallet (or key) touches, as
//! in-place adjustments (`Tx::adjust`): balances, the day's spend, the hour's payment count and
//! budget counters move by an amount under guards that keep true, at the commit, what the
//! payment was decided on. Racing payments then conflict only while committing, not on what
//! they read (DESIGN.md §2.10); a guard that no longer holds makes the payment decide again.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::domain::budget::{BudgetCounter, Charge};
use crate::domain::money::Money;
use crate::domain::policy::Outcome;
use crate::domain::shadow::outcome_counter;
use crate::domain::velocity::{hour_of, PaymentRate};
use crate::domain::wallet::Wallet;
use crate::ports::{Adjustment, Guard};

/// Money moves only while the wallet is not frozen (the kill switch may land at any moment).
pub(crate) fn not_frozen() -> Guard {
    Guard::Is("frozenAt", Value::Null)
}

/// The paying wallet's side of a transfer, from the wallet as read: the balance down by
/// `amount` while it covers it, today's spend up (restarted on a new UTC day, guarded by the
/// day read), kept within `daily_limit` when the payment was let through under one.
pub(crate) fn debit(read: &Wallet, amount: Money, now: DateTime<Utc>, daily_limit: Option<Decimal>) -> Adjustment {
    let (amount, today) = (amount.amount(), now.date_naive());
    let mut change = Adjustment {
        add: vec![("balance", -amount)],
        set: vec![("updatedAt", json!(now))],
        guards: vec![Guard::AtLeast("balance", amount), not_frozen()],
    };
    if read.spend_day() == Some(today) {
        change.add.push(("spentOnDay", amount));
        change.guards.push(Guard::Is("spendDay", json!(today)));
        if let Some(limit) = daily_limit {
            change.guards.push(Guard::AtMost("spentOnDay", limit - amount));
        }
    } else {
        // The first payment of the day restarts the count: only one such payment commits
        // against the old day (the others decide again, on today's).
        let spent_before = read.spent_on_spend_day().amount();
        change.add.push(("spentOnDay", amount - spent_before));
        change.set.push(("spendDay", json!(today)));
        change.guards.push(Guard::Is("spendDay", json!(read.spend_day())));
        change.guards.extend(Guard::counter_is("spentOnDay", spent_before));
    }
    change
}

/// The paid wallet's side: the balance up, while it is not frozen.
pub(crate) fn credit(amount: Money, now: DateTime<Utc>) -> Adjustment {
    Adjustment {
        add: vec![("balance", amount.amount())],
        set: vec![("updatedAt", json!(now))],
        guards: vec![not_frozen()],
    }
}

/// One more payment this hour, from the counter as read; when the payment was let through
/// under `max_per_hour`, this hour's count stays where the trailing hour is below it.
pub(crate) fn count_payment(read: &PaymentRate, now: DateTime<Utc>, max_per_hour: Option<u32>) -> Adjustment {
    let hour = hour_of(now);
    let mut change = Adjustment::default();
    if read.hour == hour {
        change.add.push(("count", Decimal::ONE));
        change.guards.push(Guard::Is("hour", json!(hour)));
        if let Some(max) = max_per_hour {
            let carried = read.trailing_hour(now).saturating_sub(read.count);
            let room = i64::from(max) - 1 - i64::from(carried);
            change.guards.push(Guard::AtMost("count", Decimal::from(room)));
        }
    } else {
        // A new hour: this hour's count restarts and the last one's becomes `previous`.
        let (_, previous) = read.counts_at(now);
        change.add.push(("count", Decimal::ONE - Decimal::from(read.count)));
        change.set.push(("hour", json!(hour)));
        change.set.push(("previous", json!(previous)));
        change.guards.push(Guard::Is("hour", json!(read.hour)));
        change.guards.extend(Guard::counter_is("count", Decimal::from(read.count)));
    }
    change
}

/// A payment counted in a budget counter: spent or reserved, and in `used`; `limit` (the
/// budget's, where the payment was let through under it) guards `used`.
pub(crate) fn charge_budget(amount: Money, how: Charge, limit: Option<Decimal>, now: DateTime<Utc>) -> Adjustment {
    let amount = amount.amount();
    let field = match how {
        Charge::Spend => "spent",
        Charge::Reserve => "reserved",
    };
    let mut change = Adjustment {
        add: vec![(field, amount), ("used", amount)],
        set: vec![("updatedAt", json!(now))],
        guards: Vec::new(),
    };
    if let Some(limit) = limit {
        change.guards.push(Guard::AtMost("used", limit - amount));
    }
    change
}

/// A reservation settled in a budget counter: `released` no longer reserved, `spent` (if
/// any) counted as spent.
pub(crate) fn settle_budget(
    read: &BudgetCounter,
    released: Money,
    spent: Option<Money>,
    now: DateTime<Utc>,
) -> Adjustment {
    // Never below zero, whatever was edited in between (as `BudgetCounter::settle`).
    let released = released.amount().min(read.reserved().amount());
    let spent = spent.map_or(Decimal::ZERO, |s| s.amount());
    Adjustment {
        add: vec![("reserved", -released), ("spent", spent), ("used", spent - released)],
        set: vec![("updatedAt", json!(now))],
        guards: vec![Guard::AtLeast("reserved", released)],
    }
}

/// One more evaluation counted on a shadow policy's would-have counts: it would have decided
/// `would`, the payment or refund was `real`. Counters only, no guard: every evaluation counts.
pub(crate) fn count_shadow(would: Outcome, real: Outcome) -> Adjustment {
    let mut add = vec![("evaluated", Decimal::ONE), (outcome_counter(would), Decimal::ONE)];
    if would != real {
        add.push(("differed", Decimal::ONE));
    }
    Adjustment { add, set: Vec::new(), guards: Vec::new() }
}
