//! `/v1/organizations` and `/v1/api-keys`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::extract::{Auth, Body, Ids, Params};
use super::wire::{self, optional_name, respond, wallet_field, whole_list};
use super::AppState;
use crate::domain::budget::{check_budgets, Budget, BudgetWindow, OnExceed};
use crate::domain::ids::{ApiKeyId, MemberId, WalletId};
use crate::domain::input::{self, InputError};
use crate::domain::money::{Amount, Currency};
use crate::domain::org::{ApiKeyView, Organization};
use crate::domain::permission::Permission;
use crate::error::AppResult;
use crate::service::{ApiKeyPatch, NewApiKey, MAX_KEY_WALLETS};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganizationBody {
    name: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiKeyBody {
    name: String,
    permissions: Vec<String>,
    wallet_ids: Option<Vec<String>>,
    member_id: Option<String>,
    /// Spending limits on what the key pays: one per window and currency.
    #[schema(inline)]
    budgets: Option<Vec<BudgetBody>>,
    /// Accepted for wallgent SDK compatibility; Countersign keys have no environments.
    #[serde(default)]
    #[allow(dead_code)]
    environment: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiKeyPatchBody {
    name: Option<String>,
    permissions: Option<Vec<String>>,
    wallet_ids: Option<Vec<String>>,
    /// Replaces the key's budgets (`[]` removes them). A key cannot change its own.
    #[schema(inline)]
    budgets: Option<Vec<BudgetBody>>,
}

/// One budget: at most `limit` of `currency` per UTC `window` (weeks from Monday).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BudgetBody {
    /// `day`, `week` or `month`.
    #[schema(example = "day")]
    window: String,
    /// A decimal string in the currency's minor units.
    #[schema(value_type = String, example = "100.00")]
    limit: serde_json::Value,
    #[schema(example = "USD")]
    currency: String,
    /// `hold` (default) or `deny`.
    #[schema(example = "hold")]
    on_exceed: Option<String>,
}

/// Budgets as asked: each parsed, one per window and currency.
fn parse_budgets(list: &[BudgetBody]) -> Result<Vec<Budget>, InputError> {
    let mut out = Vec::with_capacity(list.len());
    for b in list {
        let window = BudgetWindow::parse(&b.window)
            .ok_or_else(|| InputError::invalid("budgets.window", "must be day, week or month"))?;
        let currency =
            Currency::parse(&b.currency).map_err(|source| InputError::Amount { field: "budgets.currency", source })?;
        let on_exceed = match b.on_exceed.as_deref() {
            None => OnExceed::Hold,
            Some(text) => {
                OnExceed::parse(text).ok_or_else(|| InputError::invalid("budgets.onExceed", "must be hold or deny"))?
            }
        };
        let limit =
            Amount::parse_json(&b.limit).map_err(|source| InputError::Amount { field: "budgets.limit", source })?;
        out.push(Budget::new(window, limit, currency, on_exceed, "budgets.limit")?);
    }
    check_budgets(&out)?;
    Ok(out)
}

/// Wallet ids, each once, at most `MAX_KEY_WALLETS`.
fn wallets(ids: &[String]) -> Result<Vec<WalletId>, InputError> {
    if ids.len() > MAX_KEY_WALLETS {
        return Err(InputError::invalid("walletIds", format!("must list at most {MAX_KEY_WALLETS} wallets")));
    }
    let mut out: Vec<WalletId> = Vec::new();
    for id in ids {
        let id = wallet_field("walletIds", id)?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// Known permissions, at least one, each once.
fn permissions(requested: &[String]) -> Result<Vec<Permission>, InputError> {
    if requested.is_empty() {
        return Err(InputError::invalid("permissions", "must list at least one permission"));
    }
    let mut out = Vec::new();
    for p in requested {
        let parsed: Permission = serde_json::from_value(json!(p))
            .map_err(|_| InputError::invalid("permissions", format!("unknown permission {p:?}")))?;
        if !out.contains(&parsed) {
            out.push(parsed);
        }
    }
    Ok(out)
}

impl ApiKeyBody {
    pub fn try_into_domain(self) -> Result<NewApiKey, InputError> {
        Ok(NewApiKey {
            name: input::name("name", &self.name)?,
            permissions: permissions(&self.permissions)?,
            wallet_ids: self.wallet_ids.as_deref().map(wallets).transpose()?.unwrap_or_default(),
            member_id: self
                .member_id
                .as_deref()
                .map(|m| MemberId::parse(m).ok_or_else(|| InputError::invalid("memberId", "is not a member id")))
                .transpose()?,
            budgets: self.budgets.as_deref().map(parse_budgets).transpose()?.unwrap_or_default(),
        })
    }
}

impl ApiKeyPatchBody {
    pub fn try_into_domain(self) -> Result<ApiKeyPatch, InputError> {
        Ok(ApiKeyPatch {
            name: optional_name("name", self.name.as_deref())?,
            permissions: self.permissions.as_deref().map(permissions).transpose()?,
            wallet_ids: self.wallet_ids.as_deref().map(wallets).transpose()?,
            budgets: self.budgets.as_deref().map(parse_budgets).transpose()?,
        })
    }
}

/// What `POST /v1/organizations` returns: the organisation and its first admin key, with the
/// key's secret (shown this once).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct OrganizationCreated<'a> {
    #[serde(flatten)]
    organization: &'a Organization,
    admin_key: ApiKeyView,
}

fn key_id(ids: &Ids) -> AppResult<ApiKeyId> {
    ids.parse("id", ApiKeyId::parse, "api key")
}

/// 201 with the organisation and its admin key, whose secret is shown this once.
pub async fn create_organization(State(s): State<AppState>, Auth(c): Auth, Body(b): Body) -> AppResult<Response> {
    c.require_operator()?;
    let name = input::name("name", &wire::parse::<OrganizationBody>(b)?.name)?;
    let created = s.create_organization(&c, name).await?;
    let body = OrganizationCreated {
        organization: &created.organization,
        admin_key: created.admin_key.key.view(Some(created.admin_key.secret)),
    };
    Ok(respond(StatusCode::CREATED, &body))
}

pub async fn create(State(s): State<AppState>, Auth(c): Auth, Body(b): Body) -> AppResult<Response> {
    c.authorize(Permission::ApiKeysWrite)?;
    let request = wire::parse::<ApiKeyBody>(b)?.try_into_domain()?;
    let issued = s.create_api_key(&c, request).await?;
    Ok(respond(StatusCode::CREATED, &issued.key.view(Some(issued.secret))))
}

pub async fn list(State(s): State<AppState>, Auth(c): Auth, p: Params) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::ApiKeysWrite)?;
    Ok(Json(s.list_api_keys(&c, &p.page()?).await?.map(|k| k.view(None))))
}

pub async fn get(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::ApiKeysWrite)?;
    Ok(Json(s.get_api_key(&c, &key_id(&ids)?).await?.view(None)))
}

pub async fn update(State(s): State<AppState>, Auth(c): Auth, ids: Ids, Body(b): Body) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::ApiKeysWrite)?;
    let id = key_id(&ids)?;
    let patch = wire::parse::<ApiKeyPatchBody>(b)?.try_into_domain()?;
    Ok(Json(s.update_api_key(&c, &id, patch).await?.view(None)))
}

pub async fn revoke(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::ApiKeysWrite)?;
    Ok(Json(s.revoke_api_key(&c, &key_id(&ids)?).await?.view(None)))
}

/// `POST /v1/api-keys/{id}/freeze` (admin): every later request with the key is 403 `KEY_FROZEN`.
pub async fn freeze(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::Admin)?;
    Ok(Json(s.set_key_frozen(&c, &key_id(&ids)?, true).await?.view(None)))
}

/// `POST /v1/api-keys/{id}/unfreeze` (admin).
pub async fn unfreeze(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::Admin)?;
    Ok(Json(s.set_key_frozen(&c, &key_id(&ids)?, false).await?.view(None)))
}

/// `GET /v1/api-keys/{id}/budgets`: the key's own, or (`api_keys:write`) another's.
pub async fn budgets(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    c.key()?;
    Ok(whole_list(s.key_budget_standing(&c, &key_id(&ids)?).await?))
}
