//! Review links (`reviewUrl` in `approval.created` webhooks): `<approval id>.<expiry>.<tag>`,
//! signed with the server secret, valid until the approval's deadline as it was when the link was
//! made. A link names an approval and nothing more: it opens a confirm page, and deciding still
//! needs a signed-in reviewer allowed to decide (docs/api.md, "Dashboard sessions and review links").

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::ids::ApprovalId;
use super::secret::{Purpose, ServerSecret};

/// A link that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewLink {
    pub approval_id: ApprovalId,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("this link is not one Countersign made")]
    Invalid,
    #[error("this link has expired")]
    Expired,
}

/// The longest token accepted (a real one is about 85 characters).
const MAX_TOKEN_CHARS: usize = 200;

impl ReviewLink {
    /// The link's token: `<approval id>.<unix seconds>.<base64url tag>`.
    pub fn sign(secret: &ServerSecret, approval_id: &ApprovalId, expires_at: DateTime<Utc>) -> String {
        let body = format!("{approval_id}.{}", expires_at.timestamp());
        let tag = secret.tag(Purpose::ReviewLink, body.as_bytes());
        format!("{body}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// The approval a token names, if the token is genuine and not past its expiry at `now`.
    pub fn verify(secret: &ServerSecret, token: &str, now: DateTime<Utc>) -> Result<ReviewLink, LinkError> {
        if token.len() > MAX_TOKEN_CHARS {
            return Err(LinkError::Invalid);
        }
        let (body, tag) = token.rsplit_once('.').ok_or(LinkError::Invalid)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| LinkError::Invalid)?;
        if !secret.verify(Purpose::ReviewLink, body.as_bytes(), &tag) {
            return Err(LinkError::Invalid);
        }
        let (id, expiry) = body.split_once('.').ok_or(LinkError::Invalid)?;
        let approval_id = ApprovalId::parse(id).ok_or(LinkError::Invalid)?;
        let expires_at =
            expiry.parse::<i64>().ok().and_then(|s| DateTime::from_timestamp(s, 0)).ok_or(LinkError::Invalid)?;
        if now >= expires_at {
            return Err(LinkError::Expired);
        }
        Ok(ReviewLink { approval_id, expires_at })
    }

    /// A stable name for a token, for recording that it was used (the token itself is not kept).
    pub fn fingerprint(token: &str) -> String {
        hex::encode(Sha256::digest(token.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn secret() -> ServerSecret {
        ServerSecret::new("review-link-test-secret-0123456789").unwrap()
    }

    #[test]
    fn a_link_verifies_until_it_expires() {
        let (s, id, now) = (secret(), ApprovalId::generate(), Utc::now());
        let token = ReviewLink::sign(&s, &id, now + Duration::hours(1));
        let link = ReviewLink::verify(&s, &token, now).unwrap();
        assert_eq!(link.approval_id, id);
        assert_eq!(ReviewLink::verify(&s, &token, now + Duration::hours(2)), Err(LinkError::Expired));
        assert!(token.starts_with(id.as_str()) && !token.contains('/') && !token.contains('+'));
    }

    #[test]
    fn tampered_links_are_invalid() {
        let (s, id, now) = (secret(), ApprovalId::generate(), Utc::now());
        let token = ReviewLink::sign(&s, &id, now + Duration::hours(1));
        let later = ReviewLink::sign(&s, &id, now + Duration::hours(5));
        let (_, later_tag) = later.rsplit_once('.').unwrap();
        let (body, _) = token.rsplit_once('.').unwrap();
        let other = ApprovalId::generate();
        let cases = [
            format!("{body}.{later_tag}"),
            token.replacen(id.as_str(), other.as_str(), 1),
            format!("{token}x"),
            "apr_x.1.AAAA".to_string(),
            String::new(),
            "x".repeat(500),
        ];
        for bad in cases {
            assert_eq!(ReviewLink::verify(&s, &bad, now), Err(LinkError::Invalid), "{bad}");
        }
        let foreign = ServerSecret::new("another-secret-0123456789abcdefghij").unwrap();
        assert_eq!(ReviewLink::verify(&foreign, &token, now), Err(LinkError::Invalid));
        assert_ne!(ReviewLink::fingerprint(&token), ReviewLink::fingerprint(&later));
    }
}
