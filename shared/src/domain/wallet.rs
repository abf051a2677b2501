//! Wallets and their double-entry ledger lines.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::ids::{OrgId, PaymentId, TransactionId, WalletId};
use super::money::{decimal_string, Currency, Money};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Wallet {
    pub id: WalletId,
    pub org_id: OrgId,
    pub name: String,
    pub agent_name: Option<String>,
    pub currency: Currency,
    #[serde(with = "decimal_string")]
    pub balance: Decimal,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Executed outgoing payments on `spend_day` (UTC), for `dailySpendingLimit`.
    pub spend_day: Option<NaiveDate>,
    #[serde(with = "decimal_string")]
    pub spent_on_day: Decimal,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Wallet {
    pub fn balance(&self) -> Money {
        Money::from_decimal(self.balance, self.currency)
    }

    /// Spent today (UTC) before any new payment.
    pub fn spent_today(&self, now: DateTime<Utc>) -> Decimal {
        if self.spend_day == Some(now.date_naive()) {
            self.spent_on_day
        } else {
            Decimal::ZERO
        }
    }

    /// Debits the wallet; `None` when the balance would go negative.
    pub fn debit(&mut self, amount: Money, now: DateTime<Utc>) -> Option<()> {
        let left = self.balance().checked_sub(amount)?;
        self.spent_on_day = self.spent_today(now) + amount.amount();
        self.spend_day = Some(now.date_naive());
        self.balance = left.amount();
        self.updated_at = now;
        Some(())
    }

    pub fn credit(&mut self, amount: Money, now: DateTime<Utc>) -> Option<()> {
        self.balance = self.balance().checked_add(amount)?.amount();
        self.updated_at = now;
        Some(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EntryKind {
    /// Money entering the wallet from outside Countersign (the funding account).
    Fund,
    Debit,
    Credit,
}

/// One side of a ledger transaction. A transfer writes a DEBIT and a CREDIT with the same
/// `transactionId`; a fund writes a FUND line against the external funding account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    pub id: String,
    pub transaction_id: TransactionId,
    pub wallet_id: WalletId,
    pub kind: EntryKind,
    #[serde(with = "decimal_string")]
    pub amount: Decimal,
    pub currency: Currency,
    #[serde(with = "decimal_string")]
    pub balance_after: Decimal,
    /// The other wallet of a transfer, or `external` for funding.
    pub counterparty: String,
    pub payment_id: Option<PaymentId>,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debit_tracks_daily_spend_and_never_goes_negative() {
        let now = Utc::now();
        let mut w = Wallet {
            id: WalletId::generate(),
            org_id: OrgId::generate(),
            name: "w".into(),
            agent_name: None,
            currency: Currency::USD,
            balance: Decimal::new(10000, 2),
            metadata: Default::default(),
            spend_day: None,
            spent_on_day: Decimal::ZERO,
            created_at: now,
            updated_at: now,
        };
        let ten = Money::parse("10.00", Currency::USD).unwrap();
        assert!(w.debit(ten, now).is_some());
        assert_eq!(w.spent_today(now), Decimal::new(1000, 2));
        assert_eq!(w.spent_today(now + chrono::Duration::days(1)), Decimal::ZERO);
        let too_much = Money::parse("90.01", Currency::USD).unwrap();
        assert!(w.debit(too_much, now).is_none());
        assert_eq!(w.balance().to_wire(), "90.00");
    }
}
