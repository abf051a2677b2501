//! A software WebAuthn authenticator for tests: one ES256 (P-256) credential with a sign
//! counter, answering registrations (attestation `"none"`, flags UP | UV | AT) and assertions
//! (flags UP | UV) as a browser and a platform authenticator would together: clientDataJSON,
//! authenticatorData and a DER ECDSA signature over `authenticatorData || SHA-256(clientDataJSON)`.
//! Every value in and out is base64url without padding, as the dashboard's `passkeys.js` sends
//! them. It mirrors the builders of `shared/src/passkey/tests.rs` (not importable: cfg(test)).

use std::sync::atomic::{AtomicU32, Ordering};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ciborium::Value;
use coset::{iana, CborSerializable, CoseKeyBuilder};
use countersign_core::domain::step_up::StepUpProof;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use sha2::{Digest, Sha256};

/// User Present.
pub const FLAG_UP: u8 = 0x01;
/// User Verified.
pub const FLAG_UV: u8 = 0x04;
/// Attested credential data included.
pub const FLAG_AT: u8 = 0x40;

/// base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What `navigator.credentials.get` hands back, base64url.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    pub credential_id: String,
    pub authenticator_data: String,
    pub client_data_json: String,
    pub signature: String,
}

impl Assertion {
    /// The step-up proof a door receives: this assertion and the nonce it was made for.
    pub fn proof(&self, nonce: &str) -> StepUpProof {
        StepUpProof {
            nonce: nonce.to_string(),
            credential_id: self.credential_id.clone(),
            authenticator_data: self.authenticator_data.clone(),
            client_data_json: self.client_data_json.clone(),
            signature: self.signature.clone(),
        }
    }
}

/// One credential on a software authenticator.
pub struct Authenticator {
    key: SigningKey,
    credential_id: Vec<u8>,
    sign_count: AtomicU32,
}

impl Default for Authenticator {
    fn default() -> Self {
        Self::new()
    }
}

impl Authenticator {
    /// A fresh P-256 key and a random 16-byte credential id.
    pub fn new() -> Self {
        Self::with_credential_id(rand::random::<[u8; 16]>().to_vec())
    }

    /// A fresh P-256 key under the given credential id (e.g. a long one, up to WebAuthn's 1023 bytes).
    pub fn with_credential_id(credential_id: Vec<u8>) -> Self {
        let key = loop {
            if let Ok(key) = SigningKey::from_slice(&rand::random::<[u8; 32]>()) {
                break key;
            }
        };
        Authenticator { key, credential_id, sign_count: AtomicU32::new(0) }
    }

    /// The credential id, base64url: what the relying party stores and a proof names.
    pub fn credential_id(&self) -> String {
        b64(&self.credential_id)
    }

    /// The credential public key as a COSE_Key (EC2, P-256, ES256).
    pub fn cose_public_key(&self) -> Vec<u8> {
        let point = self.key.verifying_key().to_encoded_point(false);
        CoseKeyBuilder::new_ec2_pub_key(
            iana::EllipticCurve::P_256,
            point.x().expect("x").to_vec(),
            point.y().expect("y").to_vec(),
        )
        .algorithm(iana::Algorithm::ES256)
        .build()
        .to_vec()
        .expect("COSE key")
    }

    /// `navigator.credentials.create` over `challenge` (base64url, as the registration options
    /// give it): returns (clientDataJSON, attestationObject), base64url.
    pub fn register(&self, rp_id: &str, origin: &str, challenge: &str) -> (String, String) {
        let client_data = client_data("webauthn.create", challenge, origin);
        let mut attested = Vec::new();
        attested.extend_from_slice(&[0u8; 16]); // AAGUID: none
        attested.extend_from_slice(&(self.credential_id.len() as u16).to_be_bytes());
        attested.extend_from_slice(&self.credential_id);
        attested.extend_from_slice(&self.cose_public_key());
        let auth_data = self.auth_data(rp_id, FLAG_UP | FLAG_UV | FLAG_AT, &attested);
        let attestation = Value::Map(vec![
            (Value::Text("fmt".into()), Value::Text("none".into())),
            (Value::Text("attStmt".into()), Value::Map(vec![])),
            (Value::Text("authData".into()), Value::Bytes(auth_data)),
        ]);
        let mut attestation_object = Vec::new();
        ciborium::into_writer(&attestation, &mut attestation_object).expect("CBOR");
        (b64(&client_data), b64(&attestation_object))
    }

    /// `navigator.credentials.get` over `challenge` (base64url, as a step-up start gives it),
    /// with user presence and verification; the sign counter goes up by one.
    pub fn assert(&self, rp_id: &str, origin: &str, challenge: &str) -> Assertion {
        let client_data = client_data("webauthn.get", challenge, origin);
        let auth_data = self.auth_data(rp_id, FLAG_UP | FLAG_UV, &[]);
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(&client_data));
        let signature: Signature = self.key.sign(&signed);
        Assertion {
            credential_id: self.credential_id(),
            authenticator_data: b64(&auth_data),
            client_data_json: b64(&client_data),
            signature: b64(signature.to_der().as_bytes()),
        }
    }

    /// `rpIdHash | flags | signCount | rest`, counting one more signature.
    fn auth_data(&self, rp_id: &str, flags: u8, rest: &[u8]) -> Vec<u8> {
        let count = self.sign_count.fetch_add(1, Ordering::SeqCst) + 1;
        let mut out = Sha256::digest(rp_id.as_bytes()).to_vec();
        out.push(flags);
        out.extend_from_slice(&count.to_be_bytes());
        out.extend_from_slice(rest);
        out
    }
}

/// clientDataJSON as a browser writes it (the challenge as given, base64url).
fn client_data(kind: &str, challenge: &str, origin: &str) -> Vec<u8> {
    serde_json::json!({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false})
        .to_string()
        .into_bytes()
}
