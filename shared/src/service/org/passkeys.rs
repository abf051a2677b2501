//! Passkeys (docs/api.md, "Passkeys and step-up"): a person registers them on the dashboard,
//! and uses one to step up a decision above `stepUpAbove`. Registration challenges and step-up
//! nonces are records that live five minutes and are deleted by the write that uses them, so
//! each is used once.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;

use crate::domain::approval::{Approval, ApprovalSubject};
use crate::domain::audit::Actor;
use crate::domain::event::{kinds, Event};
use crate::domain::ids::ApprovalId;
use crate::domain::input::InputError;
use crate::domain::money::Amount;
use crate::domain::org::ApiKey;
use crate::domain::payment::Payment;
use crate::domain::permission::Permission;
use crate::domain::refund::Refund;
use crate::domain::step_up::{
    PasskeyCredential, RegistrationChallenge, StepUpFault, StepUpNonce, MAX_CREDENTIAL_ID_CHARS,
    MAX_PASSKEYS_PER_PERSON, MAX_PASSKEY_NAME_CHARS, NONCE_LIFETIME, REGISTRATION_CHALLENGE_CHARS,
};
use crate::engine::plan::Tx;
use crate::engine::Change;
use crate::error::{AppError, AppResult};
use crate::layout::{
    approval_key, partition_query, passkey_key, passkey_partition, payment_key, refund_key, registration_challenge_key,
    Stored,
};
use crate::passkey::{new_nonce, registration_challenge, step_up_challenge, verify_registration, StepUpDecision};
use crate::service::{require, Caller, UseCases};

/// What the browser needs to create a passkey (`navigator.credentials.create`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationOptions {
    /// base64url.
    pub challenge: String,
    pub rp_id: String,
    pub rp_name: String,
    /// base64url of the person's id (WebAuthn's user handle).
    pub user_id: String,
    pub user_name: String,
    /// Credential ids (base64url) the person has already: the authenticator will not make a second.
    pub exclude_credentials: Vec<String>,
}

/// What the browser sends back after creating one.
#[derive(Debug, Clone)]
pub struct NewPasskey {
    pub challenge: String,
    pub client_data_json: String,
    pub attestation_object: String,
    pub name: String,
}

/// What the browser needs to step up a decision (`navigator.credentials.get`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepUpStart {
    pub nonce: String,
    /// base64url of the computed challenge.
    pub challenge: String,
    pub rp_id: String,
    pub allow_credentials: Vec<String>,
    pub decision: StepUpDecision,
    pub amount: String,
    pub payload_hash: String,
}

fn b64(text: &str, field: &'static str) -> AppResult<Vec<u8>> {
    if text.len() > 16 * 1024 {
        return Err(InputError::invalid(field, "is too large").into());
    }
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| InputError::invalid(field, "must be base64url").into())
}

impl UseCases {
    /// The caller's person's passkeys, oldest first.
    pub async fn list_passkeys(&self, caller: &Caller) -> AppResult<Vec<PasskeyCredential>> {
        let key = caller.key()?;
        let query = partition_query(passkey_partition(&key.org_id, &key.person()), "", MAX_PASSKEYS_PER_PERSON + 1);
        self.reader().all_of::<PasskeyCredential>(query).await
    }

    /// Starts a registration for the caller's person.
    pub async fn passkey_registration_options(&self, caller: &Caller) -> AppResult<RegistrationOptions> {
        let key = caller.key()?;
        let rp = self.settings.passkey_relying_party()?;
        let existing = self.list_passkeys(caller).await?;
        let challenge = URL_SAFE_NO_PAD.encode(registration_challenge());
        let person = key.person();
        let record = RegistrationChallenge {
            challenge: challenge.clone(),
            org_id: key.org_id.clone(),
            person: person.clone(),
            expires_at: self.now() + NONCE_LIFETIME,
        };
        self.store().transact(vec![crate::layout::create(&record)?]).await?;
        Ok(RegistrationOptions {
            challenge,
            rp_name: "Countersign".into(),
            user_id: URL_SAFE_NO_PAD.encode(person.to_string()),
            user_name: if key.name.is_empty() { person.to_string() } else { key.name.clone() },
            rp_id: rp.id,
            exclude_credentials: existing.into_iter().map(|c| c.credential_id).collect(),
        })
    }

    /// Finishes a registration: the challenge must be the caller's and unused, the attestation
    /// must verify for this relying party; the challenge is deleted in the same transaction.
    pub async fn register_passkey(&self, caller: &Caller, new: NewPasskey) -> AppResult<PasskeyCredential> {
        let key = caller.key()?;
        let name = new.name.trim().to_string();
        if name.is_empty() || name.chars().count() > MAX_PASSKEY_NAME_CHARS {
            return Err(InputError::invalid("name", format!("must be 1 to {MAX_PASSKEY_NAME_CHARS} characters")).into());
        }
        if new.challenge.len() != REGISTRATION_CHALLENGE_CHARS {
            return Err(AppError::StepUpRefused(StepUpFault::NonceUnusable));
        }
        let client_data = b64(&new.client_data_json, "clientDataJSON")?;
        let attestation = b64(&new.attestation_object, "attestationObject")?;
        let challenge_bytes = b64(&new.challenge, "challenge")?;
        let rp = self.settings.passkey_relying_party()?;
        let r = self.reader();
        let person = key.person();
        let outcome = self
            .engine
            .run(&r, Change::default(), || async {
                let refused = |fault| AppError::StepUpRefused(fault);
                let challenge = r
                    .read::<RegistrationChallenge>(&registration_challenge_key(&new.challenge))
                    .await?
                    .filter(|c| c.value.org_id == key.org_id && c.value.person == person)
                    .ok_or_else(|| refused(StepUpFault::NonceUnusable))?;
                if self.now() > challenge.value.expires_at {
                    return Err(refused(StepUpFault::NonceUnusable).into());
                }
                let registered = verify_registration(&rp, &challenge_bytes, &client_data, &attestation)
                    .map_err(|e| refused(StepUpFault::Assertion(e.to_string())))?;
                let query = partition_query(passkey_partition(&key.org_id, &person), "", MAX_PASSKEYS_PER_PERSON + 1);
                if r.all_of::<PasskeyCredential>(query).await?.len() >= MAX_PASSKEYS_PER_PERSON {
                    return Err(InputError::invalid(
                        "name",
                        format!("a person may register at most {MAX_PASSKEYS_PER_PERSON} passkeys"),
                    )
                    .into());
                }
                let credential = PasskeyCredential {
                    org_id: key.org_id.clone(),
                    person: person.clone(),
                    credential_id: URL_SAFE_NO_PAD.encode(&registered.credential_id),
                    public_key: URL_SAFE_NO_PAD.encode(&registered.public_key_cose),
                    alg: registered.alg,
                    name: name.clone(),
                    registered_by: Some(key.id.clone()),
                    created_at: self.now(),
                };
                let at = passkey_key(&key.org_id, &person, &credential.credential_id);
                if r.read::<PasskeyCredential>(&at).await?.is_some() {
                    return Err(InputError::invalid("attestationObject", "this passkey is registered already").into());
                }
                let mut tx = Tx::new(&key.org_id, Actor::Key(key.id.clone()), self.now());
                tx.delete(&challenge);
                tx.create(&credential)?;
                // Sealed with the key's fingerprint, and told to the organisation's webhooks: a
                // passkey added with someone's API key is visible, and a receipt's key traceable.
                tx.audit("passkey.registered", "passkey", &credential.credential_id, credential.summary())?;
                tx.event(Event::new(&key.org_id, kinds::PASSKEY_REGISTERED, credential.summary(), self.now()))?;
                Ok(tx.done(credential))
            })
            .await?;
        Ok(outcome.outcome)
    }

    /// Removes one of the caller's person's passkeys.
    pub async fn delete_passkey(&self, caller: &Caller, credential_id: &str) -> AppResult<()> {
        let key = caller.key()?;
        if credential_id.len() > MAX_CREDENTIAL_ID_CHARS {
            return Err(AppError::NotFound("passkey"));
        }
        let r = self.reader();
        let person = key.person();
        let at = passkey_key(&key.org_id, &person, credential_id);
        self.engine
            .run(&r, Change::default(), || async {
                let stored = r.read::<PasskeyCredential>(&at).await?.ok_or(AppError::NotFound("passkey"))?;
                let mut tx = Tx::new(&key.org_id, Actor::Key(key.id.clone()), self.now());
                tx.delete(&stored);
                tx.audit("passkey.deleted", "passkey", credential_id, stored.value.summary())?;
                tx.event(Event::new(&key.org_id, kinds::PASSKEY_DELETED, stored.value.summary(), self.now()))?;
                Ok(tx.done(()))
            })
            .await?;
        Ok(())
    }

    /// Issues a step-up nonce for the caller's person to approve (or modify to `modify_to`)
    /// `id`, with the challenge its passkey must sign. Refused without a passkey to sign with.
    pub async fn start_step_up(
        &self,
        caller: &Caller,
        id: &ApprovalId,
        modify_to: Option<Amount>,
    ) -> AppResult<StepUpStart> {
        self.start_step_up_allowing(caller, id, modify_to, None).await
    }

    /// `start_step_up` for an approve vote that also asks for an "always allow" rule up to
    /// `allow_cap`: the passkey signs the larger of the amount and the cap (what the vote checks).
    pub async fn start_step_up_allowing(
        &self,
        caller: &Caller,
        id: &ApprovalId,
        modify_to: Option<Amount>,
        allow_cap: Option<Amount>,
    ) -> AppResult<StepUpStart> {
        let key = caller.key()?;
        require(key, Permission::ApprovalsWrite)?;
        let r = self.reader();
        let approval = r.read_owned::<Approval>(&approval_key(id), &key.org_id).await?.value;
        crate::service::ensure_wallet(key, &approval.wallet_id)?;
        let (payload_hash, asked) = self.payload_of(key, &approval).await?;
        let (decision, mut amount) = match modify_to {
            Some(lower) => (StepUpDecision::Modify, lower.in_currency(asked.currency())?),
            None => (StepUpDecision::Approve, asked),
        };
        if let Some(cap) = allow_cap {
            let cap = cap.in_currency(asked.currency()).map_err(|source| {
                AppError::Input(crate::domain::input::InputError::Amount { field: "alwaysAllow.maxAmount", source })
            })?;
            if cap > amount {
                amount = cap;
            }
        }
        let passkeys = self.list_passkeys(caller).await?;
        if passkeys.is_empty() {
            return Err(AppError::StepUpRefused(StepUpFault::NoPasskey));
        }
        let rp = self.settings.passkey_relying_party()?;
        let nonce = StepUpNonce {
            nonce: new_nonce(),
            org_id: key.org_id.clone(),
            person: key.person(),
            approval_id: approval.id.clone(),
            decision,
            amount: amount.to_wire(),
            payload_hash: payload_hash.clone(),
            expires_at: self.now() + NONCE_LIFETIME,
        };
        self.store().transact(vec![crate::layout::create(&nonce)?]).await?;
        let challenge = step_up_challenge(approval.id.as_str(), &payload_hash, decision, &nonce.amount, &nonce.nonce);
        Ok(StepUpStart {
            challenge: URL_SAFE_NO_PAD.encode(challenge),
            rp_id: rp.id,
            allow_credentials: passkeys.into_iter().map(|c| c.credential_id).collect(),
            decision,
            amount: nonce.amount,
            payload_hash,
            nonce: nonce.nonce,
        })
    }

    /// The payload hash of what `approval` decides (the payment, or the refund), and its amount.
    async fn payload_of(&self, key: &ApiKey, approval: &Approval) -> AppResult<(String, crate::domain::money::Money)> {
        let r = self.reader();
        Ok(match approval.subject() {
            ApprovalSubject::Payment(payment) => {
                let p: Stored<Payment> = r.read_owned(&payment_key(payment), &key.org_id).await?;
                (p.value.payload_hash(), p.value.amount)
            }
            ApprovalSubject::Refund { refund, .. } => {
                let f: Stored<Refund> = r.read_owned(&refund_key(refund), &key.org_id).await?;
                (f.value.payload_hash(), f.value.amount)
            }
        })
    }
}
