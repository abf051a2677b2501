//! Payments: what an agent asked to move, and where it stands.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ids::{ApiKeyId, ApprovalId, OrgId, PaymentId, TransactionId, WalletId};
use super::money::{decimal_string, Currency};
use super::policy::Decision;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    Completed,
    PendingApproval,
    Rejected,
    Expired,
    Failed,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Completed => "COMPLETED",
            PaymentStatus::PendingApproval => "PENDING_APPROVAL",
            PaymentStatus::Rejected => "REJECTED",
            PaymentStatus::Expired => "EXPIRED",
            PaymentStatus::Failed => "FAILED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
    }
}

/// A score sent by an agent (risk 0–100, confidence 0–1): a JSON number on the wire, an exact
/// decimal inside so comparisons with thresholds are exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Score(Decimal);

impl Score {
    pub fn new(value: Decimal) -> Self {
        Score(value)
    }

    pub fn value(self) -> Decimal {
        self.0
    }

    /// Parses a JSON number within `[min, max]`.
    pub fn from_json(value: &serde_json::Value, min: Decimal, max: Decimal) -> Option<Self> {
        let serde_json::Value::Number(n) = value else {
            return None;
        };
        let text = n.to_string();
        let d = Decimal::from_str(&text).or_else(|_| Decimal::from_scientific(&text)).ok()?;
        (d >= min && d <= max).then_some(Score(d.normalize()))
    }
}

impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Score {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = serde_json::Number::from_str(&self.0.to_string()).map_err(serde::ser::Error::custom)?;
        n.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Score {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = serde_json::Number::deserialize(d)?;
        let text = n.to_string();
        Decimal::from_str(&text)
            .or_else(|_| Decimal::from_scientific(&text))
            .map(Score)
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    pub id: PaymentId,
    pub org_id: OrgId,
    pub from: WalletId,
    pub to: WalletId,
    #[serde(with = "decimal_string")]
    pub amount: Decimal,
    pub currency: Currency,
    pub description: Option<String>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub risk_score: Option<Score>,
    pub confidence_score: Option<Score>,
    pub agent_reasoning: Option<String>,
    pub urgency: Option<String>,
    pub status: PaymentStatus,
    pub approval_id: Option<ApprovalId>,
    pub decision: Decision,
    /// The key that submitted the payment; it may never approve it.
    pub created_by: ApiKeyId,
    pub transaction_id: Option<TransactionId>,
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}
