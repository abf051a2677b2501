//! Webhook subscriptions and their signatures (Standard Webhooks, plus a simple body HMAC).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::event::kinds;
use super::event::Event;
use super::ids::{OrgId, WalletId, WebhookId};

/// Every event type a webhook may subscribe to (`*` subscribes to all).
pub const EVENT_TYPES: [&str; 26] = [
    kinds::APPROVAL_CREATED,
    kinds::APPROVAL_APPROVED,
    kinds::APPROVAL_REJECTED,
    kinds::APPROVAL_EXPIRED,
    kinds::APPROVAL_MODIFIED,
    kinds::APPROVAL_ESCALATED,
    kinds::APPROVAL_COMMENTED,
    kinds::PAYMENT_COMPLETED,
    kinds::PAYMENT_FAILED,
    kinds::REFUND_PENDING,
    kinds::REFUND_APPROVED,
    kinds::REFUND_REJECTED,
    kinds::REFUND_EXPIRED,
    kinds::REFUND_FAILED,
    kinds::REVIEW_CREATED,
    kinds::REVIEW_DECIDED,
    kinds::REVIEW_ESCALATED,
    kinds::REVIEW_EXPIRED,
    kinds::PASSKEY_REGISTERED,
    kinds::PASSKEY_DELETED,
    kinds::KEY_FROZEN,
    kinds::KEY_UNFROZEN,
    kinds::WALLET_FROZEN,
    kinds::WALLET_UNFROZEN,
    kinds::POLICY_CHANGE_REQUESTED,
    kinds::POLICY_CHANGED,
];

pub const SECRET_PREFIX: &str = "whsec_";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub id: WebhookId,
    pub org_id: OrgId,
    pub url: String,
    pub events: Vec<String>,
    pub enabled: bool,
    /// Only events about these wallets are delivered (the creating key's wallets); empty: all.
    #[serde(default)]
    pub wallet_ids: Vec<WalletId>,
    /// Needed in clear to sign; kept only in the store (encrypted at rest), shown once.
    pub secret: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The client-facing shape: everything but the secret (which only creation returns).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Webhook)]
pub struct WebhookView {
    pub id: WebhookId,
    pub url: String,
    pub events: Vec<String>,
    pub enabled: bool,
    pub wallet_ids: Vec<WalletId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl Webhook {
    pub fn view(&self, with_secret: bool) -> WebhookView {
        WebhookView {
            id: self.id.clone(),
            url: self.url.clone(),
            events: self.events.clone(),
            enabled: self.enabled,
            wallet_ids: self.wallet_ids.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            secret: with_secret.then(|| self.secret.clone()),
        }
    }

    /// Whether `event` goes to this subscription: enabled, subscribed to its type, and, when it
    /// is bound to wallets, one of them in the event's audience (a payee's subscription does
    /// not hear the payer's approvals).
    pub fn wants(&self, event: &Event) -> bool {
        self.enabled
            && self.events.iter().any(|e| e == "*" || *e == event.kind)
            && (self.wallet_ids.is_empty() || event.audience().iter().any(|w| self.wallet_ids.contains(w)))
    }
}

pub fn new_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// Headers that sign one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub webhook_id: String,
    pub webhook_timestamp: String,
    /// `v1,<base64 HMAC-SHA256 of "id.timestamp.body" keyed by the decoded secret>`.
    pub webhook_signature: String,
    /// `sha256=<hex HMAC-SHA256 of the raw body keyed by the secret string>`.
    pub countersign_signature: String,
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return Vec::new(),
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

pub fn sign(secret: &str, message_id: &str, timestamp: i64, body: &[u8]) -> SignedHeaders {
    let key = secret
        .strip_prefix(SECRET_PREFIX)
        .and_then(|k| STANDARD.decode(k).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec());
    let ts = timestamp.to_string();
    let standard = hmac(&key, &[message_id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    let simple = hmac(secret.as_bytes(), &[body]);
    SignedHeaders {
        webhook_id: message_id.to_string(),
        webhook_timestamp: ts,
        webhook_signature: format!("v1,{}", STANDARD.encode(standard)),
        countersign_signature: format!("sha256={}", hex::encode(simple)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_reference_vector() {
        // From the Standard Webhooks specification's examples.
        let headers = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(headers.webhook_signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn subscriptions_match_types_wildcard_and_wallets() {
        let now = Utc::now();
        let org = OrgId::generate();
        let event = |kind: &str, wallets: &[&WalletId]| Event {
            wallet_ids: wallets.iter().map(|w| (*w).clone()).collect(),
            ..Event::new(&org, kind, serde_json::json!({}), now)
        };
        let (mine, other) = (WalletId::generate(), WalletId::generate());
        let mut w = Webhook {
            id: WebhookId::generate(),
            org_id: org.clone(),
            url: "https://example.com".into(),
            events: vec!["approval.created".into()],
            enabled: true,
            wallet_ids: vec![],
            secret: new_secret(),
            created_at: now,
            updated_at: now,
        };
        assert!(w.wants(&event("approval.created", &[])) && !w.wants(&event("payment.completed", &[])));
        w.events = vec!["*".into()];
        assert!(w.wants(&event("payment.completed", &[&other])));
        w.wallet_ids = vec![mine.clone()];
        assert!(w.wants(&event("payment.completed", &[&other, &mine])));
        assert!(!w.wants(&event("payment.completed", &[&other])), "bound to other wallets");
        // Bound to the payee's wallet: money arriving, nothing of the payer's approvals.
        assert!(w.wants(&event("payment.completed", &[&other, &mine])));
        for kind in ["approval.created", "approval.approved", "review.decided", "payment.failed"] {
            assert!(!w.wants(&event(kind, &[&other, &mine])), "{kind} is the payer's");
            assert!(w.wants(&event(kind, &[&mine, &other])), "{kind} reaches the payer");
        }
        w.enabled = false;
        assert!(!w.wants(&event("payment.completed", &[&mine])));
        assert!(w.secret.starts_with(SECRET_PREFIX));
        assert!(serde_json::to_value(w.view(false)).unwrap().get("secret").is_none());
    }
}
