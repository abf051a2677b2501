//! Authentication, organisations and API keys.

use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::commit::{Plan, Reply, ReplyStatus};
use super::paging::{Page, PageRequest};
use super::records::{self, api_key_key, by_org_partition};
use super::{require, Countersign};
use crate::domain::audit::AuditEntry;
use crate::domain::ids::{ApiKeyId, OrgId};
use crate::domain::input::{self, InputError};
use crate::domain::org::{self, ApiKey, ApiKeyView, Organization};
use crate::domain::permission::{allows, Permission};
use crate::error::{AppError, AppResult};
use crate::ports::{Index, Query};

/// Who is calling.
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewApiKey {
    pub name: String,
    pub permissions: Vec<String>,
    /// Accepted for wallgent SDK compatibility; Countersign keys have no environments.
    #[serde(default)]
    pub environment: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiKeyPatch {
    name: Option<String>,
    permissions: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrganization {
    name: String,
}

/// Refresh `lastUsedAt` at most this often, to keep auth to one read on most requests.
const LAST_USED_RESOLUTION_SECONDS: i64 = 60;

impl Countersign {
    /// Resolves a bearer token to the operator or an active key.
    pub async fn authenticate(&self, bearer: Option<&str>) -> AppResult<Caller> {
        let secret = bearer.ok_or(AppError::Unauthorized)?;
        if let Some(hash) = &self.settings.operator_key_hash {
            if bool::from(org::hash_secret(secret).as_bytes().ct_eq(hash.as_bytes())) {
                return Ok(Caller::Operator);
            }
        }
        let id = org::key_id_of_secret(secret).ok_or(AppError::Unauthorized)?;
        let stored = self.read::<ApiKey>(&api_key_key(&id)).await?.ok_or(AppError::Unauthorized)?;
        let key = stored.value;
        if !key.matches(secret) {
            return Err(AppError::Unauthorized);
        }
        if key.revoked_at.is_some() {
            return Err(AppError::ApiKeyRevoked);
        }
        let now = self.now();
        let stale = key.last_used_at.is_none_or(|t| (now - t).num_seconds() >= LAST_USED_RESOLUTION_SECONDS);
        if stale {
            let mut touched = key.clone();
            touched.last_used_at = Some(now);
            // Best effort: losing this race to another request (or a revocation) is fine.
            if let Ok(write) = records::update(&touched, stored.version) {
                let _ = self.store.transact(vec![write]).await;
            }
        }
        Ok(Caller::Key(key))
    }

    /// `POST /v1/organizations` (operator only): the org and its first admin key.
    pub async fn create_organization(&self, caller: &Caller, body: &serde_json::Value) -> AppResult<Reply> {
        if !matches!(caller, Caller::Operator) {
            return Err(AppError::OperatorOnly);
        }
        let request: NewOrganization = parse(body)?;
        let name = input::name("name", &request.name)?;
        let now = self.now();
        let org = Organization { id: OrgId::generate(), name, created_at: now };
        let key_id = ApiKeyId::generate();
        let secret = org::new_secret(&key_id);
        let key = ApiKey {
            id: key_id,
            org_id: org.id.clone(),
            name: "admin".into(),
            permissions: vec![Permission::Admin],
            secret_hash: org::hash_secret(&secret),
            created_at: now,
            last_used_at: None,
            revoked_at: None,
        };
        let audit = AuditEntry::new(
            &org.id,
            "organization.created",
            "organization",
            org.id.as_str(),
            "operator",
            json!({"name": org.name}),
            now,
        );
        let mut body = serde_json::to_value(&org).map_err(|e| AppError::Corrupt(e.to_string()))?;
        body["adminKey"] =
            serde_json::to_value(key.view(Some(secret))).map_err(|e| AppError::Corrupt(e.to_string()))?;
        let writes = vec![records::create(&org)?, records::create(&key)?, records::create(&audit)?];
        let reply = Reply { status: ReplyStatus::Created, body, replayed: false };
        self.commit_new(&org.id, writes, reply).await
    }

    /// `POST /v1/api-keys`: a key may only grant permissions it holds itself.
    pub async fn create_api_key(&self, caller: &Caller, body: &serde_json::Value) -> AppResult<Reply> {
        let caller = caller.key()?;
        require(caller, Permission::ApiKeysWrite)?;
        let request: NewApiKey = parse(body)?;
        let name = input::name("name", &request.name)?;
        let permissions = grantable(caller, &request.permissions)?;
        let now = self.now();
        let id = ApiKeyId::generate();
        let secret = org::new_secret(&id);
        let key = ApiKey {
            id,
            org_id: caller.org_id.clone(),
            name,
            permissions,
            secret_hash: org::hash_secret(&secret),
            created_at: now,
            last_used_at: None,
            revoked_at: None,
        };
        let audit = AuditEntry::new(
            &key.org_id,
            "api_key.created",
            "api_key",
            key.id.as_str(),
            caller.id.as_str(),
            json!({"permissions": key.permissions}),
            now,
        );
        let writes = vec![records::create(&key)?, records::create(&audit)?];
        let reply = Reply::new(ReplyStatus::Created, &key.view(Some(secret)))?;
        self.commit_new(&key.org_id, writes, reply).await
    }

    pub async fn list_api_keys(&self, caller: &Caller, page: &PageRequest) -> AppResult<Page<ApiKeyView>> {
        let caller = caller.key()?;
        require(caller, Permission::ApiKeysWrite)?;
        let query = Query::new(Index::ByOrg, by_org_partition(&caller.org_id, "APIKEY"), page.limit);
        Ok(self.page::<ApiKey>(query, page, |_| true).await?.map(|k| k.view(None)))
    }

    pub async fn get_api_key(&self, caller: &Caller, id: &str) -> AppResult<ApiKeyView> {
        let caller = caller.key()?;
        require(caller, Permission::ApiKeysWrite)?;
        let id = ApiKeyId::parse(id).ok_or(AppError::NotFound("api key"))?;
        Ok(self.read_owned::<ApiKey>(&api_key_key(&id), &caller.org_id).await?.value.view(None))
    }

    /// `PATCH /v1/api-keys/{id}`: rename, or change permissions (never beyond the caller's).
    pub async fn update_api_key(&self, caller: &Caller, id: &str, body: &serde_json::Value) -> AppResult<Reply> {
        let caller = caller.key()?;
        require(caller, Permission::ApiKeysWrite)?;
        let id = ApiKeyId::parse(id).ok_or(AppError::NotFound("api key"))?;
        let patch: ApiKeyPatch = parse(body)?;
        let name = patch.name.as_deref().map(|n| input::name("name", n)).transpose()?;
        let permissions = patch.permissions.as_deref().map(|p| grantable(caller, p)).transpose()?;
        self.commit(&caller.org_id, None, || async {
            let stored = self.read_owned::<ApiKey>(&api_key_key(&id), &caller.org_id).await?;
            let mut key = stored.value;
            ensure_not_stronger(caller, &key)?;
            if let Some(n) = &name {
                key.name = n.clone();
            }
            if let Some(p) = &permissions {
                key.permissions = p.clone();
            }
            let now = self.now();
            let audit = AuditEntry::new(
                &key.org_id,
                "api_key.updated",
                "api_key",
                key.id.as_str(),
                caller.id.as_str(),
                json!({"name": key.name, "permissions": key.permissions}),
                now,
            );
            Ok(Plan {
                writes: vec![records::update(&key, stored.version)?, records::create(&audit)?],
                reply: Reply::new(ReplyStatus::Ok, &key.view(None))?,
            })
        })
        .await
    }

    /// `DELETE /v1/api-keys/{id}`: revocation takes effect on the next request.
    pub async fn revoke_api_key(&self, caller: &Caller, id: &str) -> AppResult<Reply> {
        let caller = caller.key()?;
        require(caller, Permission::ApiKeysWrite)?;
        let id = ApiKeyId::parse(id).ok_or(AppError::NotFound("api key"))?;
        self.commit(&caller.org_id, None, || async {
            let stored = self.read_owned::<ApiKey>(&api_key_key(&id), &caller.org_id).await?;
            let mut key = stored.value;
            ensure_not_stronger(caller, &key)?;
            let now = self.now();
            if key.revoked_at.is_none() {
                key.revoked_at = Some(now);
            }
            let audit = AuditEntry::new(
                &key.org_id,
                "api_key.revoked",
                "api_key",
                key.id.as_str(),
                caller.id.as_str(),
                json!({}),
                now,
            );
            Ok(Plan {
                writes: vec![records::update(&key, stored.version)?, records::create(&audit)?],
                reply: Reply::new(ReplyStatus::Ok, &key.view(None))?,
            })
        })
        .await
    }
}

/// A key may only change or revoke keys whose permissions it holds itself (so an `api_keys:write`
/// key cannot disarm the admin keys).
fn ensure_not_stronger(caller: &ApiKey, target: &ApiKey) -> AppResult<()> {
    if target.permissions.iter().all(|p| allows(&caller.permissions, *p)) {
        Ok(())
    } else {
        Err(AppError::PermissionEscalation)
    }
}

/// Parses requested permissions; a key may only grant what it holds itself.
fn grantable(caller: &ApiKey, requested: &[String]) -> AppResult<Vec<Permission>> {
    if requested.is_empty() {
        return Err(InputError::invalid("permissions", "must list at least one permission").into());
    }
    let mut permissions = Vec::new();
    for p in requested {
        let parsed: Permission = serde_json::from_value(json!(p))
            .map_err(|_| InputError::invalid("permissions", format!("unknown permission {p:?}")))?;
        if !allows(&caller.permissions, parsed) {
            return Err(AppError::PermissionEscalation);
        }
        if !permissions.contains(&parsed) {
            permissions.push(parsed);
        }
    }
    Ok(permissions)
}

/// Deserialises a request body into a typed request, as a 400 on any mismatch.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(body: &serde_json::Value) -> AppResult<T> {
    serde_json::from_value(body.clone()).map_err(|e| AppError::MalformedBody(e.to_string()))
}
