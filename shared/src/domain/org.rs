//! Organisations and their API keys. Secrets are shown once and stored only as SHA-256 hashes.

use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ids::{ApiKeyId, MemberId, OrgId, WalletId};
use super::people::Person;
use super::permission::Permission;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    pub id: OrgId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub org_id: OrgId,
    pub name: String,
    pub permissions: Vec<Permission>,
    /// The wallets this key may pay from, read and be notified about; empty: every wallet.
    #[serde(default)]
    pub wallet_ids: Vec<WalletId>,
    /// The person this key acts for (a member, or the key that minted it); unset: the key itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<Person>,
    /// Hex SHA-256 of the secret. Never serialised to clients (see `ApiKeyView`).
    pub secret_hash: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The client-facing shape of a key: everything but the hash.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    pub id: ApiKeyId,
    pub name: String,
    pub permissions: Vec<Permission>,
    pub wallet_ids: Vec<WalletId>,
    /// The member this key acts for, if it is bound to one (directly or through its minting key).
    pub member_id: Option<MemberId>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl ApiKey {
    pub fn view(&self, secret: Option<String>) -> ApiKeyView {
        ApiKeyView {
            id: self.id.clone(),
            name: self.name.clone(),
            permissions: self.permissions.clone(),
            wallet_ids: self.wallet_ids.clone(),
            member_id: self.person.as_ref().and_then(Person::member).cloned(),
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            revoked_at: self.revoked_at,
            secret,
        }
    }

    /// The person this key acts for.
    pub fn person(&self) -> Person {
        self.person.clone().unwrap_or_else(|| Person::Key(self.id.clone()))
    }

    /// Whether this key may act on `wallet`.
    pub fn may_use(&self, wallet: &WalletId) -> bool {
        self.wallet_ids.is_empty() || self.wallet_ids.contains(wallet)
    }

    /// Whether a scope of `wallets` (empty: every wallet) lies within this key's.
    pub fn covers(&self, wallets: &[WalletId]) -> bool {
        self.wallet_ids.is_empty() || (!wallets.is_empty() && wallets.iter().all(|w| self.wallet_ids.contains(w)))
    }

    pub fn matches(&self, secret: &str) -> bool {
        hash_secret(secret).as_bytes().ct_eq(self.secret_hash.as_bytes()).into()
    }
}

/// Secret format: `csk_<key id>_<64 hex chars of randomness>`; the key id lets the server
/// find the key in one read, and the random part (256 bits) makes a fast hash safe at rest.
pub const SECRET_PREFIX: &str = "csk_";

pub fn new_secret(id: &ApiKeyId) -> String {
    let mut random = [0u8; 32];
    rand::rng().fill_bytes(&mut random);
    format!("{SECRET_PREFIX}{id}_{}", hex::encode(random))
}

/// The key id a secret claims to belong to, if it has the right shape.
pub fn key_id_of_secret(secret: &str) -> Option<ApiKeyId> {
    let rest = secret.strip_prefix(SECRET_PREFIX)?;
    let (id, tail) = rest.rsplit_once('_')?;
    if tail.len() != 64 || !tail.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    ApiKeyId::parse(id)
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_name_their_key_and_verify_by_hash() {
        let id = ApiKeyId::generate();
        let secret = new_secret(&id);
        assert_eq!(key_id_of_secret(&secret), Some(id.clone()));
        let key = ApiKey {
            id,
            org_id: OrgId::generate(),
            name: "k".into(),
            permissions: vec![Permission::Admin],
            wallet_ids: vec![],
            person: None,
            secret_hash: hash_secret(&secret),
            created_at: Utc::now(),
            last_used_at: None,
            revoked_at: None,
        };
        assert!(key.matches(&secret));
        assert!(!key.matches(&format!("{secret}x")));
        assert!(key_id_of_secret("csk_garbage").is_none());
        let view = serde_json::to_value(key.view(None)).unwrap();
        assert!(view.get("secretHash").is_none() && view.get("secret").is_none());
    }
}
