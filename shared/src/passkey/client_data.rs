//! clientDataJSON: the browser's record of the ceremony type, challenge and origin.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

use super::{PasskeyError, RelyingParty};

/// `type` of a registration's clientDataJSON.
pub(crate) const TYPE_CREATE: &str = "webauthn.create";
/// `type` of an assertion's clientDataJSON.
pub(crate) const TYPE_GET: &str = "webauthn.get";

/// The members checked; others (`topOrigin`, `tokenBinding`, ...) are ignored.
#[derive(Deserialize)]
struct ClientData {
    #[serde(rename = "type")]
    kind: String,
    challenge: String,
    origin: String,
    #[serde(rename = "crossOrigin", default)]
    cross_origin: Option<bool>,
}

/// Checks type, challenge (base64url without padding, compared as text) and origin (exactly).
/// The caller has already checked the size.
pub(crate) fn check(
    client_data_json: &[u8],
    expected_type: &'static str,
    expected_challenge: &[u8],
    rp: &RelyingParty,
) -> Result<(), PasskeyError> {
    let data: ClientData =
        serde_json::from_slice(client_data_json).map_err(|e| PasskeyError::ClientDataMalformed(e.to_string()))?;
    if data.kind != expected_type {
        return Err(PasskeyError::TypeMismatch { expected: expected_type, found: data.kind });
    }
    if data.challenge != URL_SAFE_NO_PAD.encode(expected_challenge) {
        return Err(PasskeyError::ChallengeMismatch);
    }
    if data.origin != rp.origin {
        return Err(PasskeyError::OriginMismatch { expected: rp.origin.clone(), found: data.origin });
    }
    if data.cross_origin == Some(true) {
        return Err(PasskeyError::CrossOrigin);
    }
    Ok(())
}
