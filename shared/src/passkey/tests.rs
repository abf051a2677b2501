//! Ceremonies built by hand (keys from p256 and ed25519-dalek, COSE keys from coset, attestation
//! objects from ciborium), then each refusal on its own.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ciborium::Value;
use coset::{iana, CborSerializable, CoseKeyBuilder};
use ed25519_dalek::Signer as _;
use proptest::prelude::*;
use sha2::{Digest, Sha256};

use super::*;

const UP: u8 = 0x01;
const UV: u8 = 0x04;
const AT: u8 = 0x40;
const ED: u8 = 0x80;

const APPROVAL: &str = "01JE6Z3Q9W8K4T5M2N7P1R0S3V";
const PAYLOAD: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const AMOUNT: &str = "1250.00";

fn rp() -> RelyingParty {
    RelyingParty { id: "localhost".into(), origin: "http://localhost:8080".into(), require_user_verification: true }
}

enum TestKey {
    P256(p256::ecdsa::SigningKey),
    Ed(ed25519_dalek::SigningKey),
}

impl TestKey {
    fn p256() -> Self {
        loop {
            let bytes: [u8; 32] = rand::random();
            if let Ok(key) = p256::ecdsa::SigningKey::from_slice(&bytes) {
                return Self::P256(key);
            }
        }
    }

    fn ed25519() -> Self {
        Self::Ed(ed25519_dalek::SigningKey::from_bytes(&rand::random()))
    }

    fn cose(&self) -> Vec<u8> {
        match self {
            Self::P256(key) => {
                let point = key.verifying_key().to_encoded_point(false);
                CoseKeyBuilder::new_ec2_pub_key(
                    iana::EllipticCurve::P_256,
                    point.x().unwrap().to_vec(),
                    point.y().unwrap().to_vec(),
                )
                .algorithm(iana::Algorithm::ES256)
                .build()
                .to_vec()
                .unwrap()
            }
            Self::Ed(key) => CoseKeyBuilder::new_okp_key()
                .param(-1, Value::from(6)) // crv: Ed25519
                .param(-2, Value::Bytes(key.verifying_key().to_bytes().to_vec()))
                .algorithm(iana::Algorithm::EdDSA)
                .build()
                .to_vec()
                .unwrap(),
        }
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::P256(key) => {
                let sig: p256::ecdsa::Signature = key.sign(message);
                sig.to_der().as_bytes().to_vec()
            }
            Self::Ed(key) => key.sign(message).to_bytes().to_vec(),
        }
    }
}

fn auth_data(rp_id: &str, flags: u8, count: u32, attested: Option<(&[u8], &[u8])>) -> Vec<u8> {
    let mut out = Sha256::digest(rp_id.as_bytes()).to_vec();
    out.push(flags);
    out.extend_from_slice(&count.to_be_bytes());
    if let Some((credential_id, cose)) = attested {
        out.extend_from_slice(&[0xAA; 16]);
        out.extend_from_slice(&(credential_id.len() as u16).to_be_bytes());
        out.extend_from_slice(credential_id);
        out.extend_from_slice(cose);
    }
    out
}

fn client_data(kind: &str, challenge: &[u8], origin: &str) -> Vec<u8> {
    format!(
        r#"{{"type":"{kind}","challenge":"{}","origin":"{origin}","crossOrigin":false}}"#,
        URL_SAFE_NO_PAD.encode(challenge)
    )
    .into_bytes()
}

fn cbor(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).unwrap();
    out
}

fn attestation(auth: &[u8]) -> Vec<u8> {
    cbor(&Value::Map(vec![
        (Value::Text("fmt".into()), Value::Text("none".into())),
        (Value::Text("attStmt".into()), Value::Map(vec![])),
        (Value::Text("authData".into()), Value::Bytes(auth.to_vec())),
    ]))
}

// ---------- registration ----------

struct Registration {
    challenge: [u8; 32],
    client_data: Vec<u8>,
    attestation: Vec<u8>,
}

fn registration_with(cose: &[u8], flags: u8, rp_id: &str, kind: &str, origin: &str) -> Registration {
    let challenge = registration_challenge();
    let auth = auth_data(rp_id, flags, 0, Some((b"credential-1", cose)));
    Registration { challenge, client_data: client_data(kind, &challenge, origin), attestation: attestation(&auth) }
}

fn registration(cose: &[u8]) -> Registration {
    registration_with(cose, UP | UV | AT, "localhost", "webauthn.create", "http://localhost:8080")
}

fn register(r: &Registration) -> Result<RegisteredPasskey, PasskeyError> {
    verify_registration(&rp(), &r.challenge, &r.client_data, &r.attestation)
}

#[test]
fn passkey_registration_es256_and_eddsa_are_accepted() {
    for (key, alg) in [(TestKey::p256(), ALG_ES256), (TestKey::ed25519(), ALG_EDDSA)] {
        let cose = key.cose();
        let passkey = register(&registration(&cose)).unwrap();
        assert_eq!(passkey.credential_id, b"credential-1");
        assert_eq!(passkey.public_key_cose, cose, "the exact COSE bytes");
        assert_eq!(passkey.alg, alg);
        assert_eq!(passkey.sign_count, 0);
    }
}

#[test]
fn passkey_registration_refusals() {
    let cose = TestKey::p256().cose();
    let ok = "http://localhost:8080";
    let refusal = |r: Registration| register(&r).unwrap_err();

    let mut r = registration(&cose);
    r.challenge[0] ^= 1;
    assert_eq!(refusal(r), PasskeyError::ChallengeMismatch);
    assert!(matches!(
        refusal(registration_with(&cose, UP | UV | AT, "localhost", "webauthn.create", "http://localhost:8081")),
        PasskeyError::OriginMismatch { .. }
    ));
    assert!(matches!(
        refusal(registration_with(&cose, UP | UV | AT, "localhost", "webauthn.get", ok)),
        PasskeyError::TypeMismatch { expected: "webauthn.create", .. }
    ));
    assert_eq!(
        refusal(registration_with(&cose, UP | UV | AT, "evil.example", "webauthn.create", ok)),
        PasskeyError::RpIdHashMismatch
    );
    assert_eq!(
        refusal(registration_with(&cose, UV | AT, "localhost", "webauthn.create", ok)),
        PasskeyError::UserNotPresent
    );
    assert_eq!(
        refusal(registration_with(&cose, UP | AT, "localhost", "webauthn.create", ok)),
        PasskeyError::UserNotVerified
    );

    // No attested credential data.
    let challenge = registration_challenge();
    let r = Registration {
        challenge,
        client_data: client_data("webauthn.create", &challenge, ok),
        attestation: attestation(&auth_data("localhost", UP | UV, 0, None)),
    };
    assert_eq!(refusal(r), PasskeyError::MissingAttestedCredentialData);
}

#[test]
fn passkey_registration_without_required_uv_is_accepted() {
    let cose = TestKey::p256().cose();
    let r = registration_with(&cose, UP | AT, "localhost", "webauthn.create", "http://localhost:8080");
    let relaxed = RelyingParty { require_user_verification: false, ..rp() };
    verify_registration(&relaxed, &r.challenge, &r.client_data, &r.attestation).unwrap();
}

#[test]
fn passkey_registration_refuses_malformed_cbor_and_auth_data() {
    let cose = TestKey::p256().cose();
    let good = registration(&cose);
    let with_attestation = |attestation: Vec<u8>| {
        verify_registration(&rp(), &good.challenge, &good.client_data, &attestation).unwrap_err()
    };
    // Truncated and garbage attestation objects.
    let truncated = good.attestation[..good.attestation.len() - 5].to_vec();
    assert!(matches!(with_attestation(truncated), PasskeyError::AttestationObjectMalformed(_)));
    assert!(matches!(with_attestation(vec![0xff, 0x00, 0x13]), PasskeyError::AttestationObjectMalformed(_)));
    assert!(matches!(with_attestation(vec![]), PasskeyError::AttestationObjectMalformed(_)));
    let mut trailing = good.attestation.clone();
    trailing.push(0);
    assert!(matches!(with_attestation(trailing), PasskeyError::AttestationObjectMalformed(_)));
    assert!(matches!(with_attestation(cbor(&Value::Array(vec![]))), PasskeyError::AttestationObjectMalformed(_)));
    let no_auth_data = cbor(&Value::Map(vec![
        (Value::Text("fmt".into()), Value::Text("none".into())),
        (Value::Text("attStmt".into()), Value::Map(vec![])),
    ]));
    assert!(matches!(with_attestation(no_auth_data), PasskeyError::AttestationObjectMalformed(_)));

    // authData shorter than its header, cut in the attested credential data, cut in the key.
    let full = auth_data("localhost", UP | UV | AT, 0, Some((b"credential-1", &cose)));
    for (cut, expected) in [
        (20, PasskeyError::AuthDataTruncated),
        (37, PasskeyError::AuthDataTruncated),
        (37 + 16 + 1, PasskeyError::AuthDataTruncated),
        (37 + 18 + 5, PasskeyError::AuthDataTruncated),
        (37 + 18 + 12, PasskeyError::AuthDataTruncated),
    ] {
        assert_eq!(with_attestation(attestation(&full[..cut])), expected, "cut at {cut}");
    }
    assert!(matches!(with_attestation(attestation(&full[..full.len() - 3])), PasskeyError::CoseKeyMalformed(_)));
    // Trailing bytes without the extensions flag; accepted with it.
    let mut trailing = full.clone();
    trailing.push(0xa0);
    assert_eq!(with_attestation(attestation(&trailing)), PasskeyError::AuthDataTrailingBytes);
    trailing[32] |= ED;
    verify_registration(&rp(), &good.challenge, &good.client_data, &attestation(&trailing)).unwrap();
    // A credential ID length of zero.
    let mut empty_id = auth_data("localhost", UP | UV | AT, 0, Some((b"", &cose)));
    empty_id.truncate(37 + 18);
    assert_eq!(with_attestation(attestation(&empty_id)), PasskeyError::CredentialIdLength(0));
}

#[test]
fn passkey_registration_refuses_unsupported_algorithms() {
    let ok = "http://localhost:8080";
    let p256 = TestKey::p256();
    let TestKey::P256(sk) = &p256 else { unreachable!() };
    let point = sk.verifying_key().to_encoded_point(false);
    let (x, y) = (point.x().unwrap().to_vec(), point.y().unwrap().to_vec());
    let rs256 = CoseKeyBuilder::new()
        .key_type(iana::KeyType::RSA)
        .param(-1, Value::Bytes(vec![0xc3; 256]))
        .param(-2, Value::Bytes(vec![1, 0, 1]))
        .algorithm(iana::Algorithm::RS256)
        .build()
        .to_vec()
        .unwrap();
    let es384 = CoseKeyBuilder::new_ec2_pub_key(iana::EllipticCurve::P_256, x.clone(), y.clone())
        .algorithm(iana::Algorithm::ES384)
        .build()
        .to_vec()
        .unwrap();
    let es256_on_p384 = CoseKeyBuilder::new_ec2_pub_key(iana::EllipticCurve::P_384, x.clone(), y)
        .algorithm(iana::Algorithm::ES256)
        .build()
        .to_vec()
        .unwrap();
    let es256_as_okp = CoseKeyBuilder::new_okp_key()
        .param(-1, Value::from(1))
        .param(-2, Value::Bytes(x.clone()))
        .algorithm(iana::Algorithm::ES256)
        .build()
        .to_vec()
        .unwrap();
    for cose in [rs256, es384, es256_on_p384, es256_as_okp] {
        let r = registration_with(&cose, UP | UV | AT, "localhost", "webauthn.create", ok);
        assert!(matches!(register(&r).unwrap_err(), PasskeyError::UnsupportedAlgorithm(_)));
    }
    // A point that is not on the curve; a key without alg.
    let off_curve = CoseKeyBuilder::new_ec2_pub_key(iana::EllipticCurve::P_256, x.clone(), vec![7; 32])
        .algorithm(iana::Algorithm::ES256)
        .build()
        .to_vec()
        .unwrap();
    let r = registration_with(&off_curve, UP | UV | AT, "localhost", "webauthn.create", ok);
    assert_eq!(register(&r).unwrap_err(), PasskeyError::InvalidPublicKey);
    let no_alg = CoseKeyBuilder::new_ec2_pub_key(iana::EllipticCurve::P_256, x, vec![7; 32]).build().to_vec().unwrap();
    let r = registration_with(&no_alg, UP | UV | AT, "localhost", "webauthn.create", ok);
    assert!(matches!(register(&r).unwrap_err(), PasskeyError::CoseKeyMalformed(_)));
}

#[test]
fn passkey_registration_refuses_a_key_too_large_to_assert_with() {
    let TestKey::P256(sk) = TestKey::p256() else { unreachable!() };
    let point = sk.verifying_key().to_encoded_point(false);
    let padded = CoseKeyBuilder::new_ec2_pub_key(
        iana::EllipticCurve::P_256,
        point.x().unwrap().to_vec(),
        point.y().unwrap().to_vec(),
    )
    .algorithm(iana::Algorithm::ES256)
    .param(-70000, Value::Bytes(vec![0; MAX_PUBLIC_KEY_BYTES]))
    .build()
    .to_vec()
    .unwrap();
    assert_eq!(register(&registration(&padded)).unwrap_err(), PasskeyError::TooLarge { field: "publicKey" });
}

#[test]
fn passkey_oversize_inputs_are_refused_before_parsing() {
    let big = vec![b'{'; MAX_CLIENT_DATA_BYTES + 1];
    assert_eq!(
        verify_registration(&rp(), &[0; 32], &big, &[]).unwrap_err(),
        PasskeyError::TooLarge { field: "clientDataJSON" }
    );
    assert_eq!(
        verify_registration(&rp(), &[0; 32], b"{}", &vec![0; MAX_ATTESTATION_OBJECT_BYTES + 1]).unwrap_err(),
        PasskeyError::TooLarge { field: "attestationObject" }
    );
    assert_eq!(
        verify_assertion(&rp(), &[0; 32], &[], &big, &[], &[]).unwrap_err(),
        PasskeyError::TooLarge { field: "clientDataJSON" }
    );
    assert_eq!(
        verify_assertion(&rp(), &[0; 32], &[], b"{}", &vec![0; MAX_AUTHENTICATOR_DATA_BYTES + 1], &[]).unwrap_err(),
        PasskeyError::TooLarge { field: "authenticatorData" }
    );
    assert_eq!(
        verify_assertion(&rp(), &[0; 32], &[], b"{}", &[], &vec![0; MAX_SIGNATURE_BYTES + 1]).unwrap_err(),
        PasskeyError::TooLarge { field: "signature" }
    );
    assert_eq!(
        verify_assertion(&rp(), &[0; 32], &vec![0; MAX_PUBLIC_KEY_BYTES + 1], b"{}", &[], &[]).unwrap_err(),
        PasskeyError::TooLarge { field: "publicKey" }
    );
}

// ---------- step-up assertions ----------

/// A step-up assertion signed by `key`, with the parts the tests tamper with.
fn step_up_with(
    key: &TestKey,
    decision: StepUpDecision,
    amount: &str,
    flags: u8,
    kind: &str,
    origin: &str,
) -> StoredAssertion {
    let nonce = new_nonce();
    let challenge = step_up_challenge(APPROVAL, PAYLOAD, decision, amount, &nonce);
    let auth = auth_data("localhost", flags, 7, None);
    let cdj = client_data(kind, &challenge, origin);
    let mut signed = auth.clone();
    signed.extend_from_slice(&Sha256::digest(&cdj));
    StoredAssertion {
        credential_id: URL_SAFE_NO_PAD.encode(b"credential-1"),
        authenticator_data: URL_SAFE_NO_PAD.encode(&auth),
        client_data_json: URL_SAFE_NO_PAD.encode(&cdj),
        signature: URL_SAFE_NO_PAD.encode(key.sign(&signed)),
        nonce,
        public_key: URL_SAFE_NO_PAD.encode(key.cose()),
    }
}

fn step_up(key: &TestKey) -> StoredAssertion {
    step_up_with(key, StepUpDecision::Approve, AMOUNT, UP | UV, "webauthn.get", "http://localhost:8080")
}

fn check(stored: &StoredAssertion) -> Result<AssertionOutcome, PasskeyError> {
    stored.verify(&rp(), APPROVAL, PAYLOAD, StepUpDecision::Approve, AMOUNT)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap()
}

#[test]
fn passkey_step_up_challenge_is_the_hash_of_the_committed_values() {
    let nonce = "00112233445566778899aabbccddeeff";
    let expected: [u8; 32] = Sha256::digest(format!("{APPROVAL}\n{PAYLOAD}\nmodify\n{AMOUNT}\n{nonce}")).into();
    assert_eq!(step_up_challenge(APPROVAL, PAYLOAD, StepUpDecision::Modify, AMOUNT, nonce), expected);
    assert_eq!(StepUpDecision::Approve.as_str(), "approve");
    let (a, b) = (new_nonce(), new_nonce());
    assert_ne!(a, b);
    assert_eq!(a.len(), 32);
    assert!(is_valid_nonce(&a));
    assert!(!is_valid_nonce("00112233445566778899AABBCCDDEEFF"));
    assert!(!is_valid_nonce("0011"));
    assert_ne!(registration_challenge(), registration_challenge());
}

#[test]
fn passkey_step_up_es256_and_eddsa_verify() {
    for key in [TestKey::p256(), TestKey::ed25519()] {
        let stored = step_up(&key);
        assert_eq!(check(&stored).unwrap(), AssertionOutcome { sign_count: 7, user_verified: true });
        // The same through verify_assertion directly.
        let challenge = step_up_challenge(APPROVAL, PAYLOAD, StepUpDecision::Approve, AMOUNT, &stored.nonce);
        let outcome = verify_assertion(
            &rp(),
            &challenge,
            &unb64(&stored.public_key),
            &unb64(&stored.client_data_json),
            &unb64(&stored.authenticator_data),
            &unb64(&stored.signature),
        )
        .unwrap();
        assert_eq!(outcome.sign_count, 7);
    }
}

#[test]
fn passkey_step_up_accepts_high_s_es256_signatures() {
    // Authenticators are not required to normalise S: both halves of the pair verify.
    let key = TestKey::p256();
    let stored = step_up(&key);
    let sig = p256::ecdsa::Signature::from_der(&unb64(&stored.signature)).unwrap();
    let (r, s) = sig.split_scalars();
    let flipped = p256::ecdsa::Signature::from_scalars(r, -s).unwrap();
    assert_ne!(flipped, sig);
    let other_half = StoredAssertion { signature: b64(flipped.to_der().as_bytes()), ..stored.clone() };
    check(&stored).unwrap();
    check(&other_half).unwrap();
}

#[test]
fn passkey_step_up_refuses_another_challenge() {
    let key = TestKey::p256();
    let stored = step_up(&key);
    let rp = rp();
    let approve = StepUpDecision::Approve;
    for result in [
        stored.verify(&rp, "01JE6Z3Q9W8K4T5M2N7P1R0S3W", PAYLOAD, approve, AMOUNT),
        stored.verify(&rp, APPROVAL, &PAYLOAD.replace('9', "8"), approve, AMOUNT),
        stored.verify(&rp, APPROVAL, PAYLOAD, approve, "1250.01"),
        stored.verify(&rp, APPROVAL, PAYLOAD, approve, "1250"),
        stored.verify(&rp, APPROVAL, PAYLOAD, StepUpDecision::Modify, AMOUNT),
        StoredAssertion { nonce: new_nonce(), ..stored.clone() }.verify(&rp, APPROVAL, PAYLOAD, approve, AMOUNT),
    ] {
        assert_eq!(result.unwrap_err(), PasskeyError::ChallengeMismatch);
    }
    // A modify vote's signature does not count as approve, nor the reverse.
    let modify = step_up_with(&key, StepUpDecision::Modify, "900.00", UP | UV, "webauthn.get", "http://localhost:8080");
    modify.verify(&rp, APPROVAL, PAYLOAD, StepUpDecision::Modify, "900.00").unwrap();
    assert_eq!(modify.verify(&rp, APPROVAL, PAYLOAD, approve, "900.00").unwrap_err(), PasskeyError::ChallengeMismatch);
}

#[test]
fn passkey_step_up_refusals() {
    let key = TestKey::p256();
    let approve = StepUpDecision::Approve;
    let ok = "http://localhost:8080";

    assert!(matches!(
        check(&step_up_with(&key, approve, AMOUNT, UP | UV, "webauthn.get", "https://localhost:8080")).unwrap_err(),
        PasskeyError::OriginMismatch { .. }
    ));
    assert!(matches!(
        check(&step_up_with(&key, approve, AMOUNT, UP | UV, "webauthn.create", ok)).unwrap_err(),
        PasskeyError::TypeMismatch { expected: "webauthn.get", .. }
    ));
    assert_eq!(
        check(&step_up_with(&key, approve, AMOUNT, UV, "webauthn.get", ok)).unwrap_err(),
        PasskeyError::UserNotPresent
    );
    let no_uv = step_up_with(&key, approve, AMOUNT, UP, "webauthn.get", ok);
    assert_eq!(check(&no_uv).unwrap_err(), PasskeyError::UserNotVerified);
    let relaxed = RelyingParty { require_user_verification: false, ..rp() };
    let outcome = no_uv.verify(&relaxed, APPROVAL, PAYLOAD, approve, AMOUNT).unwrap();
    assert!(!outcome.user_verified);

    // Another RP ID (signed by the authenticator for evil.example).
    let other_rp = RelyingParty { id: "evil.example".into(), ..rp() };
    assert_eq!(
        step_up(&key).verify(&other_rp, APPROVAL, PAYLOAD, approve, AMOUNT).unwrap_err(),
        PasskeyError::RpIdHashMismatch
    );

    // Another credential's public key (same algorithm, and the other algorithm).
    let stored = step_up(&key);
    for other in [TestKey::p256(), TestKey::ed25519()] {
        let swapped = StoredAssertion { public_key: b64(&other.cose()), ..stored.clone() };
        assert!(matches!(
            check(&swapped).unwrap_err(),
            PasskeyError::SignatureInvalid | PasskeyError::SignatureMalformed
        ));
    }
    let swapped = StoredAssertion { public_key: b64(&TestKey::p256().cose()), ..stored.clone() };
    assert_eq!(check(&swapped).unwrap_err(), PasskeyError::SignatureInvalid);

    // Tampered authenticatorData: the signature counter, then the UV flag removed.
    let mut auth = unb64(&stored.authenticator_data);
    auth[36] ^= 0x01;
    let tampered = StoredAssertion { authenticator_data: b64(&auth), ..stored.clone() };
    assert_eq!(check(&tampered).unwrap_err(), PasskeyError::SignatureInvalid);

    // Tampered clientDataJSON (still the right challenge, origin and type).
    let mut cdj = unb64(&stored.client_data_json);
    let at = cdj.len() - 1;
    cdj.insert(at, b' ');
    let tampered = StoredAssertion { client_data_json: b64(&cdj), ..stored.clone() };
    assert_eq!(check(&tampered).unwrap_err(), PasskeyError::SignatureInvalid);

    // A signature that is not DER.
    let garbage = StoredAssertion { signature: b64(&[0x30, 0x02, 0x01]), ..stored.clone() };
    assert_eq!(check(&garbage).unwrap_err(), PasskeyError::SignatureMalformed);

    // Cross-origin iframe.
    let nonce = stored.nonce.clone();
    let challenge = step_up_challenge(APPROVAL, PAYLOAD, approve, AMOUNT, &nonce);
    let cross =
        format!(r#"{{"type":"webauthn.get","challenge":"{}","origin":"{ok}","crossOrigin":true}}"#, b64(&challenge));
    let cross = StoredAssertion { client_data_json: b64(cross.as_bytes()), ..stored.clone() };
    assert_eq!(check(&cross).unwrap_err(), PasskeyError::CrossOrigin);

    // Malformed clientDataJSON, authenticatorData and public key.
    let bad = StoredAssertion { client_data_json: b64(b"not json"), ..stored.clone() };
    assert!(matches!(check(&bad).unwrap_err(), PasskeyError::ClientDataMalformed(_)));
    let bad = StoredAssertion { authenticator_data: b64(&[0; 36]), ..stored.clone() };
    assert_eq!(check(&bad).unwrap_err(), PasskeyError::AuthDataTruncated);
    let bad = StoredAssertion { public_key: b64(&[0xa1, 0x01]), ..stored.clone() };
    assert!(matches!(check(&bad).unwrap_err(), PasskeyError::CoseKeyMalformed(_)));

    // Record-level refusals.
    let bad = StoredAssertion { signature: "not base64!".into(), ..stored.clone() };
    assert_eq!(check(&bad).unwrap_err(), PasskeyError::Base64 { field: "signature" });
    let bad = StoredAssertion { nonce: "abc".into(), ..stored.clone() };
    assert_eq!(check(&bad).unwrap_err(), PasskeyError::InvalidNonce);
    let bad = StoredAssertion { client_data_json: "A".repeat(8000), ..stored.clone() };
    assert_eq!(check(&bad).unwrap_err(), PasskeyError::TooLarge { field: "clientDataJSON" });
    assert_eq!(
        stored.verify(&rp(), &format!("{APPROVAL}\n"), PAYLOAD, approve, AMOUNT).unwrap_err(),
        PasskeyError::InvalidChallengeField { field: "approvalId" }
    );
}

#[test]
fn passkey_step_up_refuses_unsupported_algorithm() {
    let key = TestKey::p256();
    let stored = step_up(&key);
    let TestKey::P256(sk) = &key else { unreachable!() };
    let point = sk.verifying_key().to_encoded_point(false);
    let es384 = CoseKeyBuilder::new_ec2_pub_key(
        iana::EllipticCurve::P_256,
        point.x().unwrap().to_vec(),
        point.y().unwrap().to_vec(),
    )
    .algorithm(iana::Algorithm::ES384)
    .build()
    .to_vec()
    .unwrap();
    let bad = StoredAssertion { public_key: b64(&es384), ..stored };
    assert!(matches!(check(&bad).unwrap_err(), PasskeyError::UnsupportedAlgorithm(_)));
}

#[test]
fn passkey_stored_assertion_round_trips_json_with_exact_names() {
    let stored = step_up(&TestKey::ed25519());
    let json = serde_json::to_value(&stored).unwrap();
    let object = json.as_object().unwrap();
    let mut names: Vec<&str> = object.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["authenticatorData", "clientDataJSON", "credentialId", "nonce", "publicKey", "signature"]);
    assert_eq!(object["nonce"], stored.nonce.as_str());
    let back: StoredAssertion = serde_json::from_value(json).unwrap();
    assert_eq!(back, stored);
    check(&back).unwrap();
}

#[test]
fn passkey_relying_party_from_public_url() {
    let rp = RelyingParty::from_public_url("http://localhost:8080").unwrap();
    assert_eq!((rp.id.as_str(), rp.origin.as_str()), ("localhost", "http://localhost:8080"));
    assert!(rp.require_user_verification);
    let rp = RelyingParty::from_public_url("https://Pay.Example.COM:443/approvals/?x=1").unwrap();
    assert_eq!((rp.id.as_str(), rp.origin.as_str()), ("pay.example.com", "https://pay.example.com"));
    let rp = RelyingParty::from_public_url("http://localhost:80/").unwrap();
    assert_eq!(rp.origin, "http://localhost");
    let rp = RelyingParty::from_public_url("https://pay.example.com:8443").unwrap();
    assert_eq!(rp.origin, "https://pay.example.com:8443");
    for bad in ["ftp://example.com", "not a url", "http://127.0.0.1:8080", "file:///tmp/x"] {
        assert!(matches!(RelyingParty::from_public_url(bad), Err(PasskeyError::InvalidRelyingPartyUrl(_))), "{bad}");
    }
}

// ---------- never a panic ----------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn passkey_random_bytes_never_panic(
        challenge in proptest::collection::vec(any::<u8>(), 0..40),
        client in proptest::collection::vec(any::<u8>(), 0..200),
        blob in proptest::collection::vec(any::<u8>(), 0..300),
        key in proptest::collection::vec(any::<u8>(), 0..120),
        sig in proptest::collection::vec(any::<u8>(), 0..80),
        flags in any::<u8>(),
    ) {
        let rp = RelyingParty { require_user_verification: false, ..rp() };
        // Raw garbage everywhere.
        prop_assert!(verify_registration(&rp, &challenge, &client, &blob).is_err());
        prop_assert!(verify_assertion(&rp, &challenge, &key, &client, &blob, &sig).is_err());
        // Valid clientDataJSON and rpIdHash, so the random authData and key are reached.
        let reg_client = client_data("webauthn.create", &challenge, &rp.origin);
        let mut auth = auth_data("localhost", flags | UP | AT, 0, None);
        auth.extend_from_slice(&blob);
        let _ = verify_registration(&rp, &challenge, &reg_client, &attestation(&auth));
        // A well-formed attested credential header, so the random bytes are the COSE key.
        let auth = auth_data("localhost", flags | UP | AT, 0, Some((b"credential-1", &blob)));
        let _ = verify_registration(&rp, &challenge, &reg_client, &attestation(&auth));
        let get_client = client_data("webauthn.get", &challenge, &rp.origin);
        let mut auth = auth_data("localhost", flags | UP, 0, None);
        auth.extend_from_slice(&blob);
        prop_assert!(verify_assertion(&rp, &challenge, &key, &get_client, &auth, &sig).is_err());
    }

    #[test]
    fn passkey_mutated_attestation_objects_never_panic(
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        // Near-valid CBOR reaches deeper than random bytes: one byte changed, then truncated.
        let r = registration(&TestKey::ed25519().cose());
        let mut attestation = r.attestation.clone();
        let i = at.index(attestation.len());
        attestation[i] = byte;
        let _ = verify_registration(&rp(), &r.challenge, &r.client_data, &attestation);
        attestation.truncate(cut.index(attestation.len()));
        prop_assert!(verify_registration(&rp(), &r.challenge, &r.client_data, &attestation).is_err());
    }

    #[test]
    fn passkey_any_single_byte_change_is_refused(
        which in 0usize..4,
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let key = TestKey::p256();
        let stored = step_up(&key);
        let mut parts = [
            unb64(&stored.authenticator_data),
            unb64(&stored.client_data_json),
            unb64(&stored.signature),
            unb64(&stored.public_key),
        ];
        let part = &mut parts[which];
        let i = at.index(part.len());
        part[i] ^= xor;
        let [auth, cdj, sig, cose] = parts;
        let tampered = StoredAssertion {
            authenticator_data: b64(&auth),
            client_data_json: b64(&cdj),
            signature: b64(&sig),
            public_key: b64(&cose),
            ..stored
        };
        prop_assert!(check(&tampered).is_err());
    }
}
