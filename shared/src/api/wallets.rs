//! `/v1/wallets`: wallets, balances, funding and the ledger.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::extract::{Auth, Body, Ids, Params};
use super::wire::{self, optional_name, replayable, respond, whole_list};
use super::AppState;
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::ids::{AllowRuleId, OrgId, PaymentId, RefundId, TransactionId, WalletId};
use crate::domain::input::{self, InputError};
use crate::domain::ledger::EntryKind;
use crate::domain::money::{Amount, Currency};
use crate::domain::permission::Permission;
use crate::domain::wallet::{NewWallet, WalletPatch};
use crate::error::AppResult;
use crate::service::FundRequest;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WalletBody {
    name: String,
    agent_name: Option<String>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
    currency: Option<String>,
}

impl WalletBody {
    pub fn try_into_domain(self) -> Result<NewWallet, InputError> {
        let currency = match &self.currency {
            None => Currency::default(),
            Some(code) => Currency::parse(code).map_err(|e| InputError::invalid("currency", e.to_string()))?,
        };
        Ok(NewWallet {
            name: input::name("name", &self.name)?,
            agent_name: optional_name("agentName", self.agent_name.as_deref())?,
            currency,
            metadata: input::metadata(self.metadata.as_ref())?,
        })
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WalletPatchBody {
    name: Option<String>,
    agent_name: Option<String>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
}

impl WalletPatchBody {
    pub fn try_into_domain(self) -> Result<WalletPatch, InputError> {
        Ok(WalletPatch {
            name: optional_name("name", self.name.as_deref())?,
            agent_name: optional_name("agentName", self.agent_name.as_deref())?,
            metadata: self.metadata.as_ref().map(|m| input::metadata(Some(m))).transpose()?,
        })
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FundBody {
    #[schema(value_type = String, pattern = r"^[0-9]+(\.[0-9]+)?$", example = "150.00")]
    amount: Value,
    idempotency_key: Option<String>,
}

impl FundBody {
    pub fn try_into_domain(self, idempotency: Option<IdempotencyKey>) -> Result<FundRequest, InputError> {
        let amount =
            Amount::parse_json(&self.amount).map_err(|source| InputError::Amount { field: "amount", source })?;
        Ok(FundRequest { amount, idempotency })
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Balance)]
pub(super) struct BalanceView {
    wallet_id: WalletId,
    #[schema(pattern = r"^[0-9]+(\.[0-9]+)?$", example = "150.00")]
    balance: String,
    currency: Currency,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Funding)]
pub(super) struct FundedView {
    transaction_id: TransactionId,
    wallet_id: WalletId,
    #[schema(pattern = r"^[0-9]+(\.[0-9]+)?$", example = "150.00")]
    amount: String,
    #[schema(pattern = r"^[0-9]+(\.[0-9]+)?$", example = "150.00")]
    new_balance: String,
    currency: Currency,
}

/// A wallet as sent. `Wallet` serialises through a private shape in the domain, so its schema is
/// written here; a test checks it against a serialised wallet, key for key.
#[derive(utoipa::ToSchema)]
#[schema(as = Wallet, rename_all = "camelCase")]
#[allow(dead_code)]
pub(super) struct WalletSchema {
    id: WalletId,
    org_id: OrgId,
    name: String,
    agent_name: Option<String>,
    currency: Currency,
    #[schema(pattern = r"^[0-9]+(\.[0-9]+)?$", example = "150.00")]
    balance: String,
    #[schema(value_type = Object)]
    metadata: Value,
    /// The UTC day `spentOnDay` counts (for `dailySpendingLimit`).
    spend_day: Option<NaiveDate>,
    #[schema(pattern = r"^[0-9]+(\.[0-9]+)?$", example = "0.00")]
    spent_on_day: String,
    /// Set while the wallet is frozen (`POST /v1/wallets/{id}/freeze`).
    frozen_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A ledger line as sent (`LedgerEntry` serialises through a private shape; checked by a test).
#[derive(utoipa::ToSchema)]
#[schema(as = LedgerEntry, rename_all = "camelCase")]
#[allow(dead_code)]
pub(super) struct LedgerEntrySchema {
    id: String,
    transaction_id: TransactionId,
    wallet_id: WalletId,
    kind: EntryKind,
    #[schema(pattern = r"^[0-9]+(\.[0-9]+)?$", example = "150.00")]
    amount: String,
    currency: Currency,
    /// The other wallet of a transfer, or `external` for funding.
    counterparty: String,
    payment_id: Option<PaymentId>,
    /// Set on the lines of a refund; absent otherwise.
    #[schema(required = false)]
    refund_id: Option<RefundId>,
    created_at: DateTime<Utc>,
}

fn wallet_id(ids: &Ids) -> AppResult<WalletId> {
    ids.parse("id", WalletId::parse, "wallet")
}

pub async fn create(State(s): State<AppState>, Auth(c): Auth, Body(b): Body) -> AppResult<Response> {
    c.authorize(Permission::WalletsWrite)?;
    let request = wire::parse::<WalletBody>(b)?.try_into_domain()?;
    Ok(respond(StatusCode::CREATED, &s.create_wallet(&c, request).await?))
}

pub async fn list(State(s): State<AppState>, Auth(c): Auth, p: Params) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::WalletsRead)?;
    Ok(Json(s.list_wallets(&c, &p.page()?).await?))
}

pub async fn get(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::WalletsRead)?;
    Ok(Json(s.get_wallet(&c, &wallet_id(&ids)?).await?))
}

pub async fn update(State(s): State<AppState>, Auth(c): Auth, ids: Ids, Body(b): Body) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::WalletsWrite)?;
    let id = wallet_id(&ids)?;
    let patch = wire::parse::<WalletPatchBody>(b)?.try_into_domain()?;
    Ok(Json(s.update_wallet(&c, &id, patch).await?))
}

pub async fn balance(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::WalletsRead)?;
    let wallet = s.get_wallet(&c, &wallet_id(&ids)?).await?;
    let balance = wallet.balance();
    Ok(Json(BalanceView { wallet_id: wallet.id, balance: balance.to_wire(), currency: balance.currency() }))
}

pub async fn fund(
    State(s): State<AppState>,
    Auth(c): Auth,
    ids: Ids,
    headers: HeaderMap,
    Body(b): Body,
) -> AppResult<Response> {
    c.authorize(Permission::WalletsFund)?;
    let id = wallet_id(&ids)?;
    let wire: FundBody = wire::parse(b.clone())?;
    let idempotency = wire::idempotency(wire.idempotency_key.as_deref(), &headers, &b)?;
    let committed = s.fund_wallet(&c, &id, wire.try_into_domain(idempotency)?).await?;
    let f = committed.outcome;
    let view = FundedView {
        transaction_id: f.transaction_id,
        wallet_id: f.wallet_id,
        amount: f.amount.to_wire(),
        new_balance: f.new_balance.to_wire(),
        currency: f.amount.currency(),
    };
    Ok(replayable(StatusCode::CREATED, &view, committed.replayed))
}

pub async fn transactions(
    State(s): State<AppState>,
    Auth(c): Auth,
    ids: Ids,
    p: Params,
) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::WalletsRead)?;
    Ok(Json(s.list_transactions(&c, &wallet_id(&ids)?, &p.page()?).await?))
}

/// `POST /v1/wallets/{id}/freeze`: no payment or refund from or to it, and none of its held
/// approvals executes, until it is unfrozen.
pub async fn freeze(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::WalletsWrite)?;
    Ok(Json(s.set_wallet_frozen(&c, &wallet_id(&ids)?, true).await?))
}

/// `POST /v1/wallets/{id}/unfreeze`.
pub async fn unfreeze(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::WalletsWrite)?;
    Ok(Json(s.set_wallet_frozen(&c, &wallet_id(&ids)?, false).await?))
}

/// `GET /v1/wallets/{id}/allow-rules`: its "always allow" rules, newest first, with their hits.
pub async fn allow_rules(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::WalletsRead)?;
    Ok(whole_list(s.list_allow_rules(&c, &wallet_id(&ids)?).await?))
}

/// `DELETE /v1/wallets/{id}/allow-rules/{rid}`: payments to that payee are reviewed again.
pub async fn delete_allow_rule(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::PoliciesWrite)?;
    let rule = ids.parse("rid", AllowRuleId::parse, "allow rule")?;
    s.delete_allow_rule(&c, &wallet_id(&ids)?, &rule).await?;
    Ok(wire::deleted(rule))
}
