//! Passkey step-up (docs/api.md, "Passkeys and step-up"): above a policy's `stepUpAbove`,
//! approving or modifying needs a fresh WebAuthn assertion by the deciding person, whose
//! challenge commits to the approval, its payload hash, the decision, the amount that will
//! execute and a single-use nonce. These are the records and rules; the cryptography is in
//! `crate::passkey`.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{ApprovalId, OrgId};
use super::people::Person;
use crate::passkey::{StepUpDecision, StoredAssertion};

/// How long a step-up nonce (and a registration challenge) may be used.
pub const NONCE_LIFETIME: Duration = Duration::minutes(5);
/// Passkeys one person may register.
pub const MAX_PASSKEYS_PER_PERSON: usize = 10;
/// Longest credential id accepted, base64url (WebAuthn's 1,023 bytes).
pub const MAX_CREDENTIAL_ID_CHARS: usize = 1_364;
/// A registration challenge: 32 bytes, base64url without padding.
pub const REGISTRATION_CHALLENGE_CHARS: usize = 43;

/// Longest passkey name.
pub const MAX_PASSKEY_NAME_CHARS: usize = 64;

/// Why a step-up assertion was refused (403 `STEP_UP_REFUSED`, `details.reason` = [`code`]).
///
/// [`code`]: StepUpFault::code
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepUpFault {
    #[error("the nonce is unknown, already used or expired: start the step-up again")]
    NonceUnusable,
    #[error("the nonce was issued for another approval, decision, amount or person")]
    NonceMismatch,
    #[error("the passkey is not registered to the deciding person")]
    UnknownCredential,
    #[error("the deciding person has no passkey: register one on /dashboard/passkeys first")]
    NoPasskey,
    #[error("the assertion does not verify: {0}")]
    Assertion(String),
}

impl StepUpFault {
    pub fn code(&self) -> &'static str {
        match self {
            StepUpFault::NonceUnusable => "NONCE_UNUSABLE",
            StepUpFault::NonceMismatch => "NONCE_MISMATCH",
            StepUpFault::UnknownCredential => "UNKNOWN_CREDENTIAL",
            StepUpFault::NoPasskey => "NO_PASSKEY",
            StepUpFault::Assertion(_) => "ASSERTION_INVALID",
        }
    }
}

/// A passkey registered by a person of an organisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasskeyCredential {
    pub org_id: OrgId,
    pub person: Person,
    /// base64url, as the authenticator gave it.
    pub credential_id: String,
    /// The COSE public key, base64url: what a receipt carries for offline verification.
    pub public_key: String,
    pub alg: i64,
    pub name: String,
    /// The API key whose session registered it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_by: Option<super::ids::ApiKeyId>,
    pub created_at: DateTime<Utc>,
}

impl PasskeyCredential {
    /// Hex SHA-256 of the COSE public key as stored (base64url text): what the sealed
    /// `passkey.registered` audit entry carries, so a receipt's key can be traced to it.
    pub fn key_fingerprint(&self) -> String {
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(self.public_key.as_bytes()))
    }

    /// What its events and audit entries say of it (never the key itself: it is public, but a
    /// fingerprint is enough to match).
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "person": self.person.to_string(), "credentialId": self.credential_id, "name": self.name,
            "publicKeySha256": self.key_fingerprint(), "registeredBy": self.registered_by,
            "createdAt": self.created_at,
        })
    }
}

/// The relying party a step-up was made for, kept in the vote: a later change of the public URL
/// must not make older receipts fail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VoteRelyingParty {
    pub id: String,
    pub origin: String,
}

/// A registration ceremony in progress: its random challenge, for one person, used once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationChallenge {
    /// base64url of the challenge bytes.
    pub challenge: String,
    pub org_id: OrgId,
    pub person: Person,
    pub expires_at: DateTime<Utc>,
}

/// A step-up nonce: issued for one person's decision on one approval at one amount; consumed in
/// the vote's own transaction, so it is used at most once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepUpNonce {
    pub nonce: String,
    pub org_id: OrgId,
    pub person: Person,
    pub approval_id: ApprovalId,
    pub decision: StepUpDecision,
    /// The amount that will execute, as a decimal string.
    pub amount: String,
    pub payload_hash: String,
    pub expires_at: DateTime<Utc>,
}

/// What a vote keeps of its step-up: the assertion and the key, plus what its challenge
/// committed to, so anyone can recompute the challenge and check the signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VotePasskey {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub assertion: StoredAssertion,
    #[schema(value_type = String)]
    pub decision: StepUpDecision,
    pub amount: String,
    pub payload_hash: String,
    /// Where the assertion was made (votes from before this field: the receipt's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relying_party: Option<VoteRelyingParty>,
}

/// A step-up as a door receives it: the nonce it was issued and the authenticator's answer, each
/// base64url (the nonce hex).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StepUpProof {
    pub nonce: String,
    pub credential_id: String,
    pub authenticator_data: String,
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: String,
    pub signature: String,
}

impl StepUpNonce {
    /// Whether this nonce may vouch for `person` deciding `decision` on `approval` at `amount`
    /// now.
    pub fn admits(
        &self,
        person: &Person,
        approval: &ApprovalId,
        decision: StepUpDecision,
        amount: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StepUpFault> {
        if now > self.expires_at {
            return Err(StepUpFault::NonceUnusable);
        }
        if &self.person != person || &self.approval_id != approval || self.decision != decision || self.amount != amount
        {
            return Err(StepUpFault::NonceMismatch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::MemberId;

    fn nonce(now: DateTime<Utc>) -> (StepUpNonce, Person, ApprovalId) {
        let person = Person::Member(MemberId::generate());
        let approval = ApprovalId::generate();
        let n = StepUpNonce {
            nonce: "ab".repeat(16),
            org_id: OrgId::generate(),
            person: person.clone(),
            approval_id: approval.clone(),
            decision: StepUpDecision::Approve,
            amount: "120.00".into(),
            payload_hash: "0".repeat(64),
            expires_at: now + NONCE_LIFETIME,
        };
        (n, person, approval)
    }

    #[test]
    fn a_nonce_admits_only_what_it_was_issued_for_and_only_in_time() {
        let now = Utc::now();
        let (n, person, approval) = nonce(now);
        assert_eq!(n.admits(&person, &approval, StepUpDecision::Approve, "120.00", now), Ok(()));
        let other = Person::Member(MemberId::generate());
        let mismatch = Err(StepUpFault::NonceMismatch);
        assert_eq!(n.admits(&other, &approval, StepUpDecision::Approve, "120.00", now), mismatch);
        assert_eq!(n.admits(&person, &ApprovalId::generate(), StepUpDecision::Approve, "120.00", now), mismatch);
        assert_eq!(n.admits(&person, &approval, StepUpDecision::Modify, "120.00", now), mismatch);
        assert_eq!(n.admits(&person, &approval, StepUpDecision::Approve, "119.00", now), mismatch);
        let late = now + NONCE_LIFETIME + Duration::seconds(1);
        assert_eq!(
            n.admits(&person, &approval, StepUpDecision::Approve, "120.00", late),
            Err(StepUpFault::NonceUnusable)
        );
    }
}
