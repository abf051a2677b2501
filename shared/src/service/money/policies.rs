//! Policies attached to wallets. Every policy change also rewrites its wallet (a new version), so
//! a payment decided on the old policy set (its plan checks the wallet's version) is decided
//! again, and two concurrent creations cannot both pass the per-wallet cap. Every change also
//! keeps the policy as it became, as an immutable numbered version (`PolicyVersion`).

use crate::engine::Reader;
use serde_json::json;

use crate::domain::audit::Actor;
use crate::domain::ids::{OrgId, PolicyId, WalletId};
use crate::domain::input::InputError;
use crate::domain::money::Amount;
use crate::domain::org::ApiKey;
use crate::domain::permission::Permission;
use crate::domain::policy::{evaluate, ActionKind, Decision, PaymentFacts, Policy, PolicyPatch};
use crate::domain::policy_set::PolicySet;
use crate::domain::policy_version::PolicyVersion;
use crate::domain::score::Score;
use crate::domain::wallet::Wallet;
use crate::engine::plan::Tx;
use crate::error::AppResult;
use crate::layout::{self, policy_key, wallet_key, Stored};
use crate::ports::Query;
use crate::service::paging::{Page, PageRequest};
use crate::service::{ensure_wallet, require, Caller, UseCases};

/// What `POST /v1/wallets/{id}/policies/evaluate` asks: would this payment or refund from the
/// wallet execute, be held, or be denied, now?
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluateRequest {
    pub kind: ActionKind,
    pub amount: Amount,
    pub risk_score: Option<Score>,
    /// The recipient (for a refund: the payer); without it the recipient rules are skipped.
    pub to: Option<WalletId>,
}

/// A wallet may carry at most this many policies (all are read on every payment).
pub const MAX_POLICIES_PER_WALLET: usize = 50;

impl UseCases {
    /// What the wallet's policies would decide now (today's spend and the trailing hour's count
    /// included), written nowhere (RefundKit's `engine.evaluate`).
    pub async fn evaluate_policies(
        &self,
        caller: &Caller,
        wallet_id: &WalletId,
        request: EvaluateRequest,
    ) -> AppResult<Decision> {
        let caller = caller.key()?;
        require(caller, Permission::WalletsRead)?;
        let wallet = self.reader().owned_wallet(caller, wallet_id).await?.value;
        let amount = request.amount.in_currency(wallet.currency())?;
        let policies = self.reader().wallet_policies(wallet_id).await?;
        let now = self.now();
        let velocity = self.reader().velocity(&wallet, &policies, request.kind).await?;
        let facts = PaymentFacts {
            recipient: request.to.as_ref(),
            spent_today: wallet.spent_today(now),
            payments_last_hour: velocity.as_ref().map_or(0, |v| v.trailing_hour(now)),
            ..PaymentFacts::new(request.kind, amount, wallet_id, request.risk_score)
        };
        Ok(evaluate(&policies, &facts))
    }

    /// A policy made at once, past four-eyes: for the first run's setup and tests only (every
    /// door goes through `submit_change`). `patch` must name the policy.
    pub(crate) async fn create_policy(
        &self,
        caller: &Caller,
        wallet_id: &WalletId,
        patch: PolicyPatch,
    ) -> AppResult<Policy> {
        let caller = caller.key()?;
        require(caller, Permission::PoliciesWrite)?;
        patch.name.as_ref().ok_or(InputError::Missing { field: "name" })?;
        ensure_wallet(caller, wallet_id)?;
        let r = self.reader();
        self.engine
            .commit(&r, || async {
                let mut tx = Tx::new(&caller.org_id, Actor::Key(caller.id.clone()), self.now());
                let policy = plan_policy_create(&r, &mut tx, &caller.org_id, wallet_id, &patch).await?;
                Ok(tx.done(policy))
            })
            .await
    }

    pub async fn list_policies(&self, caller: &Caller, wallet_id: &WalletId) -> AppResult<Vec<Policy>> {
        let caller = caller.key()?;
        require(caller, Permission::WalletsRead)?;
        self.reader().owned_wallet(caller, wallet_id).await?;
        Ok(self.reader().wallet_policies(wallet_id).await?.list)
    }

    pub async fn get_policy(&self, caller: &Caller, wallet_id: &WalletId, policy_id: &PolicyId) -> AppResult<Policy> {
        let caller = caller.key()?;
        require(caller, Permission::WalletsRead)?;
        ensure_wallet(caller, wallet_id)?;
        Ok(self.reader().read_owned::<Policy>(&policy_key(wallet_id, policy_id), &caller.org_id).await?.value)
    }

    /// `GET /v1/wallets/{id}/policies/{pid}/versions`: the policy's versions, oldest first, a
    /// page at a time (still there once the policy is deleted; its last version says so). A
    /// policy made before versions starts its history at its first change.
    pub async fn list_policy_versions(
        &self,
        caller: &Caller,
        wallet_id: &WalletId,
        policy_id: &PolicyId,
        page: &PageRequest,
    ) -> AppResult<Page<PolicyVersion>> {
        let caller = caller.key()?;
        require(caller, Permission::WalletsRead)?;
        self.reader().owned_wallet(caller, wallet_id).await?;
        let query = layout::policy_versions_query(wallet_id, policy_id, page.limit);
        let org = &caller.org_id;
        let versions = self.page(query, page, |v: &PolicyVersion| &v.org_id == org).await?;
        if page.after.is_none() && versions.data.is_empty() {
            // No versions: a policy made before versions and never changed since has none (an
            // empty list); anything else is no policy.
            self.reader().read_owned::<Policy>(&policy_key(wallet_id, policy_id), org).await?;
        }
        Ok(versions)
    }

    /// `GET /v1/wallets/{id}/policies/{pid}/versions/{n}`.
    pub async fn get_policy_version(
        &self,
        caller: &Caller,
        wallet_id: &WalletId,
        policy_id: &PolicyId,
        version: u32,
    ) -> AppResult<PolicyVersion> {
        let caller = caller.key()?;
        require(caller, Permission::WalletsRead)?;
        ensure_wallet(caller, wallet_id)?;
        let key = layout::policy_version_key(wallet_id, policy_id, version);
        Ok(self.reader().read_owned::<PolicyVersion>(&key, &caller.org_id).await?.value)
    }

    /// A policy deleted at once, past four-eyes (the service's own tests).
    #[cfg(test)]
    pub(crate) async fn delete_policy(
        &self,
        caller: &Caller,
        wallet_id: &WalletId,
        policy_id: &PolicyId,
    ) -> AppResult<PolicyId> {
        let caller = caller.key()?;
        require(caller, Permission::PoliciesWrite)?;
        ensure_wallet(caller, wallet_id)?;
        let r = self.reader();
        self.engine
            .commit(&r, || async {
                let mut tx = Tx::new(&caller.org_id, Actor::Key(caller.id.clone()), self.now());
                let deleted = plan_policy_delete(&r, &mut tx, &caller.org_id, wallet_id, policy_id).await?;
                Ok(tx.done(deleted))
            })
            .await
    }
}

/// A wallet of `org`, read for a policy change (another organisation's wallet is not found).
async fn org_wallet(r: &Reader, org: &OrgId, wallet: &WalletId) -> AppResult<Stored<Wallet>> {
    r.read_owned::<Wallet>(&wallet_key(wallet), org).await
}

/// Plans a new policy on `org`'s `wallet` from `patch` (which must name it) into `tx`: its
/// escalation teams must be `org`'s, the wallet stays under `MAX_POLICIES_PER_WALLET`, the
/// wallet's policy set moves, version 1 is kept, and the change is audited by `tx`'s actor. Permissions (and a
/// key's wallet binding) are the caller's to check.
pub(crate) async fn plan_policy_create(
    r: &Reader,
    tx: &mut Tx,
    org: &OrgId,
    wallet_id: &WalletId,
    patch: &PolicyPatch,
) -> AppResult<Policy> {
    let name = patch.name.clone().ok_or(InputError::Missing { field: "name" })?;
    r.ensure_teams(org, patch.escalation_chain.as_deref().unwrap_or_default()).await?;
    let wallet = org_wallet(r, org, wallet_id).await?;
    let policies = r.wallet_policies(wallet_id).await?;
    if policies.len() >= MAX_POLICIES_PER_WALLET {
        return Err(InputError::invalid(
            "walletId",
            format!("a wallet may have at most {MAX_POLICIES_PER_WALLET} policies"),
        )
        .into());
    }
    let mut policy = Policy::unrestricted(org.clone(), wallet_id.clone(), name, tx.now());
    policy.apply(patch, wallet.value.currency(), tx.now())?;
    tx.create(&policy)?;
    tx.create(&PolicyVersion::of(&policy, tx.actor().name(), tx.now()))?;
    let mut list = policies.list.clone();
    list.push(policy.clone());
    policies.changed(tx, list)?;
    tx.audit("policy.created", "policy", policy.id.as_str(), json!({"walletId": policy.wallet_id}))?;
    Ok(policy)
}

/// Plans `patch` on a policy of `org`'s `wallet` into `tx`: the policy's next version (kept
/// beside it), the wallet's policy set moves, the change is audited by `tx`'s actor. Permissions are the caller's to check.
pub(crate) async fn plan_policy_update(
    r: &Reader,
    tx: &mut Tx,
    org: &OrgId,
    wallet_id: &WalletId,
    policy_id: &PolicyId,
    patch: &PolicyPatch,
) -> AppResult<Policy> {
    r.ensure_teams(org, patch.escalation_chain.as_deref().unwrap_or_default()).await?;
    let wallet = org_wallet(r, org, wallet_id).await?;
    let mut policy = r.read_owned::<Policy>(&policy_key(wallet_id, policy_id), org).await?;
    let policies = r.wallet_policies(wallet_id).await?;
    policy.value.apply(patch, wallet.value.currency(), tx.now())?;
    policy.value.version = policy.value.version.saturating_add(1);
    tx.update(&policy)?;
    // Created, never overwritten: two changes planned from one read conflict on it as well as
    // on the policy.
    tx.create(&PolicyVersion::of(&policy.value, tx.actor().name(), tx.now()))?;
    let list = policies.list.iter().map(|p| if p.id == policy.value.id { &policy.value } else { p });
    let list = list.cloned().collect();
    policies.changed(tx, list)?;
    tx.audit("policy.updated", "policy", policy.value.id.as_str(), json!({"policy": policy.value}))?;
    Ok(policy.value)
}

/// Plans the deletion of a policy of `org`'s `wallet` into `tx`: a final version marked
/// deleted is kept, the wallet's policy set moves, the change is audited by `tx`'s actor. Permissions are the caller's to check.
pub(crate) async fn plan_policy_delete(
    r: &Reader,
    tx: &mut Tx,
    org: &OrgId,
    wallet_id: &WalletId,
    policy_id: &PolicyId,
) -> AppResult<PolicyId> {
    org_wallet(r, org, wallet_id).await?;
    let policy = r.read_owned::<Policy>(&policy_key(wallet_id, policy_id), org).await?;
    let policies = r.wallet_policies(wallet_id).await?;
    tx.delete(&policy);
    tx.create(&PolicyVersion::deletion(&policy.value, tx.actor().name(), tx.now()))?;
    let list = policies.list.iter().filter(|p| &p.id != policy_id).cloned().collect();
    policies.changed(tx, list)?;
    tx.audit("policy.deleted", "policy", policy_id.as_str(), json!({"walletId": wallet_id}))?;
    Ok(policy_id.clone())
}

/// The query that reads every policy of `wallet` (for a wallet made before policy sets).
pub(crate) fn policies_query(wallet: &WalletId) -> Query {
    layout::partition_query(format!("WALLET#{wallet}"), "POLICY#", MAX_POLICIES_PER_WALLET)
}

/// A wallet's policies as read, with its policy set as read: a plan decided on them checks the
/// set (`check`), and a policy change moves it (`changed`).
pub(crate) struct WalletPolicies {
    pub list: Vec<Policy>,
    set: Option<Stored<PolicySet>>,
    wallet: WalletId,
}

impl std::ops::Deref for WalletPolicies {
    type Target = [Policy];
    fn deref(&self) -> &[Policy] {
        &self.list
    }
}

impl WalletPolicies {
    /// Commits only if no policy of the wallet changed since they were read.
    pub fn check(&self, tx: &mut Tx) {
        match &self.set {
            Some(set) => tx.check(set),
            None => tx.check_absent(layout::policy_set_key(&self.wallet)),
        }
    }

    /// A policy change: the wallet's policies are now `policies`; the set moves (made on the
    /// first change of a wallet older than sets), so plans decided on the policies as they were
    /// decide again.
    pub fn changed(self, tx: &mut Tx, policies: Vec<Policy>) -> AppResult<()> {
        match self.set {
            Some(mut set) => {
                set.value.changed(policies, tx.now());
                tx.update(&set)
            }
            None => {
                let mut set = PolicySet::new(tx.org().clone(), self.wallet, tx.now());
                set.changed(policies, tx.now());
                tx.create(&set)
            }
        }
    }
}

impl Reader {
    pub(crate) async fn owned_wallet(&self, caller: &ApiKey, wallet: &WalletId) -> AppResult<Stored<Wallet>> {
        ensure_wallet(caller, wallet)?;
        self.read_owned::<Wallet>(&wallet_key(wallet), &caller.org_id).await
    }

    /// Escalation tiers must be teams of the caller's organisation.
    pub(crate) async fn ensure_teams(
        &self,
        org: &crate::domain::ids::OrgId,
        teams: &[crate::domain::ids::TeamId],
    ) -> AppResult<()> {
        for team in teams {
            self.read_owned::<crate::domain::people::Team>(&crate::layout::team_key(org, team), org).await?;
        }
        Ok(())
    }

    /// Every policy of a wallet (one partition read; bounded by `MAX_POLICIES_PER_WALLET`).
    /// The wallet's policies, from its policy set (one read by key, fetched ahead with a
    /// payment's other reads); for a wallet made before policy sets, by a query of its policies.
    pub(crate) async fn wallet_policies(&self, wallet: &WalletId) -> AppResult<WalletPolicies> {
        let wallet = wallet.clone();
        let set = self.read::<PolicySet>(&layout::policy_set_key(&wallet)).await?;
        if let Some(list) = set.as_ref().and_then(|s| s.value.policies.clone()) {
            return Ok(WalletPolicies { list, set, wallet });
        }
        // Too large to copy, or a wallet older than sets: the policies themselves (read after
        // the set, so a change committed in between moved the set this plan checks).
        let items = self.query(policies_query(&wallet)).await?;
        let list: AppResult<Vec<Policy>> =
            items.into_iter().map(|i| layout::decode::<Policy>(i).map(|s| s.value)).collect();
        Ok(WalletPolicies { list: list?, set, wallet })
    }
}
