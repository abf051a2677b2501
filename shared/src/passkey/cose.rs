//! Credential public keys (COSE_Key) and the two signature algorithms accepted: ES256 (alg -7,
//! EC2 on P-256, DER-encoded ECDSA over SHA-256) and EdDSA (alg -8, OKP on Ed25519, raw 64-byte
//! signatures). RS256 is not supported: the relying party offers only -7 and -8.

use coset::iana::{self, EnumI64};
use coset::{CborSerializable, CoseKey, Label, RegisteredLabelWithPrivate};
use p256::ecdsa::signature::Verifier;

use super::PasskeyError;

/// COSE algorithm ES256.
pub const ALG_ES256: i64 = -7;
/// COSE algorithm EdDSA.
pub const ALG_EDDSA: i64 = -8;

/// COSE key type parameters (RFC 9053): curve, x, y.
const PARAM_CRV: i64 = -1;
const PARAM_X: i64 = -2;
const PARAM_Y: i64 = -3;

/// A credential public key this relying party can verify with.
pub(crate) enum PublicKey {
    Es256(p256::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl PublicKey {
    /// Parses a COSE_Key: exactly one CBOR item, EC2/P-256/ES256 or OKP/Ed25519/EdDSA.
    pub fn from_cose(bytes: &[u8]) -> Result<Self, PasskeyError> {
        let key = CoseKey::from_slice(bytes).map_err(|e| PasskeyError::CoseKeyMalformed(e.to_string()))?;
        let alg = match &key.alg {
            Some(RegisteredLabelWithPrivate::Assigned(alg)) => alg.to_i64(),
            Some(RegisteredLabelWithPrivate::PrivateUse(alg)) => *alg,
            Some(RegisteredLabelWithPrivate::Text(alg)) => {
                return Err(PasskeyError::UnsupportedAlgorithm(format!("alg {alg:?}")))
            }
            None => return Err(PasskeyError::CoseKeyMalformed("no alg".into())),
        };
        let kty = &key.kty;
        match alg {
            ALG_ES256 => {
                if *kty != coset::KeyType::Assigned(iana::KeyType::EC2) {
                    return Err(PasskeyError::UnsupportedAlgorithm(format!("ES256 with key type {kty:?}")));
                }
                expect_curve(&key, iana::EllipticCurve::P_256)?;
                let x = param_bytes(&key, PARAM_X, 32)?;
                let y = param_bytes(&key, PARAM_Y, 32)?;
                let mut sec1 = [0u8; 65];
                sec1[0] = 0x04;
                sec1[1..33].copy_from_slice(x);
                sec1[33..].copy_from_slice(y);
                p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                    .map(Self::Es256)
                    .map_err(|_| PasskeyError::InvalidPublicKey)
            }
            ALG_EDDSA => {
                if *kty != coset::KeyType::Assigned(iana::KeyType::OKP) {
                    return Err(PasskeyError::UnsupportedAlgorithm(format!("EdDSA with key type {kty:?}")));
                }
                expect_curve(&key, iana::EllipticCurve::Ed25519)?;
                let x = param_bytes(&key, PARAM_X, 32)?;
                let mut raw = [0u8; 32];
                raw.copy_from_slice(x);
                ed25519_dalek::VerifyingKey::from_bytes(&raw)
                    .map(Self::Ed25519)
                    .map_err(|_| PasskeyError::InvalidPublicKey)
            }
            other => Err(PasskeyError::UnsupportedAlgorithm(format!("alg {other}"))),
        }
    }

    /// The COSE algorithm: [`ALG_ES256`] or [`ALG_EDDSA`].
    pub fn alg(&self) -> i64 {
        match self {
            Self::Es256(_) => ALG_ES256,
            Self::Ed25519(_) => ALG_EDDSA,
        }
    }

    /// Verifies `signature` over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), PasskeyError> {
        match self {
            Self::Es256(key) => {
                let sig = p256::ecdsa::Signature::from_der(signature).map_err(|_| PasskeyError::SignatureMalformed)?;
                key.verify(message, &sig).map_err(|_| PasskeyError::SignatureInvalid)
            }
            Self::Ed25519(key) => {
                let sig =
                    ed25519_dalek::Signature::from_slice(signature).map_err(|_| PasskeyError::SignatureMalformed)?;
                // Strict: refuses small-order keys and non-canonical signatures.
                key.verify_strict(message, &sig).map_err(|_| PasskeyError::SignatureInvalid)
            }
        }
    }
}

fn param(key: &CoseKey, label: i64) -> Option<&ciborium::Value> {
    key.params.iter().find(|(l, _)| *l == Label::Int(label)).map(|(_, v)| v)
}

fn expect_curve(key: &CoseKey, curve: iana::EllipticCurve) -> Result<(), PasskeyError> {
    let crv = param(key, PARAM_CRV)
        .ok_or_else(|| PasskeyError::CoseKeyMalformed("no crv".into()))?
        .as_integer()
        .and_then(|i| i64::try_from(i).ok())
        .ok_or_else(|| PasskeyError::CoseKeyMalformed("crv is not an integer".into()))?;
    if crv != curve.to_i64() {
        return Err(PasskeyError::UnsupportedAlgorithm(format!("curve {crv}")));
    }
    Ok(())
}

fn param_bytes(key: &CoseKey, label: i64, len: usize) -> Result<&[u8], PasskeyError> {
    let bytes = param(key, label)
        .and_then(|v| v.as_bytes())
        .ok_or_else(|| PasskeyError::CoseKeyMalformed(format!("no byte string at {label}")))?;
    if bytes.len() != len {
        return Err(PasskeyError::CoseKeyMalformed(format!(
            "parameter {label} is {} bytes, expected {len}",
            bytes.len()
        )));
    }
    Ok(bytes)
}
