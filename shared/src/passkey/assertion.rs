//! Assertion (`navigator.credentials.get`): checks clientDataJSON and authenticatorData and
//! verifies the signature with the stored credential public key.

use sha2::{Digest, Sha256};

use super::auth_data;
use super::client_data::{self, TYPE_GET};
use super::cose::PublicKey;
use super::{PasskeyError, RelyingParty};

/// The longest clientDataJSON accepted.
pub const MAX_CLIENT_DATA_BYTES: usize = 4096;
/// The longest authenticatorData accepted (an assertion's is 37 bytes plus any extensions; a
/// registration's adds a credential ID of at most 1023 bytes and a COSE key).
pub const MAX_AUTHENTICATOR_DATA_BYTES: usize = 4096;
/// The longest signature accepted (ES256 DER is at most 72 bytes, EdDSA 64).
pub const MAX_SIGNATURE_BYTES: usize = 512;
/// The longest COSE public key accepted (EC2 P-256 is about 77 bytes, OKP Ed25519 about 44).
pub const MAX_PUBLIC_KEY_BYTES: usize = 1024;

/// What a verified assertion reports. The caller compares `sign_count` with the stored one
/// (a non-zero count that did not increase may mean a cloned authenticator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssertionOutcome {
    pub sign_count: u32,
    pub user_verified: bool,
}

/// Verifies an assertion over `expected_challenge` with the credential's COSE public key.
///
/// Checks, in order: sizes (before any parsing); clientDataJSON type `webauthn.get`, challenge
/// and origin; authenticatorData rpIdHash, UP (and UV when required); then the signature over
/// `authenticatorData || SHA-256(clientDataJSON)`.
pub fn verify_assertion(
    rp: &RelyingParty,
    expected_challenge: &[u8],
    public_key_cose: &[u8],
    client_data_json: &[u8],
    authenticator_data: &[u8],
    signature: &[u8],
) -> Result<AssertionOutcome, PasskeyError> {
    for (field, len, max) in [
        ("clientDataJSON", client_data_json.len(), MAX_CLIENT_DATA_BYTES),
        ("authenticatorData", authenticator_data.len(), MAX_AUTHENTICATOR_DATA_BYTES),
        ("signature", signature.len(), MAX_SIGNATURE_BYTES),
        ("publicKey", public_key_cose.len(), MAX_PUBLIC_KEY_BYTES),
    ] {
        if len > max {
            return Err(PasskeyError::TooLarge { field });
        }
    }
    client_data::check(client_data_json, TYPE_GET, expected_challenge, rp)?;
    let auth = auth_data::parse(authenticator_data)?;
    auth.check(rp)?;
    let key = PublicKey::from_cose(public_key_cose)?;

    let mut signed = Vec::with_capacity(authenticator_data.len() + 32);
    signed.extend_from_slice(authenticator_data);
    signed.extend_from_slice(&Sha256::digest(client_data_json));
    key.verify(&signed, signature)?;
    Ok(AssertionOutcome { sign_count: auth.sign_count, user_verified: auth.user_verified() })
}
