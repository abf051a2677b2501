//! The audit signing key (Ed25519) and the public keys that verify its signatures, published as
//! a JWKS (RFC 7517 / RFC 8037 `OKP` keys). Keys, signatures and the secret travel as base64url
//! without padding.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::canonical::sha256;

/// The secret text does not hold an Ed25519 seed. Never carries the text itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningKeyError {
    #[error("the audit signing key is not base64url without padding")]
    NotBase64Url,
    #[error("the audit signing key must be 32 bytes, it has {got}")]
    WrongLength { got: usize },
}

/// A public key (`x`) that is not an Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublicKeyError {
    #[error("the public key is not base64url without padding")]
    NotBase64Url,
    #[error("the public key must be 32 bytes, it has {got}")]
    WrongLength { got: usize },
    #[error("the public key is not a point on Ed25519")]
    NotAPoint,
}

/// Why a signature did not verify under a JWKS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("no key with id {kid} in the key set")]
    UnknownKey { kid: String },
    #[error("key {kid} is not an Ed25519 key")]
    UnsupportedKey { kid: String },
    #[error("key {kid} is malformed: {source}")]
    BadKey { kid: String, source: PublicKeyError },
    #[error("the signature is not 64 bytes of base64url without padding")]
    BadSignatureEncoding,
    #[error("the signature does not verify under key {kid}")]
    BadSignature { kid: String },
}

fn kid_of(public: &VerifyingKey) -> String {
    let mut kid = hex::encode(sha256(public.as_bytes()));
    kid.truncate(16);
    kid
}

/// The key the sweep signs checkpoints with. `Debug` never shows the secret.
#[derive(Clone)]
pub struct AuditSigner {
    key: SigningKey,
    kid: String,
}

impl fmt::Debug for AuditSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditSigner").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl AuditSigner {
    fn from_seed(seed: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(seed);
        let kid = kid_of(&key.verifying_key());
        AuditSigner { key, kid }
    }

    /// The signer whose 32-byte seed `text` holds (base64url, no padding; surrounding whitespace,
    /// such as a file's final newline, is ignored).
    pub fn from_secret(text: &str) -> Result<Self, SigningKeyError> {
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| SigningKeyError::NotBase64Url)?;
        let seed: [u8; 32] =
            bytes.as_slice().try_into().map_err(|_| SigningKeyError::WrongLength { got: bytes.len() })?;
        Ok(Self::from_seed(&seed))
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        use rand::RngCore;
        // 32 random bytes and `from_bytes`, not dalek's own keygen: that one wants the rand_core
        // of another version than the workspace's rand.
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        Self::from_seed(&seed)
    }

    /// The seed as `from_secret` reads it, to keep the key (the local server's data dir).
    pub fn secret_text(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.key.to_bytes())
    }

    /// The key id: the first 16 hex characters of SHA-256 of the public key.
    pub fn kid(&self) -> String {
        self.kid.clone()
    }

    /// The Ed25519 signature of `msg`, base64url without padding.
    pub fn sign(&self, msg: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.key.sign(msg).to_bytes())
    }

    /// The public half, as published at `/.well-known/countersign-keys`.
    pub fn jwk(&self) -> Jwk {
        Jwk::from_verifying_key(&self.key.verifying_key())
    }
}

/// One public key as a JWK (RFC 8037): `{"kid", "kty": "OKP", "crv": "Ed25519", "x"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kid: String,
    pub kty: String,
    pub crv: String,
    pub x: String,
}

impl Jwk {
    fn from_verifying_key(key: &VerifyingKey) -> Self {
        Jwk {
            kid: kid_of(key),
            kty: "OKP".to_owned(),
            crv: "Ed25519".to_owned(),
            x: URL_SAFE_NO_PAD.encode(key.as_bytes()),
        }
    }

    /// The JWK of a public key given as base64url (a retired key, still published after a
    /// rotation so older checkpoints keep verifying). Its kid is derived, not taken.
    pub fn from_public_key_text(x: &str) -> Result<Self, PublicKeyError> {
        Ok(Self::from_verifying_key(&decode_public_key(x.trim())?))
    }

    fn verifying_key(&self) -> Result<VerifyingKey, VerifyError> {
        if self.kty != "OKP" || self.crv != "Ed25519" {
            return Err(VerifyError::UnsupportedKey { kid: self.kid.clone() });
        }
        decode_public_key(&self.x).map_err(|source| VerifyError::BadKey { kid: self.kid.clone(), source })
    }
}

fn decode_public_key(x: &str) -> Result<VerifyingKey, PublicKeyError> {
    let bytes = URL_SAFE_NO_PAD.decode(x).map_err(|_| PublicKeyError::NotBase64Url)?;
    let bytes: [u8; 32] = bytes.as_slice().try_into().map_err(|_| PublicKeyError::WrongLength { got: bytes.len() })?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| PublicKeyError::NotAPoint)
}

/// A key set, `{"keys": [...]}`: the current key and any retired ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// Whether `signature` (base64url) is the signature of `msg` by the key `kid` of this set.
    pub fn verify(&self, kid: &str, msg: &[u8], signature: &str) -> Result<(), VerifyError> {
        let jwk =
            self.keys.iter().find(|k| k.kid == kid).ok_or_else(|| VerifyError::UnknownKey { kid: kid.to_owned() })?;
        let key = jwk.verifying_key()?;
        let bytes = URL_SAFE_NO_PAD.decode(signature).map_err(|_| VerifyError::BadSignatureEncoding)?;
        let bytes: [u8; 64] = bytes.as_slice().try_into().map_err(|_| VerifyError::BadSignatureEncoding)?;
        // Strict: refuses small-order keys and non-canonical signatures, so a signature has one
        // accepted form.
        key.verify_strict(msg, &Signature::from_bytes(&bytes))
            .map_err(|_| VerifyError::BadSignature { kid: kid.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwks(signer: &AuditSigner) -> Jwks {
        Jwks { keys: vec![signer.jwk()] }
    }

    #[test]
    fn sign_and_verify_round_trip() {
        let signer = AuditSigner::generate();
        let sig = signer.sign(b"checkpoint hash");
        assert_eq!(jwks(&signer).verify(&signer.kid(), b"checkpoint hash", &sig), Ok(()));
    }

    #[test]
    fn tampered_message_or_signature_is_refused() {
        let signer = AuditSigner::generate();
        let keys = jwks(&signer);
        let kid = signer.kid();
        let sig = signer.sign(b"message");
        assert_eq!(keys.verify(&kid, b"messagE", &sig), Err(VerifyError::BadSignature { kid: kid.clone() }));

        let mut bytes = URL_SAFE_NO_PAD.decode(&sig).unwrap();
        bytes[10] ^= 1;
        let flipped = URL_SAFE_NO_PAD.encode(&bytes);
        assert_eq!(keys.verify(&kid, b"message", &flipped), Err(VerifyError::BadSignature { kid: kid.clone() }));

        assert_eq!(keys.verify(&kid, b"message", "not base64!"), Err(VerifyError::BadSignatureEncoding));
        assert_eq!(keys.verify(&kid, b"message", &sig[..40]), Err(VerifyError::BadSignatureEncoding));
        assert_eq!(
            keys.verify("0000000000000000", b"message", &sig),
            Err(VerifyError::UnknownKey { kid: "0000000000000000".into() })
        );

        // Another key under the same kid: the signature is checked, not the name.
        let other = AuditSigner::generate();
        let impostor = Jwks { keys: vec![Jwk { kid: kid.clone(), ..other.jwk() }] };
        assert_eq!(impostor.verify(&kid, b"message", &sig), Err(VerifyError::BadSignature { kid }));
    }

    #[test]
    fn secret_round_trip_and_stable_kid() {
        let signer = AuditSigner::generate();
        let again = AuditSigner::from_secret(&format!("  {}\n", signer.secret_text())).unwrap();
        assert_eq!(again.kid(), signer.kid());
        assert_eq!(again.jwk(), signer.jwk());
        assert_eq!(signer.kid().len(), 16);
        assert_eq!(Jwk::from_public_key_text(&signer.jwk().x).unwrap(), signer.jwk());
    }

    #[test]
    fn known_seed_gives_known_key() {
        // RFC 8032 §7.1 test 1: this seed's public key, and its signature of the empty message.
        let seed = hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60").unwrap();
        let signer = AuditSigner::from_secret(&URL_SAFE_NO_PAD.encode(seed)).unwrap();
        let public = URL_SAFE_NO_PAD.decode(&signer.jwk().x).unwrap();
        assert_eq!(hex::encode(&public), "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        assert_eq!(signer.kid(), &hex::encode(sha256(&public))[..16]);
        let sig = URL_SAFE_NO_PAD.decode(signer.sign(b"")).unwrap();
        assert_eq!(
            hex::encode(sig),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
    }

    #[test]
    fn from_secret_errors_do_not_echo_the_secret() {
        let err = AuditSigner::from_secret("not*base64").unwrap_err();
        assert_eq!(err, SigningKeyError::NotBase64Url);
        assert!(!err.to_string().contains("not*base64"));
        assert_eq!(
            AuditSigner::from_secret(&URL_SAFE_NO_PAD.encode([7u8; 31])).unwrap_err(),
            SigningKeyError::WrongLength { got: 31 }
        );
        // Padding is refused: the text has one spelling.
        let padded = format!("{}=", URL_SAFE_NO_PAD.encode([7u8; 32]));
        assert_eq!(AuditSigner::from_secret(&padded).unwrap_err(), SigningKeyError::NotBase64Url);
    }

    #[test]
    fn debug_hides_the_secret() {
        let signer = AuditSigner::generate();
        let shown = format!("{signer:?}");
        assert!(!shown.contains(&signer.secret_text()));
        assert!(shown.contains(&signer.kid()));
    }

    #[test]
    fn jwk_json_shape_and_bad_keys() {
        let signer = AuditSigner::generate();
        let json = serde_json::to_value(jwks(&signer)).unwrap();
        assert_eq!(json["keys"][0]["kty"], "OKP");
        assert_eq!(json["keys"][0]["crv"], "Ed25519");
        assert_eq!(json["keys"][0]["kid"], signer.kid());
        let sig = signer.sign(b"m");
        let kid = signer.kid();
        let with = |jwk: Jwk| Jwks { keys: vec![jwk] }.verify(&kid, b"m", &sig);
        assert_eq!(
            with(Jwk { kty: "EC".into(), ..signer.jwk() }),
            Err(VerifyError::UnsupportedKey { kid: kid.clone() })
        );
        assert!(matches!(with(Jwk { x: "AAAA".into(), ..signer.jwk() }), Err(VerifyError::BadKey { .. })));
        assert_eq!(Jwk::from_public_key_text("@@"), Err(PublicKeyError::NotBase64Url));
        assert_eq!(Jwk::from_public_key_text("AAAA"), Err(PublicKeyError::WrongLength { got: 3 }));
    }
}
