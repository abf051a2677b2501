//! authenticatorData: `rpIdHash (32) | flags (1) | signCount (4, BE) | [attested credential data]
//! | [extensions]`, parsed with a bounds check before every read.

use sha2::{Digest, Sha256};

use super::{PasskeyError, RelyingParty};

const FLAG_UP: u8 = 0x01;
const FLAG_UV: u8 = 0x04;
const FLAG_AT: u8 = 0x40;
const FLAG_ED: u8 = 0x80;

/// rpIdHash, flags and signCount.
const HEADER_LEN: usize = 37;
/// The longest credential ID WebAuthn allows.
pub(crate) const MAX_CREDENTIAL_ID_LEN: usize = 1023;

pub(crate) struct AuthData<'a> {
    pub rp_id_hash: &'a [u8],
    pub flags: u8,
    pub sign_count: u32,
    pub attested: Option<AttestedCredential<'a>>,
}

pub(crate) struct AttestedCredential<'a> {
    pub credential_id: &'a [u8],
    /// The credential public key: exactly the bytes of one CBOR item (a COSE_Key).
    pub public_key_cose: &'a [u8],
}

impl AuthData<'_> {
    pub fn user_present(&self) -> bool {
        self.flags & FLAG_UP != 0
    }

    pub fn user_verified(&self) -> bool {
        self.flags & FLAG_UV != 0
    }

    /// rpIdHash == SHA-256(rp.id), UP set, and UV set when the relying party requires it.
    pub fn check(&self, rp: &RelyingParty) -> Result<(), PasskeyError> {
        let expected = Sha256::digest(rp.id.as_bytes());
        if self.rp_id_hash != expected.as_slice() {
            return Err(PasskeyError::RpIdHashMismatch);
        }
        if !self.user_present() {
            return Err(PasskeyError::UserNotPresent);
        }
        if rp.require_user_verification && !self.user_verified() {
            return Err(PasskeyError::UserNotVerified);
        }
        Ok(())
    }
}

fn take(data: &[u8], at: usize, len: usize) -> Result<&[u8], PasskeyError> {
    at.checked_add(len).and_then(|end| data.get(at..end)).ok_or(PasskeyError::AuthDataTruncated)
}

/// Parses authenticatorData. Extensions (ED flag) are not interpreted: when present, whatever
/// follows the attested credential data is left alone (the signature covers it); when absent,
/// nothing may follow.
pub(crate) fn parse(data: &[u8]) -> Result<AuthData<'_>, PasskeyError> {
    let rp_id_hash = take(data, 0, 32)?;
    let flags = take(data, 32, 1)?[0];
    let count = take(data, 33, 4)?;
    let sign_count = u32::from_be_bytes([count[0], count[1], count[2], count[3]]);
    let mut at = HEADER_LEN;
    let attested = if flags & FLAG_AT != 0 {
        let _aaguid = take(data, at, 16)?;
        at += 16;
        let len_bytes = take(data, at, 2)?;
        at += 2;
        let id_len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        if id_len == 0 || id_len > MAX_CREDENTIAL_ID_LEN {
            return Err(PasskeyError::CredentialIdLength(id_len));
        }
        let credential_id = take(data, at, id_len)?;
        at += id_len;
        let key_len = cbor_item_len(data.get(at..).ok_or(PasskeyError::AuthDataTruncated)?)?;
        let public_key_cose = take(data, at, key_len)?;
        at += key_len;
        Some(AttestedCredential { credential_id, public_key_cose })
    } else {
        None
    };
    if flags & FLAG_ED == 0 && at != data.len() {
        return Err(PasskeyError::AuthDataTrailingBytes);
    }
    Ok(AuthData { rp_id_hash, flags, sign_count, attested })
}

/// The length of the one CBOR item at the start of `bytes` (decoded to find where it ends).
fn cbor_item_len(bytes: &[u8]) -> Result<usize, PasskeyError> {
    if bytes.is_empty() {
        return Err(PasskeyError::AuthDataTruncated);
    }
    let mut rest = bytes;
    let _: ciborium::Value =
        ciborium::de::from_reader(&mut rest).map_err(|e| PasskeyError::CoseKeyMalformed(e.to_string()))?;
    Ok(bytes.len() - rest.len())
}
