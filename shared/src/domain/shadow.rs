//! Shadow policies' would-have counts: one record per shadow policy, beside its wallet, whose
//! counters every payment and refund the policy watched moves in place in its own transaction
//! (`Tx::adjust`): exact under any concurrency, read by key, never a scan.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{OrgId, PolicyId, WalletId};
use super::policy::Outcome;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShadowStats {
    pub org_id: OrgId,
    pub wallet_id: WalletId,
    pub policy_id: PolicyId,
    /// When the first evaluation was counted.
    pub since: DateTime<Utc>,
    /// Counters (moved in place, kept as decimal strings): evaluations, what the policy would
    /// have decided, and how often that differed from the real decision.
    #[serde(with = "count_text")]
    pub evaluated: u64,
    #[serde(with = "count_text")]
    pub would_execute: u64,
    #[serde(with = "count_text")]
    pub would_hold: u64,
    #[serde(with = "count_text")]
    pub would_deny: u64,
    #[serde(with = "count_text")]
    pub differed: u64,
}

/// The counter each would-have outcome moves.
pub fn outcome_counter(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Execute => "wouldExecute",
        Outcome::Hold => "wouldHold",
        Outcome::Deny => "wouldDeny",
    }
}

/// Every counter of the record, as stored.
pub const COUNTERS: &[&str] = &["evaluated", "wouldExecute", "wouldHold", "wouldDeny", "differed"];

impl ShadowStats {
    /// The record of a policy's first counted evaluation (at `now`), counted.
    pub fn first(
        org_id: OrgId,
        wallet_id: WalletId,
        policy_id: PolicyId,
        now: DateTime<Utc>,
        would: Outcome,
        real: Outcome,
    ) -> Self {
        let mut stats = ShadowStats {
            org_id,
            wallet_id,
            policy_id,
            since: now,
            evaluated: 0,
            would_execute: 0,
            would_hold: 0,
            would_deny: 0,
            differed: 0,
        };
        stats.count(would, real);
        stats
    }

    /// One more evaluation: the policy would have decided `would`; the payment was `real`.
    pub fn count(&mut self, would: Outcome, real: Outcome) {
        self.evaluated += 1;
        match would {
            Outcome::Execute => self.would_execute += 1,
            Outcome::Hold => self.would_hold += 1,
            Outcome::Deny => self.would_deny += 1,
        }
        if would != real {
            self.differed += 1;
        }
    }
}

/// A count as a decimal string (what counters are stored as); a JSON number is read too.
mod count_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&n.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Text {
            Number(u64),
            Text(String),
        }
        match Text::deserialize(d)? {
            Text::Number(n) => Ok(n),
            Text::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_it_would_have_done_and_when_that_differed() {
        let mut stats = ShadowStats::first(
            OrgId::generate(),
            WalletId::generate(),
            PolicyId::generate(),
            Utc::now(),
            Outcome::Deny,
            Outcome::Execute,
        );
        stats.count(Outcome::Execute, Outcome::Execute);
        stats.count(Outcome::Hold, Outcome::Execute);
        assert_eq!(
            (stats.evaluated, stats.would_execute, stats.would_hold, stats.would_deny, stats.differed),
            (3, 1, 1, 1, 2)
        );
        let stored = serde_json::to_value(&stats).unwrap();
        assert_eq!(stored["wouldDeny"], "1");
        for counter in COUNTERS {
            assert!(stored[*counter].is_string(), "{counter}");
        }
        assert_eq!(outcome_counter(Outcome::Hold), "wouldHold");
        let back: ShadowStats = serde_json::from_value(stored).unwrap();
        assert_eq!(back, stats);
    }
}
