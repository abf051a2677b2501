//! Secrets the service must use again later (a Slack bot token, its signing secret) are kept
//! encrypted at rest with the deployment's encryption key (`COUNTERSIGN_ENCRYPTION_KEY`):
//! XChaCha20-Poly1305, a random nonce per value, and the owner and field as associated data, so
//! a ciphertext copied to another organisation's record or another field does not open.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// The version tag of the stored form, so a later scheme can sit beside this one.
const SEALED_PREFIX: &str = "v1.";
const NONCE_BYTES: usize = 24;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncryptionError {
    #[error("the encryption key must be 32 bytes in base64url (43 characters)")]
    BadKey,
    #[error("the sealed value is malformed")]
    Malformed,
    #[error("the sealed value does not open with this key for this owner")]
    WrongKeyOrOwner,
}

/// The deployment's 32-byte key. Never printed.
#[derive(Clone)]
pub struct EncryptionKey([u8; 32]);

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey(<redacted>)")
    }
}

impl EncryptionKey {
    /// Parses 32 bytes in base64url without padding (what `generate` writes).
    pub fn parse(text: &str) -> Result<Self, EncryptionError> {
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| EncryptionError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| EncryptionError::BadKey)?;
        Ok(EncryptionKey(key))
    }

    /// A fresh random key in its text form (the local server writes one into its data directory).
    pub fn generate_text() -> String {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        URL_SAFE_NO_PAD.encode(key)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }

    /// Encrypts `plaintext` for `owner` (e.g. `org_…/slack/botToken`).
    pub fn seal(&self, plaintext: &str, owner: &str) -> Result<Sealed, EncryptionError> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload { msg: plaintext.as_bytes(), aad: owner.as_bytes() };
        let ciphertext =
            self.cipher().encrypt(XNonce::from_slice(&nonce), payload).map_err(|_| EncryptionError::Malformed)?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&ciphertext);
        Ok(Sealed(format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))))
    }

    /// Decrypts what `seal` made for the same `owner`.
    pub fn open(&self, sealed: &Sealed, owner: &str) -> Result<String, EncryptionError> {
        let text = sealed.0.strip_prefix(SEALED_PREFIX).ok_or(EncryptionError::Malformed)?;
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| EncryptionError::Malformed)?;
        if bytes.len() <= NONCE_BYTES {
            return Err(EncryptionError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let payload = Payload { msg: ciphertext, aad: owner.as_bytes() };
        let plain =
            self.cipher().decrypt(XNonce::from_slice(nonce), payload).map_err(|_| EncryptionError::WrongKeyOrOwner)?;
        String::from_utf8(plain).map_err(|_| EncryptionError::Malformed)
    }
}

/// A value as stored: `v1.` and base64url(nonce ‖ ciphertext ‖ tag). Printing shows nothing.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sealed(String);

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealed(<encrypted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> EncryptionKey {
        EncryptionKey::parse(&EncryptionKey::generate_text()).unwrap()
    }

    #[test]
    fn opens_only_with_its_key_and_owner() {
        let k = key();
        let sealed = k.seal("xoxb-secret-token", "org_a/slack/botToken").unwrap();
        assert!(!format!("{sealed:?}").contains("xoxb"));
        assert!(!serde_json::to_string(&sealed).unwrap().contains("xoxb"));
        assert_eq!(k.open(&sealed, "org_a/slack/botToken").unwrap(), "xoxb-secret-token");
        assert_eq!(k.open(&sealed, "org_b/slack/botToken"), Err(EncryptionError::WrongKeyOrOwner));
        assert_eq!(k.open(&sealed, "org_a/slack/signingSecret"), Err(EncryptionError::WrongKeyOrOwner));
        assert_eq!(key().open(&sealed, "org_a/slack/botToken"), Err(EncryptionError::WrongKeyOrOwner));
        // A fresh nonce each time: the same secret never looks the same twice.
        assert_ne!(k.seal("x", "o").unwrap(), k.seal("x", "o").unwrap());
    }

    #[test]
    fn refuses_bad_keys_and_tampered_values() {
        assert_eq!(EncryptionKey::parse("short").unwrap_err(), EncryptionError::BadKey);
        assert_eq!(EncryptionKey::parse(&URL_SAFE_NO_PAD.encode([0u8; 31])).unwrap_err(), EncryptionError::BadKey);
        let k = key();
        let Sealed(text) = k.seal("secret", "o").unwrap();
        let mut tampered = text.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = Sealed(String::from_utf8(tampered).unwrap());
        assert!(k.open(&tampered, "o").is_err());
        assert_eq!(k.open(&Sealed("v2.abc".into()), "o"), Err(EncryptionError::Malformed));
        assert_eq!(k.open(&Sealed("v1.".into()), "o"), Err(EncryptionError::Malformed));
        assert_eq!(k.open(&Sealed("v1.!!".into()), "o"), Err(EncryptionError::Malformed));
    }
}
