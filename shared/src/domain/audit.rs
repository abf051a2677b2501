//! Audit log entries: every decision and change, with actor and time.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{AuditId, OrgId};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
        AuditEntry {
            id: AuditId::generate(),
            org_id: org_id.clone(),
            action: action.into(),
            resource_type: resource_type.into(),
            resource_id: resource_id.into(),
            actor: actor.into(),
            details,
            created_at: at,
        }
    }
}
