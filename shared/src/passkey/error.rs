//! Every reason a passkey ceremony is refused: one variant per check, so a caller (and a test)
//! can tell which check failed.

/// A refused registration or assertion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasskeyError {
    /// An input is longer than its limit: refused before any parsing.
    #[error("{field} is too large")]
    TooLarge { field: &'static str },
    /// A field is not valid base64url.
    #[error("{field} is not valid base64url")]
    Base64 { field: &'static str },
    /// The nonce is not at least 16 bytes of lowercase hex.
    #[error("the nonce is not at least 16 bytes of lowercase hex")]
    InvalidNonce,
    /// A value committed to by the step-up challenge contains a newline (the separator).
    #[error("{field} contains a newline")]
    InvalidChallengeField { field: &'static str },
    /// The public URL the relying party is derived from is not an http(s) URL with a host.
    #[error("invalid relying party URL: {0}")]
    InvalidRelyingPartyUrl(String),

    /// clientDataJSON is not a JSON object with string `type`, `challenge` and `origin`.
    #[error("clientDataJSON is malformed: {0}")]
    ClientDataMalformed(String),
    /// clientDataJSON's `type` is not the ceremony's (`webauthn.create` or `webauthn.get`).
    #[error("clientDataJSON type is {found:?}, expected {expected:?}")]
    TypeMismatch { expected: &'static str, found: String },
    /// clientDataJSON's `challenge` is not the expected challenge.
    #[error("the challenge does not match")]
    ChallengeMismatch,
    /// clientDataJSON's `origin` is not the relying party's origin.
    #[error("origin {found:?} is not {expected:?}")]
    OriginMismatch { expected: String, found: String },
    /// The ceremony ran in a cross-origin iframe.
    #[error("cross-origin ceremonies are refused")]
    CrossOrigin,

    /// The attestation object is not a CBOR map with `fmt`, `attStmt` and `authData`.
    #[error("attestation object is malformed: {0}")]
    AttestationObjectMalformed(String),
    /// authenticatorData is shorter than its fields say.
    #[error("authenticator data is truncated")]
    AuthDataTruncated,
    /// authenticatorData has bytes after its last field and no extensions flag.
    #[error("authenticator data has trailing bytes")]
    AuthDataTrailingBytes,
    /// The credential ID in the attested credential data is empty or longer than 1023 bytes.
    #[error("credential ID length {0} is out of range")]
    CredentialIdLength(usize),
    /// The rpIdHash in authenticatorData is not SHA-256 of the relying party ID.
    #[error("rpIdHash does not match the relying party ID")]
    RpIdHashMismatch,
    /// The User Present flag is not set.
    #[error("user presence flag is not set")]
    UserNotPresent,
    /// User verification is required and the User Verified flag is not set.
    #[error("user verification is required but was not performed")]
    UserNotVerified,
    /// A registration's authenticatorData has no attested credential data (AT flag clear).
    #[error("no attested credential data")]
    MissingAttestedCredentialData,

    /// The credential public key is not valid COSE_Key CBOR or lacks a parameter.
    #[error("COSE key is malformed: {0}")]
    CoseKeyMalformed(String),
    /// The key's algorithm (or key type / curve) is not ES256 on P-256 or EdDSA on Ed25519.
    #[error("unsupported algorithm or key type: {0}")]
    UnsupportedAlgorithm(String),
    /// The key's coordinates are not a valid point on its curve.
    #[error("invalid public key")]
    InvalidPublicKey,
    /// The signature is not a well-formed encoding for the key's algorithm.
    #[error("signature is malformed")]
    SignatureMalformed,
    /// The signature does not verify over authenticatorData || SHA-256(clientDataJSON).
    #[error("signature does not verify")]
    SignatureInvalid,
}
