//! Limits on free-form client input (docs/api.md, "Input limits").

use super::money::MoneyError;

pub const MAX_DESCRIPTION_CHARS: usize = 1_000;
pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_NOTE_CHARS: usize = 1_000;
pub const MAX_METADATA_KEYS: usize = 50;
pub const MAX_METADATA_BYTES: usize = 8 * 1024;
pub const MAX_ID_LIST: usize = 1_000;
/// Nesting allowed inside metadata; DynamoDB allows 32 levels and the stored record and its
/// events wrap metadata in a few of their own.
pub const MAX_METADATA_DEPTH: usize = 16;
/// DynamoDB numbers: magnitudes from 1e-130 up to (not including) 1e126.
const MIN_NUMBER: f64 = 1e-130;
const MAX_NUMBER: f64 = 1e126;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("{field} is required")]
    Missing { field: &'static str },
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("{field}: {source}")]
    Amount { field: &'static str, source: MoneyError },
}

impl InputError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        InputError::Invalid { field, message: message.into() }
    }

    /// The same error about `field` (a service check reported under the name a route uses).
    pub fn for_field(self, field: &'static str) -> Self {
        match self {
            InputError::Missing { .. } => InputError::Missing { field },
            InputError::Invalid { message, .. } => InputError::Invalid { field, message },
            InputError::Amount { source, .. } => InputError::Amount { field, source },
        }
    }

    pub fn field(&self) -> &'static str {
        match self {
            InputError::Missing { field } | InputError::Invalid { field, .. } | InputError::Amount { field, .. } => {
                field
            }
        }
    }
}

/// Checks a bounded, non-blank text (names).
pub fn name(field: &'static str, value: &str) -> Result<String, InputError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(InputError::invalid(field, "must not be blank"));
    }
    bounded_text(field, trimmed, MAX_NAME_CHARS)
}

/// Checks an optional text's length in characters.
pub fn bounded_text(field: &'static str, value: &str, max_chars: usize) -> Result<String, InputError> {
    if value.chars().count() > max_chars {
        return Err(InputError::invalid(field, format!("must be at most {max_chars} characters")));
    }
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(InputError::invalid(field, "must not contain control characters"));
    }
    Ok(value.to_string())
}

/// Metadata is a JSON object of at most 50 keys and 8 KiB serialised.
pub fn metadata(value: Option<&serde_json::Value>) -> Result<serde_json::Map<String, serde_json::Value>, InputError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(Default::default()),
        Some(serde_json::Value::Object(map)) => {
            if map.len() > MAX_METADATA_KEYS {
                return Err(InputError::invalid("metadata", format!("must have at most {MAX_METADATA_KEYS} keys")));
            }
            let size = serde_json::to_vec(map).map(|v| v.len()).unwrap_or(usize::MAX);
            if size > MAX_METADATA_BYTES {
                return Err(InputError::invalid("metadata", "must be at most 8 KiB"));
            }
            for v in map.values() {
                storable(v, 1)?;
            }
            Ok(map.clone())
        }
        Some(_) => Err(InputError::invalid("metadata", "must be an object")),
    }
}

/// Refuses what the stores and the bus cannot hold: numbers outside DynamoDB's range, integers
/// beyond 64 bits, nesting deeper than `MAX_METADATA_DEPTH`. (Refused here as a 400, never
/// discovered at the store as a 503 a client would retry forever.)
fn storable(value: &serde_json::Value, depth: usize) -> Result<(), InputError> {
    use serde_json::Value;
    if depth > MAX_METADATA_DEPTH {
        return Err(InputError::invalid("metadata", format!("must nest at most {MAX_METADATA_DEPTH} levels")));
    }
    match value {
        Value::Number(n) if n.is_u64() && n.as_i64().is_none() => {
            Err(InputError::invalid("metadata", "integers must fit in 64 signed bits"))
        }
        Value::Number(n) if !n.is_i64() => {
            let f = n.as_f64().unwrap_or(f64::INFINITY).abs();
            if f != 0.0 && !(MIN_NUMBER..MAX_NUMBER).contains(&f) {
                return Err(InputError::invalid("metadata", "numbers must be 0 or between 1e-130 and 1e126 in size"));
            }
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(|v| storable(v, depth + 1)),
        Value::Object(map) => map.values().try_for_each(|v| storable(v, depth + 1)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_limits() {
        assert!(metadata(None).unwrap().is_empty());
        assert!(metadata(Some(&json!([1]))).is_err());
        let many: serde_json::Map<_, _> = (0..51).map(|i| (format!("k{i}"), json!(1))).collect();
        assert!(metadata(Some(&serde_json::Value::Object(many))).is_err());
        assert!(metadata(Some(&json!({"big": "x".repeat(9000)}))).is_err());
        assert!(metadata(Some(&json!({"ok": true}))).is_ok());
    }

    #[test]
    fn metadata_holds_only_what_the_stores_can() {
        for bad in [json!({"n": 1e200}), json!({"n": -1e-200}), json!({"n": [u64::MAX]})] {
            assert!(metadata(Some(&bad)).is_err(), "{bad}");
        }
        let mut deep = json!(1);
        for _ in 0..MAX_METADATA_DEPTH {
            deep = json!([deep]);
        }
        assert!(metadata(Some(&json!({ "d": deep }))).is_err());
        let ok = json!({"n": 1.5e125, "m": 1e-129, "z": 0.0, "i": i64::MIN, "s": "1e200", "a": [[1]]});
        assert!(metadata(Some(&ok)).is_ok());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(name("name", "  a ").unwrap(), "a");
        assert!(name("name", "   ").is_err());
        assert!(name("name", &"x".repeat(201)).is_err());
        assert!(bounded_text("d", "a\u{0}b", 10).is_err());
    }
}
