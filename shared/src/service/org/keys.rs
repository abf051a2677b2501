//! Organisations and API keys. A key may only grant, change or revoke what it holds itself.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::domain::audit::Actor;
use crate::domain::budget::Budget;
use crate::domain::ids::{ApiKeyId, MemberId, OrgId, WalletId};
use crate::domain::org::{self, ApiKey, Organization};
use crate::domain::people::{Member, Person};
use crate::domain::permission::{allows, Permission};
use crate::domain::wallet::Wallet;
use crate::engine::plan::Tx;
use crate::error::{AppError, AppResult};
use crate::layout::{api_key_key, by_org_partition, member_key, wallet_key};
use crate::ports::{Index, Query};
use crate::service::paging::{Page, PageRequest};
use crate::service::{require, Caller, UseCases};

/// A new key: a name, at least one permission, and the wallets it is bound to (empty: all).
#[derive(Debug, Clone, PartialEq)]
pub struct NewApiKey {
    pub name: String,
    pub permissions: Vec<Permission>,
    pub wallet_ids: Vec<WalletId>,
    /// The member the key acts for (any member: admin keys only; others may name only their
    /// own). Unset: a key minted by an admin key is a person of its own, any other key's is
    /// its minting key's person.
    pub member_id: Option<MemberId>,
    /// Spending limits on what the key pays (checked: one per window and currency).
    pub budgets: Vec<Budget>,
}

/// A change to a key; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiKeyPatch {
    pub name: Option<String>,
    pub permissions: Option<Vec<Permission>>,
    pub wallet_ids: Option<Vec<WalletId>>,
    /// Replaces the key's budgets (empty: none).
    pub budgets: Option<Vec<Budget>>,
}

/// A key and its secret, which is shown this once and stored only as a hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuedKey {
    pub key: ApiKey,
    pub secret: String,
}

/// A new organisation with its first admin key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewOrganization {
    pub organization: Organization,
    pub admin_key: IssuedKey,
}

/// Issues a key for `request`, acting for `person` (`None`: the key itself).
fn issue(
    org_id: &OrgId,
    request: NewApiKey,
    person: Option<Person>,
    principal: Option<Person>,
    now: chrono::DateTime<chrono::Utc>,
) -> IssuedKey {
    let id = ApiKeyId::generate();
    let secret = org::new_secret(&id);
    let key = ApiKey {
        id,
        org_id: org_id.clone(),
        name: request.name,
        permissions: request.permissions,
        wallet_ids: request.wallet_ids,
        person,
        principal,
        secret_hash: org::hash_secret(&secret),
        created_at: now,
        last_used_at: None,
        revoked_at: None,
        frozen_at: None,
        budgets: request.budgets,
    };
    IssuedKey { key, secret }
}

/// Most wallets one key may be bound to.
pub const MAX_KEY_WALLETS: usize = 100;

impl UseCases {
    /// A key may bind another only to wallets of its own scope, and only to wallets that exist
    /// in its organisation.
    async fn ensure_bindable(&self, caller: &ApiKey, wallets: &[WalletId]) -> AppResult<()> {
        if !caller.covers(wallets) {
            return Err(AppError::WalletNotAllowed);
        }
        for wallet in wallets {
            self.reader().read_owned::<Wallet>(&wallet_key(wallet), &caller.org_id).await?;
        }
        Ok(())
    }

    /// `POST /v1/organizations` (operator only): the org and its first admin key.
    pub async fn create_organization(&self, caller: &Caller, name: String) -> AppResult<NewOrganization> {
        caller.require_operator()?;
        let r = self.reader();
        self.engine
            .commit(&r, || async {
                let now = self.now();
                let organization = Organization { id: OrgId::generate(), name: name.clone(), created_at: now };
                let admin = NewApiKey {
                    name: "admin".into(),
                    permissions: vec![Permission::Admin],
                    wallet_ids: vec![],
                    member_id: None,
                    budgets: vec![],
                };
                let admin_key = issue(&organization.id, admin, None, None, now);
                let mut tx = Tx::new(&organization.id, Actor::Operator, now);
                tx.create(&organization)?;
                tx.create(&admin_key.key)?;
                let details = json!({"name": organization.name});
                tx.audit("organization.created", "organization", organization.id.as_str(), details)?;
                Ok(tx.done(NewOrganization { organization, admin_key }))
            })
            .await
    }

    /// `POST /v1/api-keys`.
    pub async fn create_api_key(&self, caller: &Caller, request: NewApiKey) -> AppResult<IssuedKey> {
        let caller = caller.key()?;
        require(caller, Permission::ApiKeysWrite)?;
        if !caller.budgets.is_empty() {
            // Its keys would pay outside its budgets.
            return Err(AppError::OwnControls("a key with budgets cannot mint keys"));
        }
        ensure_grantable(caller, &request.permissions)?;
        // Who the new key is, decided before anything is read: a narrower key never learns
        // which members exist by naming them.
        let person = caller
            .person_of_minted(request.member_id.as_ref())
            .map_err(|_| AppError::PermissionDenied(Permission::Admin))?;
        self.ensure_bindable(caller, &request.wallet_ids).await?;
        if let Some(member) = &request.member_id {
            self.reader().read_owned::<Member>(&member_key(&caller.org_id, member), &caller.org_id).await?;
        }
        let r = self.reader();
        self.engine
            .commit(&r, || async {
                let mut tx = Tx::new(&caller.org_id, Actor::Key(caller.id.clone()), self.now());
                let principal = caller.principal_of_minted(person.as_ref());
                let issued = issue(&caller.org_id, request.clone(), person.clone(), Some(principal), tx.now());
                tx.create(&issued.key)?;
                let details = json!({
                    "permissions": issued.key.permissions,
                    "walletIds": issued.key.wallet_ids,
                    "person": issued.key.person(),
                    "budgets": issued.key.budgets,
                });
                tx.audit("api_key.created", "api_key", issued.key.id.as_str(), details)?;
                Ok(tx.done(issued))
            })
            .await
    }

    pub async fn list_api_keys(&self, caller: &Caller, page: &PageRequest) -> AppResult<Page<ApiKey>> {
        let caller = caller.key()?;
        require(caller, Permission::ApiKeysWrite)?;
        let query = Query::new(Index::ByOrg, by_org_partition(&caller.org_id, "APIKEY"), page.limit);
        self.page::<ApiKey>(query, page, |k| caller.covers(&k.wallet_ids)).await
    }

    pub async fn get_api_key(&self, caller: &Caller, id: &ApiKeyId) -> AppResult<ApiKey> {
        let caller = caller.key()?;
        require(caller, Permission::ApiKeysWrite)?;
        let key = self.reader().read_owned::<ApiKey>(&api_key_key(id), &caller.org_id).await?.value;
        if !caller.covers(&key.wallet_ids) {
            return Err(AppError::WalletNotAllowed);
        }
        Ok(key)
    }

    /// `PATCH /v1/api-keys/{id}`: rename, or change permissions (never beyond the caller's).
    pub async fn update_api_key(&self, caller: &Caller, id: &ApiKeyId, patch: ApiKeyPatch) -> AppResult<ApiKey> {
        let caller = caller.key()?;
        require(caller, Permission::ApiKeysWrite)?;
        if let Some(permissions) = &patch.permissions {
            ensure_grantable(caller, permissions)?;
        }
        if let Some(wallets) = &patch.wallet_ids {
            self.ensure_bindable(caller, wallets).await?;
        }
        if patch.budgets.is_some() && &caller.id == id {
            return Err(AppError::OwnControls("a key cannot change its own budgets"));
        }
        let r = self.reader();
        self.engine
            .commit(&r, || async {
                let mut key = r.read_owned::<ApiKey>(&api_key_key(id), &caller.org_id).await?;
                ensure_not_stronger(caller, &key.value)?;
                if let Some(n) = &patch.name {
                    key.value.name = n.clone();
                }
                if let Some(p) = &patch.permissions {
                    key.value.permissions = p.clone();
                }
                if let Some(w) = &patch.wallet_ids {
                    key.value.wallet_ids = w.clone();
                }
                if let Some(b) = &patch.budgets {
                    key.value.budgets = b.clone();
                }
                let mut tx = Tx::new(&caller.org_id, Actor::Key(caller.id.clone()), self.now());
                tx.update(&key)?;
                let details = json!({
                    "name": key.value.name, "permissions": key.value.permissions, "walletIds": key.value.wallet_ids,
                    "budgets": key.value.budgets,
                });
                tx.audit("api_key.updated", "api_key", key.value.id.as_str(), details)?;
                Ok(tx.done(key.value))
            })
            .await
    }

    /// `DELETE /v1/api-keys/{id}`: revocation takes effect on the next request.
    pub async fn revoke_api_key(&self, caller: &Caller, id: &ApiKeyId) -> AppResult<ApiKey> {
        let caller = caller.key()?;
        require(caller, Permission::ApiKeysWrite)?;
        let r = self.reader();
        self.engine
            .commit(&r, || async {
                let mut key = r.read_owned::<ApiKey>(&api_key_key(id), &caller.org_id).await?;
                ensure_not_stronger(caller, &key.value)?;
                let mut tx = Tx::new(&caller.org_id, Actor::Key(caller.id.clone()), self.now());
                if key.value.revoked_at.is_none() {
                    key.value.revoked_at = Some(tx.now());
                }
                tx.update(&key)?;
                tx.audit("api_key.revoked", "api_key", key.value.id.as_str(), json!({}))?;
                Ok(tx.done(key.value))
            })
            .await
    }
}

/// A key may only change or revoke keys whose permissions and wallets it holds itself (so an
/// `api_keys:write` key cannot disarm the admin keys, nor a wallet-bound key an unbound one).
fn ensure_not_stronger(caller: &ApiKey, target: &ApiKey) -> AppResult<()> {
    ensure_grantable(caller, &target.permissions)?;
    if caller.covers(&target.wallet_ids) {
        Ok(())
    } else {
        Err(AppError::WalletNotAllowed)
    }
}

/// A key may only grant what it holds itself.
fn ensure_grantable(caller: &ApiKey, permissions: &[Permission]) -> AppResult<()> {
    if permissions.iter().all(|p| allows(&caller.permissions, *p)) {
        Ok(())
    } else {
        Err(AppError::PermissionEscalation)
    }
}
