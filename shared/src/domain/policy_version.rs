//! Policy versions: every change of a policy (its creation, each update, its deletion) is kept as
//! an immutable record of the whole policy as it became, numbered 1, 2, 3, …; payments, refunds
//! and their approvals name the versions they were decided under (`PolicyVersionRef`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{OrgId, PolicyId, WalletId};
use super::policy::{ActionKind, Policy};

/// A policy's first version.
pub const FIRST_VERSION: u32 = 1;

/// What a policy record written before versions counts as: its first version.
pub fn first_version() -> u32 {
    FIRST_VERSION
}

/// One version of a policy: the whole policy as a change left it, never rewritten.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyVersion {
    pub org_id: OrgId,
    pub wallet_id: WalletId,
    pub policy_id: PolicyId,
    /// 1 at creation, one more for every change.
    #[schema(minimum = 1)]
    pub version: u32,
    /// The policy was deleted by this change: `policy` is how it stood when deleted (the last
    /// version of a policy).
    pub deleted: bool,
    /// Who made the change, as the audit log names them (a key id, `operator` or `system`).
    pub changed_by: String,
    pub changed_at: DateTime<Utc>,
    /// The whole policy as this version made it.
    pub policy: Policy,
}

impl PolicyVersion {
    /// The version `policy` is now (after its creation or an update), made by `changed_by`.
    pub fn of(policy: &Policy, changed_by: &str, at: DateTime<Utc>) -> Self {
        PolicyVersion {
            org_id: policy.org_id.clone(),
            wallet_id: policy.wallet_id.clone(),
            policy_id: policy.id.clone(),
            version: policy.version,
            deleted: false,
            changed_by: changed_by.to_string(),
            changed_at: at,
            policy: policy.clone(),
        }
    }

    /// The final version of `policy`, deleted as it stood (the one after its current version).
    pub fn deletion(policy: &Policy, changed_by: &str, at: DateTime<Utc>) -> Self {
        let mut last = policy.clone();
        last.version = policy.version.saturating_add(1);
        PolicyVersion { deleted: true, ..PolicyVersion::of(&last, changed_by, at) }
    }
}

/// A policy and the version of it a payment, refund or approval was decided under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyVersionRef {
    pub policy_id: PolicyId,
    #[schema(minimum = 1)]
    pub version: u32,
}

/// The versions of the enabled policies that govern `kind`: what a decision on `kind` was made
/// under (every policy `evaluate` looked at), in the wallet's policy order.
pub fn applied_versions(policies: &[Policy], kind: ActionKind) -> Vec<PolicyVersionRef> {
    policies
        .iter()
        .filter(|p| p.enabled && p.applies_to(kind))
        .map(|p| PolicyVersionRef { policy_id: p.id.clone(), version: p.version })
        .collect()
}

/// A version number as a path names it: a whole number from 1 (no sign, no leading zeros
/// needed), within `u32`; anything else names no version.
pub fn parse_version(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u32>().ok().filter(|n| *n >= FIRST_VERSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::unrestricted(OrgId::generate(), WalletId::generate(), "p".into(), Utc::now())
    }

    #[test]
    fn a_new_policy_is_version_one_and_its_version_copies_it_whole() {
        let p = policy();
        assert_eq!(p.version, FIRST_VERSION);
        let v = PolicyVersion::of(&p, "key_1", p.created_at);
        assert_eq!((v.version, v.deleted, &v.policy, &v.policy_id), (1, false, &p, &p.id));
        assert_eq!((&v.org_id, &v.wallet_id, v.changed_by.as_str()), (&p.org_id, &p.wallet_id, "key_1"));
    }

    #[test]
    fn a_deletion_is_the_version_after_the_last_one() {
        let p = Policy { version: 3, require_human_approval: true, ..policy() };
        let v = PolicyVersion::deletion(&p, "operator", Utc::now());
        assert_eq!((v.version, v.policy.version, v.deleted), (4, 4, true));
        assert!(v.policy.require_human_approval, "as it stood when deleted");
    }

    #[test]
    fn records_written_before_versions_read_as_version_one() {
        let mut json = serde_json::to_value(policy()).unwrap();
        json.as_object_mut().unwrap().remove("version");
        let p: Policy = serde_json::from_value(json).unwrap();
        assert_eq!(p.version, 1);
    }

    #[test]
    fn applied_versions_name_the_enabled_policies_of_the_kind() {
        let a = Policy { version: 2, ..policy() };
        let off = Policy { enabled: false, ..policy() };
        let refunds = Policy { applies_to: vec![ActionKind::Refund], version: 5, ..policy() };
        let both = Policy { applies_to: vec![ActionKind::Payment, ActionKind::Refund], version: 7, ..policy() };
        let all = [a.clone(), off, refunds.clone(), both.clone()];
        let refs = |kind| applied_versions(&all, kind);
        let pair = |p: &Policy| PolicyVersionRef { policy_id: p.id.clone(), version: p.version };
        assert_eq!(refs(ActionKind::Payment), vec![pair(&a), pair(&both)]);
        assert_eq!(refs(ActionKind::Refund), vec![pair(&refunds), pair(&both)]);
        assert!(applied_versions(&[], ActionKind::Payment).is_empty());
        let wire = serde_json::to_value(pair(&a)).unwrap();
        assert_eq!(wire, serde_json::json!({"policyId": a.id, "version": 2}));
    }

    #[test]
    fn version_numbers_in_paths() {
        assert_eq!(parse_version("1"), Some(1));
        assert_eq!(parse_version("42"), Some(42));
        assert_eq!(parse_version("007"), Some(7));
        assert_eq!(parse_version("4294967295"), Some(u32::MAX));
        for bad in ["", "0", "-1", "+1", "abc", "1.0", " 1", "4294967296", "99999999999999999999"] {
            assert_eq!(parse_version(bad), None, "{bad:?}");
        }
    }
}
