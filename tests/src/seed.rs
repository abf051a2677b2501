//! Payments in bulk, written straight into a store (no intake, no ledger): what a backtest reads
//! (the payer's byWallet index) without making thousands of payments one by one. For the
//! backtest's bound test and its benchmark only.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use countersign_core::domain::ids::{ApiKeyId, OrgId, PaymentId, TransactionId, WalletId};
use countersign_core::domain::money::{Amount, Currency, Money};
use countersign_core::domain::payment::{NewPayment, Payment, PaymentState};
use countersign_core::domain::policy::Decision;
use countersign_core::layout;
use countersign_core::ports::Store;
use futures::stream::{self, StreamExt};
use rust_decimal::Decimal;

/// `n` USD payments from `from` to `to`, the i-th made at `start + i × step`, of `1 + i % 50`
/// dollars; every tenth is pending approval, the rest completed. Written 100 to a transaction
/// (DynamoDB's most), 8 transactions at a time. Their ids, oldest first.
pub async fn payments(
    store: Arc<dyn Store>,
    org: &OrgId,
    from: &WalletId,
    to: &WalletId,
    n: usize,
    start: DateTime<Utc>,
    step: Duration,
) -> Vec<PaymentId> {
    let key = ApiKeyId::generate();
    let all: Vec<Payment> = (0..n)
        .map(|i| {
            let at = start + step * i32::try_from(i).expect("fits");
            let amount = Money::from_decimal(Decimal::from(1 + i % 50), Currency::USD);
            let request = NewPayment::new(from.clone(), to.clone(), Amount::parse("1").expect("amount"));
            let mut p = Payment::new(org.clone(), &request, amount, Decision::executed(), key.clone(), at);
            if i % 10 != 0 {
                p.state = PaymentState::Completed { transaction_id: TransactionId::generate(), completed_at: at };
            }
            p
        })
        .collect();
    let ids = all.iter().map(|p| p.id.clone()).collect();
    let chunks: Vec<Vec<Payment>> = all.chunks(100).map(<[Payment]>::to_vec).collect();
    stream::iter(chunks)
        .map(|chunk| {
            let store = store.clone();
            async move {
                let writes = chunk.iter().map(|p| layout::create(p).expect("payment")).collect();
                store.transact(writes).await.expect("write payments");
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    ids
}
