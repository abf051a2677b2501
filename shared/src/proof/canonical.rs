//! RFC 8785 (JCS) canonical JSON, the SHA-256 hashes taken over it, and the hex form those hashes
//! travel in. Canonical form makes a hash depend on content only: key order, whitespace and number
//! spelling (`4.50` vs `4.5`) never change it.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// A hash in its written form is not 64 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    #[error("expected 64 hex characters, got {got}")]
    WrongLength { got: usize },
    #[error("not lowercase hex")]
    NotLowercaseHex,
}

/// The RFC 8785 canonical form of `value`: keys sorted by UTF-16 code units, no whitespace,
/// numbers as ECMAScript prints doubles, minimal string escapes.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    // A `Value` has only string keys, unique keys and finite numbers, and a Vec never fails to
    // take bytes: none of the canonicaliser's errors can arise.
    serde_json_canonicalizer::to_vec(value).unwrap_or_else(|e| unreachable!("a serde_json::Value canonicalises: {e}"))
}

/// SHA-256 of the canonical form of `value` with the top-level keys in `omit` left out (the
/// fields that carry the hash itself, or a signature over it). A value that is not an object is
/// hashed whole.
pub fn hash_without(value: &Value, omit: &[&str]) -> [u8; 32] {
    let bytes = match value {
        // Borrowed view without the omitted keys: no copy of the object. The canonicaliser sorts
        // the keys itself, so the map's own order does not matter.
        Value::Object(map) => {
            let kept: std::collections::BTreeMap<&str, &Value> =
                map.iter().filter(|(k, _)| !omit.contains(&k.as_str())).map(|(k, v)| (k.as_str(), v)).collect();
            serde_json_canonicalizer::to_vec(&kept)
                .unwrap_or_else(|e| unreachable!("a map of serde_json::Values canonicalises: {e}"))
        }
        other => canonical_json(other),
    };
    sha256(&bytes)
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The written form of a hash: 64 lowercase hex characters.
pub fn to_hex(hash: &[u8; 32]) -> String {
    hex::encode(hash)
}

/// A hash back from its written form. Only lowercase is accepted, so each hash has exactly one
/// spelling and string comparison of hashes is sound.
pub fn from_hex(text: &str) -> Result<[u8; 32], HexError> {
    if text.len() != 64 {
        return Err(HexError::WrongLength { got: text.len() });
    }
    if !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(HexError::NotLowercaseHex);
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).map_err(|_| HexError::NotLowercaseHex)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jcs(text: &str) -> String {
        let value: Value = serde_json::from_str(text).unwrap();
        String::from_utf8(canonical_json(&value)).unwrap()
    }

    #[test]
    fn rfc8785_section_3_2_2_example() {
        let input = r#"{
          "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#;
        let expected = "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\
                        \"string\":\"\u{20ac}$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}";
        assert_eq!(jcs(input), expected);
    }

    #[test]
    fn rfc8785_section_3_2_3_sorts_keys_by_utf16_code_units() {
        // U+1F600 is a surrogate pair (D83D DE00): it sorts before U+FB33 in UTF-16, after it in
        // code points. JCS wants UTF-16.
        let input = r#"{
          "\u20ac": "Euro Sign",
          "\r": "Carriage Return",
          "\ufb33": "Hebrew Letter Dalet With Dagesh",
          "1": "One",
          "\ud83d\ude00": "Emoji: Grinning Face",
          "\u0080": "Control",
          "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let expected = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
                        \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
                        \"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}";
        assert_eq!(jcs(input), expected);
    }

    #[test]
    fn rfc8785_appendix_b_numbers() {
        // IEEE-754 bit patterns and their JCS (ECMAScript) spelling, from RFC 8785 Appendix B.
        let cases: &[(u64, &str)] = &[
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
        ];
        for &(bits, expected) in cases {
            let number = serde_json::Number::from_f64(f64::from_bits(bits)).unwrap();
            let got = String::from_utf8(canonical_json(&Value::Number(number))).unwrap();
            assert_eq!(got, expected, "bits {bits:#018x}");
        }
    }

    #[test]
    fn integers_and_nesting() {
        assert_eq!(
            jcs(r#"{"b": [1, {"z": 2, "a": 10}], "a": -0, "c": 120.0}"#),
            r#"{"a":0,"b":[1,{"a":10,"z":2}],"c":120}"#
        );
    }

    #[test]
    fn hash_without_ignores_omitted_keys_and_key_order() {
        let a = json!({"id": "aud_1", "action": "x", "hash": "whatever"});
        let b: Value = serde_json::from_str(r#"{"action":"x","id":"aud_1"}"#).unwrap();
        assert_eq!(hash_without(&a, &["hash"]), hash_without(&b, &[]));
        assert_eq!(hash_without(&b, &[]), sha256(br#"{"action":"x","id":"aud_1"}"#));
        assert_ne!(hash_without(&a, &[]), hash_without(&b, &[]));
    }

    #[test]
    fn hex_round_trip_and_strictness() {
        let hash = sha256(b"");
        let text = to_hex(&hash);
        assert_eq!(text, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(from_hex(&text), Ok(hash));
        assert_eq!(from_hex(&text.to_uppercase()), Err(HexError::NotLowercaseHex));
        assert_eq!(from_hex(&text[..62]), Err(HexError::WrongLength { got: 62 }));
        assert_eq!(from_hex(&format!("{}zz", &text[..62])), Err(HexError::NotLowercaseHex));
    }
}
