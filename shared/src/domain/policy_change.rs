//! Four-eyes on policy changes (docs/api.md, "Four-eyes on policy changes"): while an
//! organisation's `policyChangesNeedApproval` is on, a policy or routing-rule change (and turning
//! the setting off) is recorded as a pending `PolicyChange` and applied only when another person
//! approves it. The change keeps the request as it was validated, the ids it targets, and what
//! it would change (`diff`, per field, against the object as it was when requested).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ids::{ApiKeyId, OrgId, PolicyChangeId, PolicyId, RoutingRuleId, WalletId};
use super::people::Person;

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum ChangeKind {
    #[serde(rename = "policy.create")]
    PolicyCreate,
    #[serde(rename = "policy.update")]
    PolicyUpdate,
    #[serde(rename = "policy.delete")]
    PolicyDelete,
    #[serde(rename = "routing_rule.create")]
    RoutingRuleCreate,
    #[serde(rename = "routing_rule.update")]
    RoutingRuleUpdate,
    #[serde(rename = "routing_rule.delete")]
    RoutingRuleDelete,
    #[serde(rename = "settings.update")]
    SettingsUpdate,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::PolicyCreate => "policy.create",
            ChangeKind::PolicyUpdate => "policy.update",
            ChangeKind::PolicyDelete => "policy.delete",
            ChangeKind::RoutingRuleCreate => "routing_rule.create",
            ChangeKind::RoutingRuleUpdate => "routing_rule.update",
            ChangeKind::RoutingRuleDelete => "routing_rule.delete",
            ChangeKind::SettingsUpdate => "settings.update",
        }
    }

    /// A change to one wallet's policies (its wallet's keys may see and decide it).
    pub fn is_policy(self) -> bool {
        matches!(self, ChangeKind::PolicyCreate | ChangeKind::PolicyUpdate | ChangeKind::PolicyDelete)
    }
}

/// Where a change stands. Pending until another person approves it (applied, once) or anyone
/// allowed rejects it (the requester withdrawing it included); both are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChangeStatus {
    Pending,
    Applied,
    Rejected,
}

impl ChangeStatus {
    pub const ALL: [ChangeStatus; 3] = [ChangeStatus::Pending, ChangeStatus::Applied, ChangeStatus::Rejected];

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeStatus::Pending => "pending",
            ChangeStatus::Applied => "applied",
            ChangeStatus::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// What a change targets: the wallet and policy, or the routing rule (none for a creation's
/// new object until it is applied, nor for the settings).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeTarget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet_id: Option<WalletId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<PolicyId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<RoutingRuleId>,
}

/// One field a change moves: its value before (`null`: absent or unset) and after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldChange {
    pub field: String,
    /// Any JSON value (`null`: absent or unset).
    pub before: Value,
    /// Any JSON value (`null`: absent, unset or deleted).
    pub after: Value,
}

/// Fields that say when or where an object is, not what it decides: never part of a diff.
const NOT_COMPARED: [&str; 6] = ["id", "orgId", "walletId", "createdAt", "updatedAt", "version"];

/// The fields that differ between `before` and `after` (JSON objects as the API shows them; a
/// missing object, for a creation or a deletion, is `null`), by field name.
pub fn diff(before: &Value, after: &Value) -> Vec<FieldChange> {
    let empty = Map::new();
    let (b, a) = (before.as_object().unwrap_or(&empty), after.as_object().unwrap_or(&empty));
    let mut fields: Vec<&String> = a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))).collect();
    fields.sort();
    fields
        .into_iter()
        .filter(|f| !NOT_COMPARED.contains(&f.as_str()))
        .filter_map(|f| {
            let (was, now) = (b.get(f).unwrap_or(&Value::Null), a.get(f).unwrap_or(&Value::Null));
            (was != now).then(|| FieldChange { field: f.clone(), before: was.clone(), after: now.clone() })
        })
        .collect()
}

/// Who asked for or decided a change: the key, and the person it acts for (separation of
/// duties compares persons: two keys of one member are one person).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeActor {
    pub key_id: ApiKeyId,
    #[schema(value_type = String, example = "mem_01J…")]
    pub person: Person,
    /// The human the key answers for (its member, or whoever minted a key that is a person of
    /// its own); absent: the person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "mem_01J…")]
    pub principal: Option<Person>,
}

impl ChangeActor {
    fn principal(&self) -> &Person {
        self.principal.as_ref().unwrap_or(&self.person)
    }

    /// Whether the two may be one human: the same person, or keys answering for the same
    /// principal (an unbound key its minter made is its minter's).
    pub fn same_human(&self, other: &ChangeActor) -> bool {
        self.person == other.person || self.principal() == other.principal()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyChange {
    pub id: PolicyChangeId,
    pub org_id: OrgId,
    pub kind: ChangeKind,
    pub target: ChangeTarget,
    /// The request body as received (it passed validation when requested), applied as sent.
    pub request: Value,
    /// What it changes, per field, against the object as it was when requested.
    pub diff: Vec<FieldChange>,
    pub status: ChangeStatus,
    pub requested_by: ChangeActor,
    pub requested_at: DateTime<Utc>,
    pub decided_by: Option<ChangeActor>,
    pub decided_at: Option<DateTime<Utc>>,
    /// The rejecter's reason, if they gave one.
    pub reason: Option<String>,
    /// The version of the object it changes when it was requested (its `diff` is against
    /// that); approval refuses once the object has moved on, so what is approved is what applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_version: Option<u64>,
    /// Once applied: the id of the policy or rule made, changed or deleted (the organisation's
    /// for the settings).
    pub result: Option<String>,
    /// Until when it may be approved (`APPROVABLE_FOR_DAYS` after it was requested): a change
    /// nobody decided in time is not applied on a stale intent. Absent on changes requested
    /// before changes had a deadline (approvable until decided).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// How long a pending change may be approved. After that approving it answers 409
/// `POLICY_CHANGE_EXPIRED`; it can still be rejected (withdrawn), and asked for again.
pub const APPROVABLE_FOR_DAYS: i64 = 7;

/// Why a change cannot be decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("policy change is {}, not pending", .0.as_str())]
    NotPending(ChangeStatus),
    #[error("the person who requested a policy change cannot approve it; another person must")]
    SelfApproval,
    #[error("what this change was requested against has changed since; its diff is stale: request it again")]
    Stale,
    #[error("policy change expired: it was not approved within its window; request it again")]
    Expired,
}

impl PolicyChange {
    pub fn requested(
        org_id: OrgId,
        kind: ChangeKind,
        target: ChangeTarget,
        request: Value,
        diff: Vec<FieldChange>,
        by: ChangeActor,
        at: DateTime<Utc>,
    ) -> Self {
        PolicyChange {
            id: PolicyChangeId::generate_at(at),
            org_id,
            kind,
            target,
            request,
            diff,
            status: ChangeStatus::Pending,
            requested_by: by,
            requested_at: at,
            decided_by: None,
            decided_at: None,
            reason: None,
            result: None,
            target_version: None,
            expires_at: Some(at + chrono::Duration::days(APPROVABLE_FOR_DAYS)),
        }
    }

    fn pending(&self) -> Result<(), ChangeError> {
        match self.status {
            ChangeStatus::Pending => Ok(()),
            other => Err(ChangeError::NotPending(other)),
        }
    }

    /// Approved by `by` (never the person who asked) and applied, making or touching `result`.
    pub fn approve(&mut self, by: ChangeActor, result: String, at: DateTime<Utc>) -> Result<(), ChangeError> {
        self.approvable_by(&by, at)?;
        self.status = ChangeStatus::Applied;
        self.decided_by = Some(by);
        self.decided_at = Some(at);
        self.result = Some(result);
        Ok(())
    }

    /// Whether `by` may approve it at `at` (pending, not the requester, before its deadline):
    /// what a page offers.
    pub fn approvable_by(&self, by: &ChangeActor, at: DateTime<Utc>) -> Result<(), ChangeError> {
        self.pending()?;
        if by.same_human(&self.requested_by) {
            return Err(ChangeError::SelfApproval);
        }
        if self.expires_at.is_some_and(|deadline| at >= deadline) {
            return Err(ChangeError::Expired);
        }
        Ok(())
    }

    /// Whether the object it changes is still at the version it was requested against (`now`:
    /// its version as read now; `None` when it is gone, which applying reports as the direct
    /// call would, or for a creation).
    pub fn ensure_current(&self, now: Option<u64>) -> Result<(), ChangeError> {
        match (self.target_version, now) {
            (Some(then), Some(now)) if then != now => Err(ChangeError::Stale),
            _ => Ok(()),
        }
    }

    /// Rejected by `by` (the requester withdrawing it, or anyone else allowed).
    pub fn reject(&mut self, by: ChangeActor, reason: Option<String>, at: DateTime<Utc>) -> Result<(), ChangeError> {
        self.pending()?;
        self.status = ChangeStatus::Rejected;
        self.decided_by = Some(by);
        self.decided_at = Some(at);
        self.reason = reason;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn actor(person: Person) -> ChangeActor {
        ChangeActor { key_id: ApiKeyId::generate(), person, principal: None }
    }

    /// A change of `kind` with nothing in it, asked for by `person` now.
    fn requested_by(person: Person, kind: ChangeKind) -> PolicyChange {
        let (org, target) = (OrgId::generate(), ChangeTarget::default());
        PolicyChange::requested(org, kind, target, json!({}), vec![], actor(person), Utc::now())
    }

    #[test]
    fn an_unbound_key_answers_for_its_minter() {
        let alice = Person::Key(ApiKeyId::generate());
        let mut change = requested_by(alice.clone(), ChangeKind::PolicyCreate);
        let minted = ChangeActor { principal: Some(alice), ..actor(Person::Key(ApiKeyId::generate())) };
        assert_eq!(change.approve(minted, "pol".into(), Utc::now()), Err(ChangeError::SelfApproval));
        change.target_version = Some(3);
        assert_eq!(change.ensure_current(Some(4)), Err(ChangeError::Stale));
        assert_eq!(change.ensure_current(None), Ok(()), "gone: the plan answers 404");
        assert_eq!(change.ensure_current(Some(3)), Ok(()));
    }

    #[test]
    fn diff_lists_changed_fields_only() {
        let before = json!({"id": "pol_1", "name": "a", "enabled": true, "limit": null, "updatedAt": "x"});
        let after = json!({"id": "pol_1", "name": "b", "enabled": true, "limit": "5.00", "updatedAt": "y"});
        let d = diff(&before, &after);
        assert_eq!(d.iter().map(|c| c.field.as_str()).collect::<Vec<_>>(), ["limit", "name"]);
        assert_eq!(d[0].before, Value::Null);
        assert_eq!(d[0].after, json!("5.00"));
        assert_eq!(diff(&Value::Null, &json!({"name": "n"}))[0].before, Value::Null, "a creation");
        assert_eq!(diff(&json!({"name": "n"}), &Value::Null)[0].after, Value::Null, "a deletion");
    }

    #[test]
    fn approved_once_by_another_person() {
        let alice = Person::Key(ApiKeyId::generate());
        let bob = Person::Key(ApiKeyId::generate());
        let mut change = requested_by(alice.clone(), ChangeKind::PolicyCreate);
        assert_eq!(change.approve(actor(alice.clone()), "pol".into(), Utc::now()), Err(ChangeError::SelfApproval));
        assert_eq!(change.status, ChangeStatus::Pending);
        change.approve(actor(bob.clone()), "pol".into(), Utc::now()).unwrap();
        assert_eq!(change.status, ChangeStatus::Applied);
        assert_eq!(change.reject(actor(bob), None, Utc::now()), Err(ChangeError::NotPending(ChangeStatus::Applied)));
        assert_eq!(ChangeStatus::parse("rejected"), Some(ChangeStatus::Rejected));
        assert_eq!(serde_json::to_value(ChangeKind::RoutingRuleDelete).unwrap(), json!("routing_rule.delete"));
    }

    #[test]
    fn the_requester_may_withdraw() {
        let alice = Person::Key(ApiKeyId::generate());
        let mut change = requested_by(alice.clone(), ChangeKind::SettingsUpdate);
        change.reject(actor(alice), Some("not now".into()), Utc::now()).unwrap();
        assert_eq!((change.status, change.reason.as_deref()), (ChangeStatus::Rejected, Some("not now")));
    }
}
