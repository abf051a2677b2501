//! Organisations and their API keys. Secrets are shown once and stored only as SHA-256 hashes.

use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::budget::Budget;
use super::ids::{ApiKeyId, MemberId, OrgId, TeamId, WalletId};
use super::people::Person;
use super::permission::Permission;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
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
    /// The human this key answers for where four-eyes counts people: its member, or, for a key
    /// that is a person of its own, the principal of the key that minted it (so an admin cannot
    /// mint an unbound key and approve their own policy change with it). Unset: `person()`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<Person>,
    /// Hex SHA-256 of the secret. Never serialised to clients (see `ApiKeyView`).
    pub secret_hash: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Set while the key is frozen (the kill switch): every request with it is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen_at: Option<DateTime<Utc>>,
    /// Spending limits on what this key pays, per window and currency.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<Budget>,
}

/// An organisation's settings: one record per organisation, absent until first changed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrgSettings {
    pub org_id: OrgId,
    /// Where an approval or review goes when no routing rule and no escalation chain assigns
    /// one; unset: anyone with `approvals:write` decides it.
    pub default_team: Option<TeamId>,
    /// Four-eyes on policy changes: while on, a policy or routing-rule change (and turning this
    /// off) waits as a pending policy change until another person approves it.
    #[serde(default)]
    pub policy_changes_need_approval: bool,
    pub updated_at: Option<DateTime<Utc>>,
}

impl OrgSettings {
    /// The settings of an organisation that never changed them.
    pub fn defaults(org_id: OrgId) -> Self {
        OrgSettings { org_id, default_team: None, policy_changes_need_approval: false, updated_at: None }
    }
}

/// The client-facing shape of a key: everything but the hash.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ApiKey)]
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
    /// Set while frozen: every request with the key answers 403 `KEY_FROZEN`.
    pub frozen_at: Option<DateTime<Utc>>,
    pub budgets: Vec<Budget>,
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
            frozen_at: self.frozen_at,
            budgets: self.budgets.clone(),
            secret,
        }
    }

    /// The person this key acts for.
    pub fn person(&self) -> Person {
        self.person.clone().unwrap_or_else(|| Person::Key(self.id.clone()))
    }

    /// The human behind this key for four-eyes (see `principal`).
    pub fn principal(&self) -> Person {
        self.principal.clone().unwrap_or_else(|| self.person())
    }

    /// The principal of a key this one mints acting for `person`: a member answers for
    /// themselves; any other key answers to whoever minted it.
    pub fn principal_of_minted(&self, person: Option<&Person>) -> Person {
        match person {
            Some(member @ Person::Member(_)) => member.clone(),
            _ => self.principal(),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.permissions.contains(&Permission::Admin)
    }

    /// An admin key bound to no wallet: it speaks for the whole organisation, so it vouches for
    /// identities, decides outside team assignment and names escalation teams. An admin key bound
    /// to wallets is an agent's or a desk's key with every permission on those wallets only: it
    /// stays one person, like any other key.
    pub fn is_org_admin(&self) -> bool {
        self.is_admin() && self.wallet_ids.is_empty()
    }

    /// The person a key minted by this one acts for, given the member it asks to be bound to
    /// (docs/api.md, "Separation of duties"). An organisation's admin key (bound to no wallet) vouches for identities: it binds any member, and a key it mints
    /// unbound is a person of its own (`None`). Any other key mints only keys of its own person,
    /// and may name no member but its own.
    pub fn person_of_minted(&self, member: Option<&MemberId>) -> Result<Option<Person>, MintRefused> {
        if self.is_org_admin() {
            return Ok(member.cloned().map(Person::Member));
        }
        let mine = self.person();
        match member {
            Some(m) if mine.member() != Some(m) => Err(MintRefused::MemberNotOwn),
            _ => Ok(Some(mine)),
        }
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

/// Why a key may not mint the key it was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MintRefused {
    #[error("only an admin key may bind a key to a member other than its own")]
    MemberNotOwn,
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
            principal: None,
            secret_hash: hash_secret(&secret),
            created_at: Utc::now(),
            last_used_at: None,
            revoked_at: None,
            frozen_at: None,
            budgets: vec![],
        };
        assert!(key.matches(&secret));
        assert!(!key.matches(&format!("{secret}x")));
        assert!(key_id_of_secret("csk_garbage").is_none());
        let view = serde_json::to_value(key.view(None)).unwrap();
        assert!(view.get("secretHash").is_none() && view.get("secret").is_none());
    }

    fn key_with(permissions: Vec<Permission>, person: Option<Person>) -> ApiKey {
        ApiKey {
            id: ApiKeyId::generate(),
            org_id: OrgId::generate(),
            name: "k".into(),
            permissions,
            wallet_ids: vec![],
            person,
            principal: None,
            secret_hash: String::new(),
            created_at: Utc::now(),
            last_used_at: None,
            revoked_at: None,
            frozen_at: None,
            budgets: vec![],
        }
    }

    #[test]
    fn only_an_admin_key_vouches_for_a_new_person() {
        let (alice, bob) = (MemberId::generate(), MemberId::generate());
        let admin = key_with(vec![Permission::Admin], None);
        assert_eq!(admin.person_of_minted(None), Ok(None));
        assert_eq!(admin.person_of_minted(Some(&bob)), Ok(Some(Person::Member(bob.clone()))));

        let alices = key_with(vec![Permission::ApiKeysWrite], Some(Person::Member(alice.clone())));
        assert_eq!(alices.person_of_minted(None), Ok(Some(Person::Member(alice.clone()))));
        assert_eq!(alices.person_of_minted(Some(&alice)), Ok(Some(Person::Member(alice.clone()))));
        assert_eq!(alices.person_of_minted(Some(&bob)), Err(MintRefused::MemberNotOwn));

        let agent = key_with(vec![Permission::ApiKeysWrite], None);
        assert_eq!(agent.person_of_minted(None), Ok(Some(Person::Key(agent.id.clone()))));
        assert_eq!(agent.person_of_minted(Some(&bob)), Err(MintRefused::MemberNotOwn));
    }
}
