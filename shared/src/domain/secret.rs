//! The server secret (`COUNTERSIGN_SESSION_SECRET`) and the keys derived from it, one per purpose,
//! so a tag made for one purpose (a session cookie) never verifies for another (a review link).
//! Tags are HMAC-SHA256, compared in constant time. The secret never prints.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The shortest secret accepted: 32 characters.
pub const MIN_SECRET_CHARS: usize = 32;

/// What a tag is for. Each purpose has its own derived key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The dashboard's session cookie.
    Session,
    /// CSRF tokens on the dashboard's forms.
    Csrf,
    /// `reviewUrl` links in `approval.created` webhooks.
    ReviewLink,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Session => b"countersign/v1/session",
            Purpose::Csrf => b"countersign/v1/csrf",
            Purpose::ReviewLink => b"countersign/v1/review-link",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("must be at least {MIN_SECRET_CHARS} characters")]
    TooShort,
}

/// The derived keys. Holds no copy of the secret itself.
#[derive(Clone)]
pub struct ServerSecret {
    session: [u8; 32],
    csrf: [u8; 32],
    review_link: [u8; 32],
}

impl fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerSecret(<redacted>)")
    }
}

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key"));
    mac.update(message);
    mac.finalize().into_bytes().into()
}

impl ServerSecret {
    pub fn new(secret: &str) -> Result<Self, SecretError> {
        if secret.chars().count() < MIN_SECRET_CHARS {
            return Err(SecretError::TooShort);
        }
        let derive = |p: Purpose| hmac(secret.as_bytes(), p.label());
        Ok(ServerSecret {
            session: derive(Purpose::Session),
            csrf: derive(Purpose::Csrf),
            review_link: derive(Purpose::ReviewLink),
        })
    }

    /// A fresh random secret (the local server's, when none is configured: sessions and links
    /// then last as long as the process).
    pub fn random() -> Self {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        // 64 hex characters: always long enough.
        ServerSecret::new(&hex::encode(bytes)).unwrap_or_else(|_| unreachable!("64 characters"))
    }

    fn key(&self, purpose: Purpose) -> &[u8; 32] {
        match purpose {
            Purpose::Session => &self.session,
            Purpose::Csrf => &self.csrf,
            Purpose::ReviewLink => &self.review_link,
        }
    }

    /// The tag of `message` for `purpose`.
    pub fn tag(&self, purpose: Purpose, message: &[u8]) -> [u8; 32] {
        hmac(self.key(purpose), message)
    }

    /// Whether `tag` is the tag of `message` for `purpose` (constant time).
    pub fn verify(&self, purpose: Purpose, message: &[u8], tag: &[u8]) -> bool {
        let Ok(mut mac) = <HmacSha256 as Mac>::new_from_slice(self.key(purpose)) else { return false };
        mac.update(message);
        mac.verify_slice(tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn short_secrets_are_refused_and_the_secret_never_prints() {
        assert_eq!(ServerSecret::new("short").unwrap_err(), SecretError::TooShort);
        let s = ServerSecret::new(SECRET).unwrap();
        assert_eq!(format!("{s:?}"), "ServerSecret(<redacted>)");
    }

    #[test]
    fn tags_verify_only_for_their_purpose_message_and_secret() {
        let s = ServerSecret::new(SECRET).unwrap();
        let tag = s.tag(Purpose::Session, b"abc");
        assert!(s.verify(Purpose::Session, b"abc", &tag));
        assert!(!s.verify(Purpose::Csrf, b"abc", &tag), "another purpose");
        assert!(!s.verify(Purpose::Session, b"abd", &tag), "another message");
        assert!(!s.verify(Purpose::Session, b"abc", &tag[..16]), "a truncated tag");
        let other = ServerSecret::new("fedcba9876543210fedcba9876543210").unwrap();
        assert!(!other.verify(Purpose::Session, b"abc", &tag), "another secret");
        assert_ne!(
            ServerSecret::random().tag(Purpose::Session, b"x"),
            ServerSecret::random().tag(Purpose::Session, b"x")
        );
    }
}
