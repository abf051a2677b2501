//! Domain events, written to the outbox in the same transaction as the change they describe.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::approval::Approval;
use super::comment::Comment;
use super::ids::{EventId, OrgId, WalletId};
use super::payment::Payment;
use super::policy_change::PolicyChange;
use super::refund::Refund;
use super::review::Review;

pub mod kinds {
    pub const APPROVAL_CREATED: &str = "approval.created";
    pub const APPROVAL_APPROVED: &str = "approval.approved";
    pub const APPROVAL_REJECTED: &str = "approval.rejected";
    pub const APPROVAL_EXPIRED: &str = "approval.expired";
    pub const APPROVAL_MODIFIED: &str = "approval.modified";
    pub const APPROVAL_ESCALATED: &str = "approval.escalated";
    pub const APPROVAL_COMMENTED: &str = "approval.commented";
    pub const PAYMENT_COMPLETED: &str = "payment.completed";
    pub const PAYMENT_FAILED: &str = "payment.failed";
    pub const REFUND_PENDING: &str = "refund.pending";
    pub const REFUND_APPROVED: &str = "refund.approved";
    pub const REFUND_REJECTED: &str = "refund.rejected";
    pub const REFUND_EXPIRED: &str = "refund.expired";
    pub const REFUND_FAILED: &str = "refund.failed";
    pub const REVIEW_CREATED: &str = "review.created";
    pub const REVIEW_DECIDED: &str = "review.decided";
    pub const REVIEW_ESCALATED: &str = "review.escalated";
    pub const REVIEW_EXPIRED: &str = "review.expired";
    pub const PASSKEY_REGISTERED: &str = "passkey.registered";
    pub const PASSKEY_DELETED: &str = "passkey.deleted";
    pub const KEY_FROZEN: &str = "key.frozen";
    pub const KEY_UNFROZEN: &str = "key.unfrozen";
    pub const WALLET_FROZEN: &str = "wallet.frozen";
    pub const WALLET_UNFROZEN: &str = "wallet.unfrozen";
    pub const POLICY_CHANGE_REQUESTED: &str = "policy.change_requested";
    pub const POLICY_CHANGED: &str = "policy.changed";
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
    /// Times the bus refused it; at `MAX_PUBLISH_FAILURES` it is parked.
    #[serde(default)]
    pub publish_failures: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_publish_error: Option<String>,
    /// Set when the event is given up on: it leaves the outbox (kept for operators, counted in
    /// the `OutboxEventsParked` metric).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parked_at: Option<DateTime<Utc>>,
    /// The wallets the event is about, the payer first, then the payee; not sent to
    /// subscribers. Which of them may hear it is [`Event::audience`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wallet_ids: Vec<WalletId>,
}

/// Refusals by the bus after which an event is parked instead of retried.
pub const MAX_PUBLISH_FAILURES: u32 = 10;
const MAX_ERROR_CHARS: usize = 300;

impl Event {
    /// Whether it still waits in the outbox.
    pub fn unpublished(&self) -> bool {
        self.published_at.is_none() && self.parked_at.is_none()
    }

    /// Records one refusal by the bus; returns true when this one parks the event.
    pub fn refused(&mut self, reason: &str, now: DateTime<Utc>) -> bool {
        self.publish_failures += 1;
        self.last_publish_error = Some(reason.chars().take(MAX_ERROR_CHARS).collect());
        if self.publish_failures >= MAX_PUBLISH_FAILURES && self.parked_at.is_none() {
            self.parked_at = Some(now);
            return true;
        }
        false
    }

    /// The wallets whose bound subscriptions hear this event. Approvals, reviews and failures
    /// (votes, notes, who decided, why it failed) are the payer's business: only the payer's
    /// wallet (`wallet_ids[0]`) hears them. The payee hears that money arrived
    /// (`payment.completed`); refunds involve both sides as they are.
    pub fn audience(&self) -> &[WalletId] {
        if self.kind == kinds::PAYMENT_COMPLETED || self.kind.starts_with("refund.") {
            &self.wallet_ids
        } else {
            &self.wallet_ids[..self.wallet_ids.len().min(1)]
        }
    }

    pub fn new(org_id: &OrgId, kind: &str, data: serde_json::Value, at: DateTime<Utc>) -> Self {
        Event {
            id: EventId::generate(),
            kind: kind.into(),
            org_id: org_id.clone(),
            created_at: at,
            data,
            published_at: None,
            publish_failures: 0,
            last_publish_error: None,
            parked_at: None,
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

    /// A comment on an approval (`commentId`, `approvalId`): the payer's business, as the
    /// approval's own events are.
    pub fn for_comment(approval: &Approval, comment: &Comment, at: DateTime<Utc>) -> Self {
        let data = with_id(comment, "commentId", comment.id.as_str());
        let wallets = vec![approval.wallet_id.clone(), approval.transaction_details.recipient.clone()];
        Event { wallet_ids: wallets, ..Event::new(&approval.org_id, kinds::APPROVAL_COMMENTED, data, at) }
    }

    /// A review and its decision (`reviewId`); about no wallet, so wallet-bound subscriptions
    /// do not hear it.
    pub fn for_refund(refund: &Refund, kind: &str, at: DateTime<Utc>) -> Self {
        let data = with_id(refund, "refundId", refund.id.as_str());
        Event { wallet_ids: vec![refund.from.clone(), refund.to.clone()], ..Event::new(&refund.org_id, kind, data, at) }
    }

    /// A wallet frozen or unfrozen: its own subscriptions hear it.
    pub fn for_wallet(wallet: &super::wallet::Wallet, kind: &str, at: DateTime<Utc>) -> Self {
        let data = with_id(wallet, "walletId", wallet.id.as_str());
        Event { wallet_ids: vec![wallet.id.clone()], ..Event::new(&wallet.org_id, kind, data, at) }
    }

    /// A key frozen or unfrozen (its client view: never the secret's hash); about no wallet.
    pub fn for_key(key: &super::org::ApiKey, kind: &str, at: DateTime<Utc>) -> Self {
        Event::new(&key.org_id, kind, with_id(&key.view(None), "keyId", key.id.as_str()), at)
    }

    /// A policy change requested or applied (`changeId`): a wallet's policy change is that
    /// wallet's business; routing rules and settings are about no wallet.
    pub fn for_policy_change(change: &PolicyChange, kind: &str, at: DateTime<Utc>) -> Self {
        let data = with_id(change, "changeId", change.id.as_str());
        let wallets = change.target.wallet_id.iter().cloned().collect();
        Event { wallet_ids: wallets, ..Event::new(&change.org_id, kind, data, at) }
    }

    pub fn for_review(review: &Review, kind: &str, at: DateTime<Utc>) -> Self {
        Event::new(&review.org_id, kind, with_id(review, "reviewId", review.id.as_str()), at)
    }
}

fn with_id(resource: &impl Serialize, name: &str, id: &str) -> serde_json::Value {
    let mut data = serde_json::to_value(resource).unwrap_or_else(|_| serde_json::json!({}));
    if let Some(map) = data.as_object_mut() {
        map.insert(name.into(), serde_json::Value::String(id.into()));
    }
    data
}
