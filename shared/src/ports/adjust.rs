//! In-place changes of a stored record (`Write::Adjust`, `Write::Require`): what they say, and
//! how a store that keeps the record as JSON applies them. A counter is a top-level field
//! holding a decimal string (money, or a count); DynamoDB keeps counters as numbers and does
//! the same arithmetic itself.

use rust_decimal::Decimal;
use serde_json::{Map, Value};

/// A condition on one top-level field of the record as stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Guard {
    /// The counter is at least this.
    AtLeast(&'static str, Decimal),
    /// The counter is at most this.
    AtMost(&'static str, Decimal),
    /// The counter is below this.
    Below(&'static str, Decimal),
    /// The field holds exactly this string, or (`Value::Null`) is null or absent.
    Is(&'static str, Value),
}

/// Counters moved and fields set, under guards (`Write::Adjust`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Adjustment {
    pub add: Vec<(&'static str, Decimal)>,
    pub set: Vec<(&'static str, Value)>,
    pub guards: Vec<Guard>,
}

/// A guard that does not hold, or a counter that is not one (absent, not a decimal string).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("condition on {0} does not hold")]
pub struct GuardFailed(pub &'static str);

impl Guard {
    pub fn field(&self) -> &'static str {
        match self {
            Guard::AtLeast(f, _) | Guard::AtMost(f, _) | Guard::Below(f, _) | Guard::Is(f, _) => f,
        }
    }

    pub fn holds(&self, body: &Map<String, Value>) -> bool {
        match self {
            Guard::Is(field, wanted) => body.get(*field).unwrap_or(&Value::Null) == wanted,
            Guard::AtLeast(field, bound) => counter(body, field).is_some_and(|v| v >= *bound),
            Guard::AtMost(field, bound) => counter(body, field).is_some_and(|v| v <= *bound),
            Guard::Below(field, bound) => counter(body, field).is_some_and(|v| v < *bound),
        }
    }
}

fn counter(body: &Map<String, Value>, field: &str) -> Option<Decimal> {
    body.get(field)?.as_str()?.parse().ok()
}

/// Checks `guards` on `body` (a record as stored).
pub fn check(guards: &[Guard], body: &Map<String, Value>) -> Result<(), GuardFailed> {
    match guards.iter().find(|g| !g.holds(body)) {
        Some(failed) => Err(GuardFailed(failed.field())),
        None => Ok(()),
    }
}

impl Guard {
    /// The counter is exactly `value` (at most and at least it).
    pub fn counter_is(field: &'static str, value: Decimal) -> [Guard; 2] {
        [Guard::AtMost(field, value), Guard::AtLeast(field, value)]
    }
}

impl Adjustment {
    /// Checks the guards on `body`, then moves its counters and sets its fields.
    pub fn apply_to(&self, body: &mut Map<String, Value>) -> Result<(), GuardFailed> {
        check(&self.guards, body)?;
        for (field, delta) in &self.add {
            let now = counter(body, field).ok_or(GuardFailed(field))?;
            let next = now.checked_add(*delta).ok_or(GuardFailed(field))?;
            body.insert((*field).to_string(), Value::String(next.to_string()));
        }
        for (field, value) in &self.set {
            body.insert((*field).to_string(), value.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn counters_move_as_decimal_strings_and_fields_are_set() {
        let mut b = body(json!({"balance": "10.00", "count": "4", "day": null}));
        let change = Adjustment {
            add: vec![("balance", d("-2.50")), ("count", d("1"))],
            set: vec![("day", json!("2026-12-06"))],
            guards: vec![Guard::AtLeast("balance", d("2.50")), Guard::Is("day", Value::Null)],
        };
        change.apply_to(&mut b).unwrap();
        assert_eq!(Value::Object(b), json!({"balance": "7.50", "count": "5", "day": "2026-12-06"}));
    }

    #[test]
    fn a_guard_that_fails_changes_nothing() {
        let stored = body(json!({"balance": "1.00", "frozenAt": "2026-12-06T00:00:00Z"}));
        let mut b = stored.clone();
        let debit =
            |guard| Adjustment { add: vec![("balance", d("-2.00"))], guards: vec![guard], ..Default::default() };
        assert_eq!(debit(Guard::AtLeast("balance", d("2.00"))).apply_to(&mut b), Err(GuardFailed("balance")));
        assert_eq!(debit(Guard::Is("frozenAt", Value::Null)).apply_to(&mut b), Err(GuardFailed("frozenAt")));
        assert_eq!(b, stored);
        assert!(Guard::Below("balance", d("1.01")).holds(&b) && !Guard::Below("balance", d("1.00")).holds(&b));
        assert!(Guard::AtMost("balance", d("1")).holds(&b) && Guard::Is("missing", Value::Null).holds(&b));
    }

    #[test]
    fn a_field_that_is_not_a_counter_is_refused() {
        let mut b = body(json!({"name": "w", "n": 3}));
        let add = |f| Adjustment { add: vec![(f, d("1"))], ..Default::default() };
        assert_eq!(add("name").apply_to(&mut b), Err(GuardFailed("name")));
        assert_eq!(add("n").apply_to(&mut b), Err(GuardFailed("n")));
        assert_eq!(add("absent").apply_to(&mut b), Err(GuardFailed("absent")));
    }
}
