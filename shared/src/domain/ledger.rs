//! The double-entry ledger: the one place money moves. A transfer debits one wallet and credits
//! another under one transaction id (a DEBIT and a CREDIT line); a fund brings money in from the
//! external funding account (a FUND line). Both the immediate and the approval path use
//! `transfer`, so a payment executes the same way whoever let it through.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::ids::{PaymentId, RefundId, TransactionId, WalletId};
use super::money::{decimal_string, Currency, Money};
use super::wallet::{BalanceError, Wallet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EntryKind {
    /// Money entering the wallet from outside Countersign (the funding account).
    Fund,
    Debit,
    Credit,
}

/// One side of a ledger transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "EntryShape", from = "EntryShape")]
pub struct LedgerEntry {
    pub id: String,
    pub transaction_id: TransactionId,
    pub wallet_id: WalletId,
    pub kind: EntryKind,
    /// No running balance: racing payments from one wallet commit in an order none of them sees
    /// (counters move in place), so a line cannot know the balance after it. The balance is
    /// the wallet's; the lines sum to it.
    pub amount: Money,
    /// The other wallet of a transfer, or `external` for funding.
    pub counterparty: String,
    pub payment_id: Option<PaymentId>,
    /// Set on the lines of a refund (`payment_id` is then the refunded payment).
    pub refund_id: Option<RefundId>,
    pub created_at: DateTime<Utc>,
}

/// The two lines of a transfer.
#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    pub transaction_id: TransactionId,
    pub debit: LedgerEntry,
    pub credit: LedgerEntry,
}

/// What a transfer is for: a payment, or a refund of one (its lines then name both).
#[derive(Debug, Clone, Copy)]
pub struct Purpose<'a> {
    pub payment: &'a PaymentId,
    pub refund: Option<&'a RefundId>,
}

/// The ids of one ledger transaction and its lines, made by the caller (the domain makes no
/// ids of its own, so its functions are pure).
#[derive(Debug, Clone)]
pub struct EntryIds {
    pub transaction: TransactionId,
    pub lines: [String; 2],
}

impl EntryIds {
    pub fn generate() -> Self {
        EntryIds { transaction: TransactionId::generate(), lines: [new_entry_id(), new_entry_id()] }
    }
}

/// Moves `amount` from `from` to `to` for `purpose`. Both wallets change only if both sides can.
pub fn transfer(
    from: &mut Wallet,
    to: &mut Wallet,
    amount: Money,
    purpose: Purpose<'_>,
    ids: EntryIds,
    now: DateTime<Utc>,
) -> Result<Transfer, BalanceError> {
    let (mut source, mut target) = (from.clone(), to.clone());
    source.debit(amount, now)?;
    target.credit(amount, now)?;
    *from = source;
    *to = target;
    let EntryIds { transaction: transaction_id, lines: [debit_id, credit_id] } = ids;
    let line = |id: String, wallet: &Wallet, kind, counterparty: &WalletId| LedgerEntry {
        id,
        transaction_id: transaction_id.clone(),
        wallet_id: wallet.id.clone(),
        kind,
        amount,
        counterparty: counterparty.to_string(),
        payment_id: Some(purpose.payment.clone()),
        refund_id: purpose.refund.cloned(),
        created_at: now,
    };
    let debit = line(debit_id, from, EntryKind::Debit, &to.id);
    let credit = line(credit_id, to, EntryKind::Credit, &from.id);
    Ok(Transfer { transaction_id, debit, credit })
}

/// Brings `amount` into `wallet` from the external funding account (the first of `ids`' lines).
pub fn fund(
    wallet: &mut Wallet,
    amount: Money,
    ids: EntryIds,
    now: DateTime<Utc>,
) -> Result<LedgerEntry, BalanceError> {
    wallet.credit(amount, now)?;
    let EntryIds { transaction, lines: [id, _] } = ids;
    Ok(LedgerEntry {
        id,
        transaction_id: transaction,
        wallet_id: wallet.id.clone(),
        kind: EntryKind::Fund,
        amount,
        counterparty: "external".into(),
        payment_id: None,
        refund_id: None,
        created_at: now,
    })
}

fn new_entry_id() -> String {
    format!("ent_{}", ulid::Ulid::new())
}

/// The stored and wire shape: decimal strings beside `currency`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntryShape {
    id: String,
    transaction_id: TransactionId,
    wallet_id: WalletId,
    kind: EntryKind,
    #[serde(with = "decimal_string")]
    amount: Decimal,
    currency: Currency,
    counterparty: String,
    payment_id: Option<PaymentId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refund_id: Option<RefundId>,
    created_at: DateTime<Utc>,
}

impl From<LedgerEntry> for EntryShape {
    fn from(e: LedgerEntry) -> Self {
        EntryShape {
            id: e.id,
            transaction_id: e.transaction_id,
            wallet_id: e.wallet_id,
            kind: e.kind,
            amount: e.amount.amount(),
            currency: e.amount.currency(),
            counterparty: e.counterparty,
            payment_id: e.payment_id,
            refund_id: e.refund_id,
            created_at: e.created_at,
        }
    }
}

impl From<EntryShape> for LedgerEntry {
    fn from(s: EntryShape) -> Self {
        LedgerEntry {
            id: s.id,
            transaction_id: s.transaction_id,
            wallet_id: s.wallet_id,
            kind: s.kind,
            amount: Money::from_decimal(s.amount, s.currency),
            counterparty: s.counterparty,
            payment_id: s.payment_id,
            refund_id: s.refund_id,
            created_at: s.created_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::wallet::test_wallet as wallet;

    fn usd(text: &str) -> Money {
        Money::parse(text, Currency::USD).unwrap()
    }

    #[test]
    fn transfer_writes_balanced_lines() {
        let (mut a, mut b) = (wallet("100.00"), wallet("5.00"));
        let t = transfer(
            &mut a,
            &mut b,
            usd("30.00"),
            Purpose { payment: &PaymentId::generate(), refund: None },
            EntryIds::generate(),
            Utc::now(),
        )
        .unwrap();
        assert_eq!((a.balance(), b.balance()), (usd("70.00"), usd("35.00")));
        assert_eq!((t.debit.kind, t.credit.kind), (EntryKind::Debit, EntryKind::Credit));
        assert_eq!(t.debit.transaction_id, t.credit.transaction_id);
        assert_eq!((t.debit.counterparty.as_str(), t.credit.counterparty.as_str()), (b.id.as_str(), a.id.as_str()));
    }

    #[test]
    fn short_transfer_changes_neither_wallet() {
        let (mut a, mut b) = (wallet("10.00"), wallet("5.00"));
        let before = (a.clone(), b.clone());
        let refused = transfer(
            &mut a,
            &mut b,
            usd("10.01"),
            Purpose { payment: &PaymentId::generate(), refund: None },
            EntryIds::generate(),
            Utc::now(),
        );
        assert!(matches!(refused, Err(BalanceError::Insufficient { .. })));
        assert_eq!((a, b), before);
    }

    #[test]
    fn entries_store_decimal_strings() {
        let mut w = wallet("1.00");
        let entry = fund(&mut w, usd("2.50"), EntryIds::generate(), Utc::now()).unwrap();
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!((json["amount"].as_str(), json.get("balanceAfter")), (Some("2.50"), None));
        assert_eq!(json["kind"], "FUND");
        assert_eq!(serde_json::from_value::<LedgerEntry>(json).unwrap(), entry);
    }
}
