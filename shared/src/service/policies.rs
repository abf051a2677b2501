//! Policies attached to wallets.

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;

use super::auth::parse;
use super::commit::{Plan, Reply, ReplyStatus};
use super::records::{self, policy_key, wallet_key};
use super::wallets::parse_wallet_id;
use super::{require, Caller, Countersign};
use crate::domain::audit::AuditEntry;
use crate::domain::ids::{PolicyId, WalletId};
use crate::domain::input::{self, InputError, MAX_ID_LIST};
use crate::domain::money::{Currency, Money};
use crate::domain::org::ApiKey;
use crate::domain::payment::Score;
use crate::domain::permission::Permission;
use crate::domain::policy::Policy;
use crate::domain::wallet::Wallet;
use crate::error::{AppError, AppResult};
use crate::ports::{Index, Query};
use crate::service::records::Stored;

/// A wallet may carry at most this many policies (all are read on every payment).
pub const MAX_POLICIES_PER_WALLET: usize = 50;
const MAX_TTL_SECONDS: u64 = super::MAX_APPROVAL_TTL_SECONDS;
const MAX_REQUIRED_APPROVALS: u32 = 10;

/// Every field optional: creation fills defaults, PATCH changes only what is sent. A JSON `null`
/// clears an optional limit.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PolicyFields {
    name: Option<String>,
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    max_transaction_amount: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    daily_spending_limit: Option<serde_json::Value>,
    approved_recipients: Option<Vec<String>>,
    blocked_recipients: Option<Vec<String>>,
    require_human_approval: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    auto_approve_below: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    require_review_above: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    auto_reject_above: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    risk_score_threshold: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    approval_ttl_seconds: Option<serde_json::Value>,
    required_approvals: Option<u32>,
}

/// Keeps an explicit `null` as `Some(Value::Null)` so PATCH can tell "clear" from "absent".
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

fn limit(field: &'static str, value: &serde_json::Value, currency: Currency) -> AppResult<Option<Decimal>> {
    if value.is_null() {
        return Ok(None);
    }
    Money::parse_json(value, currency)
        .map(|m| Some(m.amount()))
        .map_err(|source| InputError::Amount { field, source }.into())
}

fn recipients(field: &'static str, ids: &[String]) -> AppResult<Vec<WalletId>> {
    if ids.len() > MAX_ID_LIST {
        return Err(InputError::invalid(field, format!("must list at most {MAX_ID_LIST} wallets")).into());
    }
    ids.iter()
        .map(|id| {
            WalletId::parse(id).ok_or_else(|| InputError::invalid(field, format!("{id:?} is not a wallet id")).into())
        })
        .collect()
}

impl PolicyFields {
    fn apply(&self, policy: &mut Policy, currency: Currency) -> AppResult<()> {
        if let Some(name) = &self.name {
            policy.name = input::name("name", name)?;
        }
        if let Some(enabled) = self.enabled {
            policy.enabled = enabled;
        }
        let amounts: [(&'static str, &Option<serde_json::Value>, &mut Option<Decimal>); 5] = [
            ("maxTransactionAmount", &self.max_transaction_amount, &mut policy.max_transaction_amount),
            ("dailySpendingLimit", &self.daily_spending_limit, &mut policy.daily_spending_limit),
            ("autoApproveBelow", &self.auto_approve_below, &mut policy.auto_approve_below),
            ("requireReviewAbove", &self.require_review_above, &mut policy.require_review_above),
            ("autoRejectAbove", &self.auto_reject_above, &mut policy.auto_reject_above),
        ];
        for (field, value, target) in amounts {
            if let Some(value) = value {
                *target = limit(field, value, currency)?;
            }
        }
        if let Some(ids) = &self.approved_recipients {
            policy.approved_recipients = recipients("approvedRecipients", ids)?;
        }
        if let Some(ids) = &self.blocked_recipients {
            policy.blocked_recipients = recipients("blockedRecipients", ids)?;
        }
        if let Some(flag) = self.require_human_approval {
            policy.require_human_approval = flag;
        }
        if let Some(value) = &self.risk_score_threshold {
            policy.risk_score_threshold = match value {
                serde_json::Value::Null => None,
                v => Some(
                    Score::from_json(v, Decimal::ZERO, Decimal::ONE_HUNDRED)
                        .ok_or_else(|| InputError::invalid("riskScoreThreshold", "must be a number from 0 to 100"))?,
                ),
            };
        }
        if let Some(value) = &self.approval_ttl_seconds {
            policy.approval_ttl_seconds = match value {
                serde_json::Value::Null => None,
                v => Some(v.as_u64().filter(|s| (1..=MAX_TTL_SECONDS).contains(s)).ok_or_else(|| {
                    InputError::invalid(
                        "approvalTtlSeconds",
                        format!("must be a whole number of seconds from 1 to {MAX_TTL_SECONDS}"),
                    )
                })?),
            };
        }
        if let Some(n) = self.required_approvals {
            if !(1..=MAX_REQUIRED_APPROVALS).contains(&n) {
                return Err(InputError::invalid(
                    "requiredApprovals",
                    format!("must be from 1 to {MAX_REQUIRED_APPROVALS}"),
                )
                .into());
            }
            policy.required_approvals = n;
        }
        Ok(())
    }
}

/// A rewrite of the wallet that bumps its version. Every policy change carries one, so a payment
/// decided on the old policy set (its plan checks the wallet's version) is decided again, and two
/// concurrent creations cannot both pass the per-wallet cap.
fn touch(stored: Stored<Wallet>) -> AppResult<crate::ports::Write> {
    records::update(&stored.value, stored.version)
}

fn parse_policy_id(id: &str) -> AppResult<PolicyId> {
    PolicyId::parse(id).ok_or(AppError::NotFound("policy"))
}

impl Countersign {
    async fn owned_wallet(
        &self,
        caller: &ApiKey,
        wallet: &WalletId,
    ) -> AppResult<crate::service::records::Stored<Wallet>> {
        self.read_owned::<Wallet>(&wallet_key(wallet), &caller.org_id).await
    }

    /// Every policy of a wallet (one partition read; bounded by `MAX_POLICIES_PER_WALLET`).
    pub(crate) async fn wallet_policies(&self, wallet: &WalletId) -> AppResult<Vec<Policy>> {
        let mut query = Query::new(Index::Primary, format!("WALLET#{wallet}"), MAX_POLICIES_PER_WALLET);
        query.sk_prefix = Some("POLICY#".into());
        query.newest_first = false;
        self.store
            .query(query)
            .await?
            .into_iter()
            .map(|item| records::decode::<Policy>(item).map(|s| s.value))
            .collect()
    }

    pub async fn create_policy(&self, caller: &Caller, wallet_id: &str, body: &serde_json::Value) -> AppResult<Reply> {
        let caller = caller.key()?;
        require(caller, Permission::PoliciesWrite)?;
        let wallet_id = parse_wallet_id(wallet_id)?;
        let fields: PolicyFields = parse(body)?;
        let Some(name) = &fields.name else {
            return Err(InputError::Missing { field: "name" }.into());
        };
        input::name("name", name)?;
        self.commit(&caller.org_id, None, || async {
            let stored = self.owned_wallet(caller, &wallet_id).await?;
            if self.wallet_policies(&wallet_id).await?.len() >= MAX_POLICIES_PER_WALLET {
                return Err(InputError::invalid(
                    "walletId",
                    format!("a wallet may have at most {MAX_POLICIES_PER_WALLET} policies"),
                )
                .into());
            }
            let now = self.now();
            let mut policy = Policy::unrestricted(caller.org_id.clone(), wallet_id.clone(), String::new(), now);
            fields.apply(&mut policy, stored.value.currency)?;
            let audit = AuditEntry::new(
                &policy.org_id,
                "policy.created",
                "policy",
                policy.id.as_str(),
                caller.id.as_str(),
                json!({"walletId": policy.wallet_id}),
                now,
            );
            Ok(Plan {
                writes: vec![records::create(&policy)?, touch(stored)?, records::create(&audit)?],
                reply: Reply::new(ReplyStatus::Created, &policy)?,
            })
        })
        .await
    }

    pub async fn list_policies(&self, caller: &Caller, wallet_id: &str) -> AppResult<Vec<Policy>> {
        let caller = caller.key()?;
        require(caller, Permission::WalletsRead)?;
        let wallet_id = parse_wallet_id(wallet_id)?;
        self.owned_wallet(caller, &wallet_id).await?;
        self.wallet_policies(&wallet_id).await
    }

    pub async fn get_policy(&self, caller: &Caller, wallet_id: &str, policy_id: &str) -> AppResult<Policy> {
        let caller = caller.key()?;
        require(caller, Permission::WalletsRead)?;
        let wallet_id = parse_wallet_id(wallet_id)?;
        let policy_id = parse_policy_id(policy_id)?;
        Ok(self.read_owned::<Policy>(&policy_key(&wallet_id, &policy_id), &caller.org_id).await?.value)
    }

    pub async fn update_policy(
        &self,
        caller: &Caller,
        wallet_id: &str,
        policy_id: &str,
        body: &serde_json::Value,
    ) -> AppResult<Reply> {
        let caller = caller.key()?;
        require(caller, Permission::PoliciesWrite)?;
        let wallet_id = parse_wallet_id(wallet_id)?;
        let policy_id = parse_policy_id(policy_id)?;
        let fields: PolicyFields = parse(body)?;
        if fields.name.as_ref().is_some_and(|n| n.trim().is_empty()) {
            return Err(InputError::invalid("name", "must not be blank").into());
        }
        self.commit(&caller.org_id, None, || async {
            let wallet = self.owned_wallet(caller, &wallet_id).await?;
            let stored = self.read_owned::<Policy>(&policy_key(&wallet_id, &policy_id), &caller.org_id).await?;
            let mut policy = stored.value;
            fields.apply(&mut policy, wallet.value.currency)?;
            let now = self.now();
            policy.updated_at = now;
            let audit = AuditEntry::new(
                &policy.org_id,
                "policy.updated",
                "policy",
                policy.id.as_str(),
                caller.id.as_str(),
                body.clone(),
                now,
            );
            Ok(Plan {
                writes: vec![records::update(&policy, stored.version)?, touch(wallet)?, records::create(&audit)?],
                reply: Reply::new(ReplyStatus::Ok, &policy)?,
            })
        })
        .await
    }

    pub async fn delete_policy(&self, caller: &Caller, wallet_id: &str, policy_id: &str) -> AppResult<Reply> {
        let caller = caller.key()?;
        require(caller, Permission::PoliciesWrite)?;
        let wallet_id = parse_wallet_id(wallet_id)?;
        let policy_id = parse_policy_id(policy_id)?;
        self.commit(&caller.org_id, None, || async {
            let wallet = self.owned_wallet(caller, &wallet_id).await?;
            let stored = self.read_owned::<Policy>(&policy_key(&wallet_id, &policy_id), &caller.org_id).await?;
            let now = self.now();
            let audit = AuditEntry::new(
                &caller.org_id,
                "policy.deleted",
                "policy",
                policy_id.as_str(),
                caller.id.as_str(),
                json!({"walletId": wallet_id}),
                now,
            );
            Ok(Plan {
                writes: vec![
                    crate::ports::Write::Delete {
                        key: records::Record::key(&stored.value),
                        expect: crate::ports::Expect::Version(stored.version),
                    },
                    touch(wallet)?,
                    records::create(&audit)?,
                ],
                reply: Reply::new(ReplyStatus::Ok, &json!({"id": policy_id, "deleted": true}))?,
            })
        })
        .await
    }
}
