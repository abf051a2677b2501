//! The step-up a vote needs above `stepUpAbove` (docs/api.md, "Passkeys and step-up"), checked
//! inside the vote's plan: the nonce is read and deleted in the vote's own transaction (used at
//! most once, even by two racing votes), the passkey must be the deciding person's, and the
//! assertion must verify against the challenge recomputed from what this vote will do.

use rust_decimal::Decimal;

use crate::domain::approval::Approval;
use crate::domain::money::Money;
use crate::domain::org::ApiKey;
use crate::domain::policy::{ActionKind, Policy};
use crate::domain::step_up::{
    PasskeyCredential, StepUpFault, StepUpNonce, StepUpProof, VotePasskey, VoteRelyingParty, MAX_CREDENTIAL_ID_CHARS,
};
use crate::engine::plan::{PlanError, Tx};
use crate::engine::Reader;
use crate::error::AppError;
use crate::layout::{passkey_key, step_up_nonce_key};
use crate::passkey::{is_valid_nonce, StepUpDecision, StoredAssertion};
use crate::service::Settings;

/// The lowest `stepUpAbove` of the enabled policies that govern `kind`.
pub(crate) fn step_up_threshold(policies: &[Policy], kind: ActionKind) -> Option<Decimal> {
    policies.iter().filter(|p| p.enabled && p.applies_to(kind)).filter_map(|p| p.step_up_above).min()
}

/// The dashboard page where the deciding person uses a passkey on `approval`.
pub(crate) fn step_up_url(settings: &Settings, approval: &Approval) -> String {
    format!("{}/dashboard/approvals/{}", settings.public_url.as_deref().unwrap_or(""), approval.id)
}

/// What deciding needs to know to check a step-up.
pub(crate) struct StepUpCase<'a> {
    pub approval: &'a Approval,
    pub payload_hash: String,
    pub decision: StepUpDecision,
    /// The amount that executes if this vote completes the approval.
    pub amount: Money,
    pub threshold: Option<Decimal>,
}

/// Checks the vote's step-up: nothing when the amount is at or below the threshold; else the
/// proof must verify. Returns what the vote keeps, and deletes the nonce in `tx`.
pub(crate) async fn check_step_up(
    r: &Reader,
    tx: &mut Tx,
    settings: &Settings,
    caller: &ApiKey,
    case: StepUpCase<'_>,
    proof: Option<&StepUpProof>,
) -> Result<Option<VotePasskey>, PlanError> {
    let Some(threshold) = case.threshold.filter(|t| case.amount.amount() > *t) else {
        return Ok(None);
    };
    let Some(proof) = proof else {
        return Err(AppError::StepUpRequired {
            url: step_up_url(settings, case.approval),
            step_up_above: threshold.to_string(),
        }
        .into());
    };
    let refused = |fault| PlanError::from(AppError::StepUpRefused(fault));
    // Shapes first: nothing malformed becomes a store key.
    if !is_valid_nonce(&proof.nonce) {
        return Err(refused(StepUpFault::NonceUnusable));
    }
    if proof.credential_id.is_empty() || proof.credential_id.len() > MAX_CREDENTIAL_ID_CHARS {
        return Err(refused(StepUpFault::UnknownCredential));
    }
    let nonce = r.read::<StepUpNonce>(&step_up_nonce_key(&proof.nonce)).await?;
    let nonce = nonce.filter(|n| n.value.org_id == caller.org_id).ok_or_else(|| refused(StepUpFault::NonceUnusable))?;
    let person = caller.person();
    let amount = case.amount.to_wire();
    nonce.value.admits(&person, &case.approval.id, case.decision, &amount, tx.now()).map_err(refused)?;
    if nonce.value.payload_hash != case.payload_hash {
        return Err(refused(StepUpFault::NonceMismatch));
    }
    let credential = r
        .read::<PasskeyCredential>(&passkey_key(&caller.org_id, &person, &proof.credential_id))
        .await?
        .ok_or_else(|| refused(StepUpFault::UnknownCredential))?;
    let rp = settings.passkey_relying_party()?;
    let assertion = StoredAssertion {
        credential_id: proof.credential_id.clone(),
        authenticator_data: proof.authenticator_data.clone(),
        client_data_json: proof.client_data_json.clone(),
        signature: proof.signature.clone(),
        nonce: proof.nonce.clone(),
        public_key: credential.value.public_key.clone(),
    };
    assertion
        .verify(&rp, case.approval.id.as_str(), &case.payload_hash, case.decision, &amount)
        .map_err(|e| refused(StepUpFault::Assertion(e.to_string())))?;
    // Used once: a second vote with this nonce finds it gone (or loses the race on its version).
    tx.delete(&nonce);
    let relying_party = Some(VoteRelyingParty { id: rp.id, origin: rp.origin });
    Ok(Some(VotePasskey { assertion, decision: case.decision, amount, payload_hash: case.payload_hash, relying_party }))
}
