//! Domain events, written to the outbox in the same transaction as the change they describe.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{EventId, OrgId};

pub mod kinds {
    pub const APPROVAL_CREATED: &str = "approval.created";
    pub const APPROVAL_APPROVED: &str = "approval.approved";
    pub const APPROVAL_REJECTED: &str = "approval.rejected";
    pub const APPROVAL_EXPIRED: &str = "approval.expired";
    pub const PAYMENT_COMPLETED: &str = "payment.completed";
    pub const PAYMENT_FAILED: &str = "payment.failed";
}

/// `{"id": "evt_…", "type", "createdAt", "data"}` plus the owning org (not sent to subscribers).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: EventId,
    #[serde(rename = "type")]
    pub kind: String,
    pub org_id: OrgId,
    pub created_at: DateTime<Utc>,
    pub data: serde_json::Value,
    pub published_at: Option<DateTime<Utc>>,
}

impl Event {
    pub fn new(org_id: &OrgId, kind: &str, data: serde_json::Value, at: DateTime<Utc>) -> Self {
        Event {
            id: EventId::generate(),
            kind: kind.into(),
            org_id: org_id.clone(),
            created_at: at,
            data,
            published_at: None,
        }
    }
}
