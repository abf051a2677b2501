//! Idempotency keys (Stripe-style): a retry with the same key and the same request replays the
//! first outcome; the same key with a different request is refused.

use super::input::InputError;

const MAX_KEY_CHARS: usize = 255;

/// A client's idempotency key with the fingerprint of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    key: String,
    fingerprint: String,
}

impl IdempotencyKey {
    /// `fingerprint` identifies the request (the edge hashes its body, without the key itself).
    pub fn new(key: &str, fingerprint: String) -> Result<Self, InputError> {
        if key.is_empty() || key.chars().count() > MAX_KEY_CHARS || key.chars().any(char::is_control) {
            return Err(InputError::invalid("idempotencyKey", "must be 1 to 255 printable characters"));
        }
        Ok(IdempotencyKey { key: key.to_string(), fingerprint })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded_and_printable() {
        assert!(IdempotencyKey::new("order-1", "f".into()).is_ok());
        assert!(IdempotencyKey::new("", "f".into()).is_err());
        assert!(IdempotencyKey::new(&"k".repeat(256), "f".into()).is_err());
        assert!(IdempotencyKey::new("a\nb", "f".into()).is_err());
    }
}
