//! Four-eyes on policy changes (docs/api.md, "Four-eyes on policy changes"). Every policy and
//! routing-rule change, and every settings change, goes through `submit_change`: it checks the
//! caller, then either applies the change at once or, while the organisation's
//! `policyChangesNeedApproval` is on, validates it exactly as applying would (the same plan, made
//! on a transaction that is thrown away: the same refusals, nothing written) and records it as a
//! pending `PolicyChange`. Another person approves it (`approve_policy_change`): in one
//! transaction the change moves from pending to applied, conditional on the version read, and
//! its plan's writes commit, so it is applied exactly once; a plan that fails now (the policy was
//! deleted meanwhile, the wallet is full) refuses as the direct call would and leaves it pending.
//!
//! Which settings changes wait: only turning four-eyes off while it is on. Turning it on applies
//! at once, and so does every other settings change (the default team is not a policy).

use serde::Serialize;
use serde_json::{json, Value};

use crate::domain::audit::Actor;
use crate::domain::event::{kinds, Event};
use crate::domain::ids::{OrgId, PolicyChangeId, PolicyId, RoutingRuleId, WalletId};
use crate::domain::org::{ApiKey, OrgSettings};
use crate::domain::permission::{self, Permission};
use crate::domain::policy::{Policy, PolicyPatch};
use crate::domain::policy_change::{diff, ChangeActor, ChangeKind, ChangeStatus, ChangeTarget, PolicyChange};
use crate::domain::routing::RoutingRule;
use crate::engine::plan::{PlanError, Tx};
use crate::engine::Reader;
use crate::error::{AppError, AppResult};
use crate::layout::{self, policy_change_key, policy_key, rule_key, settings_key, Stored};
use crate::ports::{Index, Query};
use crate::service::money::policies::{plan_policy_create, plan_policy_delete, plan_policy_update};
use crate::service::org::people::{plan_rule_create, plan_rule_delete, plan_rule_update};
use crate::service::org::settings::plan_settings_update;
use crate::service::UseCases;
use crate::service::{ensure_wallet, Caller, NewRoutingRule, Page, PageRequest, RoutingRulePatch, SettingsPatch};

/// A change as the API parsed it: what to do, to which object.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeRequest {
    PolicyCreate { wallet: WalletId, patch: PolicyPatch },
    PolicyUpdate { wallet: WalletId, policy: PolicyId, patch: PolicyPatch },
    PolicyDelete { wallet: WalletId, policy: PolicyId },
    RuleCreate(NewRoutingRule),
    RuleUpdate { rule: RoutingRuleId, patch: RoutingRulePatch },
    RuleDelete { rule: RoutingRuleId },
    Settings(SettingsPatch),
}

impl ChangeRequest {
    pub fn kind(&self) -> ChangeKind {
        match self {
            ChangeRequest::PolicyCreate { .. } => ChangeKind::PolicyCreate,
            ChangeRequest::PolicyUpdate { .. } => ChangeKind::PolicyUpdate,
            ChangeRequest::PolicyDelete { .. } => ChangeKind::PolicyDelete,
            ChangeRequest::RuleCreate(_) => ChangeKind::RoutingRuleCreate,
            ChangeRequest::RuleUpdate { .. } => ChangeKind::RoutingRuleUpdate,
            ChangeRequest::RuleDelete { .. } => ChangeKind::RoutingRuleDelete,
            ChangeRequest::Settings(_) => ChangeKind::SettingsUpdate,
        }
    }

    pub fn target(&self) -> ChangeTarget {
        let mut target = ChangeTarget::default();
        match self {
            ChangeRequest::PolicyCreate { wallet, .. } => target.wallet_id = Some(wallet.clone()),
            ChangeRequest::PolicyUpdate { wallet, policy, .. } | ChangeRequest::PolicyDelete { wallet, policy } => {
                target.wallet_id = Some(wallet.clone());
                target.policy_id = Some(policy.clone());
            }
            ChangeRequest::RuleUpdate { rule, .. } | ChangeRequest::RuleDelete { rule } => {
                target.rule_id = Some(rule.clone())
            }
            ChangeRequest::RuleCreate(_) | ChangeRequest::Settings(_) => {}
        }
        target
    }

    /// The request without turning four-eyes off (for when it is off already).
    fn without_switching_off(&self) -> ChangeRequest {
        match self {
            ChangeRequest::Settings(patch) if patch.policy_changes_need_approval == Some(false) => {
                ChangeRequest::Settings(SettingsPatch { policy_changes_need_approval: None, ..patch.clone() })
            }
            other => other.clone(),
        }
    }

    /// Whether it waits for another person while four-eyes is on: every policy and rule change,
    /// and turning four-eyes off.
    fn needs_approval(&self) -> bool {
        match self {
            ChangeRequest::Settings(patch) => patch.policy_changes_need_approval == Some(false),
            _ => true,
        }
    }
}

/// What an applied change made, changed or deleted: as the direct call answers it.
// Made once per change and returned by value: boxing the policy would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Applied {
    Policy(Policy),
    PolicyDeleted(PolicyId),
    Rule(RoutingRule),
    RuleDeleted(RoutingRuleId),
    Settings(OrgSettings),
}

impl Applied {
    /// The id of what it touched (the organisation's, for the settings).
    fn result_id(&self) -> String {
        match self {
            Applied::Policy(p) => p.id.to_string(),
            Applied::PolicyDeleted(id) => id.to_string(),
            Applied::Rule(r) => r.id.to_string(),
            Applied::RuleDeleted(id) => id.to_string(),
            Applied::Settings(s) => s.org_id.to_string(),
        }
    }

    /// The object afterwards, as the API shows it (`null` once deleted).
    fn shown(&self) -> Value {
        match self {
            Applied::PolicyDeleted(_) | Applied::RuleDeleted(_) => Value::Null,
            other => serde_json::to_value(other).unwrap_or(Value::Null),
        }
    }

    /// The target, completed with what a creation made.
    fn target(&self, mut target: ChangeTarget) -> ChangeTarget {
        match self {
            Applied::Policy(p) => target.policy_id = Some(p.id.clone()),
            Applied::Rule(r) => target.rule_id = Some(r.id.clone()),
            _ => {}
        }
        target
    }
}

/// A change submitted: applied at once, or waiting for another person.
#[derive(Debug, Clone)]
pub enum Submitted {
    Applied(Applied),
    Pending(PolicyChange),
}

/// Reads a stored change's request back into a `ChangeRequest` (the API's own parsers: the body
/// is applied exactly as a direct call would read it).
pub type ChangeParser = fn(&PolicyChange) -> AppResult<ChangeRequest>;

/// Whom a change's kind needs, as the direct call would: `policies:write` and the wallet for a
/// policy, an organiser with `policies:write` for a routing rule, an organiser admin for the
/// settings.
fn may_change<'a>(caller: &'a Caller, kind: ChangeKind, target: &ChangeTarget) -> AppResult<&'a ApiKey> {
    match kind {
        ChangeKind::PolicyCreate | ChangeKind::PolicyUpdate | ChangeKind::PolicyDelete => {
            let key = caller.authorize(Permission::PoliciesWrite)?;
            if let Some(wallet) = &target.wallet_id {
                ensure_wallet(key, wallet)?;
            }
            Ok(key)
        }
        ChangeKind::RoutingRuleCreate | ChangeKind::RoutingRuleUpdate | ChangeKind::RoutingRuleDelete => {
            caller.organiser(Permission::PoliciesWrite)
        }
        ChangeKind::SettingsUpdate => caller.organiser(Permission::Admin),
    }
}

/// Whether `key` sees `change`: a wallet's policy change if it may use the wallet; routing-rule
/// and settings changes if it acts for the whole organisation and may change policies (what
/// reading routing rules needs).
fn may_see(key: &ApiKey, change: &PolicyChange) -> bool {
    match &change.target.wallet_id {
        Some(wallet) if change.kind.is_policy() => key.may_use(wallet),
        _ => key.wallet_ids.is_empty() && permission::allows(&key.permissions, Permission::PoliciesWrite),
    }
}

fn actor(key: &ApiKey) -> ChangeActor {
    ChangeActor { key_id: key.id.clone(), person: key.person(), principal: Some(key.principal()) }
}

/// Plans `request` into `tx`: the same plan whether applied at once, validated for a pending
/// change, or applied on approval.
async fn plan_request(r: &Reader, tx: &mut Tx, org: &OrgId, request: &ChangeRequest) -> Result<Applied, PlanError> {
    Ok(match request {
        ChangeRequest::PolicyCreate { wallet, patch } => {
            Applied::Policy(plan_policy_create(r, tx, org, wallet, patch).await?)
        }
        ChangeRequest::PolicyUpdate { wallet, policy, patch } => {
            Applied::Policy(plan_policy_update(r, tx, org, wallet, policy, patch).await?)
        }
        ChangeRequest::PolicyDelete { wallet, policy } => {
            Applied::PolicyDeleted(plan_policy_delete(r, tx, org, wallet, policy).await?)
        }
        ChangeRequest::RuleCreate(rule) => Applied::Rule(plan_rule_create(r, tx, org, rule).await?),
        ChangeRequest::RuleUpdate { rule, patch } => Applied::Rule(plan_rule_update(r, tx, org, rule, patch).await?),
        ChangeRequest::RuleDelete { rule } => Applied::RuleDeleted(plan_rule_delete(r, tx, org, rule).await?),
        ChangeRequest::Settings(patch) => Applied::Settings(plan_settings_update(r, tx, org, patch).await?),
    })
}

/// The object a change touches as it is now, as the API shows it (`null` for a creation, or
/// when it is missing: the plan reports that), with its stored version (`None` then).
async fn before(r: &Reader, org: &OrgId, request: &ChangeRequest) -> AppResult<(Value, Option<u64>)> {
    fn shown<R: Serialize + crate::engine::Owned>(stored: Option<Stored<R>>, org: &OrgId) -> (Value, Option<u64>) {
        stored
            .filter(|s| s.value.org_id() == org)
            .and_then(|s| Some((serde_json::to_value(s.value).ok()?, Some(s.version))))
            .unwrap_or((Value::Null, None))
    }
    Ok(match request {
        ChangeRequest::PolicyCreate { .. } | ChangeRequest::RuleCreate(_) => (Value::Null, None),
        ChangeRequest::PolicyUpdate { wallet, policy, .. } | ChangeRequest::PolicyDelete { wallet, policy } => {
            shown(r.read::<Policy>(&policy_key(wallet, policy)).await?, org)
        }
        ChangeRequest::RuleUpdate { rule, .. } | ChangeRequest::RuleDelete { rule } => {
            shown(r.read::<RoutingRule>(&rule_key(org, rule)).await?, org)
        }
        ChangeRequest::Settings(_) => {
            let stored = r.read::<OrgSettings>(&settings_key(org)).await?;
            let version = stored.as_ref().map(|s| s.version);
            let settings = stored.map_or_else(|| OrgSettings::defaults(org.clone()), |s| s.value);
            (serde_json::to_value(settings).unwrap_or(Value::Null), version)
        }
    })
}

/// `policy.changed` for a change applied at once (no change record: `changeId` is null).
fn applied_at_once(
    org: &OrgId,
    kind: ChangeKind,
    target: &ChangeTarget,
    applied: &Applied,
    diff: Vec<crate::domain::policy_change::FieldChange>,
    by: &ChangeActor,
    at: chrono::DateTime<chrono::Utc>,
) -> Event {
    let target = applied.target(target.clone());
    let data = json!({
        "changeId": null, "kind": kind, "target": target, "diff": diff, "status": ChangeStatus::Applied,
        "requestedBy": by, "decidedBy": by, "result": applied.result_id(),
    });
    let wallets = target.wallet_id.iter().cloned().collect();
    Event { wallet_ids: wallets, ..Event::new(org, kinds::POLICY_CHANGED, data, at) }
}

/// `?status=` of `GET /v1/policy-changes`.
#[derive(Debug, Clone, Default)]
pub struct ChangeFilter {
    pub status: Option<ChangeStatus>,
}

impl UseCases {
    /// A policy, routing-rule or settings change by `caller`, with the body as received
    /// (`body`, already parsed into `request`): applied at once, or, while the organisation's
    /// four-eyes is on, validated and recorded as a pending change.
    pub async fn submit_change(&self, caller: &Caller, request: ChangeRequest, body: Value) -> AppResult<Submitted> {
        let (kind, target) = (request.kind(), request.target());
        let key = may_change(caller, kind, &target)?;
        let org = &key.org_id;
        let by = actor(key);
        let r = self.reader();
        self.engine
            .commit(&r, || async {
                let settings = r.read::<OrgSettings>(&settings_key(org)).await?;
                let four_eyes = settings.as_ref().is_some_and(|s| s.value.policy_changes_need_approval);
                let mut tx = Tx::new(org, Actor::Key(key.id.clone()), self.now());
                // Turning four-eyes off while it is off changes nothing: dropped, so a request
                // that read it off cannot switch it off after another admin turned it on.
                let request = if four_eyes { request.clone() } else { request.without_switching_off() };
                let (before, version) = before(&r, org, &request).await?;
                if four_eyes && request.needs_approval() {
                    // Validated by the very plan that would apply it, on a transaction thrown away.
                    let mut scratch = Tx::new(org, Actor::Key(key.id.clone()), tx.now());
                    let applied = plan_request(&r, &mut scratch, org, &request).await?;
                    let diff = diff(&before, &applied.shown());
                    let mut change = PolicyChange::requested(
                        org.clone(),
                        kind,
                        target.clone(),
                        body.clone(),
                        diff,
                        by.clone(),
                        tx.now(),
                    );
                    change.target_version = version;
                    tx.create(&change)?;
                    if let Some(settings) = &settings {
                        tx.check(settings);
                    }
                    let details = json!({"kind": kind, "target": change.target, "diff": change.diff});
                    tx.audit("policy_change.requested", "policy_change", change.id.as_str(), details)?;
                    tx.event(Event::for_policy_change(&change, kinds::POLICY_CHANGE_REQUESTED, tx.now()))?;
                    return Ok(tx.done(Submitted::Pending(change)));
                }
                let applied = plan_request(&r, &mut tx, org, &request).await?;
                // Applied at once because four-eyes was off: commit only if it still is (the
                // settings' own change writes the record, conditional on it, itself).
                if kind != ChangeKind::SettingsUpdate {
                    match &settings {
                        Some(settings) => tx.check(settings),
                        None => tx.check_absent(settings_key(org)),
                    }
                }
                let governs = match &request {
                    ChangeRequest::Settings(patch) => patch.policy_changes_need_approval.is_some(),
                    _ => true,
                };
                if governs {
                    let diff = diff(&before, &applied.shown());
                    tx.event(applied_at_once(org, kind, &target, &applied, diff, &by, tx.now()))?;
                }
                Ok(tx.done(Submitted::Applied(applied)))
            })
            .await
    }

    /// `GET /v1/policy-changes[?status=]`, newest first (`wallets:read`): a key bound to wallets
    /// sees those wallets' policy changes only.
    pub async fn list_policy_changes(
        &self,
        caller: &Caller,
        filter: &ChangeFilter,
        page: &PageRequest,
    ) -> AppResult<Page<PolicyChange>> {
        let key = caller.authorize(Permission::WalletsRead)?;
        let org = &key.org_id;
        let query = match filter.status {
            Some(status) => Query::new(
                Index::ByStatus,
                layout::by_status_partition(org, "POLICYCHANGE", &status.as_str().to_uppercase()),
                page.limit,
            ),
            None => Query::new(Index::ByOrg, layout::by_org_partition(org, "POLICYCHANGE"), page.limit),
        };
        self.page(query, page, |c: &PolicyChange| may_see(key, c)).await
    }

    /// `GET /v1/policy-changes/{id}` (`wallets:read`); one the caller may not see is not found.
    pub async fn get_policy_change(&self, caller: &Caller, id: &PolicyChangeId) -> AppResult<PolicyChange> {
        let key = caller.authorize(Permission::WalletsRead)?;
        Ok(self.reader().visible_change(key, id).await?.value)
    }

    /// `POST /v1/policy-changes/{id}/approve`: by another person than the requester, holding
    /// what the direct call needs. Applies the change and marks it applied in one transaction;
    /// a plan that fails now refuses as the direct call would, and the change stays pending.
    pub async fn approve_policy_change(
        &self,
        caller: &Caller,
        id: &PolicyChangeId,
        parse: ChangeParser,
    ) -> AppResult<PolicyChange> {
        let key = caller.authorize(Permission::PoliciesWrite)?;
        let org = &key.org_id;
        let r = self.reader();
        self.engine
            .commit(&r, || async {
                let mut change = r.visible_change(key, id).await?;
                may_change(caller, change.value.kind, &change.value.target)?;
                let by = actor(key);
                change.value.approvable_by(&by, self.now())?;
                let request = parse(&change.value)?;
                // What is approved is the diff shown: refused once the object has moved on.
                let (_, now) = before(&r, org, &request).await?;
                change.value.ensure_current(now)?;
                let mut tx = Tx::new(org, Actor::Key(key.id.clone()), self.now());
                let applied = plan_request(&r, &mut tx, org, &request).await?;
                change.value.target = applied.target(change.value.target.clone());
                change.value.approve(by, applied.result_id(), tx.now())?;
                tx.update(&change)?;
                let details = json!({"kind": change.value.kind, "result": change.value.result});
                tx.audit("policy_change.approved", "policy_change", id.as_str(), details)?;
                tx.event(Event::for_policy_change(&change.value, kinds::POLICY_CHANGED, tx.now()))?;
                Ok(tx.done(change.value))
            })
            .await
    }

    /// `POST /v1/policy-changes/{id}/reject {"reason"?}`: by anyone who could approve it, or by
    /// the requester withdrawing it. Nothing is applied.
    pub async fn reject_policy_change(
        &self,
        caller: &Caller,
        id: &PolicyChangeId,
        reason: Option<String>,
    ) -> AppResult<PolicyChange> {
        let key = caller.authorize(Permission::PoliciesWrite)?;
        let org = &key.org_id;
        let r = self.reader();
        self.engine
            .commit(&r, || async {
                let mut change = r.visible_change(key, id).await?;
                may_change(caller, change.value.kind, &change.value.target)?;
                let mut tx = Tx::new(org, Actor::Key(key.id.clone()), self.now());
                change.value.reject(actor(key), reason.clone(), tx.now())?;
                tx.update(&change)?;
                let details = json!({"kind": change.value.kind, "reason": change.value.reason});
                tx.audit("policy_change.rejected", "policy_change", id.as_str(), details)?;
                Ok(tx.done(change.value))
            })
            .await
    }
}

impl Reader {
    /// A change of `key`'s organisation that `key` may see; any other is not found.
    pub(crate) async fn visible_change(&self, key: &ApiKey, id: &PolicyChangeId) -> AppResult<Stored<PolicyChange>> {
        let change = self.read_owned::<PolicyChange>(&policy_change_key(&key.org_id, id), &key.org_id).await?;
        if !may_see(key, &change.value) {
            return Err(AppError::NotFound("policy change"));
        }
        Ok(change)
    }
}
