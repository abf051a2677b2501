//! The challenges the relying party asks an authenticator to sign.
//!
//! A step-up challenge is not random: it is the SHA-256 of what the vote commits to, so the
//! assertion signs the approval, the payload, the decision, the amount that will execute and a
//! single-use nonce, and anyone holding those values can recompute it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Random bytes in a step-up nonce (hex-encoded: twice as many characters).
pub const NONCE_BYTES: usize = 16;
/// The longest nonce accepted (64 bytes: far more randomness than needed, and a short key).
pub const MAX_NONCE_BYTES: usize = 64;

/// The decision a step-up assertion signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepUpDecision {
    Approve,
    Modify,
}

impl StepUpDecision {
    /// The word hashed into the challenge: `approve` or `modify`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Modify => "modify",
        }
    }
}

/// `SHA-256(approvalId "\n" payloadHash "\n" decision "\n" amount "\n" nonce)`, UTF-8.
///
/// `amount` is the decimal string of the amount that will execute; `nonce` is the single-use
/// hex nonce from [`new_nonce`]. The fields are separated by newlines, so none may contain one
/// ([`super::StoredAssertion::verify`] refuses such values).
pub fn step_up_challenge(
    approval_id: &str,
    payload_hash: &str,
    decision: StepUpDecision,
    amount: &str,
    nonce: &str,
) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for (i, part) in [approval_id, payload_hash, decision.as_str(), amount, nonce].iter().enumerate() {
        if i > 0 {
            hasher.update(b"\n");
        }
        hasher.update(part.as_bytes());
    }
    hasher.finalize().into()
}

/// A fresh step-up nonce: [`NONCE_BYTES`] random bytes, lowercase hex.
pub fn new_nonce() -> String {
    let bytes: [u8; NONCE_BYTES] = rand::random();
    hex::encode(bytes)
}

/// Whether `nonce` is [`NONCE_BYTES`] to [`MAX_NONCE_BYTES`] bytes written as lowercase hex.
pub fn is_valid_nonce(nonce: &str) -> bool {
    (2 * NONCE_BYTES..=2 * MAX_NONCE_BYTES).contains(&nonce.len())
        && nonce.len().is_multiple_of(2)
        && nonce.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A random registration challenge (registration signs nothing but freshness).
pub fn registration_challenge() -> [u8; 32] {
    rand::random()
}
