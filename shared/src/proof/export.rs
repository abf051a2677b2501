//! The offline verifier of an audit export (JSON Lines: audit entries in id order, each
//! organisation's checkpoints after the entries they seal). Needs only the file and the JWKS, and
//! stops at the first line that does not verify, so the fault names where tampering begins.

use std::fmt;
use std::io::BufRead;

use serde_json::{Map, Value};

use super::canonical::{from_hex, hash_without, to_hex};
use super::checkpoint::{entries_root, entry_hash, Checkpoint, CHECKPOINT_UNHASHED, GENESIS};
use super::signing::{Jwks, VerifyError};

/// What kind of fault a line has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The file could not be read.
    Unreadable,
    /// The line is not JSON.
    NotJson,
    /// The line is JSON but not an object.
    NotAnObject,
    /// An entry without a string `id`, `orgId` or `hash`.
    MalformedEntry,
    /// A `"type": "checkpoint"` line without the fields of one.
    MalformedCheckpoint,
    /// An entry's `hash` is not the hash of its content: edited.
    EntryHash,
    /// An entry's id is not after the one before: reordered, duplicated or inserted.
    EntryOrder,
    /// A line of another organisation than the first line's.
    OrgMismatch,
    /// A checkpoint's `seq` is not the previous one's plus one: a checkpoint removed or added.
    CheckpointSeq,
    /// A checkpoint's `prevCheckpointHash` is not the previous checkpoint's hash.
    CheckpointPrev,
    /// A checkpoint with no entries before it.
    CheckpointEmpty,
    /// A checkpoint's `count` is not the number of entries before it: an entry removed or inserted.
    CheckpointCount,
    /// A checkpoint's `fromId` / `toId` are not the first / last entries before it.
    CheckpointRange,
    /// A checkpoint's `merkleRoot` is not the root of the entries before it.
    CheckpointRoot,
    /// A checkpoint's `hash` is not the hash of its content.
    CheckpointHash,
    /// A checkpoint's `keyId` is not in the JWKS.
    UnknownKey,
    /// A checkpoint's signature does not verify (or is not a signature).
    Signature,
}

/// The first line of an export that does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {what}")]
pub struct ExportFault {
    /// 1-based, counting every line of the file (blank ones too).
    pub line: usize,
    pub what: String,
    pub kind: FaultKind,
}

/// What a verified export held.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExportSummary {
    pub checkpoints: u64,
    /// Every entry, sealed or not.
    pub entries: u64,
    /// Entries after the last checkpoint: hash-checked only, as nothing seals them yet.
    pub unsealed: u64,
    /// The last checkpoint's seq and hash.
    pub last: Option<(u64, String)>,
}

impl fmt::Display for ExportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.last {
            Some((seq, hash)) => write!(f, "checkpoint {seq} {hash}")?,
            None => f.write_str("no checkpoint")?,
        }
        write!(f, " ({} checkpoints, {} entries, {} unsealed)", self.checkpoints, self.entries, self.unsealed)
    }
}

/// The entries since the previous checkpoint, awaiting the one that seals them.
#[derive(Default)]
struct Pending {
    first_id: Option<String>,
    last_id: Option<String>,
    hashes: Vec<[u8; 32]>,
}

/// The verifier's walk through the file.
#[derive(Default)]
struct Walk {
    org: Option<String>,
    last_entry_id: Option<String>,
    pending: Pending,
    summary: ExportSummary,
}

fn fault(line: usize, kind: FaultKind, what: impl Into<String>) -> ExportFault {
    ExportFault { line, what: what.into(), kind }
}

fn string_field<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    object.get(key).and_then(Value::as_str)
}

/// Verifies an export: every entry's hash, their order, and every checkpoint against the entries
/// before it, the checkpoint before it and its signature under `jwks`.
pub fn verify_export(lines: impl BufRead, jwks: &Jwks) -> Result<ExportSummary, ExportFault> {
    let mut walk = Walk::default();
    for (i, text) in lines.lines().enumerate() {
        let line = i + 1;
        let text = text.map_err(|e| fault(line, FaultKind::Unreadable, format!("cannot be read: {e}")))?;
        if text.trim().is_empty() {
            continue;
        }
        let value: Value =
            serde_json::from_str(&text).map_err(|e| fault(line, FaultKind::NotJson, format!("not JSON: {e}")))?;
        let Value::Object(object) = &value else {
            return Err(fault(line, FaultKind::NotAnObject, "not a JSON object"));
        };
        if string_field(object, "type") == Some("checkpoint") {
            walk.checkpoint(line, &value, jwks)?;
        } else {
            walk.entry(line, &value, object)?;
        }
    }
    walk.summary.unsealed = walk.pending.hashes.len() as u64;
    Ok(walk.summary)
}

impl Walk {
    fn same_org(&mut self, line: usize, what: &str, org_id: &str) -> Result<(), ExportFault> {
        match &self.org {
            None => {
                self.org = Some(org_id.to_owned());
                Ok(())
            }
            Some(org) if org == org_id => Ok(()),
            Some(org) => Err(fault(
                line,
                FaultKind::OrgMismatch,
                format!("{what} belongs to organisation {org_id}, the export to {org}"),
            )),
        }
    }

    fn entry(&mut self, line: usize, value: &Value, object: &Map<String, Value>) -> Result<(), ExportFault> {
        let (Some(id), Some(org_id), Some(hash)) =
            (string_field(object, "id"), string_field(object, "orgId"), string_field(object, "hash"))
        else {
            return Err(fault(line, FaultKind::MalformedEntry, "entry without a string id, orgId and hash"));
        };
        let computed = entry_hash(value);
        if computed != hash {
            return Err(fault(
                line,
                FaultKind::EntryHash,
                format!("entry {id} hash does not match its content (edited?)"),
            ));
        }
        if let Some(previous) = &self.last_entry_id {
            if id <= previous.as_str() {
                return Err(fault(
                    line,
                    FaultKind::EntryOrder,
                    format!("entry {id} is not after entry {previous} (reordered, duplicated or inserted?)"),
                ));
            }
        }
        self.same_org(line, &format!("entry {id}"), org_id)?;
        // The recomputed hash equals the written one, so its bytes are the leaf.
        let leaf = from_hex(&computed).unwrap_or_else(|e| unreachable!("a hash we wrote reads back: {e}"));
        self.last_entry_id = Some(id.to_owned());
        let pending = &mut self.pending;
        pending.first_id.get_or_insert_with(|| id.to_owned());
        pending.last_id = Some(id.to_owned());
        pending.hashes.push(leaf);
        self.summary.entries += 1;
        Ok(())
    }

    fn checkpoint(&mut self, line: usize, value: &Value, jwks: &Jwks) -> Result<(), ExportFault> {
        let cp: Checkpoint = serde_json::from_value(value.clone())
            .map_err(|e| fault(line, FaultKind::MalformedCheckpoint, format!("malformed checkpoint: {e}")))?;
        let name = format!("checkpoint {}", cp.seq);
        self.same_org(line, &name, &cp.org_id)?;

        let (expected_seq, expected_prev) = match &self.summary.last {
            Some((seq, hash)) => (seq + 1, hash.as_str()),
            None => (1, GENESIS),
        };
        if cp.seq != expected_seq {
            return Err(fault(
                line,
                FaultKind::CheckpointSeq,
                format!("{name} where checkpoint {expected_seq} was due (a checkpoint removed or added?)"),
            ));
        }
        if cp.prev_checkpoint_hash != expected_prev {
            return Err(fault(
                line,
                FaultKind::CheckpointPrev,
                format!("{name} does not follow the previous checkpoint (prevCheckpointHash differs)"),
            ));
        }
        let pending = std::mem::take(&mut self.pending);
        let (Some(first), Some(last)) = (&pending.first_id, &pending.last_id) else {
            return Err(fault(line, FaultKind::CheckpointEmpty, format!("{name} seals no entries")));
        };
        let found = pending.hashes.len() as u64;
        if cp.count != found {
            return Err(fault(
                line,
                FaultKind::CheckpointCount,
                format!("{name} seals {} entries but {found} precede it (an entry removed or inserted?)", cp.count),
            ));
        }
        if cp.from_id != *first || cp.to_id != *last {
            return Err(fault(
                line,
                FaultKind::CheckpointRange,
                format!(
                    "{name} seals {}..{} but the entries before it are {first}..{last} (entries replaced?)",
                    cp.from_id, cp.to_id
                ),
            ));
        }
        if cp.merkle_root != entries_root(&pending.hashes) {
            return Err(fault(
                line,
                FaultKind::CheckpointRoot,
                format!("{name} merkleRoot is not the root of the entries before it (an entry changed?)"),
            ));
        }
        // Over the line as written, not a re-serialisation: the hash is of what the file holds.
        let hash = hash_without(value, CHECKPOINT_UNHASHED);
        if to_hex(&hash) != cp.hash {
            return Err(fault(
                line,
                FaultKind::CheckpointHash,
                format!("{name} hash does not match its content (edited?)"),
            ));
        }
        jwks.verify(&cp.key_id, &hash, &cp.signature).map_err(|e| {
            let kind = match e {
                VerifyError::UnknownKey { .. } => FaultKind::UnknownKey,
                _ => FaultKind::Signature,
            };
            fault(line, kind, format!("{name} signature does not verify: {e}"))
        })?;

        self.summary.checkpoints += 1;
        self.summary.last = Some((cp.seq, cp.hash));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use chrono::{DateTime, Duration, Utc};
    use serde_json::json;

    use super::*;
    use crate::proof::checkpoint::SealedEntry;
    use crate::proof::signing::{AuditSigner, Jwk};

    const ORG: &str = "org_1";

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T10:00:00Z").unwrap().with_timezone(&Utc) + Duration::minutes(minutes)
    }

    fn id(i: usize) -> String {
        format!("aud_01J{i:04}")
    }

    fn with_hash(mut entry: Value) -> Value {
        let hash = entry_hash(&entry);
        entry["hash"] = json!(hash);
        entry
    }

    fn entry(i: usize) -> Value {
        with_hash(json!({
            "id": id(i),
            "orgId": ORG,
            "action": "payment.approved",
            "resourceType": "payment",
            "resourceId": format!("pay_{i}"),
            "actor": "user_1",
            "details": {"amount": "10.50", "n": i},
            "createdAt": at(i as i64).to_rfc3339(),
        }))
    }

    fn sealed(entries: &[Value]) -> Vec<SealedEntry> {
        entries
            .iter()
            .map(|e| SealedEntry { id: e["id"].as_str().unwrap().into(), hash: e["hash"].as_str().unwrap().into() })
            .collect()
    }

    /// 3 checkpoints over 10 entries (4, 3, 3) and 2 unsealed. Lines: entries 0-3 on 1-4, cp 1
    /// on 5, entries 4-6 on 6-8, cp 2 on 9, entries 7-9 on 10-12, cp 3 on 13, entries 10-11 on
    /// 14-15.
    struct Fixture {
        signer: AuditSigner,
        lines: Vec<Value>,
    }

    impl Fixture {
        fn new() -> Self {
            let signer = AuditSigner::generate();
            let mut lines = Vec::new();
            let mut prev = GENESIS.to_owned();
            let mut next = 0;
            for (seq, size) in [(1u64, 4usize), (2, 3), (3, 3)] {
                let group: Vec<Value> = (next..next + size).map(entry).collect();
                next += size;
                let cp = Checkpoint::seal(ORG, seq, &prev, &sealed(&group), at(100 + seq as i64), &signer).unwrap();
                prev = cp.hash.clone();
                lines.extend(group);
                lines.push(serde_json::to_value(cp).unwrap());
            }
            lines.extend((next..next + 2).map(entry));
            Fixture { signer, lines }
        }

        fn jwks(&self) -> Jwks {
            Jwks { keys: vec![self.signer.jwk()] }
        }

        /// 1-based line numbers, as the faults name them.
        fn line(&mut self, line: usize) -> &mut Value {
            &mut self.lines[line - 1]
        }

        fn text(&self) -> String {
            self.lines.iter().map(|l| format!("{l}\n")).collect()
        }

        fn verify(&self) -> Result<ExportSummary, ExportFault> {
            self.verify_with(&self.jwks())
        }

        fn verify_with(&self, jwks: &Jwks) -> Result<ExportSummary, ExportFault> {
            verify_export(self.text().as_bytes(), jwks)
        }

        fn fails_at(&self, line: usize, kind: FaultKind) -> ExportFault {
            let fault = self.verify().unwrap_err();
            assert_eq!((fault.line, fault.kind), (line, kind), "{fault}");
            fault
        }

        /// Re-hash and re-sign checkpoint line `line` as its signer would.
        fn reseal(&mut self, line: usize) {
            let signer = self.signer.clone();
            let cp = self.line(line);
            let hash = hash_without(cp, CHECKPOINT_UNHASHED);
            cp["hash"] = json!(to_hex(&hash));
            cp["signature"] = json!(signer.sign(&hash));
        }
    }

    #[test]
    fn a_valid_export_verifies() {
        let f = Fixture::new();
        let cp3 = f.lines[12]["hash"].as_str().unwrap().to_owned();
        let summary = f.verify().unwrap();
        assert_eq!(summary, ExportSummary { checkpoints: 3, entries: 12, unsealed: 2, last: Some((3, cp3.clone())) });
        assert_eq!(summary.to_string(), format!("checkpoint 3 {cp3} (3 checkpoints, 12 entries, 2 unsealed)"));
    }

    #[test]
    fn blank_lines_are_skipped_but_counted() {
        let mut f = Fixture::new();
        let text = format!("\n{}\n", f.text());
        assert_eq!(verify_export(text.as_bytes(), &f.jwks()).unwrap().checkpoints, 3);
        f.line(7)["details"]["amount"] = json!("99.00");
        let text = format!("\n{}", f.text());
        assert_eq!(verify_export(text.as_bytes(), &f.jwks()).unwrap_err().line, 8);
    }

    #[test]
    fn an_empty_export_has_no_checkpoint() {
        assert_eq!(verify_export(&b""[..], &Jwks::default()), Ok(ExportSummary::default()));
    }

    #[test]
    fn an_edited_entry_fails_at_its_line() {
        let mut f = Fixture::new();
        f.line(7)["details"]["amount"] = json!("99.00");
        let fault = f.fails_at(7, FaultKind::EntryHash);
        assert_eq!(fault.what, format!("entry {} hash does not match its content (edited?)", id(5)));
        assert!(fault.to_string().starts_with("line 7: "));
    }

    #[test]
    fn an_edited_unsealed_entry_fails_too() {
        let mut f = Fixture::new();
        f.line(15)["actor"] = json!("someone else");
        f.fails_at(15, FaultKind::EntryHash);
    }

    #[test]
    fn a_deleted_entry_fails_at_its_checkpoint() {
        let mut f = Fixture::new();
        f.lines.remove(6); // entry 5, line 7: checkpoint 2 moves up to line 8.
        let fault = f.fails_at(8, FaultKind::CheckpointCount);
        assert!(fault.what.contains("checkpoint 2 seals 3 entries but 2 precede it"), "{fault}");
    }

    #[test]
    fn a_deleted_first_entry_of_a_run_fails_at_its_checkpoint() {
        let mut f = Fixture::new();
        f.lines.remove(0);
        f.fails_at(4, FaultKind::CheckpointCount);
    }

    #[test]
    fn an_inserted_forged_entry_fails_at_its_checkpoint() {
        let mut f = Fixture::new();
        // Its own hash is right and its id sorts between entries 4 and 5: only the seal shows it.
        let mut forged = entry(4);
        forged["id"] = json!(format!("{}a", id(4)));
        forged["details"] = json!({"amount": "1000000.00"});
        let forged = with_hash(forged);
        f.lines.insert(6, forged); // line 7; checkpoint 2 moves down to line 10.
        f.fails_at(10, FaultKind::CheckpointCount);
    }

    #[test]
    fn an_entry_inserted_out_of_order_fails_at_its_line() {
        let mut f = Fixture::new();
        let copy = f.lines[1].clone();
        f.lines.insert(6, copy); // entry 1 again, at line 7.
        f.fails_at(7, FaultKind::EntryOrder);
    }

    #[test]
    fn a_duplicated_entry_fails_at_the_copy() {
        let mut f = Fixture::new();
        let copy = f.lines[6].clone();
        f.lines.insert(7, copy);
        f.fails_at(8, FaultKind::EntryOrder);
    }

    #[test]
    fn swapped_entries_fail_at_the_second() {
        let mut f = Fixture::new();
        f.lines.swap(6, 7); // entries 5 and 6, lines 7 and 8.
        let fault = f.fails_at(8, FaultKind::EntryOrder);
        assert!(fault.what.contains(&id(5)), "{fault}");
    }

    #[test]
    fn a_corrupted_signature_fails_at_its_checkpoint() {
        let mut f = Fixture::new();
        let mut sig = URL_SAFE_NO_PAD.decode(f.line(9)["signature"].as_str().unwrap()).unwrap();
        sig[0] ^= 0x80;
        f.line(9)["signature"] = json!(URL_SAFE_NO_PAD.encode(sig));
        f.fails_at(9, FaultKind::Signature);

        f.line(9)["signature"] = json!("!!");
        f.fails_at(9, FaultKind::Signature);
    }

    #[test]
    fn a_changed_merkle_root_fails_even_rehashed() {
        let mut f = Fixture::new();
        f.line(9)["merkleRoot"] = json!(to_hex(&[7u8; 32]));
        f.fails_at(9, FaultKind::CheckpointRoot);

        // Without re-hashing, any other field edit shows in the hash.
        let mut f = Fixture::new();
        f.line(9)["sealedAt"] = json!(at(500).to_rfc3339());
        f.fails_at(9, FaultKind::CheckpointHash);
    }

    #[test]
    fn a_consistent_rewrite_without_the_key_fails_on_the_signature() {
        let mut f = Fixture::new();
        // Edit entry 5 and redo its hash, the root and checkpoint 2's hash: everything but the
        // signature, which needs the key.
        let mut edited = f.line(7).clone();
        edited["details"]["amount"] = json!("99.00");
        *f.line(7) = with_hash(edited);
        let leaves: Vec<[u8; 32]> =
            (6..=8).map(|l| from_hex(f.lines[l - 1]["hash"].as_str().unwrap()).unwrap()).collect();
        f.line(9)["merkleRoot"] = json!(entries_root(&leaves));
        let hash = hash_without(f.line(9), CHECKPOINT_UNHASHED);
        f.line(9)["hash"] = json!(to_hex(&hash));
        f.fails_at(9, FaultKind::Signature);

        // Re-signed by the key (the sweep itself), the next checkpoint's chain link shows it.
        f.reseal(9);
        f.fails_at(13, FaultKind::CheckpointPrev);
    }

    #[test]
    fn a_dropped_checkpoint_fails_at_the_next() {
        let mut f = Fixture::new();
        f.lines.remove(8); // checkpoint 2; checkpoint 3 moves up to line 12.
        let fault = f.fails_at(12, FaultKind::CheckpointSeq);
        assert!(fault.what.contains("checkpoint 3 where checkpoint 2 was due"), "{fault}");

        // Renumbered and re-signed, its chain link still shows the gap.
        let mut f = Fixture::new();
        f.lines.remove(8);
        f.line(12)["seq"] = json!(2);
        f.reseal(12);
        f.fails_at(12, FaultKind::CheckpointPrev);
    }

    #[test]
    fn a_dropped_first_checkpoint_fails_at_the_next() {
        let mut f = Fixture::new();
        f.lines.remove(4);
        f.fails_at(8, FaultKind::CheckpointSeq);
    }

    #[test]
    fn a_checkpoint_without_entries_fails() {
        let mut f = Fixture::new();
        // A second checkpoint straight after the first, sealing nothing.
        let mut empty = f.lines[4].clone();
        empty["seq"] = json!(2);
        empty["prevCheckpointHash"] = f.lines[4]["hash"].clone();
        empty["count"] = json!(0);
        f.lines.insert(5, empty);
        f.reseal(6);
        f.fails_at(6, FaultKind::CheckpointEmpty);
    }

    #[test]
    fn a_checkpoint_over_other_entries_fails_on_its_range() {
        let mut f = Fixture::new();
        f.line(9)["fromId"] = json!(id(3));
        f.reseal(9);
        f.fails_at(9, FaultKind::CheckpointRange);
    }

    #[test]
    fn the_wrong_key_fails_at_the_first_checkpoint() {
        let f = Fixture::new();
        let stranger = AuditSigner::generate();
        let fault = f.verify_with(&Jwks { keys: vec![stranger.jwk()] }).unwrap_err();
        assert_eq!((fault.line, fault.kind), (5, FaultKind::UnknownKey), "{fault}");

        // A key published under the signer's kid but not its own.
        let impostor = Jwk { kid: f.signer.kid(), ..stranger.jwk() };
        let fault = f.verify_with(&Jwks { keys: vec![impostor] }).unwrap_err();
        assert_eq!((fault.line, fault.kind), (5, FaultKind::Signature), "{fault}");

        // A retired key still published alongside the current one verifies.
        let both = Jwks { keys: vec![stranger.jwk(), f.signer.jwk()] };
        assert!(f.verify_with(&both).is_ok());
    }

    #[test]
    fn another_organisations_line_fails() {
        let mut f = Fixture::new();
        let mut other = entry(20);
        other["orgId"] = json!("org_2");
        f.lines.push(with_hash(other));
        f.fails_at(16, FaultKind::OrgMismatch);
    }

    #[test]
    fn unparseable_lines_fail() {
        let f = Fixture::new();
        let text = format!("{}{{not json\n", f.text());
        assert_eq!(verify_export(text.as_bytes(), &f.jwks()).unwrap_err().kind, FaultKind::NotJson);
        let text = format!("{}[1, 2]\n", f.text());
        assert_eq!(verify_export(text.as_bytes(), &f.jwks()).unwrap_err().kind, FaultKind::NotAnObject);

        let mut f = Fixture::new();
        f.line(2).as_object_mut().unwrap().remove("id");
        f.fails_at(2, FaultKind::MalformedEntry);
        let mut f = Fixture::new();
        f.line(5).as_object_mut().unwrap().remove("merkleRoot");
        f.fails_at(5, FaultKind::MalformedCheckpoint);
    }
}
