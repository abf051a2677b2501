//! Scores an agent sends with a request: risk 0–100, confidence 0–1.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A score sent by an agent (risk 0–100, confidence 0–1): a JSON number on the wire, an exact
/// decimal inside so comparisons with thresholds are exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, utoipa::ToSchema)]
#[schema(value_type = f64)]
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
