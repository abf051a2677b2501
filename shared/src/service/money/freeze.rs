//! The kill switch: freezing a key refuses every request made with it (403 `KEY_FROZEN`: the key
//! is read on every request, so no instance keeps it alive); freezing a wallet refuses payments
//! and refunds from or to it and the execution of its held approvals (`WALLET_FROZEN`), checked
//! inside their transactions against the wallet read, so nothing that starts after the freeze
//! is acknowledged moves money. Audited, with `key.frozen` / `wallet.frozen` events.

use serde_json::json;

use crate::domain::audit::Actor;
use crate::domain::event::{kinds, Event};
use crate::domain::ids::{ApiKeyId, WalletId};
use crate::domain::org::ApiKey;
use crate::domain::permission::Permission;
use crate::domain::wallet::Wallet;
use crate::engine::plan::Tx;
use crate::error::{AppError, AppResult};
use crate::layout::{api_key_key, wallet_key};
use crate::service::{ensure_wallet, require, Caller, UseCases};

impl UseCases {
    /// `POST /v1/api-keys/{id}/freeze` and `/unfreeze` (admin). A key never freezes itself: the
    /// last admin key frozen would leave nobody to unfreeze it.
    pub async fn set_key_frozen(&self, caller: &Caller, id: &ApiKeyId, frozen: bool) -> AppResult<ApiKey> {
        let caller = caller.key()?;
        require(caller, Permission::Admin)?;
        if &caller.id == id {
            return Err(AppError::OwnControls("a key cannot freeze or unfreeze itself"));
        }
        let r = self.reader();
        self.engine
            .commit(&r, || async {
                let mut key = r.read_owned::<ApiKey>(&api_key_key(id), &caller.org_id).await?;
                if !caller.covers(&key.value.wallet_ids) {
                    return Err(AppError::WalletNotAllowed.into());
                }
                let mut tx = Tx::new(&caller.org_id, Actor::Key(caller.id.clone()), self.now());
                if key.value.frozen_at.is_some() == frozen {
                    return Ok(crate::engine::plan::Plan::nothing(key.value));
                }
                key.value.frozen_at = frozen.then_some(tx.now());
                tx.update(&key)?;
                let (action, kind) = if frozen {
                    ("api_key.frozen", kinds::KEY_FROZEN)
                } else {
                    ("api_key.unfrozen", kinds::KEY_UNFROZEN)
                };
                tx.audit(action, "api_key", id.as_str(), json!({"name": key.value.name}))?;
                tx.event(Event::for_key(&key.value, kind, tx.now()))?;
                Ok(tx.done(key.value))
            })
            .await
    }

    /// `POST /v1/wallets/{id}/freeze` and `/unfreeze` (admin, or `wallets:write` on the wallet).
    pub async fn set_wallet_frozen(&self, caller: &Caller, id: &WalletId, frozen: bool) -> AppResult<Wallet> {
        let caller = caller.key()?;
        require(caller, Permission::WalletsWrite)?;
        ensure_wallet(caller, id)?;
        let r = self.reader();
        self.engine
            .commit(&r, || async {
                let mut wallet = r.read_owned::<Wallet>(&wallet_key(id), &caller.org_id).await?;
                let mut tx = Tx::new(&caller.org_id, Actor::Key(caller.id.clone()), self.now());
                if !wallet.value.set_frozen(frozen, tx.now()) {
                    return Ok(crate::engine::plan::Plan::nothing(wallet.value));
                }
                tx.update(&wallet)?;
                let (action, kind) = if frozen {
                    ("wallet.frozen", kinds::WALLET_FROZEN)
                } else {
                    ("wallet.unfrozen", kinds::WALLET_UNFROZEN)
                };
                tx.audit(action, "wallet", id.as_str(), json!({"name": wallet.value.name}))?;
                tx.event(Event::for_wallet(&wallet.value, kind, tx.now()))?;
                Ok(tx.done(wallet.value))
            })
            .await
    }
}

/// Money may not leave or enter a frozen wallet.
pub(crate) fn ensure_not_frozen(wallets: [&Wallet; 2], at_execution: bool) -> AppResult<()> {
    match wallets.iter().find(|w| w.is_frozen()) {
        Some(w) => Err(AppError::WalletFrozen { wallet: w.id.to_string(), at_execution }),
        None => Ok(()),
    }
}
