//! Routing rules: which team reviews an approval (docs/api.md, "Teams and routing").
//!
//! A rule is `{name, priority, conditions, assignToTeam, isActive}`. `conditions` is a JSON object of
//! `field: {"operator", "value"}` and every condition must hold. Of an organisation's active rules
//! that match, the one with the highest `priority` wins; equal priorities go to the rule created
//! first (then the smaller id), never to whichever the store listed first.
//!
//! Fields: `taskType`, `amount`, `currency`, `urgency`, `confidenceScore`, `riskScore`, `walletId`
//! and `metadata.<dotted.path>`; Humancheck's snake_case spellings (`task_type`, `confidence_score`,
//! `risk_score`, `wallet_id`) are the same fields, and rules are written back in camelCase. A
//! metadata path is 1 to 8 non-empty segments, each an object key (a key that itself contains a
//! dot cannot be addressed; arrays are not indexed).
//!
//! Operators: `=`, `!=`, `>`, `>=`, `<`, `<=`, `in`, `not_in`, `contains`.
//!
//! How values compare:
//! - Numbers are exact decimals, never floats: `10000`, `1e4`, `"10000.00"` are one value. On
//!   `amount`, `confidenceScore` and `riskScore` everything is numeric. On metadata, a JSON number on
//!   either side makes `=`/`!=`/`in`/`not_in` numeric (the other side may be a number or a plain
//!   decimal string such as `"15000.00"`); two strings compare as text, so account number `"0012"`
//!   is not `"12"`. Ordering operators always compare decimals and need a numeric rule value.
//! - Text is compared exactly and case-sensitively (`"Payment"` is not `"payment"`), as Humancheck
//!   compares task types. `currency` values must be ISO 4217 codes (`"USD"`), `urgency` values one of
//!   `low medium high critical` and `walletId` values wallet ids: a rule that could never match
//!   because of a typo is refused when written, not discovered when an approval lands elsewhere.
//! - `contains` is a substring test on text and an element test on a metadata array.
//!
//! Missing values: a condition on a value the subject does not have (no `riskScore`, a metadata
//! path that is absent or `null`) does not hold, except `!=` and `not_in`, which do. See
//! [`Condition::matches`] for why.
//!
//! Empty conditions (`{}`) are allowed and match every approval: the explicit catch-all, usually
//! given the lowest priority to name a default team.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::ids::{OrgId, RoutingRuleId, TeamId, WalletId};
use super::input::{self, InputError};
use super::money::Currency;
use super::payment::{Payment, Urgency};
use super::score::Score;

/// Conditions one rule may have.
pub const MAX_CONDITIONS: usize = 20;
/// Segments of a `metadata.<path>`.
pub const MAX_METADATA_PATH_SEGMENTS: usize = 8;
/// Characters in one metadata path segment.
pub const MAX_PATH_SEGMENT_CHARS: usize = input::MAX_NAME_CHARS;
/// Values an `in`/`not_in` list may hold.
pub const MAX_LIST_VALUES: usize = 100;
/// Characters in one text value.
pub const MAX_VALUE_CHARS: usize = 1_000;
/// The `taskType` of a payment held by policy (docs/api.md, "Reviews").
pub const PAYMENT_TASK_TYPE: &str = "payment";

/// What a condition looks at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Field {
    TaskType,
    Amount,
    Currency,
    Urgency,
    ConfidenceScore,
    RiskScore,
    WalletId,
    /// `metadata.a.b` is `Metadata(vec!["a", "b"])`.
    Metadata(Vec<String>),
}

/// The kind of values a field holds, which decides the operators and values it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Number,
    /// Metadata: whatever JSON the client sent.
    Json,
}

impl Field {
    /// Parses a condition's key in either spelling (`riskScore`, `risk_score`, `metadata.a.b`).
    pub fn parse(key: &str) -> Result<Field, InputError> {
        let field = match key {
            "taskType" | "task_type" => Field::TaskType,
            "amount" => Field::Amount,
            "currency" => Field::Currency,
            "urgency" => Field::Urgency,
            "confidenceScore" | "confidence_score" => Field::ConfidenceScore,
            "riskScore" | "risk_score" => Field::RiskScore,
            "walletId" | "wallet_id" => Field::WalletId,
            "metadata" => {
                return Err(InputError::invalid("conditions.metadata", "name a metadata key: \"metadata.<key>\""))
            }
            _ => match key.strip_prefix("metadata.") {
                Some(path) => Field::Metadata(metadata_path(path)?),
                None => {
                    return Err(InputError::invalid(
                        "conditions",
                        format!(
                            "unknown field {:?}; expected taskType, amount, currency, urgency, confidenceScore, \
                             riskScore, walletId or metadata.<key>",
                            key.chars().take(64).collect::<String>()
                        ),
                    ))
                }
            },
        };
        Ok(field)
    }

    /// The field's camelCase name, as rules are written back: `riskScore`, `metadata.a.b`.
    pub fn name(&self) -> String {
        match self {
            Field::Metadata(path) => format!("metadata.{}", path.join(".")),
            other => other.error_name().trim_start_matches("conditions.").to_string(),
        }
    }

    /// The field an error names: `conditions.riskScore`, `conditions.metadata`.
    fn error_name(&self) -> &'static str {
        match self {
            Field::TaskType => "conditions.taskType",
            Field::Amount => "conditions.amount",
            Field::Currency => "conditions.currency",
            Field::Urgency => "conditions.urgency",
            Field::ConfidenceScore => "conditions.confidenceScore",
            Field::RiskScore => "conditions.riskScore",
            Field::WalletId => "conditions.walletId",
            Field::Metadata(_) => "conditions.metadata",
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Field::TaskType | Field::Currency | Field::Urgency | Field::WalletId => Kind::Text,
            Field::Amount | Field::ConfidenceScore | Field::RiskScore => Kind::Number,
            Field::Metadata(_) => Kind::Json,
        }
    }

    /// The subject's value of this field, `None` when it has none.
    fn read<'s>(&self, subject: &Subject<'s>) -> Option<Actual<'s>> {
        match self {
            Field::TaskType => Some(Actual::Text(subject.task_type)),
            Field::Amount => subject.amount.map(Actual::Number),
            Field::Currency => subject.currency.map(Actual::Text),
            Field::Urgency => subject.urgency.map(Actual::Text),
            Field::ConfidenceScore => subject.confidence_score.map(|s| Actual::Number(s.value())),
            Field::RiskScore => subject.risk_score.map(|s| Actual::Number(s.value())),
            Field::WalletId => subject.wallet_id.map(|w| Actual::Text(w.as_str())),
            Field::Metadata(path) => lookup(subject.metadata, path).map(Actual::Json),
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The segments of `a.b.c` (what follows `metadata.`): 1 to 8, none empty.
fn metadata_path(path: &str) -> Result<Vec<String>, InputError> {
    let field = "conditions.metadata";
    let segments: Vec<&str> = path.split('.').collect();
    if segments.len() > MAX_METADATA_PATH_SEGMENTS {
        return Err(InputError::invalid(
            field,
            format!("metadata path must have at most {MAX_METADATA_PATH_SEGMENTS} segments"),
        ));
    }
    if segments.iter().any(|s| s.is_empty()) {
        return Err(InputError::invalid(
            field,
            format!("metadata path {:?} has an empty segment", path.chars().take(64).collect::<String>()),
        ));
    }
    segments.into_iter().map(|s| input::bounded_text(field, s, MAX_PATH_SEGMENT_CHARS)).collect()
}

/// The value at `path` in `metadata`; `null` counts as absent.
fn lookup<'m>(metadata: &'m Map<String, Value>, path: &[String]) -> Option<&'m Value> {
    let (first, rest) = path.split_first()?;
    let mut value = metadata.get(first)?;
    for segment in rest {
        value = value.as_object()?.get(segment)?;
    }
    (!value.is_null()).then_some(value)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    In,
    NotIn,
    Contains,
}

impl Operator {
    pub const ALL: [Operator; 9] = [
        Operator::Eq,
        Operator::Ne,
        Operator::Gt,
        Operator::Ge,
        Operator::Lt,
        Operator::Le,
        Operator::In,
        Operator::NotIn,
        Operator::Contains,
    ];

    /// Parses the wire spelling: `=`, `!=`, `>`, `>=`, `<`, `<=`, `in`, `not_in`, `contains`.
    pub fn parse(text: &str) -> Option<Operator> {
        Operator::ALL.into_iter().find(|op| op.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Eq => "=",
            Operator::Ne => "!=",
            Operator::Gt => ">",
            Operator::Ge => ">=",
            Operator::Lt => "<",
            Operator::Le => "<=",
            Operator::In => "in",
            Operator::NotIn => "not_in",
            Operator::Contains => "contains",
        }
    }

    /// `>`, `>=`, `<`, `<=`: numbers only.
    pub fn is_ordering(self) -> bool {
        matches!(self, Operator::Gt | Operator::Ge | Operator::Lt | Operator::Le)
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Operator {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Operator {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Operator::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("unknown operator {text:?}")))
    }
}

/// One checked condition: `field operator value`. Built by [`Condition::new`] or
/// [`Conditions::parse`]; the value is kept as the rule's author wrote it (a wallet id in its
/// canonical spelling).
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub field: Field,
    pub operator: Operator,
    pub value: Value,
}

impl Condition {
    /// Checks that `operator` suits `field` and `value` suits both.
    pub fn new(field: Field, operator: Operator, value: Value) -> Result<Condition, InputError> {
        let err = field.error_name();
        Condition::checked(field, operator, value, err)
    }

    /// Parses one `key: {"operator", "value"}` entry of the conditions object.
    fn parse(key: &str, spec: &Value) -> Result<Condition, InputError> {
        let field = Field::parse(key)?;
        let err = spelled_error_name(key).unwrap_or_else(|| field.error_name());
        let Value::Object(spec) = spec else {
            return Err(InputError::invalid(err, "must be an object {\"operator\", \"value\"}"));
        };
        if let Some(extra) = spec.keys().find(|k| *k != "operator" && *k != "value") {
            return Err(InputError::invalid(
                err,
                format!("unknown key {:?}; expected operator and value", extra.chars().take(64).collect::<String>()),
            ));
        }
        let operator = match spec.get("operator") {
            None => return Err(InputError::invalid(err, "operator is required")),
            Some(Value::String(text)) => Operator::parse(text).ok_or_else(|| {
                InputError::invalid(
                    err,
                    format!(
                        "unknown operator {:?}; expected one of = != > >= < <= in not_in contains",
                        text.chars().take(16).collect::<String>()
                    ),
                )
            })?,
            Some(_) => return Err(InputError::invalid(err, "operator must be a string such as \"=\"")),
        };
        let value = spec.get("value").ok_or_else(|| InputError::invalid(err, "value is required"))?;
        Condition::checked(field, operator, value.clone(), err)
    }

    fn checked(field: Field, operator: Operator, value: Value, err: &'static str) -> Result<Condition, InputError> {
        let kind = field.kind();
        let value = match operator {
            _ if operator.is_ordering() && kind == Kind::Text => {
                return Err(InputError::invalid(
                    err,
                    format!("operator {operator} compares numbers; {field} is text (use = != in not_in contains)"),
                ));
            }
            Operator::Gt | Operator::Ge | Operator::Lt | Operator::Le => {
                if rule_decimal(&value).is_none() {
                    return Err(InputError::invalid(
                        err,
                        format!("operator {operator} needs a number such as 10000 or \"10000.00\""),
                    ));
                }
                check_number(&field, &value, err)?;
                value
            }
            Operator::In | Operator::NotIn => {
                let Value::Array(items) = value else {
                    return Err(InputError::invalid(err, format!("operator {operator} needs an array of values")));
                };
                if items.is_empty() || items.len() > MAX_LIST_VALUES {
                    return Err(InputError::invalid(
                        err,
                        format!("operator {operator} needs 1 to {MAX_LIST_VALUES} values"),
                    ));
                }
                let items = items.into_iter().map(|v| check_scalar(&field, v, err)).collect::<Result<Vec<_>, _>>()?;
                Value::Array(items)
            }
            Operator::Contains => match (kind, &value) {
                (Kind::Number, _) => {
                    return Err(InputError::invalid(
                        err,
                        format!("operator contains looks in text or lists; {field} is a number"),
                    ));
                }
                (_, Value::String(s)) if s.is_empty() => {
                    return Err(InputError::invalid(err, "operator contains needs a non-empty value"));
                }
                (Kind::Text, Value::String(s)) => Value::String(input::bounded_text(err, s, MAX_VALUE_CHARS)?),
                (Kind::Text, _) => {
                    return Err(InputError::invalid(err, "operator contains needs a string on a text field"))
                }
                (Kind::Json, _) => check_scalar(&field, value, err)?,
            },
            Operator::Eq | Operator::Ne => check_scalar(&field, value, err)?,
        };
        Ok(Condition { field, operator, value })
    }

    /// Whether the subject satisfies this condition.
    ///
    /// A value the subject lacks (no `riskScore`, metadata path absent or `null`) satisfies only
    /// `!=` and `not_in`. `!=` and `not_in` are the exact complements of `=` and `in`, so a pair of
    /// rules `currency = "USD"` / `currency != "USD"` covers every approval and none falls between
    /// the two teams: a reviewer reads "not USD" as "everything that is not USD", including a
    /// review that names no currency. Ordering operators and `contains` are never satisfied by a
    /// missing value, nor by a value that is not a number (or not text/list for `contains`): an
    /// agent that leaves out `riskScore` must not land in the `riskScore < 30` fast-track queue,
    /// and a payment whose `metadata.amount` is absent is neither `> 10000` nor `<= 10000`.
    pub fn matches(&self, subject: &Subject<'_>) -> bool {
        let Some(actual) = self.field.read(subject) else {
            return matches!(self.operator, Operator::Ne | Operator::NotIn);
        };
        let listed = || self.value.as_array().is_some_and(|items| items.iter().any(|v| actual.equals(v)));
        match self.operator {
            Operator::Eq => actual.equals(&self.value),
            Operator::Ne => !actual.equals(&self.value),
            Operator::In => listed(),
            Operator::NotIn => !listed(),
            Operator::Contains => actual.contains(&self.value),
            Operator::Gt => actual.compare(&self.value) == Some(Ordering::Greater),
            Operator::Ge => matches!(actual.compare(&self.value), Some(Ordering::Greater | Ordering::Equal)),
            Operator::Lt => actual.compare(&self.value) == Some(Ordering::Less),
            Operator::Le => matches!(actual.compare(&self.value), Some(Ordering::Less | Ordering::Equal)),
        }
    }
}

/// The error field for a key as the client spelled it (`conditions.task_type`), when known.
fn spelled_error_name(key: &str) -> Option<&'static str> {
    Some(match key {
        "task_type" => "conditions.task_type",
        "confidence_score" => "conditions.confidence_score",
        "risk_score" => "conditions.risk_score",
        "wallet_id" => "conditions.wallet_id",
        _ => return None,
    })
}

/// Checks one value compared by `=`, `!=` or listed by `in`/`not_in`; returns it normalised.
fn check_scalar(field: &Field, value: Value, err: &'static str) -> Result<Value, InputError> {
    match field.kind() {
        Kind::Number => {
            if rule_decimal(&value).is_none() {
                return Err(InputError::invalid(err, "needs a number such as 10000 or \"10000.00\""));
            }
            check_number(field, &value, err)?;
            Ok(value)
        }
        Kind::Text => {
            let Value::String(text) = value else {
                return Err(InputError::invalid(err, "needs a string"));
            };
            match field {
                Field::Currency => {
                    Currency::parse(&text).map_err(|e| InputError::invalid(err, e.to_string()))?;
                    Ok(Value::String(text))
                }
                Field::Urgency => match Urgency::parse(&text) {
                    Some(_) => Ok(Value::String(text)),
                    None => Err(InputError::invalid(err, "must be one of low, medium, high, critical")),
                },
                Field::WalletId => match WalletId::parse(&text) {
                    Some(id) => Ok(Value::String(id.as_str().to_string())),
                    None => Err(InputError::invalid(err, "must be a wallet id (\"wal_…\")")),
                },
                _ => Ok(Value::String(input::bounded_text(err, &text, MAX_VALUE_CHARS)?)),
            }
        }
        Kind::Json => match value {
            Value::String(text) => Ok(Value::String(input::bounded_text(err, &text, MAX_VALUE_CHARS)?)),
            Value::Bool(_) => Ok(value),
            Value::Number(ref n) => match number_decimal(n) {
                Some(_) => Ok(value),
                None => Err(InputError::invalid(err, "number is out of range")),
            },
            Value::Null | Value::Array(_) | Value::Object(_) => {
                Err(InputError::invalid(err, "must be a string, a number or a boolean"))
            }
        },
    }
}

/// Refuses numbers a field can never hold: scores out of range, negative amounts.
fn check_number(field: &Field, value: &Value, err: &'static str) -> Result<(), InputError> {
    let Some(d) = rule_decimal(value) else {
        return Ok(());
    };
    let (min, max, what) = match field {
        Field::ConfidenceScore => (Decimal::ZERO, Some(Decimal::ONE), "confidenceScore is between 0 and 1"),
        Field::RiskScore => (Decimal::ZERO, Some(Decimal::ONE_HUNDRED), "riskScore is between 0 and 100"),
        Field::Amount => (Decimal::ZERO, None, "amounts are never negative"),
        _ => return Ok(()),
    };
    if d < min || max.is_some_and(|max| d > max) {
        return Err(InputError::invalid(err, format!("{d} can never match: {what}")));
    }
    Ok(())
}

/// A rule's numeric value: a JSON number or a plain decimal string.
fn rule_decimal(value: &Value) -> Option<Decimal> {
    match value {
        Value::Number(n) => number_decimal(n),
        Value::String(s) => decimal_text(s),
        _ => None,
    }
}

/// A JSON number as an exact decimal: `1e2` is `100`, `0.1` is exactly one tenth (serde_json
/// keeps the shortest text that reads back as the same double). `None` beyond Decimal's range.
fn number_decimal(n: &serde_json::Number) -> Option<Decimal> {
    if let Some(i) = n.as_i64() {
        return Some(Decimal::from(i));
    }
    if let Some(u) = n.as_u64() {
        return Some(Decimal::from(u));
    }
    let text = n.to_string();
    Decimal::from_str(&text).or_else(|_| Decimal::from_scientific(&text)).ok()
}

/// A plain decimal string: an optional `-`, digits, an optional point and more digits. No
/// exponents, spaces, signs other than `-`, or separators.
fn decimal_text(text: &str) -> Option<Decimal> {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (int_part, frac_part) = match unsigned.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (unsigned, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if text.len() > 40 || !digits(int_part) || frac_part.is_some_and(|f| !digits(f)) {
        return None;
    }
    Decimal::from_str(text).ok()
}

/// A subject's value of one field.
#[derive(Debug, Clone, Copy)]
enum Actual<'s> {
    Text(&'s str),
    Number(Decimal),
    Json(&'s Value),
}

impl Actual<'_> {
    /// `=`: text exactly; numbers as decimals; metadata numerically when either side is a JSON
    /// number, else as JSON (string to string, boolean to boolean).
    fn equals(&self, rule: &Value) -> bool {
        match *self {
            Actual::Text(text) => rule.as_str() == Some(text),
            Actual::Number(d) => rule_decimal(rule) == Some(d),
            Actual::Json(value) => json_equals(value, rule),
        }
    }

    /// Ordering against a numeric rule value; `None` when this is not a number.
    fn compare(&self, rule: &Value) -> Option<Ordering> {
        let actual = match *self {
            Actual::Number(d) => d,
            Actual::Json(value) => rule_decimal(value)?,
            Actual::Text(_) => return None,
        };
        Some(actual.cmp(&rule_decimal(rule)?))
    }

    /// `contains`: a substring of text, an element of a metadata array.
    fn contains(&self, rule: &Value) -> bool {
        match *self {
            Actual::Text(text) => rule.as_str().is_some_and(|needle| text.contains(needle)),
            Actual::Number(_) => false,
            Actual::Json(Value::String(text)) => rule.as_str().is_some_and(|needle| text.contains(needle)),
            Actual::Json(Value::Array(items)) => items.iter().any(|item| json_equals(item, rule)),
            Actual::Json(_) => false,
        }
    }
}

fn json_equals(actual: &Value, rule: &Value) -> bool {
    if actual.is_number() || rule.is_number() {
        return match (rule_decimal(actual), rule_decimal(rule)) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        };
    }
    actual == rule
}

/// A rule's checked conditions, all of which must hold. Serialised as the object form
/// `{"riskScore": {"operator": ">", "value": 70}}` with camelCase field names.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Conditions(Vec<Condition>);

impl Conditions {
    /// Parses the conditions object, in either spelling. Errors name the field
    /// (`conditions.riskScore`, `conditions.task_type`, `conditions.metadata`); an unknown field or
    /// a malformed object is `conditions`. At most [`MAX_CONDITIONS`]; `{}` is the catch-all.
    pub fn parse(value: &Value) -> Result<Conditions, InputError> {
        let Value::Object(map) = value else {
            return Err(InputError::invalid("conditions", "must be an object of field: {\"operator\", \"value\"}"));
        };
        if map.len() > MAX_CONDITIONS {
            return Err(InputError::invalid("conditions", format!("must have at most {MAX_CONDITIONS} conditions")));
        }
        let conditions = map.iter().map(|(key, spec)| Condition::parse(key, spec)).collect::<Result<Vec<_>, _>>()?;
        Conditions::new(conditions)
    }

    /// Conditions built in code. Each must have been made by [`Condition::new`]; a field may appear
    /// once (`taskType` and `task_type` in one object are one field given twice).
    pub fn new(conditions: Vec<Condition>) -> Result<Conditions, InputError> {
        if conditions.len() > MAX_CONDITIONS {
            return Err(InputError::invalid("conditions", format!("must have at most {MAX_CONDITIONS} conditions")));
        }
        for (i, c) in conditions.iter().enumerate() {
            if conditions[..i].iter().any(|earlier| earlier.field == c.field) {
                return Err(InputError::invalid(c.field.error_name(), format!("{} is given more than once", c.field)));
            }
        }
        Ok(Conditions(conditions))
    }

    /// Whether every condition holds (always, for none).
    pub fn matches(&self, subject: &Subject<'_>) -> bool {
        self.0.iter().all(|c| c.matches(subject))
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Condition> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'c> IntoIterator for &'c Conditions {
    type Item = &'c Condition;
    type IntoIter = std::slice::Iter<'c, Condition>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[derive(Serialize)]
struct ConditionSpec<'a> {
    operator: Operator,
    value: &'a Value,
}

impl Serialize for Conditions {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for c in &self.0 {
            map.serialize_entry(&c.field.name(), &ConditionSpec { operator: c.operator, value: &c.value })?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Conditions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        Conditions::parse(&value).map_err(serde::de::Error::custom)
    }
}

/// Which team reviews the approvals a rule matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoutingRule {
    pub id: RoutingRuleId,
    pub org_id: OrgId,
    pub name: String,
    /// Higher wins.
    pub priority: i64,
    /// `{"riskScore": {"operator": ">", "value": 70}}`: every condition must hold; `{}` matches all.
    #[schema(value_type = Object)]
    pub conditions: Conditions,
    pub assign_to_team: TeamId,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl RoutingRule {
    /// A new active rule; `name` is expected checked (`input::name`).
    pub fn new(
        org_id: OrgId,
        name: String,
        priority: i64,
        conditions: Conditions,
        assign_to_team: TeamId,
        now: DateTime<Utc>,
    ) -> Self {
        RoutingRule {
            id: RoutingRuleId::generate(),
            org_id,
            name,
            priority,
            conditions,
            assign_to_team,
            is_active: true,
            created_at: now,
            updated_at: now,
        }
    }

    /// Active, of the subject's organisation, and every condition holds.
    pub fn matches(&self, subject: &Subject<'_>) -> bool {
        self.is_active && self.org_id == *subject.org_id && self.conditions.matches(subject)
    }

    /// Which of two rules goes first: higher priority, then created earlier, then the smaller id
    /// (ids sort by creation time), so the order never depends on how the rules were listed.
    fn precedence(&self, other: &RoutingRule) -> Ordering {
        other
            .priority
            .cmp(&self.priority)
            .then(self.created_at.cmp(&other.created_at))
            .then_with(|| self.id.cmp(&other.id))
    }
}

/// What routing looks at: an approval's request (a payment, or a review an agent sent).
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    /// Rules of any other organisation never match, whatever the caller passes.
    pub org_id: &'a OrgId,
    pub task_type: &'a str,
    pub amount: Option<Decimal>,
    pub currency: Option<&'a str>,
    /// `low`, `medium`, `high` or `critical`.
    pub urgency: Option<&'a str>,
    pub confidence_score: Option<Score>,
    pub risk_score: Option<Score>,
    pub wallet_id: Option<&'a WalletId>,
    pub metadata: &'a Map<String, Value>,
}

impl<'a> Subject<'a> {
    /// A subject with only a task type and metadata (a review); set the other fields as known.
    pub fn new(org_id: &'a OrgId, task_type: &'a str, metadata: &'a Map<String, Value>) -> Self {
        Subject {
            org_id,
            task_type,
            amount: None,
            currency: None,
            urgency: None,
            confidence_score: None,
            risk_score: None,
            wallet_id: None,
            metadata,
        }
    }

    /// A payment held by policy: task type `payment`, its amount and currency, the source wallet,
    /// its scores, urgency and metadata. (`metadata.amount` is the client's metadata, not the
    /// payment's amount: rules on payments should use `amount`.)
    pub fn for_payment(payment: &'a Payment) -> Self {
        Subject {
            org_id: &payment.org_id,
            task_type: PAYMENT_TASK_TYPE,
            amount: Some(payment.amount.amount()),
            currency: Some(payment.amount.currency().code()),
            urgency: payment.urgency.map(urgency_name),
            confidence_score: payment.confidence_score,
            risk_score: payment.risk_score,
            wallet_id: Some(&payment.from),
            metadata: &payment.metadata,
        }
    }
}

impl<'a> Subject<'a> {
    /// A refund held by policy: task type `refund`, its amount and currency, the payee's wallet
    /// (the one it leaves), its risk score, and the refunded payment's urgency and metadata.
    pub fn for_refund(refund: &'a crate::domain::refund::Refund, payment: &'a Payment) -> Self {
        Subject {
            org_id: &refund.org_id,
            task_type: REFUND_TASK_TYPE,
            amount: Some(refund.amount.amount()),
            currency: Some(refund.amount.currency().code()),
            urgency: payment.urgency.map(urgency_name),
            confidence_score: None,
            risk_score: refund.risk_score,
            wallet_id: Some(&refund.from),
            metadata: &payment.metadata,
        }
    }
}

/// The task type a held refund shows as (routing, `/reviews`).
pub const REFUND_TASK_TYPE: &str = "refund";

pub fn urgency_name(urgency: Urgency) -> &'static str {
    match urgency {
        Urgency::Low => "low",
        Urgency::Medium => "medium",
        Urgency::High => "high",
        Urgency::Critical => "critical",
    }
}

/// The rule that assigns the subject's team: of the active rules of the subject's organisation
/// that match, the highest priority; ties go to the rule created first. `None`: no rule matches.
pub fn route<'r>(rules: &'r [RoutingRule], subject: &Subject<'_>) -> Option<&'r RoutingRule> {
    rules.iter().filter(|r| r.matches(subject)).min_by(|a, b| a.precedence(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use proptest::prelude::*;
    use serde_json::json;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn conditions(v: Value) -> Conditions {
        Conditions::parse(&v).unwrap_or_else(|e| panic!("{v}: {e}"))
    }

    fn rule(org: &OrgId, priority: i64, conds: Value) -> RoutingRule {
        RoutingRule::new(org.clone(), "r".into(), priority, conditions(conds), TeamId::generate(), Utc::now())
    }

    /// A payment-like subject with every field set.
    struct Fixture {
        org: OrgId,
        wallet: WalletId,
        metadata: Map<String, Value>,
    }

    impl Fixture {
        fn new() -> Self {
            Fixture {
                org: OrgId::generate(),
                wallet: WalletId::generate(),
                metadata: obj(json!({
                    "amount": "15000.00",
                    "count": 3,
                    "ratio": 0.1,
                    "vendor": "ACME Corp",
                    "account": "0012",
                    "tags": ["urgent", "vendor", 42],
                    "is_scheduled": true,
                    "nested": {"deep": {"level": "gold"}},
                    "nothing": null,
                })),
            }
        }

        fn subject(&self) -> Subject<'_> {
            Subject {
                org_id: &self.org,
                task_type: "payment",
                amount: Some(d("5000.00")),
                currency: Some("USD"),
                urgency: Some("high"),
                confidence_score: Some(Score::new(d("0.9"))),
                risk_score: Some(Score::new(d("70"))),
                wallet_id: Some(&self.wallet),
                metadata: &self.metadata,
            }
        }

        /// The same organisation and metadata, nothing else known.
        fn bare(&self) -> Subject<'_> {
            Subject::new(&self.org, "payment", &self.metadata)
        }
    }

    fn holds(conds: Value, subject: &Subject<'_>) -> bool {
        conditions(conds).matches(subject)
    }

    #[test]
    fn every_operator_on_every_field() {
        let f = Fixture::new();
        let s = f.subject();
        let w = f.wallet.as_str();
        let other_wallet = WalletId::generate();
        let ow = other_wallet.as_str();
        let table: Vec<(Value, bool)> = vec![
            // taskType
            (json!({"taskType": {"operator": "=", "value": "payment"}}), true),
            (json!({"taskType": {"operator": "=", "value": "Payment"}}), false),
            (json!({"taskType": {"operator": "!=", "value": "refund"}}), true),
            (json!({"taskType": {"operator": "!=", "value": "payment"}}), false),
            (json!({"taskType": {"operator": "in", "value": ["refund", "payment"]}}), true),
            (json!({"taskType": {"operator": "in", "value": ["refund"]}}), false),
            (json!({"taskType": {"operator": "not_in", "value": ["refund"]}}), true),
            (json!({"taskType": {"operator": "not_in", "value": ["payment"]}}), false),
            (json!({"taskType": {"operator": "contains", "value": "pay"}}), true),
            (json!({"taskType": {"operator": "contains", "value": "PAY"}}), false),
            // amount
            (json!({"amount": {"operator": "=", "value": "5000"}}), true),
            (json!({"amount": {"operator": "=", "value": 5000}}), true),
            (json!({"amount": {"operator": "!=", "value": 5000.01}}), true),
            (json!({"amount": {"operator": ">", "value": 4999.99}}), true),
            (json!({"amount": {"operator": ">", "value": 5000}}), false),
            (json!({"amount": {"operator": ">=", "value": "5000.00"}}), true),
            (json!({"amount": {"operator": "<", "value": "5000.01"}}), true),
            (json!({"amount": {"operator": "<", "value": 5000}}), false),
            (json!({"amount": {"operator": "<=", "value": 5000}}), true),
            (json!({"amount": {"operator": "<=", "value": "4999.99"}}), false),
            (json!({"amount": {"operator": "in", "value": [1, "5000.0"]}}), true),
            (json!({"amount": {"operator": "not_in", "value": [1, 2]}}), true),
            // currency
            (json!({"currency": {"operator": "=", "value": "USD"}}), true),
            (json!({"currency": {"operator": "!=", "value": "EUR"}}), true),
            (json!({"currency": {"operator": "in", "value": ["EUR", "USD"]}}), true),
            (json!({"currency": {"operator": "not_in", "value": ["USD"]}}), false),
            (json!({"currency": {"operator": "contains", "value": "US"}}), true),
            // urgency
            (json!({"urgency": {"operator": "=", "value": "high"}}), true),
            (json!({"urgency": {"operator": "in", "value": ["high", "critical"]}}), true),
            (json!({"urgency": {"operator": "not_in", "value": ["low", "medium"]}}), true),
            (json!({"urgency": {"operator": "!=", "value": "high"}}), false),
            // confidenceScore
            (json!({"confidenceScore": {"operator": "<", "value": 0.95}}), true),
            (json!({"confidenceScore": {"operator": ">=", "value": "0.90"}}), true),
            (json!({"confidenceScore": {"operator": "=", "value": 0.9}}), true),
            (json!({"confidenceScore": {"operator": ">", "value": 0.9}}), false),
            // riskScore
            (json!({"riskScore": {"operator": ">=", "value": 70}}), true),
            (json!({"riskScore": {"operator": ">", "value": 70}}), false),
            (json!({"riskScore": {"operator": "<=", "value": 69.99}}), false),
            (json!({"riskScore": {"operator": "in", "value": [70, 80]}}), true),
            // walletId
            (json!({"walletId": {"operator": "=", "value": w}}), true),
            (json!({"walletId": {"operator": "=", "value": ow}}), false),
            (json!({"walletId": {"operator": "!=", "value": ow}}), true),
            (json!({"walletId": {"operator": "in", "value": [ow, w]}}), true),
            (json!({"walletId": {"operator": "not_in", "value": [ow]}}), true),
            (json!({"walletId": {"operator": "contains", "value": "wal_"}}), true),
            // metadata
            (json!({"metadata.vendor": {"operator": "=", "value": "ACME Corp"}}), true),
            (json!({"metadata.vendor": {"operator": "=", "value": "acme corp"}}), false),
            (json!({"metadata.vendor": {"operator": "contains", "value": "ACME"}}), true),
            (json!({"metadata.vendor": {"operator": "!=", "value": "Globex"}}), true),
            (json!({"metadata.vendor": {"operator": "in", "value": ["Globex", "ACME Corp"]}}), true),
            (json!({"metadata.vendor": {"operator": "not_in", "value": ["ACME Corp"]}}), false),
            (json!({"metadata.vendor": {"operator": ">", "value": 1}}), false),
            (json!({"metadata.count": {"operator": ">", "value": 2}}), true),
            (json!({"metadata.count": {"operator": "<", "value": "3.5"}}), true),
            (json!({"metadata.count": {"operator": "=", "value": "3"}}), true),
            (json!({"metadata.tags": {"operator": "contains", "value": "urgent"}}), true),
            (json!({"metadata.tags": {"operator": "contains", "value": "urg"}}), false),
            (json!({"metadata.tags": {"operator": "contains", "value": 42.0}}), true),
            (json!({"metadata.tags": {"operator": "contains", "value": "42"}}), true),
            (json!({"metadata.tags": {"operator": "contains", "value": "4"}}), false),
            (json!({"metadata.count": {"operator": "contains", "value": "3"}}), false),
            (json!({"metadata.is_scheduled": {"operator": "=", "value": true}}), true),
            (json!({"metadata.is_scheduled": {"operator": "!=", "value": true}}), false),
            (json!({"metadata.nested.deep.level": {"operator": "=", "value": "gold"}}), true),
            (json!({"metadata.nested.deep": {"operator": "=", "value": "gold"}}), false),
            (json!({"metadata.vendor.name": {"operator": "=", "value": "ACME Corp"}}), false),
            // all must hold; none is the catch-all
            (
                json!({"taskType": {"operator": "=", "value": "payment"}, "riskScore": {"operator": ">", "value": 50}}),
                true,
            ),
            (
                json!({"taskType": {"operator": "=", "value": "payment"}, "riskScore": {"operator": ">", "value": 90}}),
                false,
            ),
            (json!({}), true),
        ];
        for (conds, expected) in table {
            assert_eq!(holds(conds.clone(), &s), expected, "{conds}");
        }
    }

    #[test]
    fn numbers_compare_as_exact_decimals() {
        let f = Fixture::new();
        let s = f.subject();
        let table: Vec<(Value, bool)> = vec![
            // metadata "amount": "15000.00", a decimal string on the subject side
            (json!({"metadata.amount": {"operator": "=", "value": 15000}}), true),
            (json!({"metadata.amount": {"operator": "=", "value": 15000.0}}), true),
            (json!({"metadata.amount": {"operator": "=", "value": 1.5e4}}), true),
            (json!({"metadata.amount": {"operator": ">", "value": 10000}}), true),
            (json!({"metadata.amount": {"operator": ">", "value": "14999.999"}}), true),
            (json!({"metadata.amount": {"operator": ">=", "value": "15000"}}), true),
            (json!({"metadata.amount": {"operator": "<", "value": 15000}}), false),
            (json!({"metadata.amount": {"operator": "in", "value": [1e4, 15000]}}), true),
            // two strings compare as text: "15000.00" is not "15000", "0012" is not "12"
            (json!({"metadata.amount": {"operator": "=", "value": "15000"}}), false),
            (json!({"metadata.amount": {"operator": "=", "value": "15000.00"}}), true),
            (json!({"metadata.account": {"operator": "=", "value": "12"}}), false),
            (json!({"metadata.account": {"operator": "=", "value": 12}}), true),
            // 0.1 is exactly one tenth, not the double nearest it
            (json!({"metadata.ratio": {"operator": "=", "value": "0.1"}}), true),
            (json!({"metadata.ratio": {"operator": "<", "value": "0.1000000000000000000001"}}), true),
            (json!({"metadata.ratio": {"operator": ">", "value": "0.0999999999999999999999"}}), true),
            (json!({"amount": {"operator": "=", "value": 5e3}}), true),
        ];
        for (conds, expected) in table {
            assert_eq!(holds(conds.clone(), &s), expected, "{conds}");
        }

        let org = OrgId::generate();
        let cases: Vec<(Value, Value, bool)> = vec![
            (json!("10000.00"), json!(10000), true),
            (json!(10000), json!("10000.00"), true),
            (json!(1e2), json!("100"), true),
            (json!("100"), json!(1e2), true),
            (json!("100.000"), json!(100), true),
            (json!("-5"), json!(-5), true),
            (json!("1e2"), json!(100), false),
            (json!(" 100"), json!(100), false),
            (json!("1,000"), json!(1000), false),
            (json!(u64::MAX), json!("18446744073709551615"), true),
        ];
        for (actual, rule_value, expected) in cases {
            let metadata = obj(json!({ "x": actual }));
            let subject = Subject::new(&org, "t", &metadata);
            let eq = holds(json!({"metadata.x": {"operator": "=", "value": rule_value}}), &subject);
            assert_eq!(eq, expected, "{actual} = {rule_value}");
            let ne = holds(json!({"metadata.x": {"operator": "!=", "value": rule_value}}), &subject);
            assert_eq!(ne, !expected, "{actual} != {rule_value}");
        }
    }

    #[test]
    fn missing_values_hold_only_negations() {
        let f = Fixture::new();
        let s = f.bare();
        let w = WalletId::generate();
        let table: Vec<(Value, bool)> = vec![
            (json!({"riskScore": {"operator": ">", "value": 50}}), false),
            (json!({"riskScore": {"operator": "<", "value": 50}}), false),
            (json!({"riskScore": {"operator": "=", "value": 0}}), false),
            (json!({"riskScore": {"operator": "!=", "value": 0}}), true),
            (json!({"confidenceScore": {"operator": "<=", "value": 1}}), false),
            (json!({"amount": {"operator": ">=", "value": 0}}), false),
            (json!({"currency": {"operator": "=", "value": "USD"}}), false),
            (json!({"currency": {"operator": "!=", "value": "USD"}}), true),
            (json!({"currency": {"operator": "in", "value": ["USD"]}}), false),
            (json!({"currency": {"operator": "not_in", "value": ["USD"]}}), true),
            (json!({"currency": {"operator": "contains", "value": "U"}}), false),
            (json!({"urgency": {"operator": "not_in", "value": ["high"]}}), true),
            (json!({"walletId": {"operator": "=", "value": w.as_str()}}), false),
            (json!({"walletId": {"operator": "!=", "value": w.as_str()}}), true),
            (json!({"metadata.absent": {"operator": "=", "value": 1}}), false),
            (json!({"metadata.absent": {"operator": ">", "value": 1}}), false),
            (json!({"metadata.absent": {"operator": "contains", "value": "x"}}), false),
            (json!({"metadata.absent": {"operator": "!=", "value": 1}}), true),
            (json!({"metadata.absent.deeper": {"operator": "not_in", "value": [1]}}), true),
            (json!({"metadata.nothing": {"operator": "=", "value": "x"}}), false),
            (json!({"metadata.nothing": {"operator": "!=", "value": "x"}}), true),
        ];
        for (conds, expected) in table {
            assert_eq!(holds(conds.clone(), &s), expected, "{conds}");
        }
    }

    #[test]
    fn both_spellings_are_one_rule_written_back_in_camel_case() {
        let w = WalletId::generate();
        let pairs = [
            ("taskType", "task_type", json!("payment")),
            ("confidenceScore", "confidence_score", json!(0.5)),
            ("riskScore", "risk_score", json!(50)),
            ("walletId", "wallet_id", json!(w.as_str())),
        ];
        for (camel, snake, value) in pairs {
            let a = conditions(json!({ camel: {"operator": "=", "value": value} }));
            let b = conditions(json!({ snake: {"operator": "=", "value": value} }));
            assert_eq!(a, b, "{camel} / {snake}");
            assert_eq!(serde_json::to_value(&b).unwrap(), json!({ camel: {"operator": "=", "value": value} }));
        }
        let both = json!({"taskType": {"operator": "=", "value": "a"}, "task_type": {"operator": "=", "value": "b"}});
        let err = Conditions::parse(&both).unwrap_err();
        assert_eq!(err.field(), "conditions.taskType", "{err}");
        assert!(err.to_string().contains("more than once"), "{err}");
    }

    #[test]
    fn the_seed_rule_routes_high_value_payments_to_finance() {
        // Humancheck's example, as its client sends it.
        let conds = conditions(json!({
            "task_type": {"operator": "=", "value": "payment"},
            "metadata.amount": {"operator": ">", "value": 10000}
        }));
        assert_eq!(
            serde_json::to_value(&conds).unwrap(),
            json!({
                "taskType": {"operator": "=", "value": "payment"},
                "metadata.amount": {"operator": ">", "value": 10000}
            })
        );
        let org = OrgId::generate();
        let finance = TeamId::generate();
        let rule = RoutingRule::new(
            org.clone(),
            "High-value payments to finance team".into(),
            100,
            conds,
            finance.clone(),
            Utc::now(),
        );
        let rules = [rule];
        let cases = [
            ("payment", json!({"amount": 15000, "vendor": "ACME Corp", "currency": "USD"}), true),
            ("payment", json!({"amount": "15000.00"}), true),
            ("payment", json!({"amount": 10000.01}), true),
            ("payment", json!({"amount": 10000}), false),
            ("payment", json!({"amount": "10000.00"}), false),
            ("payment", json!({"amount": 5000}), false),
            ("payment", json!({"vendor": "ACME Corp"}), false),
            ("refund", json!({"amount": 15000}), false),
        ];
        for (task_type, metadata, expected) in cases {
            let metadata = obj(metadata);
            let subject = Subject::new(&org, task_type, &metadata);
            let team = route(&rules, &subject).map(|r| &r.assign_to_team);
            assert_eq!(team, expected.then_some(&finance), "{task_type} {metadata:?}");
        }
    }

    #[test]
    fn highest_priority_wins_and_ties_go_to_the_earliest() {
        let org = OrgId::generate();
        let f = Fixture { org: org.clone(), ..Fixture::new() };
        let s = f.subject();
        let now = Utc::now();
        let payment = json!({"taskType": {"operator": "=", "value": "payment"}});
        let at = |priority, seconds, conds: &Value| RoutingRule {
            created_at: now + Duration::seconds(seconds),
            ..rule(&org, priority, conds.clone())
        };
        let low = at(1, 0, &payment);
        let high_late = at(10, 5, &payment);
        let high_early = at(10, 1, &payment);
        let higher_no_match = at(50, 0, &json!({"taskType": {"operator": "=", "value": "refund"}}));
        let highest_inactive = RoutingRule { is_active: false, ..at(99, 0, &payment) };
        let other_org = RoutingRule { org_id: OrgId::generate(), ..at(98, 0, &payment) };
        let rules =
            vec![low.clone(), high_late.clone(), higher_no_match, high_early.clone(), highest_inactive, other_org];
        assert_eq!(route(&rules, &s).map(|r| &r.id), Some(&high_early.id));
        let mut reversed = rules.clone();
        reversed.reverse();
        assert_eq!(route(&reversed, &s).map(|r| &r.id), Some(&high_early.id));
        // Same priority and time: the smaller (older) id.
        let twin = RoutingRule { id: RoutingRuleId::generate(), ..high_early.clone() };
        let (first, second) = if twin.id < high_early.id { (&twin, &high_early) } else { (&high_early, &twin) };
        let both = [second.clone(), first.clone()];
        assert_eq!(route(&both, &s).map(|r| &r.id), Some(&first.id));
        assert_eq!(route(&[low.clone(), high_late], &s).map(|r| r.priority), Some(10));
        assert_eq!(route(std::slice::from_ref(&low), &s).map(|r| &r.id), Some(&low.id));
        assert!(route(&[], &s).is_none());
        // Negative priorities are ordinary numbers.
        assert_eq!(route(&[at(-5, 0, &payment), at(-1, 9, &payment)], &s).map(|r| r.priority), Some(-1));
    }

    #[test]
    fn inactive_and_foreign_rules_are_ignored() {
        let f = Fixture::new();
        let s = f.subject();
        let active = rule(&f.org, 0, json!({}));
        let inactive = RoutingRule { is_active: false, ..rule(&f.org, 100, json!({})) };
        assert_eq!(route(&[inactive.clone(), active.clone()], &s).map(|r| &r.id), Some(&active.id));
        assert!(route(std::slice::from_ref(&inactive), &s).is_none());
        let foreign = rule(&OrgId::generate(), 100, json!({}));
        assert!(route(std::slice::from_ref(&foreign), &s).is_none());
    }

    #[test]
    fn parse_errors_name_the_field() {
        let long_path = format!("metadata.{}", ["a"; 9].join("."));
        let too_many: Map<String, Value> =
            (0..21).map(|i| (format!("metadata.k{i}"), json!({"operator": "=", "value": 1}))).collect();
        let table: Vec<(Value, &str, &str)> = vec![
            (json!({"colour": {"operator": "=", "value": "red"}}), "conditions", "\"colour\""),
            (json!({"taskType": {"operator": "~", "value": "x"}}), "conditions.taskType", "unknown operator \"~\""),
            (json!({"taskType": {"operator": "==", "value": "x"}}), "conditions.taskType", "unknown operator"),
            (json!({"task_type": {"operator": 1, "value": "x"}}), "conditions.task_type", "operator must be"),
            (json!({"taskType": {"value": "x"}}), "conditions.taskType", "operator is required"),
            (json!({"taskType": {"operator": "="}}), "conditions.taskType", "value is required"),
            (json!({"taskType": {"operator": "=", "value": "x", "x": 1}}), "conditions.taskType", "unknown key"),
            (json!({"taskType": "payment"}), "conditions.taskType", "must be an object"),
            (json!({"taskType": {"operator": "=", "value": 1}}), "conditions.taskType", "string"),
            (json!({"currency": {"operator": "in", "value": "USD"}}), "conditions.currency", "array"),
            (json!({"riskScore": {"operator": "not_in", "value": 5}}), "conditions.riskScore", "array"),
            (json!({"risk_score": {"operator": "in", "value": []}}), "conditions.risk_score", "1 to 100"),
            (json!({"amount": {"operator": ">", "value": "lots"}}), "conditions.amount", "needs a number"),
            (json!({"amount": {"operator": ">", "value": "1e3"}}), "conditions.amount", "needs a number"),
            (json!({"amount": {"operator": "<", "value": true}}), "conditions.amount", "needs a number"),
            (json!({"amount": {"operator": "=", "value": "x"}}), "conditions.amount", "needs a number"),
            (json!({"amount": {"operator": "contains", "value": "1"}}), "conditions.amount", "is a number"),
            (json!({"metadata.amount": {"operator": ">", "value": "big"}}), "conditions.metadata", "needs a number"),
            (json!({"taskType": {"operator": ">", "value": 1}}), "conditions.taskType", "is text"),
            (json!({"currency": {"operator": ">=", "value": 1}}), "conditions.currency", "is text"),
            (json!({"urgency": {"operator": "<", "value": 1}}), "conditions.urgency", "is text"),
            (json!({"wallet_id": {"operator": "<=", "value": 1}}), "conditions.wallet_id", "is text"),
            (json!({"currency": {"operator": "=", "value": "usd"}}), "conditions.currency", "currency"),
            (json!({"urgency": {"operator": "in", "value": ["high", "urgent"]}}), "conditions.urgency", "one of"),
            (json!({"walletId": {"operator": "=", "value": "wal_nope"}}), "conditions.walletId", "wallet id"),
            (json!({"riskScore": {"operator": ">", "value": 101}}), "conditions.riskScore", "never match"),
            (json!({"confidence_score": {"operator": ">", "value": 90}}), "conditions.confidence_score", "0 and 1"),
            (json!({"amount": {"operator": ">", "value": -1}}), "conditions.amount", "never negative"),
            (json!({"metadata": {"operator": "=", "value": 1}}), "conditions.metadata", "metadata.<key>"),
            (json!({"metadata.": {"operator": "=", "value": 1}}), "conditions.metadata", "empty segment"),
            (json!({"metadata.a..b": {"operator": "=", "value": 1}}), "conditions.metadata", "empty segment"),
            (json!({ long_path: {"operator": "=", "value": 1}}), "conditions.metadata", "at most 8"),
            (json!({"metadata.x": {"operator": "=", "value": null}}), "conditions.metadata", "string, a number"),
            (json!({"metadata.x": {"operator": "=", "value": {"a": 1}}}), "conditions.metadata", "string, a number"),
            (json!({"metadata.x": {"operator": "in", "value": [[1]]}}), "conditions.metadata", "string, a number"),
            (json!({"metadata.x": {"operator": "contains", "value": ""}}), "conditions.metadata", "non-empty"),
            (json!({"metadata.x": {"operator": "=", "value": "x".repeat(1001)}}), "conditions.metadata", "1000"),
            (Value::Object(too_many), "conditions", "at most 20"),
            (json!([]), "conditions", "must be an object"),
            (json!(null), "conditions", "must be an object"),
        ];
        for (conds, field, fragment) in table {
            let err = Conditions::parse(&conds).expect_err(&conds.to_string());
            assert_eq!(err.field(), field, "{conds}: {err}");
            assert!(err.to_string().contains(fragment), "{conds}: {err}");
        }
        let eight = format!("metadata.{}", ["a"; 8].join("."));
        let twenty: Map<String, Value> =
            (0..20).map(|i| (format!("metadata.k{i}"), json!({"operator": "=", "value": 1}))).collect();
        for ok in [json!({ eight: {"operator": "=", "value": 1}}), Value::Object(twenty), json!({})] {
            assert!(Conditions::parse(&ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn wallet_ids_are_kept_in_their_canonical_spelling() {
        let w = WalletId::generate();
        let lower = format!("wal_{}", w.as_str().strip_prefix("wal_").unwrap().to_lowercase());
        let conds = conditions(json!({"walletId": {"operator": "in", "value": [lower]}}));
        assert_eq!(conds.iter().next().unwrap().value, json!([w.as_str()]));
        let org = OrgId::generate();
        let metadata = Map::new();
        let subject = Subject { wallet_id: Some(&w), ..Subject::new(&org, "payment", &metadata) };
        assert!(conds.matches(&subject));
    }

    #[test]
    fn conditions_built_in_code_are_checked_like_parsed_ones() {
        let ok = Condition::new(Field::RiskScore, Operator::Ge, json!(80)).unwrap();
        assert!(Conditions::new(vec![ok.clone()]).is_ok());
        assert_eq!(Condition::new(Field::Currency, Operator::Gt, json!(1)).unwrap_err().field(), "conditions.currency");
        assert!(Conditions::new(vec![ok.clone(), ok]).is_err());
        assert_eq!(Field::Metadata(vec!["a".into(), "b".into()]).to_string(), "metadata.a.b");
        assert_eq!(Field::parse("metadata.a.b").unwrap(), Field::Metadata(vec!["a".into(), "b".into()]));
        for op in Operator::ALL {
            assert_eq!(Operator::parse(op.as_str()), Some(op));
        }
    }

    #[test]
    fn rules_serialise_in_camel_case_and_read_back() {
        let org = OrgId::generate();
        let r = rule(
            &org,
            100,
            json!({
                "task_type": {"operator": "=", "value": "payment"},
                "risk_score": {"operator": ">=", "value": 70},
                "metadata.vendor.tier": {"operator": "in", "value": ["gold", "silver"]}
            }),
        );
        let wire = serde_json::to_value(&r).unwrap();
        for key in
            ["id", "orgId", "name", "priority", "conditions", "assignToTeam", "isActive", "createdAt", "updatedAt"]
        {
            assert!(wire.get(key).is_some(), "{key} in {wire}");
        }
        assert_eq!(
            wire["conditions"],
            json!({
                "taskType": {"operator": "=", "value": "payment"},
                "riskScore": {"operator": ">=", "value": 70},
                "metadata.vendor.tier": {"operator": "in", "value": ["gold", "silver"]}
            })
        );
        assert_eq!(serde_json::from_value::<RoutingRule>(wire.clone()).unwrap(), r);
        let mut bad = wire;
        bad["conditions"] = json!({"colour": {"operator": "=", "value": "red"}});
        let err = serde_json::from_value::<RoutingRule>(bad).unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn a_payment_is_routed_on_its_own_fields() {
        use crate::domain::ids::ApiKeyId;
        use crate::domain::money::Amount;
        use crate::domain::payment::NewPayment;
        use crate::domain::policy::{Decision, Outcome};
        let request = NewPayment {
            urgency: Some(Urgency::Critical),
            risk_score: Some(Score::new(d("85"))),
            metadata: obj(json!({"vendor": "ACME"})),
            ..NewPayment::new(WalletId::generate(), WalletId::generate(), Amount::parse("20000.00").unwrap())
        };
        let decision = Decision {
            outcome: Outcome::Hold,
            rule: "r".into(),
            reason: "held".into(),
            policy_id: None,
            approval_ttl_seconds: None,
            required_approvals: 1,
            escalation_chain: vec![],
            on_timeout: Default::default(),
        };
        let amount = request.amount.in_currency(Currency::USD).unwrap();
        let org = OrgId::generate();
        let payment = Payment::new(org, &request, amount, decision, ApiKeyId::generate(), Utc::now());
        let s = Subject::for_payment(&payment);
        let conds = json!({
            "taskType": {"operator": "=", "value": "payment"},
            "amount": {"operator": ">", "value": "10000"},
            "currency": {"operator": "=", "value": "USD"},
            "urgency": {"operator": "=", "value": "critical"},
            "riskScore": {"operator": ">=", "value": 80},
            "confidenceScore": {"operator": "!=", "value": 1},
            "walletId": {"operator": "=", "value": payment.from.as_str()},
            "metadata.vendor": {"operator": "=", "value": "ACME"}
        });
        assert!(holds(conds, &s));
        assert!(!holds(json!({"walletId": {"operator": "=", "value": payment.to.as_str()}}), &s));
        assert!(!holds(json!({"confidenceScore": {"operator": "<", "value": 1}}), &s));
    }

    /// A small pool of conditions, some holding for `Fixture::subject`, some not.
    fn pool() -> Vec<Value> {
        vec![
            json!({}),
            json!({"taskType": {"operator": "=", "value": "payment"}}),
            json!({"taskType": {"operator": "=", "value": "refund"}}),
            json!({"riskScore": {"operator": ">=", "value": 50}}),
            json!({"riskScore": {"operator": "<", "value": 50}}),
            json!({"metadata.amount": {"operator": ">", "value": 10000}}),
            json!({"currency": {"operator": "not_in", "value": ["EUR"]}}),
        ]
    }

    fn arb_rules() -> impl Strategy<Value = Vec<(i64, i64, usize, bool, u16)>> {
        // (priority, created second, pool index, active, id randomness): few values, many ties.
        proptest::collection::vec((0i64..3, 0i64..3, 0usize..7, any::<bool>(), any::<u16>()), 0..12)
    }

    proptest! {
        /// However the store lists the rules, the same one wins: the highest priority, then the
        /// earliest created, then the smallest id.
        #[test]
        fn shuffling_never_changes_the_winner(
            (specs, shuffled) in arb_rules().prop_flat_map(|specs| {
                let order: Vec<usize> = (0..specs.len()).collect();
                (Just(specs), Just(order).prop_shuffle())
            })
        ) {
            let f = Fixture::new();
            let s = f.subject();
            let base = Utc::now();
            let pool = pool();
            let rules: Vec<RoutingRule> = specs
                .iter()
                .enumerate()
                .map(|(i, &(priority, second, cond, active, random))| {
                    let ulid = ulid::Ulid::from_parts(1_700_000_000_000, (u128::from(random) << 8) | i as u128);
                    RoutingRule {
                        id: RoutingRuleId::parse(&format!("rule_{ulid}")).unwrap(),
                        created_at: base + Duration::seconds(second),
                        is_active: active,
                        ..rule(&f.org, priority, pool[cond].clone())
                    }
                })
                .collect();
            let listed: Vec<RoutingRule> = shuffled.iter().map(|&i| rules[i].clone()).collect();
            let expected = rules
                .iter()
                .filter(|r| r.is_active && r.conditions.matches(&s))
                .min_by_key(|r| (-r.priority, r.created_at, r.id.clone()))
                .map(|r| r.id.clone());
            prop_assert_eq!(route(&rules, &s).map(|r| r.id.clone()), expected.clone());
            prop_assert_eq!(route(&listed, &s).map(|r| r.id.clone()), expected);
        }

        /// `!=` and `not_in` are exact complements of `=` and `in`, present or missing.
        #[test]
        fn negations_complement(
            actual in prop_oneof![
                Just(None),
                any::<i32>().prop_map(|n| Some(json!(n))),
                (-1000i64..1000).prop_map(|n| Some(json!(format!("{}.{:02}", n / 100, (n % 100).abs())))),
                "[a-c0-9.]{0,4}".prop_map(|t| Some(json!(t))),
                any::<bool>().prop_map(|b| Some(json!(b))),
            ],
            rule_value in prop_oneof![
                any::<i32>().prop_map(|n| json!(n)),
                (-1000i64..1000).prop_map(|n| json!(format!("{}.{}", n / 100, (n % 100).abs()))),
                "[a-c0-9.]{1,4}".prop_map(|t| json!(t)),
                any::<bool>().prop_map(|b| json!(b)),
            ],
        ) {
            let org = OrgId::generate();
            let metadata: Map<String, Value> = actual.into_iter().map(|v| ("x".to_string(), v)).collect();
            let s = Subject::new(&org, "t", &metadata);
            let with = |op: &str, v: &Value| holds(json!({"metadata.x": {"operator": op, "value": v}}), &s);
            let list = json!([rule_value.clone()]);
            prop_assert_eq!(with("=", &rule_value), !with("!=", &rule_value));
            prop_assert_eq!(with("in", &list), !with("not_in", &list));
            prop_assert_eq!(with("=", &rule_value), with("in", &list));
        }

        #[test]
        fn parsing_never_panics(key in "\\PC{0,24}", op in "\\PC{0,4}", text in "\\PC{0,8}", n in any::<f64>()) {
            let n = serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number);
            for value in [json!(text), n.clone(), json!([text, n])] {
                let _ = Conditions::parse(&json!({ key.clone(): {"operator": op, "value": value} }));
            }
        }
    }
}
