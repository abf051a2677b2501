//! Wallets, funding and the ledger.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::parse;
use super::commit::{Idempotency, Plan, Reply, ReplyStatus};
use super::paging::{Page, PageRequest};
use super::records::{self, by_org_partition, wallet_key};
use super::{require, Caller, Countersign};
use crate::domain::audit::AuditEntry;
use crate::domain::ids::{TransactionId, WalletId};
use crate::domain::input::{self, InputError};
use crate::domain::money::{Currency, Money};
use crate::domain::permission::Permission;
use crate::domain::wallet::{EntryKind, LedgerEntry, Wallet};
use crate::error::{AppError, AppResult};
use crate::ports::{Index, Query};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewWallet {
    name: String,
    agent_name: Option<String>,
    metadata: Option<serde_json::Value>,
    currency: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WalletPatch {
    name: Option<String>,
    agent_name: Option<String>,
    metadata: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FundRequest {
    amount: serde_json::Value,
    idempotency_key: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Balance {
    pub wallet_id: WalletId,
    pub balance: String,
    pub currency: Currency,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Funded {
    transaction_id: TransactionId,
    wallet_id: WalletId,
    amount: String,
    new_balance: String,
    currency: Currency,
}

pub(crate) fn parse_wallet_id(id: &str) -> AppResult<WalletId> {
    WalletId::parse(id).ok_or(AppError::NotFound("wallet"))
}

fn optional_name(field: &'static str, value: Option<&str>) -> AppResult<Option<String>> {
    Ok(value.map(|v| input::name(field, v)).transpose()?)
}

impl Countersign {
    pub async fn create_wallet(&self, caller: &Caller, body: &serde_json::Value) -> AppResult<Reply> {
        let caller = caller.key()?;
        require(caller, Permission::WalletsWrite)?;
        let request: NewWallet = parse(body)?;
        let currency = match &request.currency {
            None => Currency::default(),
            Some(code) => Currency::parse(code).map_err(|e| InputError::invalid("currency", e.to_string()))?,
        };
        let now = self.now();
        let wallet = Wallet {
            id: WalletId::generate(),
            org_id: caller.org_id.clone(),
            name: input::name("name", &request.name)?,
            agent_name: optional_name("agentName", request.agent_name.as_deref())?,
            currency,
            balance: Money::zero(currency).amount(),
            metadata: input::metadata(request.metadata.as_ref())?,
            spend_day: None,
            spent_on_day: Money::zero(currency).amount(),
            created_at: now,
            updated_at: now,
        };
        let audit = AuditEntry::new(
            &wallet.org_id,
            "wallet.created",
            "wallet",
            wallet.id.as_str(),
            caller.id.as_str(),
            json!({"name": wallet.name}),
            now,
        );
        let writes = vec![records::create(&wallet)?, records::create(&audit)?];
        let reply = Reply::new(ReplyStatus::Created, &wallet)?;
        self.commit_new(&wallet.org_id, writes, reply).await
    }

    pub async fn get_wallet(&self, caller: &Caller, id: &str) -> AppResult<Wallet> {
        let caller = caller.key()?;
        require(caller, Permission::WalletsRead)?;
        let id = parse_wallet_id(id)?;
        Ok(self.read_owned::<Wallet>(&wallet_key(&id), &caller.org_id).await?.value)
    }

    pub async fn list_wallets(&self, caller: &Caller, page: &PageRequest) -> AppResult<Page<Wallet>> {
        let caller = caller.key()?;
        require(caller, Permission::WalletsRead)?;
        let query = Query::new(Index::ByOrg, by_org_partition(&caller.org_id, "WALLET"), page.limit);
        self.page(query, page, |_| true).await
    }

    pub async fn update_wallet(&self, caller: &Caller, id: &str, body: &serde_json::Value) -> AppResult<Reply> {
        let caller = caller.key()?;
        require(caller, Permission::WalletsWrite)?;
        let id = parse_wallet_id(id)?;
        let patch: WalletPatch = parse(body)?;
        let name = optional_name("name", patch.name.as_deref())?;
        let agent_name = optional_name("agentName", patch.agent_name.as_deref())?;
        let metadata = patch.metadata.as_ref().map(|m| input::metadata(Some(m))).transpose()?;
        self.commit(&caller.org_id, None, || async {
            let stored = self.read_owned::<Wallet>(&wallet_key(&id), &caller.org_id).await?;
            let mut wallet = stored.value;
            let now = self.now();
            if let Some(n) = &name {
                wallet.name = n.clone();
            }
            if let Some(a) = &agent_name {
                wallet.agent_name = Some(a.clone());
            }
            if let Some(m) = &metadata {
                wallet.metadata = m.clone();
            }
            wallet.updated_at = now;
            let audit = AuditEntry::new(
                &wallet.org_id,
                "wallet.updated",
                "wallet",
                wallet.id.as_str(),
                caller.id.as_str(),
                json!({}),
                now,
            );
            Ok(Plan {
                writes: vec![records::update(&wallet, stored.version)?, records::create(&audit)?],
                reply: Reply::new(ReplyStatus::Ok, &wallet)?,
            })
        })
        .await
    }

    pub async fn wallet_balance(&self, caller: &Caller, id: &str) -> AppResult<Balance> {
        let wallet = self.get_wallet(caller, id).await?;
        Ok(Balance { wallet_id: wallet.id.clone(), balance: wallet.balance().to_wire(), currency: wallet.currency })
    }

    /// `POST /v1/wallets/{id}/fund`: money enters from the external funding account.
    pub async fn fund_wallet(
        &self,
        caller: &Caller,
        id: &str,
        body: &serde_json::Value,
        idempotency_header: Option<&str>,
    ) -> AppResult<Reply> {
        let caller = caller.key()?;
        require(caller, Permission::WalletsWrite)?;
        let id = parse_wallet_id(id)?;
        let request: FundRequest = parse(body)?;
        let idem_key = request.idempotency_key.as_deref().or(idempotency_header);
        let idempotency = idem_key.map(|k| Idempotency::new(format!("fund#{id}"), k, body)).transpose()?;
        self.commit(&caller.org_id, idempotency.as_ref(), || async {
            let stored = self.read_owned::<Wallet>(&wallet_key(&id), &caller.org_id).await?;
            let mut wallet = stored.value;
            let amount = Money::parse_json(&request.amount, wallet.currency)?;
            let now = self.now();
            wallet.credit(amount, now).ok_or_else(|| InputError::invalid("amount", "balance would overflow"))?;
            let txn = TransactionId::generate();
            let entry = LedgerEntry {
                id: format!("ent_{}", ulid::Ulid::new()),
                transaction_id: txn.clone(),
                wallet_id: wallet.id.clone(),
                kind: EntryKind::Fund,
                amount: amount.amount(),
                currency: wallet.currency,
                balance_after: wallet.balance,
                counterparty: "external".into(),
                payment_id: None,
                created_at: now,
            };
            let audit = AuditEntry::new(
                &wallet.org_id,
                "wallet.funded",
                "wallet",
                wallet.id.as_str(),
                caller.id.as_str(),
                json!({"amount": amount.to_wire(), "transactionId": txn}),
                now,
            );
            let reply = Reply::new(
                ReplyStatus::Created,
                &Funded {
                    transaction_id: txn,
                    wallet_id: wallet.id.clone(),
                    amount: amount.to_wire(),
                    new_balance: wallet.balance().to_wire(),
                    currency: wallet.currency,
                },
            )?;
            Ok(Plan {
                writes: vec![
                    records::update(&wallet, stored.version)?,
                    records::create(&entry)?,
                    records::create(&audit)?,
                ],
                reply,
            })
        })
        .await
    }

    pub async fn list_transactions(
        &self,
        caller: &Caller,
        id: &str,
        page: &PageRequest,
    ) -> AppResult<Page<LedgerEntry>> {
        let wallet = self.get_wallet(caller, id).await?;
        let mut query = Query::new(Index::Primary, format!("WALLET#{}", wallet.id), page.limit);
        query.sk_prefix = Some("TXN#".into());
        self.page(query, page, |_| true).await
    }
}
