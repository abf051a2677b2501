//! Deliveries of events to webhooks, and the retry schedule.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::ids::{DeliveryId, OrgId, WebhookId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    Delivered,
    /// Out of attempts: in the dead-letter list, retryable by hand.
    Failed,
    /// Given up by hand, or its webhook was disabled or deleted.
    Discarded,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "PENDING",
            DeliveryStatus::Delivered => "DELIVERED",
            DeliveryStatus::Failed => "FAILED",
            DeliveryStatus::Discarded => "DISCARDED",
        }
    }
}

/// One event on its way to one webhook. `webhook-id` on the wire is the event id, the same on
/// every attempt and replay.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: DeliveryId,
    pub org_id: OrgId,
    pub webhook_id: WebhookId,
    /// The whole event as subscribers receive it: `{"id", "type", "createdAt", "data"}`.
    pub event: serde_json::Value,
    pub event_id: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub last_status_code: Option<u16>,
    pub last_latency_ms: Option<u64>,
    pub next_attempt_at: DateTime<Utc>,
    /// Times in a row its endpoint was too busy to take it (each waits longer); 0 once sent.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub busy_bounces: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Exponential backoff with jitter: `base · 2^(attempt-1)`, capped, ±25 %.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    /// 12 attempts, 1 min doubling to a 6 h cap: the last attempt is about 22 h after the first.
    fn default() -> Self {
        RetryPolicy { max_attempts: 12, base: Duration::from_secs(60), cap: Duration::from_secs(6 * 3600) }
    }
}

impl RetryPolicy {
    /// Wait before the attempt after `attempts_made` failures (`None`: give up).
    pub fn next_delay(&self, attempts_made: u32) -> Option<Duration> {
        if attempts_made >= self.max_attempts {
            return None;
        }
        let exp = attempts_made.saturating_sub(1).min(30);
        let raw = self.base.saturating_mul(1u32 << exp).min(self.cap);
        let jitter = rand::rng().random_range(0.75..=1.25);
        Some(raw.mul_f64(jitter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_stops() {
        let p = RetryPolicy::default();
        let first = p.next_delay(1).unwrap();
        assert!(first >= Duration::from_secs(45) && first <= Duration::from_secs(75));
        let late = p.next_delay(11).unwrap();
        assert!(late <= Duration::from_secs(6 * 3600 * 5 / 4));
        assert!(p.next_delay(12).is_none());
        let total: Duration = (1..12).map(|n| RetryPolicy { ..p }.next_delay(n).unwrap()).sum();
        assert!(total > Duration::from_secs(14 * 3600) && total < Duration::from_secs(30 * 3600), "{total:?}");
    }
}
