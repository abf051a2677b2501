//! Audit log entries: every decision and change, with actor and time.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{ApiKeyId, AuditId, OrgId};

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
