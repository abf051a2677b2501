//! Offline verification of a payment receipt (`GET /v1/payments/{id}/receipt`), as
//! `countersign receipt verify` runs it: the server's signature over the receipt, the payload
//! hash of the request, every passkey assertion against the challenge recomputed from its vote,
//! every checkpoint's signature, and every audit entry's hash and inclusion proof.

use serde_json::Value;

use super::canonical::{from_hex, hash_without, to_hex};
use super::checkpoint::{entry_hash, Checkpoint};
use super::merkle::verify_inclusion;
use super::signing::Jwks;
use crate::domain::step_up::VotePasskey;
use crate::passkey::{RelyingParty, StepUpDecision};

/// The receipt's `type`.
pub const RECEIPT_TYPE: &str = "countersign.receipt";
/// What a receipt's hash leaves out.
pub const RECEIPT_UNHASHED: &[&str] = &["signature", "hash"];

/// What a receipt proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptSummary {
    pub payment_id: String,
    pub status: String,
    pub passkey_votes: usize,
    pub votes: usize,
    pub entries_proven: usize,
    /// Entries not yet sealed when the receipt was made: hash-checked, not proven.
    pub entries_unsealed: usize,
    pub checkpoints: usize,
}

/// The first thing in a receipt that does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptFault {
    #[error("not a Countersign receipt: {0}")]
    Shape(String),
    #[error("the receipt's hash does not match its content (edited?)")]
    Hash,
    #[error("the receipt's signature does not verify: {0}")]
    Signature(String),
    #[error("payloadHash does not match the request in the receipt")]
    Payload,
    #[error("the amount paid ({paid}) is not what the passkeys approved: {reason}")]
    Amount { paid: String, reason: String },
    #[error("vote {index} ({who}): its passkey assertion does not verify: {reason}")]
    Passkey { index: usize, who: String, reason: String },
    #[error("checkpoint {seq}: {reason}")]
    Checkpoint { seq: u64, reason: String },
    #[error("audit entry {id}: {reason}")]
    Entry { id: String, reason: String },
}

fn shape(what: &str) -> ReceiptFault {
    ReceiptFault::Shape(what.to_string())
}

fn text<'a>(value: &'a Value, field: &str) -> Result<&'a str, ReceiptFault> {
    value.get(field).and_then(Value::as_str).ok_or_else(|| shape(&format!("no {field}")))
}

/// Verifies `receipt` under `jwks`.
pub fn verify_receipt(receipt: &Value, jwks: &Jwks) -> Result<ReceiptSummary, ReceiptFault> {
    if receipt.get("type").and_then(Value::as_str) != Some(RECEIPT_TYPE) {
        return Err(shape("type is not countersign.receipt"));
    }
    let hash = hash_without(receipt, RECEIPT_UNHASHED);
    if text(receipt, "hash")? != to_hex(&hash) {
        return Err(ReceiptFault::Hash);
    }
    jwks.verify(text(receipt, "keyId")?, &hash, text(receipt, "signature")?)
        .map_err(|e| ReceiptFault::Signature(e.to_string()))?;

    let request = receipt.get("request").ok_or_else(|| shape("no request"))?;
    let payload_hash = text(receipt, "payloadHash")?;
    if to_hex(&hash_without(request, &[])) != payload_hash {
        return Err(ReceiptFault::Payload);
    }
    let payment = receipt.get("payment").ok_or_else(|| shape("no payment"))?;
    // Its parts are about one payment of one organisation.
    let org = text(receipt, "orgId")?;
    let payment_id = text(payment, "id")?;
    if request.get("paymentId").and_then(Value::as_str) != Some(payment_id) {
        return Err(ReceiptFault::Payload);
    }
    if let Some(approval) = receipt.get("approval").filter(|a| !a.is_null()) {
        if payment.get("approvalId").and_then(Value::as_str) != Some(text(approval, "id")?) {
            return Err(shape("the approval is not the payment's"));
        }
    }

    let paid = text(payment, "amount")?;
    let paid_amount: rust_decimal::Decimal = paid.parse().map_err(|_| shape("payment.amount is not a decimal"))?;
    let completed = payment.get("status").and_then(Value::as_str) == Some("COMPLETED");
    let amount_fault = |reason: String| ReceiptFault::Amount { paid: paid.to_string(), reason };
    let (mut votes, mut passkey_votes) = (0, 0);
    let mut last_signed: Option<rust_decimal::Decimal> = None;
    // (vote index, person, its public key, when it voted): each must match a sealed registration.
    let mut registered_keys: Vec<(usize, String, String, Option<Value>)> = Vec::new();
    if let Some(approval) = receipt.get("approval").filter(|a| !a.is_null()) {
        let approval_id = text(approval, "id")?;
        let rp = receipt.get("relyingParty").filter(|r| !r.is_null()).map(|r| -> Result<_, ReceiptFault> {
            Ok(RelyingParty {
                id: text(r, "id")?.to_string(),
                origin: text(r, "origin")?.to_string(),
                require_user_verification: true,
            })
        });
        for (index, vote) in approval.get("votes").and_then(Value::as_array).into_iter().flatten().enumerate() {
            votes += 1;
            let Some(passkey) = vote.get("passkey").filter(|p| !p.is_null()) else { continue };
            let who =
                vote.get("person").or_else(|| vote.get("keyId")).and_then(Value::as_str).unwrap_or("?").to_string();
            let fault = |reason: String| ReceiptFault::Passkey { index, who: who.clone(), reason };
            let passkey: VotePasskey = serde_json::from_value(passkey.clone()).map_err(|e| fault(e.to_string()))?;
            if passkey.payload_hash != payload_hash {
                return Err(fault("it signed another payload hash than the request's".into()));
            }
            // The relying party the vote was made for; the receipt's for votes that name none.
            let own = passkey.relying_party.as_ref().map(|r| RelyingParty {
                id: r.id.clone(),
                origin: r.origin.clone(),
                require_user_verification: true,
            });
            let rp = match (&own, &rp) {
                (Some(own), _) => own,
                (None, Some(Ok(rp))) => rp,
                (None, Some(Err(e))) => return Err(e.clone()),
                (None, None) => return Err(fault("the receipt names no relying party".into())),
            };
            passkey
                .assertion
                .verify(rp, approval_id, &passkey.payload_hash, passkey.decision, &passkey.amount)
                .map_err(|e| fault(e.to_string()))?;
            // What was signed must be what happened: a modify vote names its lower amount, and
            // nobody's signed amount is below what was paid.
            registered_keys.push((index, who.clone(), passkey.assertion.public_key.clone(), vote.get("at").cloned()));
            let modified = vote.get("modifiedAction").is_some_and(|m| !m.is_null());
            if modified != (passkey.decision == StepUpDecision::Modify) {
                return Err(fault("its signed decision is not the vote's".into()));
            }
            let signed: rust_decimal::Decimal =
                passkey.amount.parse().map_err(|_| fault("amount is not a decimal".into()))?;
            if completed && signed < paid_amount {
                return Err(amount_fault(format!("vote {index} ({who}) signed for {}", passkey.amount)));
            }
            last_signed = Some(signed);
            passkey_votes += 1;
        }
        // The vote that completed it signed exactly the amount paid.
        let last_is_passkey = approval
            .get("votes")
            .and_then(Value::as_array)
            .and_then(|v| v.last())
            .is_some_and(|v| v.get("passkey").is_some_and(|p| !p.is_null()));
        if let (true, true, Some(signed)) = (completed, last_is_passkey, last_signed) {
            if signed != paid_amount {
                return Err(amount_fault(format!("the completing vote signed for {signed}")));
            }
        }
    }

    // The ledger moved what the payment says.
    let ledger = receipt.get("ledger").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    if completed && !ledger.is_empty() {
        let moved = ledger.iter().any(|line| {
            line.get("amount").and_then(Value::as_str).and_then(|a| a.parse::<rust_decimal::Decimal>().ok())
                == Some(paid_amount)
        });
        if !moved {
            return Err(amount_fault("no ledger line moved it".into()));
        }
    }

    let checkpoints: Vec<Checkpoint> =
        serde_json::from_value(receipt.get("checkpoints").cloned().unwrap_or(Value::Array(vec![])))
            .map_err(|e| shape(&format!("checkpoints: {e}")))?;
    for checkpoint in &checkpoints {
        checkpoint.verify(jwks).map_err(|e| ReceiptFault::Checkpoint { seq: checkpoint.seq, reason: e.to_string() })?;
        if checkpoint.org_id != org {
            return Err(ReceiptFault::Checkpoint { seq: checkpoint.seq, reason: "another organisation's".into() });
        }
    }

    // Whose key signed: each passkey vote's key was registered to its person, by a registration
    // entry in the receipt (sealed like the rest), before the vote.
    let entries: Vec<&Value> = receipt
        .get("auditEntries")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|item| item.get("entry"))
        .collect();
    for (index, who, public_key, at) in &registered_keys {
        let fingerprint = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(public_key.as_bytes()));
        let registered = entries.iter().any(|e| {
            e.get("action").and_then(Value::as_str) == Some("passkey.registered")
                && e["details"]["publicKeySha256"].as_str() == Some(fingerprint.as_str())
                && e["details"]["person"].as_str() == Some(who.as_str())
                && match (e.get("createdAt").and_then(Value::as_str), at.as_ref().and_then(Value::as_str)) {
                    (Some(made), Some(voted)) => {
                        match (chrono::DateTime::parse_from_rfc3339(made), chrono::DateTime::parse_from_rfc3339(voted))
                        {
                            (Ok(made), Ok(voted)) => made <= voted,
                            _ => false,
                        }
                    }
                    _ => false,
                }
        });
        if !registered {
            return Err(ReceiptFault::Passkey {
                index: *index,
                who: who.clone(),
                reason: "its key was not registered to this person before the vote (no registration entry)".into(),
            });
        }
    }

    let (mut proven, mut unsealed) = (0, 0);
    for item in receipt.get("auditEntries").and_then(Value::as_array).into_iter().flatten() {
        let entry = item.get("entry").ok_or_else(|| shape("an audit item without entry"))?;
        let id = text(entry, "id")?.to_string();
        let fault = |reason: &str| ReceiptFault::Entry { id: id.clone(), reason: reason.to_string() };
        if entry.get("orgId").and_then(Value::as_str) != Some(org) {
            return Err(fault("another organisation's entry"));
        }
        let stated = text(entry, "hash")?;
        if entry_hash(entry) != stated {
            return Err(fault("its hash does not match its content (edited?)"));
        }
        let proof = match item.get("proof") {
            Some(p) if !p.is_null() => p,
            _ => {
                unsealed += 1;
                continue;
            }
        };
        let number = |field: &str| {
            proof.get(field).and_then(Value::as_u64).ok_or_else(|| fault(&format!("proof has no {field}")))
        };
        let (seq, index, size) = (number("checkpointSeq")?, number("leafIndex")?, number("treeSize")?);
        let checkpoint =
            checkpoints.iter().find(|c| c.seq == seq).ok_or_else(|| fault("its checkpoint is not in the receipt"))?;
        if checkpoint.count != size {
            return Err(fault("the proof's tree size is not its checkpoint's count"));
        }
        let path = proof
            .get("path")
            .and_then(Value::as_array)
            .ok_or_else(|| fault("proof has no path"))?
            .iter()
            .map(|h| h.as_str().and_then(|h| from_hex(h).ok()).ok_or_else(|| fault("a proof hash is not hex")))
            .collect::<Result<Vec<_>, _>>()?;
        let root = from_hex(&checkpoint.merkle_root).map_err(|_| fault("its checkpoint's root is not hex"))?;
        let leaf = from_hex(stated).map_err(|_| fault("its hash is not hex"))?;
        if !verify_inclusion(&leaf, index, size, &path, &root) {
            return Err(fault("its inclusion proof does not lead to its checkpoint's root"));
        }
        proven += 1;
    }
    Ok(ReceiptSummary {
        payment_id: payment_id.to_string(),
        status: text(payment, "status").unwrap_or("?").to_string(),
        passkey_votes,
        votes,
        entries_proven: proven,
        entries_unsealed: unsealed,
        checkpoints: checkpoints.len(),
    })
}
