//! A wallet's policies as one set: a copy of every policy of the wallet in one record, whose
//! version every policy change moves. A payment reads it by key with its other reads (no query)
//! and checks its version when it commits, so a policy change in between makes it decide again,
//! without the wallet (whose balance every payment moves in place) being rewritten for it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{OrgId, WalletId};
use super::policy::Policy;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicySet {
    pub org_id: OrgId,
    pub wallet_id: WalletId,
    pub changed_at: DateTime<Utc>,
    /// Every policy of the wallet, as stored in its own record (written in the same
    /// transaction as that record); `None` when they are too large to copy into one record
    /// (DynamoDB items hold 400 KB): payments then query the policies themselves.
    #[serde(default)]
    pub policies: Option<Vec<Policy>>,
}

/// The most policy text one set copies (serialized JSON): well inside an item's 400 KB.
pub const MAX_COPIED_BYTES: usize = 256 * 1024;

impl PolicySet {
    pub fn new(org_id: OrgId, wallet_id: WalletId, now: DateTime<Utc>) -> Self {
        PolicySet { org_id, wallet_id, changed_at: now, policies: Some(Vec::new()) }
    }

    /// One more change, at `now`: the wallet's policies are now `policies` (copied when they
    /// fit `MAX_COPIED_BYTES`).
    pub fn changed(&mut self, policies: Vec<Policy>, now: DateTime<Utc>) {
        self.changed_at = now;
        let size = serde_json::to_vec(&policies).map_or(usize::MAX, |text| text.len());
        self.policies = (size <= MAX_COPIED_BYTES).then_some(policies);
    }
}
