//! Registration (`navigator.credentials.create`): checks the browser's clientDataJSON and the
//! authenticator's attestation object, and returns the credential to store.

use ciborium::Value;

use super::auth_data;
use super::client_data::{self, TYPE_CREATE};
use super::cose::PublicKey;
use super::{PasskeyError, RelyingParty, MAX_AUTHENTICATOR_DATA_BYTES, MAX_CLIENT_DATA_BYTES, MAX_PUBLIC_KEY_BYTES};

/// The longest attestation object accepted (a "none" attestation is a few hundred bytes; room is
/// left for an authenticator that sends a certificate chain anyway).
pub const MAX_ATTESTATION_OBJECT_BYTES: usize = 32 * 1024;

/// A verified new credential: what the relying party stores for later assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredPasskey {
    pub credential_id: Vec<u8>,
    /// The credential public key, exactly the COSE_Key bytes from authenticatorData.
    pub public_key_cose: Vec<u8>,
    pub sign_count: u32,
    /// COSE algorithm: -7 (ES256) or -8 (EdDSA).
    pub alg: i64,
}

/// Verifies a registration against `expected_challenge` (from
/// [`super::registration_challenge`]).
///
/// Attestation: the relying party requests `attestation: "none"` and does **not** verify
/// attestation statements: `fmt` and `attStmt` are read for shape only, so the authenticator's
/// make and model are not established (trust in the key comes from the signed-in session that
/// registers it, not from the authenticator's vendor).
pub fn verify_registration(
    rp: &RelyingParty,
    expected_challenge: &[u8],
    client_data_json: &[u8],
    attestation_object: &[u8],
) -> Result<RegisteredPasskey, PasskeyError> {
    if client_data_json.len() > MAX_CLIENT_DATA_BYTES {
        return Err(PasskeyError::TooLarge { field: "clientDataJSON" });
    }
    if attestation_object.len() > MAX_ATTESTATION_OBJECT_BYTES {
        return Err(PasskeyError::TooLarge { field: "attestationObject" });
    }
    client_data::check(client_data_json, TYPE_CREATE, expected_challenge, rp)?;

    let auth_data_bytes = auth_data_of(attestation_object)?;
    if auth_data_bytes.len() > MAX_AUTHENTICATOR_DATA_BYTES {
        return Err(PasskeyError::TooLarge { field: "authenticatorData" });
    }
    let auth = auth_data::parse(&auth_data_bytes)?;
    auth.check(rp)?;
    let attested = auth.attested.as_ref().ok_or(PasskeyError::MissingAttestedCredentialData)?;
    // Larger keys would register but never verify (see [`MAX_PUBLIC_KEY_BYTES`]).
    if attested.public_key_cose.len() > MAX_PUBLIC_KEY_BYTES {
        return Err(PasskeyError::TooLarge { field: "publicKey" });
    }
    let key = PublicKey::from_cose(attested.public_key_cose)?;
    Ok(RegisteredPasskey {
        credential_id: attested.credential_id.to_vec(),
        public_key_cose: attested.public_key_cose.to_vec(),
        sign_count: auth.sign_count,
        alg: key.alg(),
    })
}

/// The `authData` of an attestation object: a CBOR map with text keys `fmt` (text), `attStmt`
/// (map) and `authData` (bytes), and nothing after it.
fn auth_data_of(attestation_object: &[u8]) -> Result<Vec<u8>, PasskeyError> {
    let malformed = |why: &str| PasskeyError::AttestationObjectMalformed(why.to_string());
    let mut rest = attestation_object;
    let value: Value =
        ciborium::de::from_reader(&mut rest).map_err(|e| PasskeyError::AttestationObjectMalformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(malformed("trailing bytes"));
    }
    let Value::Map(entries) = value else {
        return Err(malformed("not a map"));
    };
    let (mut fmt, mut att_stmt, mut auth_data) = (None, None, None);
    for (k, v) in entries {
        let slot = match k.as_text() {
            Some("fmt") => &mut fmt,
            Some("attStmt") => &mut att_stmt,
            Some("authData") => &mut auth_data,
            _ => continue,
        };
        if slot.replace(v).is_some() {
            return Err(malformed("duplicate key"));
        }
    }
    match fmt {
        Some(Value::Text(_)) => {}
        _ => return Err(malformed("fmt is missing or not text")),
    }
    match att_stmt {
        Some(Value::Map(_)) => {}
        _ => return Err(malformed("attStmt is missing or not a map")),
    }
    match auth_data {
        Some(Value::Bytes(bytes)) => Ok(bytes),
        _ => Err(malformed("authData is missing or not bytes")),
    }
}
