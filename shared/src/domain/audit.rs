//! Audit log entries: every decision and change, with actor and time.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{ApiKeyId, AuditId, OrgId};
use crate::proof::checkpoint::entry_hash;

/// Who made a change: a key, the deployment's operator, or the system (the sweep).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Key(ApiKeyId),
    Operator,
    System,
}

impl Actor {
    /// As the audit log records it: the key id, `operator` or `system`.
    pub fn name(&self) -> &str {
        match self {
            Actor::Key(id) => id.as_str(),
            Actor::Operator => "operator",
            Actor::System => "system",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub id: AuditId,
    pub org_id: OrgId,
    /// e.g. `payment.created`, `approval.approved`.
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    /// The API key id, `operator` or `system`.
    pub actor: String,
    pub details: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// Hex SHA-256 of this entry's RFC 8785 canonical JSON without `hash`, made when it is
    /// written; the sweep seals entries into signed checkpoints by these hashes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
}

/// Largest `details` kept whole; bigger ones keep their small fields only, so a page of audit
/// entries stays far below Lambda's 6 MB response limit.
pub const MAX_DETAIL_BYTES: usize = 4 * 1024;
const MAX_KEPT_FIELD_BYTES: usize = 512;

/// `details` as stored: whole when small, else its small top-level fields and `truncated: true`.
fn bounded(details: serde_json::Value) -> serde_json::Value {
    let size = |v: &serde_json::Value| serde_json::to_vec(v).map_or(usize::MAX, |b| b.len());
    if size(&details) <= MAX_DETAIL_BYTES {
        return details;
    }
    let mut kept = serde_json::Map::new();
    if let serde_json::Value::Object(map) = details {
        for (k, v) in map {
            if size(&v) <= MAX_KEPT_FIELD_BYTES && kept.len() < 16 {
                kept.insert(k, v);
            }
        }
    }
    kept.insert("truncated".into(), serde_json::Value::Bool(true));
    serde_json::Value::Object(kept)
}

impl AuditEntry {
    pub fn new(
        org_id: &OrgId,
        action: &str,
        resource_type: &str,
        resource_id: &str,
        actor: &str,
        details: serde_json::Value,
        at: DateTime<Utc>,
    ) -> Self {
        let mut entry = AuditEntry {
            // By the service's clock, as the sweep's sealing cutoff is.
            id: AuditId::generate_at(at),
            org_id: org_id.clone(),
            action: action.into(),
            resource_type: resource_type.into(),
            resource_id: resource_id.into(),
            actor: actor.into(),
            details: bounded(details),
            created_at: at,
            hash: String::new(),
        };
        entry.hash = entry.content_hash();
        entry
    }

    /// The hash of this entry's content as it stands (what `hash` must equal).
    pub fn content_hash(&self) -> String {
        serde_json::to_value(self).map(|v| entry_hash(&v)).unwrap_or_default()
    }

    /// The entry with its hash filled in (entries written before hashing have none).
    pub fn hashed(mut self) -> Self {
        if self.hash.is_empty() {
            self.hash = self.content_hash();
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn large_details_keep_only_small_fields() {
        let org = OrgId::generate();
        let big = json!({"amount": "10.00", "blob": "x".repeat(10_000)});
        let entry = AuditEntry::new(&org, "a", "t", "r", "system", big, Utc::now());
        assert_eq!(entry.details, json!({"amount": "10.00", "truncated": true}));
        let small = json!({"note": "ok"});
        assert_eq!(AuditEntry::new(&org, "a", "t", "r", "system", small.clone(), Utc::now()).details, small);
    }

    #[test]
    fn an_entry_is_hashed_over_its_content_and_the_hash_notices_an_edit() {
        let org = OrgId::generate();
        let mut entry =
            AuditEntry::new(&org, "payment.created", "payment", "pay_1", "system", json!({"a": 1}), Utc::now());
        assert_eq!(entry.hash.len(), 64);
        assert_eq!(entry.hash, entry.content_hash());
        let stored = serde_json::to_value(&entry).unwrap();
        assert_eq!(entry_hash(&stored), entry.hash, "the hash leaves itself out");
        entry.details = json!({"a": 2});
        assert_ne!(entry.content_hash(), entry.hash);
    }
}
