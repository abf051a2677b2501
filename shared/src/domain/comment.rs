//! Comments on an approval: what reviewers and the requesting agent say to each other about it,
//! on pending and decided approvals alike. A comment is its own record beside its approval; it
//! changes nothing about the decision.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{ApiKeyId, ApprovalId, CommentId, MemberId};
use super::input::InputError;
use super::org::ApiKey;

/// The longest comment, in characters (after trimming).
pub const MAX_COMMENT_CHARS: usize = 4_000;

/// `{id, approvalId, body, author: {keyId, memberId?}, createdAt}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Comment {
    pub id: CommentId,
    pub approval_id: ApprovalId,
    pub body: String,
    pub author: CommentAuthor,
    pub created_at: DateTime<Utc>,
}

/// Who wrote a comment: the key, and the member it acts for when it is bound to one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommentAuthor {
    pub key_id: ApiKeyId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<MemberId>,
}

impl CommentAuthor {
    pub fn of(key: &ApiKey) -> Self {
        CommentAuthor { key_id: key.id.clone(), member_id: key.person().member().cloned() }
    }
}

/// A comment's text: trimmed, 1 to `MAX_COMMENT_CHARS` characters, no control characters but
/// line breaks and tabs.
pub fn comment_body(field: &'static str, text: &str) -> Result<String, InputError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(InputError::invalid(field, "must not be blank"));
    }
    let trimmed = trimmed.replace("\r\n", "\n");
    if trimmed.chars().count() > MAX_COMMENT_CHARS {
        return Err(InputError::invalid(field, format!("must be at most {MAX_COMMENT_CHARS} characters")));
    }
    if trimmed.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(InputError::invalid(field, "must not contain control characters"));
    }
    Ok(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_trimmed_bounded_and_printable() {
        assert_eq!(comment_body("body", "  looks right \n").unwrap(), "looks right");
        assert_eq!(comment_body("body", "a\r\nb").unwrap(), "a\nb", "a browser's line breaks");
        assert_eq!(comment_body("body", " \n\t ").unwrap_err().field(), "body");
        assert!(comment_body("body", &"é".repeat(MAX_COMMENT_CHARS)).is_ok(), "characters, not bytes");
        assert!(comment_body("body", &"x".repeat(MAX_COMMENT_CHARS + 1)).is_err());
        assert!(comment_body("body", "bell\u{7}").is_err());
    }
}
