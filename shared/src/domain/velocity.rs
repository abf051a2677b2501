//! Velocity: how many payments a wallet made in the trailing hour, counted without a scan. One
//! counter per wallet holds this UTC hour's count and the previous hour's; the trailing hour is
//! this hour's count plus the share of the previous hour still inside the window (a sliding-window
//! estimate, exact at the top of each hour and never below this hour's count).

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{OrgId, WalletId};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRate {
    pub org_id: OrgId,
    pub wallet_id: WalletId,
    /// The start of the hour `count` counts.
    pub hour: DateTime<Utc>,
    /// A counter (moved in place by payments, `Tx::adjust`): kept as a decimal string.
    #[serde(with = "count_text")]
    pub count: u32,
    /// The hour before `hour`.
    pub previous: u32,
}

/// A count as a decimal string (a number, as records before counters were, is read too).
mod count_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(n: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&n.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Text {
            Number(u32),
            Text(String),
        }
        match Text::deserialize(d)? {
            Text::Number(n) => Ok(n),
            Text::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// The start of the UTC hour of `t`.
pub fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::hours(1)).unwrap_or(t)
}

impl PaymentRate {
    pub fn new(org_id: OrgId, wallet_id: WalletId, now: DateTime<Utc>) -> Self {
        PaymentRate { org_id, wallet_id, hour: hour_of(now), count: 0, previous: 0 }
    }

    /// (this hour's count, the previous hour's) as seen at `now`.
    pub fn counts_at(&self, now: DateTime<Utc>) -> (u32, u32) {
        let current = hour_of(now);
        if self.hour == current {
            (self.count, self.previous)
        } else if self.hour + Duration::hours(1) == current {
            (0, self.count)
        } else {
            (0, 0)
        }
    }

    /// Payments in the trailing hour at `now`.
    pub fn trailing_hour(&self, now: DateTime<Utc>) -> u32 {
        let (count, previous) = self.counts_at(now);
        let elapsed = (now - hour_of(now)).num_milliseconds().clamp(0, 3_600_000) as u64;
        let carried = u64::from(previous) * (3_600_000 - elapsed) / 3_600_000;
        count.saturating_add(u32::try_from(carried).unwrap_or(u32::MAX))
    }

    /// Counts one more payment at `now`.
    pub fn record(&mut self, now: DateTime<Utc>) {
        let (count, previous) = self.counts_at(now);
        self.hour = hour_of(now);
        self.count = count.saturating_add(1);
        self.previous = previous;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, h, m, 0).unwrap()
    }

    #[test]
    fn counts_this_hour_and_the_part_of_the_last_still_in_the_window() {
        let mut rate = PaymentRate::new(OrgId::generate(), WalletId::generate(), at(10, 0));
        for _ in 0..10 {
            rate.record(at(10, 50));
        }
        assert_eq!(rate.trailing_hour(at(10, 59)), 10);
        // At 11:30 half of the previous hour is still inside the window.
        assert_eq!(rate.trailing_hour(at(11, 30)), 5);
        rate.record(at(11, 30));
        assert_eq!((rate.count, rate.previous, rate.trailing_hour(at(11, 30))), (1, 10, 6));
        // Two hours on, nothing is left.
        assert_eq!(rate.trailing_hour(at(13, 0)), 0);
        rate.record(at(13, 0));
        assert_eq!((rate.count, rate.previous), (1, 0));
    }
}
