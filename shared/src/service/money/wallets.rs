//! Wallets, funding and the ledger.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::domain::audit::Actor;
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::ids::{TransactionId, WalletId};
use crate::domain::ledger::{self, LedgerEntry};
use crate::domain::money::{Amount, Money};
use crate::domain::permission::Permission;
use crate::domain::policy_set::PolicySet;
use crate::domain::wallet::{NewWallet, Wallet, WalletPatch};
use crate::engine::plan::Tx;
use crate::engine::{Change, Committed, IdempotencyScope};
use crate::error::AppResult;
use crate::layout::{by_org_partition, wallet_key};
use crate::ports::{Index, Query};
use crate::service::paging::{Page, PageRequest};
use crate::service::{ensure_unbound, ensure_wallet, require, Caller, UseCases};

/// Money brought into a wallet from the external funding account.
#[derive(Debug, Clone, PartialEq)]
pub struct FundRequest {
    /// In the wallet's currency.
    pub amount: Amount,
    pub idempotency: Option<IdempotencyKey>,
}

/// What a fund did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Funded {
    pub transaction_id: TransactionId,
    pub wallet_id: WalletId,
    pub amount: Money,
    pub new_balance: Money,
}

impl UseCases {
    pub async fn create_wallet(&self, caller: &Caller, request: NewWallet) -> AppResult<Wallet> {
        let caller = caller.key()?;
        require(caller, Permission::WalletsWrite)?;
        ensure_unbound(caller)?;
        let r = self.reader();
        self.engine
            .commit(&r, || async {
                let mut tx = Tx::new(&caller.org_id, Actor::Key(caller.id.clone()), self.now());
                let wallet = Wallet::open(caller.org_id.clone(), request.clone(), tx.now());
                tx.create(&wallet)?;
                // Its (empty) policy set: payments read it by key rather than query policies.
                tx.create(&PolicySet::new(caller.org_id.clone(), wallet.id.clone(), tx.now()))?;
                tx.audit("wallet.created", "wallet", wallet.id.as_str(), json!({"name": wallet.name}))?;
                Ok(tx.done(wallet))
            })
            .await
    }

    pub async fn get_wallet(&self, caller: &Caller, id: &WalletId) -> AppResult<Wallet> {
        let caller = caller.key()?;
        require(caller, Permission::WalletsRead)?;
        ensure_wallet(caller, id)?;
        Ok(self.reader().read_owned::<Wallet>(&wallet_key(id), &caller.org_id).await?.value)
    }

    pub async fn list_wallets(&self, caller: &Caller, page: &PageRequest) -> AppResult<Page<Wallet>> {
        let caller = caller.key()?;
        require(caller, Permission::WalletsRead)?;
        let query = Query::new(Index::ByOrg, by_org_partition(&caller.org_id, "WALLET"), page.limit);
        self.page(query, page, |w: &Wallet| caller.may_use(&w.id)).await
    }

    pub async fn update_wallet(&self, caller: &Caller, id: &WalletId, patch: WalletPatch) -> AppResult<Wallet> {
        let caller = caller.key()?;
        require(caller, Permission::WalletsWrite)?;
        ensure_wallet(caller, id)?;
        let r = self.reader();
        self.engine
            .commit(&r, || async {
                let mut wallet = r.read_owned::<Wallet>(&wallet_key(id), &caller.org_id).await?;
                let mut tx = Tx::new(&caller.org_id, Actor::Key(caller.id.clone()), self.now());
                wallet.value.apply(&patch, tx.now());
                tx.update(&wallet)?;
                tx.audit("wallet.updated", "wallet", wallet.value.id.as_str(), json!({}))?;
                Ok(tx.done(wallet.value))
            })
            .await
    }

    /// `POST /v1/wallets/{id}/fund`: money enters from the external funding account.
    pub async fn fund_wallet(
        &self,
        caller: &Caller,
        id: &WalletId,
        request: FundRequest,
    ) -> AppResult<Committed<Funded>> {
        let caller = caller.key()?;
        require(caller, Permission::WalletsFund)?;
        ensure_wallet(caller, id)?;
        let org = &caller.org_id;
        let scope = request.idempotency.as_ref().map(|key| IdempotencyScope {
            org,
            caller: &caller.id,
            operation: format!("fund#{id}"),
            key,
        });
        let r = self.reader();
        self.engine
            .run(&r, Change::default().idempotent(scope), || async {
                let mut wallet = r.read_owned::<Wallet>(&wallet_key(id), org).await?;
                let amount = request.amount.in_currency(wallet.value.currency())?;
                let mut tx = Tx::new(org, Actor::Key(caller.id.clone()), self.now());
                let entry = ledger::fund(&mut wallet.value, amount, ledger::EntryIds::generate(), tx.now())?;
                tx.update(&wallet)?;
                tx.create(&entry)?;
                let details = json!({"amount": amount.to_wire(), "transactionId": entry.transaction_id});
                tx.audit("wallet.funded", "wallet", wallet.value.id.as_str(), details)?;
                Ok(tx.done(Funded {
                    transaction_id: entry.transaction_id,
                    wallet_id: wallet.value.id.clone(),
                    amount,
                    new_balance: wallet.value.balance(),
                }))
            })
            .await
    }

    pub async fn list_transactions(
        &self,
        caller: &Caller,
        id: &WalletId,
        page: &PageRequest,
    ) -> AppResult<Page<LedgerEntry>> {
        let wallet = self.get_wallet(caller, id).await?;
        let mut query = Query::new(Index::Primary, format!("WALLET#{}", wallet.id), page.limit);
        query.sk_prefix = Some("TXN#".into());
        self.page(query, page, |_| true).await
    }
}
