//! Passkeys (WebAuthn), relying-party side: registration and step-up assertions. Pure: no I/O.
//!
//! The model:
//! - **Registration** ([`verify_registration`]): an approver's browser creates a credential over
//!   a random [`registration_challenge`]; the relying party keeps the credential ID and its COSE
//!   public key. Attestation is `"none"`: the key is trusted because a signed-in approver
//!   registered it, not because of who made the authenticator.
//! - **Step-up** ([`verify_assertion`]): before a vote counts, the approver's authenticator signs
//!   a challenge that is not random but computed ([`step_up_challenge`]): the SHA-256 of the
//!   approval ID, the payload hash, the decision, the amount that will execute and a single-use
//!   nonce. The signature therefore commits to what was decided, not just to a session.
//! - **Receipts** ([`StoredAssertion`]): the vote keeps the assertion as sent (credential ID,
//!   authenticatorData, clientDataJSON, signature), the nonce and the public key, so a third
//!   party that knows the relying party, the approval, payload hash, decision and amount can
//!   recompute the challenge and verify the signature offline ([`StoredAssertion::verify`]).
//!   Tying the public key to the approver (it is the key registered for them) and the nonce's
//!   single use are the caller's checks: they need state this module does not have.
//!
//! Algorithms: ES256 (-7, P-256) and EdDSA (-8, Ed25519). RS256 is not supported, so the
//! creation options must offer only -7 and -8 in `pubKeyCredParams`.

mod assertion;
mod auth_data;
mod challenge;
mod client_data;
mod cose;
mod error;
mod registration;
#[cfg(test)]
mod tests;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use serde::{Deserialize, Serialize};

pub use assertion::{
    verify_assertion, AssertionOutcome, MAX_AUTHENTICATOR_DATA_BYTES, MAX_CLIENT_DATA_BYTES, MAX_PUBLIC_KEY_BYTES,
    MAX_SIGNATURE_BYTES,
};
pub use challenge::{
    is_valid_nonce, new_nonce, registration_challenge, step_up_challenge, StepUpDecision, NONCE_BYTES,
};
pub use cose::{ALG_EDDSA, ALG_ES256};
pub use error::PasskeyError;
pub use registration::{verify_registration, RegisteredPasskey, MAX_ATTESTATION_OBJECT_BYTES};

/// The relying party: whose credentials these are and where the ceremonies run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingParty {
    /// The RP ID: a host name, e.g. `localhost` (authenticatorData carries its SHA-256).
    pub id: String,
    /// The origin browsers write in clientDataJSON, e.g. `http://localhost:8080`.
    pub origin: String,
    /// Whether the UV flag (PIN, biometrics) is required, not just UP (a touch).
    pub require_user_verification: bool,
}

impl RelyingParty {
    /// From the service's public URL: `id` is its host, `origin` is `scheme://host[:port]` as
    /// browsers serialise it (lowercase host, default port omitted). User verification is
    /// required; set the field to relax it.
    pub fn from_public_url(url: &str) -> Result<Self, PasskeyError> {
        let invalid = |why: &str| PasskeyError::InvalidRelyingPartyUrl(format!("{url:?}: {why}"));
        let parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid("not http or https"));
        }
        let host = match parsed.host() {
            Some(url::Host::Domain(domain)) => domain.to_string(),
            Some(_) => return Err(invalid("an IP address cannot be an RP ID")),
            None => return Err(invalid("no host")),
        };
        Ok(Self { id: host, origin: parsed.origin().ascii_serialization(), require_user_verification: true })
    }
}

/// A step-up assertion as a vote stores it: what a receipt verifier needs, base64url-encoded
/// (without padding; padded input is accepted) except the hex nonce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredAssertion {
    pub credential_id: String,
    pub authenticator_data: String,
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: String,
    pub signature: String,
    /// Lowercase hex, at least [`NONCE_BYTES`] bytes.
    pub nonce: String,
    /// The credential's COSE public key.
    pub public_key: String,
}

/// base64url, with or without padding.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_encode_padding(false).with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The longest credential ID accepted (WebAuthn's limit).
const MAX_CREDENTIAL_ID_BYTES: usize = 1023;

fn decode(field: &'static str, text: &str, max: usize) -> Result<Vec<u8>, PasskeyError> {
    // 4 characters per 3 bytes, plus padding: refuse before decoding anything larger.
    if text.len() > max.div_ceil(3) * 4 {
        return Err(PasskeyError::TooLarge { field });
    }
    BASE64URL.decode(text).map_err(|_| PasskeyError::Base64 { field })
}

impl StoredAssertion {
    /// Recomputes the step-up challenge from the vote's values and this record's nonce, and
    /// verifies the assertion: what an offline receipt verifier calls.
    ///
    /// Does not check that the public key belongs to the approver or that the nonce was used
    /// once: the caller holds that state.
    pub fn verify(
        &self,
        rp: &RelyingParty,
        approval_id: &str,
        payload_hash: &str,
        decision: StepUpDecision,
        amount: &str,
    ) -> Result<AssertionOutcome, PasskeyError> {
        for (field, value) in [("approvalId", approval_id), ("payloadHash", payload_hash), ("amount", amount)] {
            if value.contains('\n') {
                return Err(PasskeyError::InvalidChallengeField { field });
            }
        }
        if !is_valid_nonce(&self.nonce) {
            return Err(PasskeyError::InvalidNonce);
        }
        let credential_id = decode("credentialId", &self.credential_id, MAX_CREDENTIAL_ID_BYTES)?;
        if credential_id.is_empty() || credential_id.len() > MAX_CREDENTIAL_ID_BYTES {
            return Err(PasskeyError::CredentialIdLength(credential_id.len()));
        }
        let authenticator_data = decode("authenticatorData", &self.authenticator_data, MAX_AUTHENTICATOR_DATA_BYTES)?;
        let client_data_json = decode("clientDataJSON", &self.client_data_json, MAX_CLIENT_DATA_BYTES)?;
        let signature = decode("signature", &self.signature, MAX_SIGNATURE_BYTES)?;
        let public_key = decode("publicKey", &self.public_key, MAX_PUBLIC_KEY_BYTES)?;
        let challenge = step_up_challenge(approval_id, payload_hash, decision, amount, &self.nonce);
        verify_assertion(rp, &challenge, &public_key, &client_data_json, &authenticator_data, &signature)
    }
}
