//! Tamper evidence for the audit log. Each audit entry carries `hash`, the SHA-256 of its
//! RFC 8785 canonical JSON, taken when it is written. The sweep seals an organisation's entries,
//! once settled, into checkpoints: numbered, chained by the previous checkpoint's hash, holding
//! the Merkle root of the entries they cover and signed with Ed25519. Anyone holding an export and
//! the published JWKS can then verify it offline: an edited, removed, inserted or reordered entry,
//! or a forged checkpoint, shows at the first line where it happened.
//!
//! Pure: no I/O beyond the reader handed to [`verify_export`], no clock, no AWS.

pub mod canonical;
pub mod checkpoint;
pub mod export;
pub mod merkle;
pub mod receipt;
pub mod signing;

pub use canonical::{canonical_json, hash_without, HexError};
pub use checkpoint::{entry_hash, Checkpoint, CheckpointError, CheckpointType, SealedEntry, GENESIS};
pub use export::{verify_export, ExportFault, ExportSummary, FaultKind};
pub use signing::{AuditSigner, Jwk, Jwks, PublicKeyError, SigningKeyError, VerifyError};
