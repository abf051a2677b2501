//! A wallet's policies as one set: the record whose version every policy change moves. A
//! payment decided on the policies checks that version when it commits, so a policy change in
//! between makes it decide again, without the wallet (whose balance every payment moves in
//! place) being rewritten for it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{OrgId, WalletId};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicySet {
    pub org_id: OrgId,
    pub wallet_id: WalletId,
    /// Policy changes so far (creations, updates, deletions).
    pub changes: u64,
    pub changed_at: DateTime<Utc>,
}

impl PolicySet {
    pub fn new(org_id: OrgId, wallet_id: WalletId, now: DateTime<Utc>) -> Self {
        PolicySet { org_id, wallet_id, changes: 0, changed_at: now }
    }

    /// One more change, at `now`.
    pub fn changed(&mut self, now: DateTime<Utc>) {
        self.changes = self.changes.saturating_add(1);
        self.changed_at = now;
    }
}
