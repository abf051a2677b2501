//! What the intake sections share: an agent paying from one wallet to another, and the rate at
//! which a burst of its payments is answered.

use std::time::Instant;

use countersign_tests::TestApp;
use futures::stream::{self, StreamExt};
use serde_json::json;

/// An agent key and the two wallets it pays between.
pub struct Payer {
    pub agent: String,
    pub from: String,
    pub to: String,
}

/// `count` payments of `amount` at `concurrency`, each answered `status`; the rate, per second.
pub async fn rate(app: &TestApp, payer: &Payer, amount: &str, status: u16, count: usize, concurrency: usize) -> f64 {
    let started = Instant::now();
    let answered: usize = stream::iter(0..count)
        .map(|_| async {
            let body = json!({"from": payer.from, "to": payer.to, "amount": amount});
            usize::from(app.post("/v1/payments", &payer.agent, body).await.0 == status)
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .sum();
    assert_eq!(answered, count, "every payment answered {status}");
    count as f64 / started.elapsed().as_secs_f64()
}
