//! Authentication: a bearer token resolves to the operator or an active API key.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use subtle::ConstantTimeEq;

use crate::domain::ids::{ApiKeyId, OrgId};
use crate::domain::org::{self, ApiKey};
use crate::domain::permission::Permission;
use crate::engine::reader::Reads;
use crate::engine::Reader;
use crate::error::{AppError, AppResult};
use crate::layout::{self, api_key_key};
use crate::service::Countersign;

/// Who is calling.
// Made once per request and passed by reference: boxing the key would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Caller {
    /// The deployment's operator key: may only create organisations.
    Operator,
    Key(ApiKey),
}

impl Caller {
    pub fn key(&self) -> AppResult<&ApiKey> {
        match self {
            Caller::Key(k) => Ok(k),
            Caller::Operator => Err(AppError::PermissionDenied(Permission::Admin)),
        }
    }

    /// The calling key, if it holds `needed`. Doors check this before they parse a request, so
    /// an unauthorised caller learns nothing about what the body should be; the service checks
    /// again whoever calls it.
    pub fn authorize(&self, needed: Permission) -> AppResult<&ApiKey> {
        let key = self.key()?;
        crate::service::require(key, needed)?;
        Ok(key)
    }

    /// The calling key, if it may act for the whole organisation (members, teams, routing,
    /// settings): it holds `needed` and is bound to no wallet (docs/api.md, "Separation of duties": a key that may act on
    /// one wallet must not choose who countersigns every other's payments). The wallet check
    /// comes first, so such a key learns nothing more.
    pub fn organiser(&self, needed: Permission) -> AppResult<&ApiKey> {
        crate::service::ensure_unbound(self.key()?)?;
        self.authorize(needed)
    }

    pub fn require_operator(&self) -> AppResult<()> {
        match self {
            Caller::Operator => Ok(()),
            Caller::Key(_) => Err(AppError::OperatorOnly),
        }
    }
}

/// Refresh `lastUsedAt` at most this often, to keep auth to one read on most requests.
const LAST_USED_RESOLUTION_SECONDS: i64 = 60;
/// Keys whose organisation is remembered; past this the memory starts over.
const KEY_ORGS_REMEMBERED: usize = 10_000;

/// The organisation of each API key seen (a key never moves): it names the partitions a request
/// reads (routing rules, idempotency records) before its key is read, so both go in one round
/// trip. Only where to read comes from here; who the caller is always comes from the key read.
#[derive(Default)]
pub(crate) struct KeyOrgs(Mutex<HashMap<ApiKeyId, OrgId>>);

impl KeyOrgs {
    fn get(&self, key: &ApiKeyId) -> Option<OrgId> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(key).cloned()
    }

    fn remember(&self, key: &ApiKey) {
        let mut known = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if known.len() >= KEY_ORGS_REMEMBERED && !known.contains_key(&key.id) {
            known.clear();
        }
        known.insert(key.id.clone(), key.org_id.clone());
    }
}

impl Countersign {
    /// Authenticates `bearer` and checks it holds `needed`, prefetching `ahead` (given the key's
    /// organisation when it is known) in the same round trip as the key. Returns the reader,
    /// holding what was prefetched and not yet read, for the change that follows.
    pub(crate) async fn authenticate_prefetching(
        &self,
        bearer: Option<&str>,
        needed: Permission,
        ahead: impl FnOnce(Option<&OrgId>) -> Reads,
    ) -> AppResult<(Caller, Reader)> {
        let reader = self.reader();
        if let Some(id) = bearer.and_then(org::key_id_of_secret) {
            let mut reads = ahead(self.key_orgs.get(&id).as_ref());
            reads.keys.push(api_key_key(&id));
            reader.prefetch(reads).await;
        }
        let caller = self.authenticate_on(&reader, bearer).await?;
        caller.authorize(needed)?;
        Ok((caller, reader))
    }

    /// Resolves a bearer token to the operator or an active key.
    pub async fn authenticate(&self, bearer: Option<&str>) -> AppResult<Caller> {
        self.authenticate_on(&self.reader(), bearer).await
    }

    async fn authenticate_on(&self, reader: &Reader, bearer: Option<&str>) -> AppResult<Caller> {
        let secret = bearer.ok_or(AppError::Unauthorized)?;
        if let Some(hash) = &self.settings.operator_key_hash {
            if bool::from(org::hash_secret(secret).as_bytes().ct_eq(hash.as_bytes())) {
                return Ok(Caller::Operator);
            }
        }
        let id = org::key_id_of_secret(secret).ok_or(AppError::Unauthorized)?;
        let stored = reader.read::<ApiKey>(&api_key_key(&id)).await?.ok_or(AppError::Unauthorized)?;
        let key = stored.value;
        if !key.matches(secret) {
            return Err(AppError::Unauthorized);
        }
        if key.revoked_at.is_some() {
            return Err(AppError::ApiKeyRevoked);
        }
        // Read on every request, never cached: a freeze holds on every instance at once.
        if key.frozen_at.is_some() {
            return Err(AppError::KeyFrozen);
        }
        self.key_orgs.remember(&key);
        let now = self.now();
        let stale = key.last_used_at.is_none_or(|t| (now - t).num_seconds() >= LAST_USED_RESOLUTION_SECONDS);
        if stale {
            let mut touched = key.clone();
            touched.last_used_at = Some(now);
            // Best effort, outside the commit loop: losing this race to another request (or a
            // revocation) is fine, and a failed touch must not fail the request.
            if let Ok(write) = layout::update(&touched, stored.version) {
                let _ = self.store().transact(vec![write]).await;
            }
        }
        Ok(Caller::Key(key))
    }
}
