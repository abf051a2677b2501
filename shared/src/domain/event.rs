//! Domain events, written to the outbox in the same transaction as the change they describe.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::approval::Approval;
use super::ids::{EventId, OrgId, WalletId};
use super::payment::Payment;

pub mod kinds {
    pub const APPROVAL_CREATED: &str = "approval.created";
    pub const APPROVAL_APPROVED: &str = "approval.approved";
    pub const APPROVAL_REJECTED: &str = "approval.rejected";
    pub const APPROVAL_EXPIRED: &str = "approval.expired";
    pub const PAYMENT_COMPLETED: &str = "payment.completed";
    pub const PAYMENT_FAILED: &str = "payment.failed";
}

/// `{"id": "evt_…", "type", "createdAt", "data"}` plus the owning org (not sent to subscribers).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: EventId,
    #[serde(rename = "type")]
    pub kind: String,
    pub org_id: OrgId,
    pub created_at: DateTime<Utc>,
    pub data: serde_json::Value,
    pub published_at: Option<DateTime<Utc>>,
    /// The wallets the event is about (payer and payee), for wallet-bound subscriptions; not
    /// sent to subscribers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wallet_ids: Vec<WalletId>,
}

impl Event {
    pub fn new(org_id: &OrgId, kind: &str, data: serde_json::Value, at: DateTime<Utc>) -> Self {
        Event {
            id: EventId::generate(),
            kind: kind.into(),
            org_id: org_id.clone(),
            created_at: at,
            data,
            published_at: None,
            wallet_ids: Vec::new(),
        }
    }
}

/// Event payloads carry the whole resource plus its id under a plain name (`paymentId`,
/// `approvalId`: what wallgent handlers read).
impl Event {
    pub fn for_payment(payment: &Payment, kind: &str, at: DateTime<Utc>) -> Self {
        let data = with_id(payment, "paymentId", payment.id.as_str());
        Event {
            wallet_ids: vec![payment.from.clone(), payment.to.clone()],
            ..Event::new(&payment.org_id, kind, data, at)
        }
    }

    pub fn for_approval(approval: &Approval, kind: &str, at: DateTime<Utc>) -> Self {
        let data = with_id(approval, "approvalId", approval.id.as_str());
        let wallets = vec![approval.wallet_id.clone(), approval.transaction_details.recipient.clone()];
        Event { wallet_ids: wallets, ..Event::new(&approval.org_id, kind, data, at) }
    }
}

fn with_id(resource: &impl Serialize, name: &str, id: &str) -> serde_json::Value {
    let mut data = serde_json::to_value(resource).unwrap_or_else(|_| serde_json::json!({}));
    if let Some(map) = data.as_object_mut() {
        map.insert(name.into(), serde_json::Value::String(id.into()));
    }
    data
}
