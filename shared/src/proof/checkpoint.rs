//! Checkpoints: the sweep's signed seal over a run of one organisation's audit entries. Each
//! names the entries it covers (first id, last id, count), their Merkle root, and the hash of the
//! checkpoint before it, so checkpoints form a chain and no entry can be removed, inserted or
//! edited under one without its root, its hash and so its signature changing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::canonical::{from_hex, hash_without, to_hex, HexError};
use super::merkle;
use super::signing::{AuditSigner, Jwks, VerifyError};

/// `prevCheckpointHash` of an organisation's first checkpoint.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The fields an entry's hash leaves out: the hash itself.
pub const ENTRY_UNHASHED: &[&str] = &["hash"];

/// The fields a checkpoint's hash leaves out: the hash and the signature over it.
pub const CHECKPOINT_UNHASHED: &[&str] = &["signature", "hash"];

/// The `type` of a checkpoint line: always `"checkpoint"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckpointType {
    Checkpoint,
}

/// One sealed checkpoint, as stored and exported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    #[serde(rename = "type")]
    pub kind: CheckpointType,
    pub org_id: String,
    /// 1 for an organisation's first checkpoint, then one more each time.
    pub seq: u64,
    /// The previous checkpoint's `hash`, or [`GENESIS`].
    pub prev_checkpoint_hash: String,
    /// The first and last audit entry ids covered.
    pub from_id: String,
    pub to_id: String,
    /// How many entries are covered.
    pub count: u64,
    /// RFC 6962 root over the covered entries' hashes (32 bytes each), in id order.
    pub merkle_root: String,
    pub sealed_at: DateTime<Utc>,
    /// The kid of the key that signed, in the published JWKS.
    pub key_id: String,
    /// Ed25519 over the 32 bytes of `hash`, base64url without padding.
    pub signature: String,
    /// SHA-256 of the checkpoint's JCS form without `signature` and `hash`, hex.
    pub hash: String,
}

/// An audit entry as the sweep seals it: its id and its `hash` (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedEntry {
    pub id: String,
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("a checkpoint must cover at least one entry")]
    NoEntries,
    #[error("entry {id} has a malformed hash: {source}")]
    EntryHash { id: String, source: HexError },
    #[error("entry {id} is not after the entry before it: entries are sealed in id order")]
    OutOfOrder { id: String },
    #[error("the previous checkpoint hash is malformed: {0}")]
    PrevHash(HexError),
    #[error("the checkpoint's hash does not match its content")]
    HashMismatch,
    #[error(transparent)]
    Signature(#[from] VerifyError),
}

/// The `hash` of an audit entry (a JSON object): hex SHA-256 of its JCS form without `hash`.
pub fn entry_hash(entry: &Value) -> String {
    to_hex(&hash_without(entry, ENTRY_UNHASHED))
}

/// The Merkle root over entry hashes (their 32 bytes each).
pub(crate) fn entries_root(hashes: &[[u8; 32]]) -> String {
    to_hex(&merkle::root(hashes))
}

impl Checkpoint {
    /// Seals `entries` (in id order, at least one) as checkpoint `seq` of `org_id`, after the
    /// checkpoint whose hash is `prev_hash` ([`GENESIS`] for the first), signed by `signer`.
    pub fn seal(
        org_id: &str,
        seq: u64,
        prev_hash: &str,
        entries: &[SealedEntry],
        sealed_at: DateTime<Utc>,
        signer: &AuditSigner,
    ) -> Result<Checkpoint, CheckpointError> {
        from_hex(prev_hash).map_err(CheckpointError::PrevHash)?;
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Err(CheckpointError::NoEntries);
        };
        let mut leaves = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            if i > 0 && entries[i - 1].id >= entry.id {
                return Err(CheckpointError::OutOfOrder { id: entry.id.clone() });
            }
            leaves.push(
                from_hex(&entry.hash).map_err(|source| CheckpointError::EntryHash { id: entry.id.clone(), source })?,
            );
        }
        let mut checkpoint = Checkpoint {
            kind: CheckpointType::Checkpoint,
            org_id: org_id.to_owned(),
            seq,
            prev_checkpoint_hash: prev_hash.to_owned(),
            from_id: first.id.clone(),
            to_id: last.id.clone(),
            count: entries.len() as u64,
            merkle_root: entries_root(&leaves),
            sealed_at,
            key_id: signer.kid(),
            signature: String::new(),
            hash: String::new(),
        };
        let hash = checkpoint.computed_hash();
        checkpoint.hash = to_hex(&hash);
        checkpoint.signature = signer.sign(&hash);
        Ok(checkpoint)
    }

    /// The hash of this checkpoint's fields (whatever `hash` says).
    pub fn computed_hash(&self) -> [u8; 32] {
        // Strings, numbers and a timestamp always serialise.
        let value = serde_json::to_value(self).unwrap_or_else(|e| unreachable!("a checkpoint serialises: {e}"));
        hash_without(&value, CHECKPOINT_UNHASHED)
    }

    /// Whether `hash` matches the fields and `signature` is the signature of it by `keyId` in
    /// `jwks`. Says nothing of the entries covered or the chain: `export::verify_export` does.
    pub fn verify(&self, jwks: &Jwks) -> Result<(), CheckpointError> {
        let hash = self.computed_hash();
        if to_hex(&hash) != self.hash {
            return Err(CheckpointError::HashMismatch);
        }
        jwks.verify(&self.key_id, &hash, &self.signature)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entries(n: usize) -> Vec<SealedEntry> {
        (0..n)
            .map(|i| {
                let entry = json!({"id": format!("aud_{i:03}"), "orgId": "org_1", "action": "a"});
                SealedEntry { id: format!("aud_{i:03}"), hash: entry_hash(&entry) }
            })
            .collect()
    }

    fn sealed_at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-02T03:04:05.678Z").unwrap().with_timezone(&Utc)
    }

    #[test]
    fn seal_then_verify() {
        let signer = AuditSigner::generate();
        let jwks = Jwks { keys: vec![signer.jwk()] };
        let cp = Checkpoint::seal("org_1", 1, GENESIS, &entries(3), sealed_at(), &signer).unwrap();
        assert_eq!((cp.seq, cp.count, cp.from_id.as_str(), cp.to_id.as_str()), (1, 3, "aud_000", "aud_002"));
        assert_eq!(cp.key_id, signer.kid());
        assert_eq!(cp.verify(&jwks), Ok(()));

        let json = serde_json::to_value(&cp).unwrap();
        assert_eq!(json["type"], "checkpoint");
        assert_eq!(json["prevCheckpointHash"], GENESIS);
        let mut keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "count",
                "fromId",
                "hash",
                "keyId",
                "merkleRoot",
                "orgId",
                "prevCheckpointHash",
                "sealedAt",
                "seq",
                "signature",
                "toId",
                "type"
            ]
        );
        // The hash is over the JSON as written: re-read, it still verifies.
        let back: Checkpoint = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, cp);
        assert_eq!(to_hex(&hash_without(&json, CHECKPOINT_UNHASHED)), cp.hash);
    }

    #[test]
    fn the_root_is_over_the_entry_hash_bytes() {
        let signer = AuditSigner::generate();
        let entries = entries(5);
        let cp = Checkpoint::seal("org_1", 1, GENESIS, &entries, sealed_at(), &signer).unwrap();
        let leaves: Vec<Vec<u8>> = entries.iter().map(|e| hex::decode(&e.hash).unwrap()).collect();
        assert_eq!(cp.merkle_root, hex::encode(merkle::root(&leaves)));
    }

    #[test]
    fn edited_or_resigned_checkpoints_fail() {
        let signer = AuditSigner::generate();
        let jwks = Jwks { keys: vec![signer.jwk()] };
        let cp = Checkpoint::seal("org_1", 1, GENESIS, &entries(2), sealed_at(), &signer).unwrap();

        let edited = Checkpoint { count: 3, ..cp.clone() };
        assert_eq!(edited.verify(&jwks), Err(CheckpointError::HashMismatch));

        let mut rehashed = Checkpoint { count: 3, ..cp.clone() };
        rehashed.hash = to_hex(&rehashed.computed_hash());
        assert!(matches!(rehashed.verify(&jwks), Err(CheckpointError::Signature(VerifyError::BadSignature { .. }))));

        let stranger = AuditSigner::generate();
        assert!(matches!(
            cp.verify(&Jwks { keys: vec![stranger.jwk()] }),
            Err(CheckpointError::Signature(VerifyError::UnknownKey { .. }))
        ));
    }

    #[test]
    fn seal_refuses_bad_input() {
        let signer = AuditSigner::generate();
        let seal =
            |prev: &str, entries: &[SealedEntry]| Checkpoint::seal("org_1", 1, prev, entries, sealed_at(), &signer);
        assert_eq!(seal(GENESIS, &[]), Err(CheckpointError::NoEntries));
        assert!(matches!(seal("abc", &entries(1)), Err(CheckpointError::PrevHash(_))));
        let mut swapped = entries(3);
        swapped.swap(1, 2);
        assert_eq!(seal(GENESIS, &swapped), Err(CheckpointError::OutOfOrder { id: "aud_001".into() }));
        let bad = [SealedEntry { id: "aud_1".into(), hash: "XYZ".into() }];
        assert!(matches!(seal(GENESIS, &bad), Err(CheckpointError::EntryHash { .. })));
    }

    #[test]
    fn entry_hash_leaves_out_the_hash_field() {
        let entry = json!({"id": "aud_1", "details": {"b": 1, "a": 2}});
        let with_hash = json!({"details": {"a": 2, "b": 1}, "hash": entry_hash(&entry), "id": "aud_1"});
        assert_eq!(entry_hash(&with_hash), entry_hash(&entry));
        assert_eq!(entry_hash(&entry).len(), 64);
    }
}
