//! "Always allow": a person who approved a payment says later payments from that wallet to that
//! payee, up to a cap, need no review. One rule per wallet and payee (approving again with
//! `alwaysAllow` renews it). A rule lifts only the holds that ask for a person's look at this
//! payment (review thresholds, risk, recipients, "every payment"); deny rules, the balance,
//! budgets, velocity and the daily limit still apply, and it never stands in for a policy that
//! wants more than one approver.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::ids::{AllowRuleId, ApiKeyId, OrgId, WalletId};
use super::money::{decimal_string, Currency, Money};
use super::people::Person;

/// Longest an allow rule may last.
pub const MAX_EXPIRES_IN_DAYS: u32 = 365;

/// What an approver asks for with `alwaysAllow`: the cap, and how long (default: the maximum).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlwaysAllow {
    pub max_amount: super::money::Amount,
    pub expires_in_days: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowRule {
    pub id: AllowRuleId,
    pub org_id: OrgId,
    pub wallet_id: WalletId,
    pub recipient: WalletId,
    #[serde(with = "decimal_string")]
    #[schema(value_type = String, example = "50.00")]
    pub max_amount: Decimal,
    pub currency: Currency,
    /// The key whose approval created (or last renewed) it.
    pub created_by: ApiKeyId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub created_by_person: Option<Person>,
    /// The approval it was created with.
    pub approval_id: super::ids::ApprovalId,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Payments it let through without review, and the last one's time.
    pub hits: u64,
    pub last_hit_at: Option<DateTime<Utc>>,
}

impl AllowRule {
    pub fn max(&self) -> Money {
        Money::from_decimal(self.max_amount, self.currency)
    }

    /// Whether it lets `amount` to its payee through at `now`.
    pub fn covers(&self, amount: Money, now: DateTime<Utc>) -> bool {
        now < self.expires_at && amount.currency() == self.currency && amount.amount() <= self.max_amount
    }

    /// Counts one payment it let through.
    pub fn hit(&mut self, now: DateTime<Utc>) {
        self.hits = self.hits.saturating_add(1);
        self.last_hit_at = Some(now);
    }

    /// When a rule asked for at `now` for `days` (default and at most `MAX_EXPIRES_IN_DAYS`) ends.
    pub fn expiry(now: DateTime<Utc>, days: Option<u32>) -> DateTime<Utc> {
        now + Duration::days(i64::from(days.unwrap_or(MAX_EXPIRES_IN_DAYS).min(MAX_EXPIRES_IN_DAYS)))
    }
}
