//! `GET /v1/payments/{id}/receipt`: a signed evidence pack a third party checks offline with
//! `countersign receipt verify` and the published keys: the payment and the request as the
//! agent sent it, the policy decision, the approval with every vote (and its passkey
//! assertion), the ledger lines, and the audit entries with RFC 6962 inclusion proofs to the
//! signed checkpoints that seal them.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{Caller, UseCases};
use crate::domain::approval::Approval;
use crate::domain::audit::AuditEntry;
use crate::domain::ids::{OrgId, PaymentId};
use crate::domain::ledger::LedgerEntry;
use crate::domain::permission::Permission;
use crate::error::{AppError, AppResult};
use crate::layout::{
    approval_key, checkpoint_by_last_entry, checkpoint_partition, checkpoint_sort_key, decode, Stored,
};
use crate::ports::{Index, Key, Position, Query};
use crate::proof::canonical::{from_hex, hash_without, to_hex};
use crate::proof::checkpoint::Checkpoint;
use crate::proof::merkle;
use crate::proof::receipt::{RECEIPT_TYPE, RECEIPT_UNHASHED};

/// One checkpoint's entries, read once per receipt.
struct Sealed {
    checkpoint: Checkpoint,
    hashes: Vec<[u8; 32]>,
    ids: Vec<String>,
}

impl UseCases {
    /// The payment's receipt, signed with the audit signing key.
    pub async fn payment_receipt(&self, caller: &Caller, id: &PaymentId) -> AppResult<Value> {
        let key = caller.key()?;
        crate::service::require(key, Permission::PaymentsRead)?;
        let signer = self.settings.audit_signer.clone().ok_or(AppError::SigningKeyMissing)?;
        let payment = self.get_payment(caller, id).await?;
        let org = &key.org_id;
        let approval = match &payment.approval_id {
            Some(a) => Some(self.reader().read_owned::<Approval>(&approval_key(a), org).await?.value),
            None => None,
        };
        let mut entries = self.history(org, payment.id.as_str()).await?;
        if let Some(a) = &approval {
            entries.extend(self.history(org, a.id.as_str()).await?);
            // Each passkey's registration (sealed with the key's fingerprint and its person), so
            // the receipt shows whose key signed, not only that a key did.
            for vote in a.votes.iter().filter_map(|v| v.passkey.as_ref()) {
                let registrations = self.history(org, &vote.assertion.credential_id).await?;
                entries.extend(registrations.into_iter().filter(|e| e.action == "passkey.registered"));
            }
        }
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        entries.dedup_by(|a, b| a.id == b.id);
        let ledger = self.ledger_lines(&entries).await?;
        let (audit, checkpoints) = self.proofs(org, entries).await?;
        let mut receipt = json!({
            "type": RECEIPT_TYPE,
            "version": 1,
            "orgId": org,
            "issuedAt": self.now(),
            "payment": payment,
            "request": payment.request_view(),
            "payloadHash": payment.payload_hash(),
            "policyDecision": payment.decision,
            "approval": approval,
            "relyingParty": self.settings.relying_party().map(|rp| json!({"id": rp.id, "origin": rp.origin})),
            "ledger": ledger,
            "auditEntries": audit,
            "checkpoints": checkpoints,
            "keyId": signer.kid(),
        });
        let hash = hash_without(&receipt, RECEIPT_UNHASHED);
        if let Some(map) = receipt.as_object_mut() {
            map.insert("hash".into(), json!(to_hex(&hash)));
            map.insert("signature".into(), json!(signer.sign(&hash)));
        }
        Ok(receipt)
    }

    /// The ledger lines the completion's audit row names.
    async fn ledger_lines(&self, entries: &[AuditEntry]) -> AppResult<Vec<LedgerEntry>> {
        let mut lines = Vec::new();
        for entry in entries {
            let Some(named) = entry.details.get("ledgerLines").and_then(Value::as_array) else { continue };
            for line in named {
                let (Some(wallet), Some(id)) =
                    (line.get("walletId").and_then(Value::as_str), line.get("id").and_then(Value::as_str))
                else {
                    continue;
                };
                let at = Key::new(format!("WALLET#{wallet}"), format!("TXN#{id}"));
                if let Some(found) = self.reader().read::<LedgerEntry>(&at).await? {
                    lines.push(found.value);
                }
            }
        }
        Ok(lines)
    }

    /// Each entry with its inclusion proof (when sealed), and the checkpoints the proofs end at.
    async fn proofs(&self, org: &OrgId, entries: Vec<AuditEntry>) -> AppResult<(Vec<Value>, Vec<Checkpoint>)> {
        let mut sealed: BTreeMap<u64, Sealed> = BTreeMap::new();
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.hashed();
            let proof = match self.checkpoint_sealing(org, entry.id.as_str()).await? {
                None => Value::Null,
                Some(checkpoint) => {
                    let seq = checkpoint.seq;
                    if let std::collections::btree_map::Entry::Vacant(slot) = sealed.entry(seq) {
                        slot.insert(self.sealed_entries(org, checkpoint).await?);
                    }
                    match sealed.get(&seq).and_then(|s| Some((s, s.ids.iter().position(|i| i == entry.id.as_str())?))) {
                        Some((s, index)) => json!({
                            "checkpointSeq": seq,
                            "leafIndex": index,
                            "treeSize": s.hashes.len(),
                            "path": merkle::inclusion_proof(&s.hashes, index).iter().map(to_hex).collect::<Vec<_>>(),
                        }),
                        None => Value::Null,
                    }
                }
            };
            out.push(json!({"entry": entry, "proof": proof}));
        }
        Ok((out, sealed.into_values().map(|s| s.checkpoint).collect()))
    }

    /// The checkpoint that seals `entry_id`, if one does yet.
    async fn checkpoint_sealing(&self, org: &OrgId, entry_id: &str) -> AppResult<Option<Checkpoint>> {
        let mut query = Query::new(Index::ByWallet, checkpoint_by_last_entry(org.as_str()), 1);
        query.newest_first = false;
        query.after = Some(Position {
            index_sk: Some(entry_id.to_string()),
            pk: checkpoint_partition(org.as_str()),
            sk: checkpoint_sort_key(0),
        });
        let found = self.store().query(query).await?.into_iter().next();
        let checkpoint = found.map(|i| decode::<Checkpoint>(i).map(|s| s.value)).transpose()?;
        Ok(checkpoint.filter(|c| c.from_id.as_str() <= entry_id))
    }

    /// The entries a checkpoint seals, with their hashes as bytes.
    async fn sealed_entries(&self, org: &OrgId, checkpoint: Checkpoint) -> AppResult<Sealed> {
        let after = if checkpoint.seq > 1 {
            let key = Key::new(checkpoint_partition(org.as_str()), checkpoint_sort_key(checkpoint.seq - 1));
            let previous: Option<Stored<Checkpoint>> = self.reader().read(&key).await?;
            previous.map(|p| p.value.to_id)
        } else {
            None
        };
        let count = usize::try_from(checkpoint.count).unwrap_or(usize::MAX);
        let entries = self.entries_after(org, after.as_deref(), Some(&checkpoint.to_id), count).await?;
        let hashes = entries
            .iter()
            .map(|e| from_hex(&e.hash).map_err(|e| AppError::Corrupt(format!("audit entry hash: {e}"))))
            .collect::<AppResult<Vec<_>>>()?;
        let ids = entries.iter().map(|e| e.id.to_string()).collect();
        Ok(Sealed { checkpoint, hashes, ids })
    }
}
