//! Wallets: a balance in one currency that never goes negative, and the day's spend for
//! `dailySpendingLimit`. Money moves only through the ledger (`ledger.rs`).

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::ids::{OrgId, WalletId};
use super::money::{decimal_string, Currency, Money};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "WalletShape", from = "WalletShape")]
pub struct Wallet {
    pub id: WalletId,
    pub org_id: OrgId,
    pub name: String,
    pub agent_name: Option<String>,
    balance: Money,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Executed outgoing payments on `spend_day` (UTC), for `dailySpendingLimit`.
    spend_day: Option<NaiveDate>,
    spent_on_day: Money,
    /// Set while frozen (the kill switch): no money leaves or enters it.
    pub frozen_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a new wallet is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWallet {
    pub name: String,
    pub agent_name: Option<String>,
    pub currency: Currency,
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// A change to a wallet's descriptive fields; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WalletPatch {
    pub name: Option<String>,
    pub agent_name: Option<String>,
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Why a balance cannot change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BalanceError {
    #[error("insufficient funds: balance {balance:?}, requested {requested:?}")]
    Insufficient { balance: Money, requested: Money },
    #[error("the balance would overflow")]
    Overflow,
    #[error("currency does not match the wallet's")]
    CurrencyMismatch,
}

impl Wallet {
    pub fn open(org_id: OrgId, request: NewWallet, now: DateTime<Utc>) -> Self {
        Wallet {
            id: WalletId::generate(),
            org_id,
            name: request.name,
            agent_name: request.agent_name,
            balance: Money::zero(request.currency),
            metadata: request.metadata,
            spend_day: None,
            spent_on_day: Money::zero(request.currency),
            frozen_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    pub fn apply(&mut self, patch: &WalletPatch, now: DateTime<Utc>) {
        if let Some(name) = &patch.name {
            self.name = name.clone();
        }
        if let Some(agent) = &patch.agent_name {
            self.agent_name = Some(agent.clone());
        }
        if let Some(metadata) = &patch.metadata {
            self.metadata = metadata.clone();
        }
        self.updated_at = now;
    }

    pub fn is_frozen(&self) -> bool {
        self.frozen_at.is_some()
    }

    /// Freezes (`true`) or unfreezes it; `false` when it already stood so.
    pub fn set_frozen(&mut self, frozen: bool, now: DateTime<Utc>) -> bool {
        if self.is_frozen() == frozen {
            return false;
        }
        self.frozen_at = frozen.then_some(now);
        self.updated_at = now;
        true
    }

    pub fn currency(&self) -> Currency {
        self.balance.currency()
    }

    pub fn balance(&self) -> Money {
        self.balance
    }

    /// The UTC day `spentOnDay` counts.
    pub fn spend_day(&self) -> Option<NaiveDate> {
        self.spend_day
    }

    /// What `spentOnDay` holds (the spend of `spend_day`, whichever day that was).
    pub fn spent_on_spend_day(&self) -> Money {
        self.spent_on_day
    }

    /// Spent today (UTC) before any new payment.
    pub fn spent_today(&self, now: DateTime<Utc>) -> Money {
        if self.spend_day == Some(now.date_naive()) {
            self.spent_on_day
        } else {
            Money::zero(self.currency())
        }
    }

    /// Takes `amount` out; refused when the balance would go negative.
    pub(super) fn debit(&mut self, amount: Money, now: DateTime<Utc>) -> Result<(), BalanceError> {
        if amount.currency() != self.currency() {
            return Err(BalanceError::CurrencyMismatch);
        }
        let left = self
            .balance
            .checked_sub(amount)
            .ok_or(BalanceError::Insufficient { balance: self.balance, requested: amount })?;
        let spent = self.spent_today(now).checked_add(amount).ok_or(BalanceError::Overflow)?;
        self.spent_on_day = spent;
        self.spend_day = Some(now.date_naive());
        self.balance = left;
        self.updated_at = now;
        Ok(())
    }

    /// Puts `amount` in.
    pub(super) fn credit(&mut self, amount: Money, now: DateTime<Utc>) -> Result<(), BalanceError> {
        if amount.currency() != self.currency() {
            return Err(BalanceError::CurrencyMismatch);
        }
        self.balance = self.balance.checked_add(amount).ok_or(BalanceError::Overflow)?;
        self.updated_at = now;
        Ok(())
    }
}

/// The stored and wire shape: `balance` and `spentOnDay` as decimal strings beside `currency`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WalletShape {
    id: WalletId,
    org_id: OrgId,
    name: String,
    agent_name: Option<String>,
    currency: Currency,
    #[serde(with = "decimal_string")]
    balance: Decimal,
    metadata: serde_json::Map<String, serde_json::Value>,
    spend_day: Option<NaiveDate>,
    #[serde(with = "decimal_string")]
    spent_on_day: Decimal,
    #[serde(default)]
    frozen_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Wallet> for WalletShape {
    fn from(w: Wallet) -> Self {
        WalletShape {
            id: w.id,
            org_id: w.org_id,
            name: w.name,
            agent_name: w.agent_name,
            currency: w.balance.currency(),
            balance: w.balance.amount(),
            metadata: w.metadata,
            spend_day: w.spend_day,
            spent_on_day: w.spent_on_day.amount(),
            frozen_at: w.frozen_at,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

impl From<WalletShape> for Wallet {
    fn from(s: WalletShape) -> Self {
        Wallet {
            id: s.id,
            org_id: s.org_id,
            name: s.name,
            agent_name: s.agent_name,
            balance: Money::from_decimal(s.balance, s.currency),
            metadata: s.metadata,
            spend_day: s.spend_day,
            spent_on_day: Money::from_decimal(s.spent_on_day, s.currency),
            frozen_at: s.frozen_at,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// A funded USD wallet for unit tests.
#[cfg(test)]
pub(crate) fn test_wallet(funds: &str) -> Wallet {
    let now = Utc::now();
    let request =
        NewWallet { name: "w".into(), agent_name: None, currency: Currency::USD, metadata: Default::default() };
    let mut w = Wallet::open(OrgId::generate(), request, now);
    w.credit(Money::parse(funds, Currency::USD).expect("amount"), now).expect("credit");
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debit_tracks_daily_spend_and_never_goes_negative() {
        let now = Utc::now();
        let mut w = test_wallet("100.00");
        let ten = Money::parse("10.00", Currency::USD).unwrap();
        assert!(w.debit(ten, now).is_ok());
        assert_eq!(w.spent_today(now), ten);
        assert!(w.spent_today(now + chrono::Duration::days(1)).is_zero());
        let too_much = Money::parse("90.01", Currency::USD).unwrap();
        assert!(matches!(w.debit(too_much, now), Err(BalanceError::Insufficient { .. })));
        assert_eq!(w.balance().to_wire(), "90.00");
    }

    #[test]
    fn stored_shape_is_decimal_strings_beside_the_currency() {
        let w = test_wallet("12.50");
        let json = serde_json::to_value(&w).unwrap();
        assert_eq!((json["balance"].as_str(), json["currency"].as_str()), (Some("12.50"), Some("USD")));
        assert_eq!(json["spentOnDay"], "0.00");
        let back: Wallet = serde_json::from_value(json).unwrap();
        assert_eq!(back, w);
    }
}
