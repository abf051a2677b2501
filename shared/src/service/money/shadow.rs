//! Shadow policies (docs/api.md, "Shadow policies"): each enabled shadow policy of the paying
//! wallet is evaluated alone on every payment and refund it applies to, on the facts the real
//! decision was made on; what it would have done is recorded on the payment or refund
//! (`shadowDecisions`) and counted on its would-have record in the same transaction, in place.
//! Wallets without shadow policies read and write nothing more.

use futures::future::try_join_all;

use crate::domain::ids::{OrgId, PolicyId, WalletId};
use crate::domain::permission::Permission;
use crate::domain::policy::{shadow_decisions, ActionKind, Outcome, PaymentFacts, Policy, ShadowDecision};
use crate::domain::shadow::ShadowStats;
use crate::engine::plan::Tx;
use crate::engine::Reader;
use crate::error::AppResult;
use crate::layout::{policy_key, shadow_stats_key, Stored};
use crate::service::money::in_place;
use crate::service::{ensure_wallet, require, Caller, UseCases};

/// A wallet's shadow policies for one kind, with their would-have records as read (absent
/// until a policy's first counted evaluation).
pub(crate) struct Shadows {
    policies: Vec<Policy>,
    stats: Vec<Option<Stored<ShadowStats>>>,
    org: OrgId,
    wallet: WalletId,
}

impl Reader {
    /// The shadow policies among `policies` watching `kind`, and their would-have records (read
    /// by key, together; nothing is read when there are none).
    pub(crate) async fn shadows(
        &self,
        org: &OrgId,
        wallet: &WalletId,
        policies: &[Policy],
        kind: ActionKind,
    ) -> AppResult<Shadows> {
        let policies: Vec<Policy> = policies.iter().filter(|p| p.shadows(kind)).cloned().collect();
        let keys: Vec<_> = policies.iter().map(|p| shadow_stats_key(wallet, &p.id)).collect();
        let stats = try_join_all(keys.iter().map(|k| self.read::<ShadowStats>(k))).await?;
        Ok(Shadows { policies, stats, org: org.clone(), wallet: wallet.clone() })
    }
}

impl Shadows {
    /// What each shadow policy would have decided on `facts`, counted in `tx` against the real
    /// outcome `real`: moved in place, or the record made on a policy's first evaluation.
    pub fn record(self, tx: &mut Tx, facts: &PaymentFacts<'_>, real: Outcome) -> AppResult<Vec<ShadowDecision>> {
        let decisions = shadow_decisions(&self.policies, facts);
        let now = tx.now();
        for (decision, stats) in decisions.iter().zip(self.stats) {
            match stats {
                Some(mut stored) => {
                    stored.value.count(decision.outcome, real);
                    tx.adjust(&stored, in_place::count_shadow(decision.outcome, real))?;
                }
                None => tx.create(&ShadowStats::first(
                    self.org.clone(),
                    self.wallet.clone(),
                    decision.policy_id.clone(),
                    now,
                    decision.outcome,
                    real,
                ))?,
            }
        }
        Ok(decisions)
    }
}

/// A policy with its would-have counts (none before its first counted evaluation).
#[derive(Debug, Clone)]
pub struct PolicyShadowStats {
    pub policy: Policy,
    pub stats: Option<ShadowStats>,
}

impl UseCases {
    /// `GET /v1/wallets/{id}/policies/{pid}/shadow-stats`: its would-have counts, whatever its
    /// mode now (an enforcing policy answers what it counted while in shadow, or zeros).
    pub async fn shadow_stats(
        &self,
        caller: &Caller,
        wallet_id: &WalletId,
        policy_id: &PolicyId,
    ) -> AppResult<PolicyShadowStats> {
        let caller = caller.key()?;
        require(caller, Permission::WalletsRead)?;
        ensure_wallet(caller, wallet_id)?;
        let r = self.reader();
        let (policy_key, stats_key) = (policy_key(wallet_id, policy_id), shadow_stats_key(wallet_id, policy_id));
        let (policy, stats) =
            tokio::try_join!(r.read_owned::<Policy>(&policy_key, &caller.org_id), r.read::<ShadowStats>(&stats_key),)?;
        Ok(PolicyShadowStats {
            policy: policy.value,
            stats: stats.map(|s| s.value).filter(|s| s.org_id == caller.org_id),
        })
    }
}
