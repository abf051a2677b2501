//! A JSON body that gives a key twice in one object is refused (docs/api.md, "Request bodies"): two parsers that pick
//! different values for `{"from": A, …, "from": B}` (a gateway or a client-side check, and this
//! service) are a known way to slip a payment past a check. serde_json keeps the last value
//! silently, so every body is walked once more for repeats; escapes are decoded first, so
//! `"fr\u006fm"` is the same key as `"from"`.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// The dotted path (`metadata.tags[2].id`) of the first key given twice in one object of
/// `json`, if any. Meant for JSON already parsed: on invalid JSON it reports only a repeat met
/// before the error (the parse error is what the caller reports).
pub fn first_duplicate_key(json: &[u8]) -> Option<String> {
    let found = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    // A walk stopped at a repeat ends with an error; the slot tells the two ends apart.
    let _ = Walk { path: String::new(), found: &found }.deserialize(&mut deserializer);
    found.into_inner()
}

/// Visits a value, remembering where it is, and records the first repeated key it meets.
struct Walk<'a> {
    path: String,
    found: &'a RefCell<Option<String>>,
}

impl Walk<'_> {
    fn child(&self, step: fmt::Arguments<'_>) -> String {
        format!("{}{step}", self.path)
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_i128<E>(self, _: i128) -> Result<(), E> {
        Ok(())
    }

    fn visit_u128<E>(self, _: u128) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        while seq.next_element_seed(Walk { path: self.child(format_args!("[{index}]")), found: self.found })?.is_some()
        {
            index += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() { key.clone() } else { self.child(format_args!(".{key}")) };
            if !seen.insert(key) {
                *self.found.borrow_mut() = Some(path);
                return Err(de::Error::custom("duplicate key"));
            }
            map.next_value_seed(Walk { path, found: self.found })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::first_duplicate_key;

    #[test]
    fn repeats_are_found_at_any_depth_and_named_by_path() {
        let cases: &[(&str, Option<&str>)] = &[
            (r#"{"from": "a", "amount": "1.00", "from": "b"}"#, Some("from")),
            (r#"{"fr\u006fm": "a", "from": "b"}"#, Some("from")),
            (r#"{"metadata": {"k": 1, "k": 2}}"#, Some("metadata.k")),
            (r#"{"items": [{"a": 1}, {"b": 1, "b": 2}]}"#, Some("items[1].b")),
            (r#"{"a": {"x": 1}, "b": {"x": 1}, "c": [1, 1]}"#, None),
            (r#"{"a": 1.5e300, "b": -12345678901234567890123, "c": null, "d": true}"#, None),
            (r#"{"a": 1, "a""#, Some("a")),
            (r#"{"a": 1, "b""#, None),
            ("not json", None),
        ];
        for (json, expected) in cases {
            assert_eq!(first_duplicate_key(json.as_bytes()).as_deref(), *expected, "{json}");
        }
    }

    #[test]
    fn deep_nesting_is_bounded_by_the_parser_not_the_stack() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(first_duplicate_key(deep.as_bytes()), None);
    }
}
