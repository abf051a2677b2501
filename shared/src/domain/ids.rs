//! Prefixed, sortable identifiers (`wal_01J…`): a type per resource so they cannot be mixed up.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use ulid::Ulid;

macro_rules! prefixed_id {
    ($name:ident, $prefix:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, utoipa::ToSchema)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new id; ULIDs sort by creation time.
            pub fn generate() -> Self {
                $name(format!("{}{}", $prefix, Ulid::new()))
            }

            /// A new id made at `at` by the service's clock (its time part), random after it.
            pub fn generate_at(at: chrono::DateTime<chrono::Utc>) -> Self {
                let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
                let ulid = Ulid::from_parts(ms, rand::random::<u128>());
                $name(format!("{}{}", $prefix, ulid))
            }

            /// Parses `prefix + ULID`; anything else is not an id of this kind. The ULID part is
            /// case-insensitive and kept in its canonical (upper-case) form, so one id has one
            /// spelling wherever it is compared or stored.
            pub fn parse(text: &str) -> Option<Self> {
                let rest = text.strip_prefix($prefix)?;
                let ulid = Ulid::from_string(rest).ok()?;
                Some($name(format!("{}{}", $prefix, ulid)))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                $name::parse(&text).ok_or_else(|| serde::de::Error::custom(concat!("not a valid ", $prefix, " id")))
            }
        }
    };
}

prefixed_id!(OrgId, "org_");
prefixed_id!(ApiKeyId, "key_");
prefixed_id!(WalletId, "wal_");
prefixed_id!(PolicyId, "pol_");
prefixed_id!(PaymentId, "pay_");
prefixed_id!(ApprovalId, "apr_");
prefixed_id!(TransactionId, "txn_");
prefixed_id!(EventId, "evt_");
prefixed_id!(AuditId, "aud_");
prefixed_id!(WebhookId, "whk_");
prefixed_id!(DeliveryId, "dlv_");
prefixed_id!(TeamId, "team_");
prefixed_id!(RoutingRuleId, "rule_");
prefixed_id!(MemberId, "mem_");
prefixed_id!(ReviewId, "rev_");
prefixed_id!(AllowRuleId, "alw_");
prefixed_id!(ReviewDecisionId, "dec_");
prefixed_id!(RefundId, "rfd_");
prefixed_id!(NotificationId, "ntf_");
prefixed_id!(CommentId, "cmt_");
prefixed_id!(PolicyChangeId, "chg_");

/// A ULID that the same inputs always give: the time of `parent` (an id with `prefix`), the
/// randomness of a hash of `seed`. Lets a retried step find what it created before.
fn derived_ulid(parent: &str, prefix: &str, seed: &str) -> Ulid {
    use sha2::{Digest, Sha256};
    let time = parent.strip_prefix(prefix).and_then(|u| Ulid::from_string(u).ok()).map_or(0, |u| u.timestamp_ms());
    let digest = Sha256::digest(seed.as_bytes());
    let mut random = [0u8; 16];
    random.copy_from_slice(&digest[..16]);
    Ulid::from_parts(time, u128::from_be_bytes(random) >> 48)
}

impl DeliveryId {
    /// The one delivery of `event` to `webhook`: the same inputs give the same id, so fan-out
    /// that runs twice (at-least-once queues) creates one delivery. Sorts by the event's time.
    pub fn for_event(event: &EventId, webhook: &WebhookId) -> Self {
        let ulid = derived_ulid(event.as_str(), EventId::PREFIX, &format!("{event}:{webhook}"));
        DeliveryId(format!("{}{}", Self::PREFIX, ulid))
    }
}

impl NotificationId {
    /// The one notification of `event` to `recipient` (a channel and address, and what it
    /// says): fan-out that runs twice creates one. Sorts by the event's time.
    pub fn for_event(event: &EventId, recipient: &str) -> Self {
        let ulid = derived_ulid(event.as_str(), EventId::PREFIX, &format!("{event}:notify:{recipient}"));
        NotificationId(format!("{}{}", Self::PREFIX, ulid))
    }

    /// The one update of the Slack `message` (`channel:ts`) posted about `subject` (an approval
    /// or a review) with how it ended, whichever path makes it first (the click's answer, or the
    /// outcome event). Sorts by the subject's time.
    pub fn for_outcome(subject: &crate::domain::payment_review::ReviewRef, message: &str) -> Self {
        use crate::domain::payment_review::ReviewRef;
        let (id, prefix) = match subject {
            ReviewRef::Payment(a) => (a.as_str(), ApprovalId::PREFIX),
            ReviewRef::Review(r) => (r.as_str(), ReviewId::PREFIX),
        };
        let ulid = derived_ulid(id, prefix, &format!("{id}:outcome:{message}"));
        NotificationId(format!("{}{}", Self::PREFIX, ulid))
    }
}

impl PaymentId {
    /// A new id made at `at` by the service's clock, so a payment's id carries its creation
    /// millisecond (a time window of payments is a range of ids: the policy backtest) and ids
    /// made in one millisecond by this process follow one another in the order they were made
    /// (the last id of each of the 16 latest milliseconds is kept: clocks that differ, as tests'
    /// do, do not disturb one another).
    pub fn next_at(at: chrono::DateTime<chrono::Utc>) -> Self {
        use std::sync::{Mutex, PoisonError};
        static LAST: Mutex<Vec<Ulid>> = Mutex::new(Vec::new());
        let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
        let mut last = LAST.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = last.iter().position(|u| u.timestamp_ms() == ms);
        let next = seen.map(|i| last.remove(i)).and_then(|prev| prev.increment());
        // 79 random bits: room to count up within the millisecond.
        let ulid = next.unwrap_or_else(|| Ulid::from_parts(ms, rand::random::<u128>() >> 49));
        if last.len() >= 16 {
            last.remove(0);
        }
        last.push(ulid);
        PaymentId(format!("{}{}", Self::PREFIX, ulid))
    }
}

impl CommentId {
    /// A new id made at `at`, after every comment id this process made before (the same
    /// millisecond, or a clock that stepped back, continues from the last one): an approval's
    /// comments sort in the order they were written. (Across processes, by their milliseconds.)
    pub fn next_at(at: chrono::DateTime<chrono::Utc>) -> Self {
        use std::sync::{Mutex, PoisonError};
        static LAST: Mutex<Option<ulid::Generator>> = Mutex::new(None);
        let when = std::time::SystemTime::from(at);
        let made = LAST
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(ulid::Generator::new)
            .generate_from_datetime(when);
        match made {
            Ok(ulid) => CommentId(format!("{}{}", Self::PREFIX, ulid)),
            // 2^80 ids in one millisecond: not in this universe; a fresh one is still valid.
            Err(_) => CommentId::generate_at(at),
        }
    }
}

impl ReviewDecisionId {
    /// The decision `key` made on the held payment of `approval`, seen through `/reviews`: the
    /// same vote always has the same id. Sorts by the approval's time.
    pub fn for_vote(approval: &ApprovalId, key: &ApiKeyId) -> Self {
        let ulid = derived_ulid(approval.as_str(), ApprovalId::PREFIX, &format!("{approval}:{key}"));
        ReviewDecisionId(format!("{}{}", Self::PREFIX, ulid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payment_ids_carry_their_millisecond_and_follow_one_another_within_it() {
        let at = chrono::Utc::now();
        let ids: Vec<PaymentId> = (0..50).map(|_| PaymentId::next_at(at)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        let ms = |id: &PaymentId| Ulid::from_string(&id.as_str()[4..]).unwrap().timestamp_ms();
        assert!(ids.iter().all(|id| ms(id) == at.timestamp_millis() as u64));
        // Another clock's millisecond in between: each continues its own.
        let earlier = at - chrono::Duration::days(2);
        assert_eq!(ms(&PaymentId::next_at(earlier)), earlier.timestamp_millis() as u64);
        assert!(PaymentId::next_at(at) > ids[49]);
    }

    #[test]
    fn ids_round_trip_and_reject_foreign_prefixes() {
        let id = WalletId::generate();
        assert_eq!(WalletId::parse(id.as_str()), Some(id.clone()));
        assert!(PaymentId::parse(id.as_str()).is_none());
        assert!(WalletId::parse("wal_nope").is_none());
        assert!(WalletId::parse("").is_none());
        let lower = format!("wal_{}", id.as_str().strip_prefix("wal_").unwrap().to_lowercase());
        assert_eq!(WalletId::parse(&lower), Some(id), "one id, one spelling");
    }

    #[test]
    fn comment_ids_sort_in_the_order_made_even_in_one_millisecond() {
        let at = chrono::Utc::now();
        let made: Vec<CommentId> = (0..50).map(|_| CommentId::next_at(at)).collect();
        assert!(made.windows(2).all(|w| w[0] < w[1]), "{made:?}");
        let earlier = CommentId::next_at(at - chrono::Duration::seconds(5));
        assert!(earlier > made[49], "a clock that steps back does not reorder them");
        assert!(CommentId::parse(earlier.as_str()).is_some());
    }

    #[test]
    fn ids_sort_by_creation() {
        let a = PaymentId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = PaymentId::generate();
        assert!(a < b);
    }
}
