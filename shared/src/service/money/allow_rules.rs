//! "Always allow" rules: made or renewed by the approve vote that asked for one, read by key at
//! intake when policies hold a payment, counted (`hits`) in the transaction of each payment
//! they let through, listed and deleted per wallet.

use serde_json::json;

use crate::domain::allow_rule::{AllowRule, AlwaysAllow};
use crate::domain::approval::Approval;
use crate::domain::ids::{AllowRuleId, WalletId};
use crate::domain::money::Money;
use crate::domain::org::ApiKey;
use crate::domain::permission::Permission;
use crate::domain::wallet::Wallet;
use crate::engine::plan::{PlanError, Tx};
use crate::engine::Reader;
use crate::error::{AppError, AppResult};
use crate::layout::{allow_rule_key, allow_rules_query, wallet_key, Stored};
use crate::service::{ensure_wallet, require, Caller, UseCases};

/// Most allow rules one wallet lists (one per payee).
pub const MAX_ALLOW_RULES_LISTED: usize = 1000;

impl Reader {
    /// The wallet's rule for this payee, if any.
    pub(crate) async fn allow_rule(&self, from: &WalletId, to: &WalletId) -> AppResult<Option<Stored<AllowRule>>> {
        self.read::<AllowRule>(&allow_rule_key(from, to)).await
    }
}

/// Makes (or renews, keeping its id and hits) the payer's rule for the approval's payee, in the
/// approve vote's transaction.
pub(crate) async fn plan_allow_rule(
    r: &Reader,
    tx: &mut Tx,
    caller: &ApiKey,
    approval: &Approval,
    asked: AlwaysAllow,
    currency: crate::domain::money::Currency,
) -> Result<AllowRule, PlanError> {
    let max: Money = asked.max_amount.in_currency(currency).map_err(|source| {
        AppError::Input(crate::domain::input::InputError::Amount { field: "alwaysAllow.maxAmount", source })
    })?;
    let (wallet, recipient) = (&approval.wallet_id, &approval.transaction_details.recipient);
    let now = tx.now();
    let existing = r.allow_rule(wallet, recipient).await?;
    let mut rule = match &existing {
        Some(stored) => stored.value.clone(),
        None => AllowRule {
            id: AllowRuleId::generate(),
            org_id: approval.org_id.clone(),
            wallet_id: wallet.clone(),
            recipient: recipient.clone(),
            max_amount: max.amount(),
            currency,
            created_by: caller.id.clone(),
            created_by_person: None,
            approval_id: approval.id.clone(),
            created_at: now,
            expires_at: now,
            hits: 0,
            last_hit_at: None,
        },
    };
    rule.max_amount = max.amount();
    rule.created_by = caller.id.clone();
    rule.created_by_person = Some(caller.person());
    rule.approval_id = approval.id.clone();
    rule.created_at = now;
    rule.expires_at = AllowRule::expiry(now, asked.expires_in_days);
    match existing {
        Some(mut stored) => {
            stored.value = rule.clone();
            tx.update(&stored)?;
        }
        None => tx.create(&rule)?,
    }
    let details = json!({
        "allowRuleId": rule.id, "walletId": rule.wallet_id, "recipient": rule.recipient,
        "maxAmount": max.to_wire(), "currency": currency, "expiresAt": rule.expires_at, "approvalId": approval.id,
    });
    tx.audit("allow_rule.created", "wallet", wallet.as_str(), details)?;
    Ok(rule)
}

impl UseCases {
    /// `GET /v1/wallets/{id}/allow-rules`.
    pub async fn list_allow_rules(&self, caller: &Caller, wallet: &WalletId) -> AppResult<Vec<AllowRule>> {
        let caller = caller.key()?;
        require(caller, Permission::WalletsRead)?;
        ensure_wallet(caller, wallet)?;
        let r = self.reader();
        r.read_owned::<Wallet>(&wallet_key(wallet), &caller.org_id).await?;
        let mut rules: Vec<AllowRule> = r.all_of(allow_rules_query(wallet, MAX_ALLOW_RULES_LISTED)).await?;
        rules.retain(|rule| rule.org_id == caller.org_id);
        rules.sort_by_key(|rule| std::cmp::Reverse(rule.created_at));
        Ok(rules)
    }

    /// `DELETE /v1/wallets/{id}/allow-rules/{rid}` (`policies:write`): later payments to that
    /// payee are reviewed again.
    pub async fn delete_allow_rule(&self, caller: &Caller, wallet: &WalletId, id: &AllowRuleId) -> AppResult<()> {
        let caller = caller.key()?;
        require(caller, Permission::PoliciesWrite)?;
        ensure_wallet(caller, wallet)?;
        let r = self.reader();
        self.engine
            .commit(&r, || async {
                r.read_owned::<Wallet>(&wallet_key(wallet), &caller.org_id).await?;
                let listed = r.query(allow_rules_query(wallet, MAX_ALLOW_RULES_LISTED)).await?;
                let found = listed
                    .into_iter()
                    .filter_map(|item| crate::layout::decode::<AllowRule>(item).ok())
                    .find(|s| &s.value.id == id && s.value.org_id == caller.org_id)
                    .ok_or(AppError::NotFound("allow rule"))?;
                let mut tx = Tx::new(&caller.org_id, crate::domain::audit::Actor::Key(caller.id.clone()), self.now());
                tx.delete(&found);
                let details = json!({"allowRuleId": id, "recipient": found.value.recipient, "hits": found.value.hits});
                tx.audit("allow_rule.deleted", "wallet", wallet.as_str(), details)?;
                Ok(tx.done(()))
            })
            .await
    }
}
