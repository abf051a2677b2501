//! Passkey step-up above a policy's `stepUpAbove`, on both stores: every door refuses an approve
//! or modify above the threshold without a passkey assertion (403 `STEP_UP_REQUIRED`, nothing
//! decided) and needs none at or below it; the ceremony (register, start, assert, decide) pays
//! once, the vote keeps the assertion and the receipt verifies offline (library and CLI) and
//! fails when tampered with; each refusal names its reason and decides nothing; two racing
//! votes with one proof pay once; a quorum of two keeps both assertions; bad input is a clear
//! 4xx that writes nothing. The relying party is the harness's `http://localhost:8080`.

use std::io::Write as _;
use std::process::Command;
use std::sync::Arc;

use axum::response::IntoResponse;
use chrono::Duration;
use countersign_core::domain::approval::VoteDecision;
use countersign_core::domain::ids::ApprovalId;
use countersign_core::domain::money::Amount;
use countersign_core::domain::secret::ServerSecret;
use countersign_core::domain::step_up::StepUpProof;
use countersign_core::error::AppError;
use countersign_core::proof::canonical::{hash_without, to_hex};
use countersign_core::proof::receipt::{verify_receipt, ReceiptFault, RECEIPT_UNHASHED};
use countersign_core::proof::signing::{AuditSigner, Jwks};
use countersign_core::service::{Caller, DecideRequest, Decided, NewPasskey, StepUpStart};
use countersign_tests::authenticator::{b64, Authenticator};
use countersign_tests::browser::Browser;
use countersign_tests::doors::{self, Door, DoorAnswer, DOORS};
use countersign_tests::{per_backend, Backend, Scenario, TestApp};
use serde_json::{json, Value};

const SECRET: &str = "step-up-integration-secret-0123456789";
const RP_ID: &str = "localhost";
const ORIGIN: &str = "http://localhost:8080";
const FUNDS: &str = "100000.00";
const REVIEWER: &[&str] = &["approvals:read", "approvals:write", "payments:read"];

/// The harness's app with a dashboard session secret and a signing key the test keeps (to
/// re-sign a tampered receipt). The public URL stays `http://localhost:8080`: the relying party.
async fn app(backend: Backend) -> (TestApp, Arc<AuditSigner>) {
    let signer = Arc::new(AuditSigner::generate());
    let kept = signer.clone();
    let app = TestApp::spawn_tuned(backend, move |s| {
        s.session_secret = Some(Arc::new(ServerSecret::new(SECRET).expect("secret")));
        s.audit_signer = Some(kept);
    })
    .await;
    (app, signer)
}

/// The scenario's org and wallets, plus a policy that holds payments above 100.00 and asks a
/// passkey above 500.00 (`quorum` approvals each), and a reviewer key bound to the member rita.
struct World {
    app: TestApp,
    s: Scenario,
    rita: String,
    signer: Arc<AuditSigner>,
}

async fn world(backend: Backend, quorum: u32) -> World {
    let (app, signer) = app(backend).await;
    let s = app.scenario(FUNDS).await;
    let policy = json!({"name": "step up", "maxTransactionAmount": "100.00", "requireHumanApproval": true,
                        "stepUpAbove": "500.00", "requiredApprovals": quorum});
    app.policy(&s.admin, &s.from, policy).await;
    let rita = reviewer(&app, &s, "rita").await;
    World { app, s, rita, signer }
}

/// A key with the reviewer's permissions, bound to a new member `name`.
async fn reviewer(app: &TestApp, s: &Scenario, name: &str) -> String {
    let member = app.member(&s.admin, name).await;
    app.key_for(&s.admin, Some(&member), REVIEWER).await
}

async fn caller(app: &TestApp, key: &str) -> Caller {
    app.service.authenticate(Some(key)).await.expect("caller")
}

fn approval_id(id: &str) -> ApprovalId {
    ApprovalId::parse(id).expect("approval id")
}

/// The error as the API answers it: status and envelope.
async fn envelope(e: AppError) -> (u16, Value) {
    let response = e.into_response();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
    (status, serde_json::from_slice(&bytes).expect("JSON error"))
}

/// The `details.reason` of a 403 `STEP_UP_REFUSED`, or a panic naming what came instead.
async fn refusal(outcome: Result<impl std::fmt::Debug, AppError>) -> String {
    let e = outcome.expect_err("refused");
    let (status, body) = envelope(e).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("STEP_UP_REFUSED")), "{body}");
    body["error"]["details"]["reason"].as_str().expect("reason").to_string()
}

/// Registers `auth` as a passkey of `caller`'s person through the service.
async fn register(app: &TestApp, caller: &Caller, auth: &Authenticator) {
    let options = app.service.passkey_registration_options(caller).await.expect("registration options");
    assert_eq!(options.rp_id, RP_ID);
    let (client_data_json, attestation_object) = auth.register(&options.rp_id, ORIGIN, &options.challenge);
    let new = NewPasskey { challenge: options.challenge, client_data_json, attestation_object, name: "laptop".into() };
    let stored = app.service.register_passkey(caller, new).await.expect("registered");
    assert_eq!(stored.credential_id, auth.credential_id());
}

/// Starts a step-up for `caller` on `approval` (approve, or modify to `modify_to`) and has
/// `auth` sign its challenge: the start and the proof a door receives.
async fn step_up(
    app: &TestApp,
    caller: &Caller,
    auth: &Authenticator,
    approval: &str,
    modify_to: Option<&str>,
) -> (StepUpStart, StepUpProof) {
    let lower = modify_to.map(|a| Amount::parse(a).expect("amount"));
    let start = app.service.start_step_up(caller, &approval_id(approval), lower).await.expect("step-up started");
    assert_eq!(start.rp_id, RP_ID);
    assert!(start.allow_credentials.contains(&auth.credential_id()) || start.allow_credentials.len() == 1);
    let proof = auth.assert(&start.rp_id, ORIGIN, &start.challenge).proof(&start.nonce);
    (start, proof)
}

/// Approves (or modifies to `modify_to`) with `proof` through the service.
async fn decide(
    app: &TestApp,
    caller: &Caller,
    approval: &str,
    modify_to: Option<&str>,
    proof: Option<StepUpProof>,
) -> Result<Decided, AppError> {
    let request = DecideRequest {
        modify_to: modify_to.map(|a| Amount::parse(a).expect("amount")),
        step_up: proof,
        ..DecideRequest::new(VoteDecision::Approve, None)
    };
    app.service.decide_approval(caller, &approval_id(approval), request).await
}

async fn get(app: &TestApp, key: &str, path: &str) -> Value {
    let (status, body) = app.get(path, key).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// Nothing was decided: the approval is pending with no vote, its payment still waits, and both
/// balances are as they were.
async fn nothing_decided(w: &World, approval: &str, payment: &str, balances: &(String, String), context: &str) {
    let a = get(&w.app, &w.s.admin, &format!("/v1/approvals/{approval}")).await;
    assert_eq!(
        (a["status"].as_str(), a["votes"].as_array().map(Vec::len)),
        (Some("PENDING"), Some(0)),
        "{context}: {a}"
    );
    let p = get(&w.app, &w.s.admin, &format!("/v1/payments/{payment}")).await;
    assert_eq!(p["status"].as_str(), Some("PENDING_APPROVAL"), "{context}: {p}");
    assert_eq!(&balances_of(w).await, balances, "{context}: balances moved");
}

async fn balances_of(w: &World) -> (String, String) {
    (w.app.balance(&w.s.admin, &w.s.from).await, w.app.balance(&w.s.admin, &w.s.to).await)
}

/// The payment completed at `amount`, once: the approval approved with `votes` votes.
async fn paid_once(w: &World, approval: &str, payment: &str, amount: &str, votes: usize, before: &(String, String)) {
    let a = get(&w.app, &w.s.admin, &format!("/v1/approvals/{approval}")).await;
    assert_eq!((a["status"].as_str(), a["votes"].as_array().map(Vec::len)), (Some("APPROVED"), Some(votes)), "{a}");
    let p = get(&w.app, &w.s.admin, &format!("/v1/payments/{payment}")).await;
    assert_eq!((p["status"].as_str(), p["amount"].as_str()), (Some("COMPLETED"), Some(amount)), "{p}");
    let cents = |text: &str| -> i64 { text.replace('.', "").parse().expect("amount") };
    let (from, to) = balances_of(w).await;
    assert_eq!(cents(&before.0) - cents(&from), cents(amount), "debited once");
    assert_eq!(cents(&to) - cents(&before.1), cents(amount), "credited once");
}

async fn jwks(app: &TestApp) -> Jwks {
    let res = app.http.get(format!("{}/.well-known/countersign-keys", app.base)).send().await.expect("keys");
    assert_eq!(res.status().as_u16(), 200);
    res.json().await.expect("jwks")
}

// ---------------------------------------------------------------------------------------------
// Every door refuses above the threshold without a passkey.

async fn approve_through(app: &TestApp, door: Door, key: &str, approval: &str) -> DoorAnswer {
    doors::approve_through(app, door, key, approval, "1000.00", ORIGIN).await
}

per_backend!(every_door_refuses_above_step_up_above_without_a_passkey);
/// A held 2,000.00 payment (threshold 500.00): each door refuses rita's approval (and modify to
/// 1,000.00) with 403 `STEP_UP_REQUIRED` pointing at the dashboard page, before and after she
/// registers a passkey (no door but the dashboard's ceremony carries an assertion), and nothing
/// is decided.
async fn every_door_refuses_above_step_up_above_without_a_passkey(backend: Backend) {
    let w = world(backend, 1).await;
    let rita = caller(&w.app, &w.rita).await;
    let mut refusals = 0;
    for registered in [false, true] {
        if registered {
            register(&w.app, &rita, &Authenticator::new()).await;
        }
        for door in DOORS {
            let (payment, approval) = w.app.held_payment(&w.s, "2000.00").await;
            let before = balances_of(&w).await;
            let context = format!("{backend:?}, passkey registered: {registered}, {door:?}");
            let answer = approve_through(&w.app, door, &w.rita, &approval).await;
            // MCP and bulk answer their refusals inside a 200; Slack answers 200 and tells the clicker.
            let expected_status = if matches!(door, Door::Mcp | Door::Slack | Door::Bulk) { 200 } else { 403 };
            assert_eq!(
                (answer.status, answer.code.as_deref()),
                (expected_status, Some("STEP_UP_REQUIRED")),
                "{context}: {}",
                answer.shown
            );
            let page = format!("/dashboard/approvals/{approval}");
            match &answer.url {
                Some(url) => assert_eq!(url, &format!("{ORIGIN}{page}"), "{context}"),
                // The dashboard's pages show the message, which names the page.
                None => assert!(answer.shown.contains(&page), "{context}: {}", answer.shown),
            }
            if matches!(door, Door::RestApprove | Door::RestModify | Door::ReviewsDecide) {
                let body: Value = serde_json::from_str(&answer.shown).expect("json");
                assert_eq!(body["error"]["details"]["stepUpAbove"], "500.00", "{context}: {body}");
            }
            nothing_decided(&w, &approval, &payment, &before, &context).await;
            refusals += 1;
        }
    }
    assert_eq!(refusals, 2 * DOORS.len());
}

per_backend!(at_or_below_step_up_above_no_passkey_is_needed);
/// A held 400.00 payment approves at every door without a passkey; 2,000.00 modified to exactly
/// 500.00 (the threshold) or below needs none either.
async fn at_or_below_step_up_above_no_passkey_is_needed(backend: Backend) {
    let w = world(backend, 1).await;
    // (REST modify is below, with amounts at and under the threshold.)
    for door in DOORS.into_iter().filter(|d| !matches!(d, Door::RestModify)) {
        let (payment, approval) = w.app.held_payment(&w.s, "400.00").await;
        let before = balances_of(&w).await;
        let answer = approve_through(&w.app, door, &w.rita, &approval).await;
        assert!(matches!(answer.status, 200 | 303) && answer.code.is_none(), "{backend:?} {door:?}: {}", answer.shown);
        paid_once(&w, &approval, &payment, "400.00", 1, &before).await;
    }
    for lower in ["500.00", "499.99"] {
        let (payment, approval) = w.app.held_payment(&w.s, "2000.00").await;
        let before = balances_of(&w).await;
        let (status, body) =
            w.app.post(&format!("/v1/approvals/{approval}/modify"), &w.rita, json!({"amount": lower})).await;
        assert_eq!(status, 200, "{backend:?}, modify to {lower}: {body}");
        paid_once(&w, &approval, &payment, lower, 1, &before).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The ceremony.

per_backend!(a_passkey_step_up_pays_once_and_the_receipt_verifies);
/// rita registers a passkey, steps up and approves 2,000.00 (then, on another approval, modifies
/// to 1,000.00): paid once each; the vote keeps the assertion with decision, amount and payload
/// hash; the receipt verifies offline, and fails when an assertion is altered even if re-signed
/// by the server's own key.
async fn a_passkey_step_up_pays_once_and_the_receipt_verifies(backend: Backend) {
    let w = world(backend, 1).await;
    let rita = caller(&w.app, &w.rita).await;
    let auth = Authenticator::new();
    register(&w.app, &rita, &auth).await;
    let listed = w.app.service.list_passkeys(&rita).await.expect("list");
    assert_eq!(listed.len(), 1);

    for (decision, modify_to, amount) in [("approve", None, "2000.00"), ("modify", Some("1000.00"), "1000.00")] {
        let (payment, approval) = w.app.held_payment(&w.s, "2000.00").await;
        let before = balances_of(&w).await;
        let (start, proof) = step_up(&w.app, &rita, &auth, &approval, modify_to).await;
        assert_eq!((start.amount.as_str(), start.allow_credentials.clone()), (amount, vec![auth.credential_id()]));
        let decided = decide(&w.app, &rita, &approval, modify_to, Some(proof.clone())).await.expect("decided");
        assert_eq!(decided.payment.amount.to_wire(), amount);
        paid_once(&w, &approval, &payment, amount, 1, &before).await;

        let a = get(&w.app, &w.s.admin, &format!("/v1/approvals/{approval}")).await;
        let passkey = &a["votes"][0]["passkey"];
        assert_eq!(passkey["decision"], decision, "{a}");
        assert_eq!(passkey["amount"], amount, "{a}");
        assert_eq!(passkey["payloadHash"].as_str(), Some(start.payload_hash.as_str()), "{a}");
        assert_eq!(passkey["credentialId"].as_str(), Some(auth.credential_id().as_str()), "{a}");
        assert_eq!(passkey["nonce"].as_str(), Some(start.nonce.as_str()), "{a}");
        assert_eq!(passkey["signature"].as_str(), Some(proof.signature.as_str()), "{a}");

        let (status, receipt) = w.app.get(&format!("/v1/payments/{payment}/receipt"), &w.s.agent).await;
        assert_eq!(status, 200, "{receipt}");
        assert_eq!(receipt["relyingParty"], json!({"id": RP_ID, "origin": ORIGIN}));
        let keys = jwks(&w.app).await;
        let summary = verify_receipt(&receipt, &keys).expect("the receipt verifies");
        assert_eq!((summary.passkey_votes, summary.votes, summary.status.as_str()), (1, 1, "COMPLETED"));

        // An assertion that no longer matches what it signed fails on its own account, even
        // when the receipt is re-signed with the server's key.
        for (field, value) in [("amount", json!("1.00")), ("signature", json!(b64(&[0x30, 0x06, 2, 1, 1, 2, 1, 1])))] {
            let mut forged = receipt.clone();
            forged["approval"]["votes"][0]["passkey"][field] = value;
            let hash = hash_without(&forged, RECEIPT_UNHASHED);
            forged["hash"] = json!(to_hex(&hash));
            forged["signature"] = json!(w.signer.sign(&hash));
            assert!(
                matches!(verify_receipt(&forged, &keys), Err(ReceiptFault::Passkey { index: 0, .. })),
                "{backend:?}, {field}: {:?}",
                verify_receipt(&forged, &keys)
            );
        }
    }
}

/// Writes `receipt` to a file and runs `countersign receipt verify FILE --key JWKS`.
fn verify_with_cli(receipt: &Value, keys: &Jwks) -> (i32, String) {
    let binary = std::env::var("COUNTERSIGN_BIN")
        .unwrap_or_else(|_| panic!("COUNTERSIGN_BIN is not set: build `countersign` and point it at the binary"));
    assert!(std::path::Path::new(&binary).exists(), "COUNTERSIGN_BIN={binary} does not exist");
    let dir = std::env::temp_dir().join(format!("countersign-receipt-verify-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("receipt.json");
    std::fs::File::create(&file).and_then(|mut f| f.write_all(receipt.to_string().as_bytes())).expect("receipt file");
    let key_file = dir.join("keys.json");
    std::fs::write(&key_file, serde_json::to_vec(keys).expect("jwks")).expect("key file");
    let out = Command::new(binary)
        .args(["receipt", "verify"])
        .arg(&file)
        .arg("--key")
        .arg(&key_file)
        .output()
        .expect("run countersign");
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread")]
/// The CLI verifies a step-up receipt (exit 0) and refuses it (exit 1) with the payment's
/// amount changed, or a vote's passkey signature changed.
async fn the_cli_verifies_a_step_up_receipt_and_refuses_a_tampered_one() {
    let w = world(Backend::Sqlite, 1).await;
    let rita = caller(&w.app, &w.rita).await;
    let auth = Authenticator::new();
    register(&w.app, &rita, &auth).await;
    let (payment, approval) = w.app.held_payment(&w.s, "2000.00").await;
    let (_, proof) = step_up(&w.app, &rita, &auth, &approval, None).await;
    decide(&w.app, &rita, &approval, None, Some(proof)).await.expect("decided");
    let (status, receipt) = w.app.get(&format!("/v1/payments/{payment}/receipt"), &w.s.agent).await;
    assert_eq!(status, 200, "{receipt}");
    let keys = jwks(&w.app).await;

    let (code, text) = verify_with_cli(&receipt, &keys);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("1 of 1 votes signed with a passkey"), "{text}");

    let mut amount = receipt.clone();
    amount["payment"]["amount"] = json!("20.00");
    let mut signature = receipt.clone();
    let original = signature["approval"]["votes"][0]["passkey"]["signature"].as_str().expect("signature").to_string();
    let flipped = if original.starts_with('M') { "N" } else { "M" };
    signature["approval"]["votes"][0]["passkey"]["signature"] = json!(format!("{flipped}{}", &original[1..]));
    for (name, tampered) in [("payment amount", amount), ("passkey signature", signature)] {
        let (code, text) = verify_with_cli(&tampered, &keys);
        assert_eq!(code, 1, "{name}: {text}");
    }
}

per_backend!(the_dashboard_ceremony_approves_with_a_passkey);
/// The dashboard's own endpoints, as `passkeys.js` drives them: registration options, the
/// registration, the step-up start and the decide form with the proof fields.
async fn the_dashboard_ceremony_approves_with_a_passkey(backend: Backend) {
    let w = world(backend, 1).await;
    let auth = Authenticator::new();
    let mut browser = Browser::new(&w.app);
    let csrf = browser.signed_in(&w.rita).await;
    let (payment, approval) = w.app.held_payment(&w.s, "2000.00").await;
    let before = balances_of(&w).await;

    // No passkey yet: the step-up start says so.
    let path = format!("/dashboard/approvals/{approval}/step-up");
    let page = browser.post(&path, &[("csrf", &csrf), ("action", "approve")]).await;
    let body: Value = serde_json::from_str(&page.body).expect("json");
    assert_eq!((page.status, body["error"]["details"]["reason"].as_str()), (403, Some("NO_PASSKEY")), "{body}");

    let page = browser.post("/dashboard/passkeys/options", &[("csrf", &csrf)]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let options: Value = serde_json::from_str(&page.body).expect("options");
    let challenge = options["challenge"].as_str().expect("challenge").to_string();
    let (client_data, attestation) = auth.register(RP_ID, ORIGIN, &challenge);
    let form = [
        ("csrf", csrf.as_str()),
        ("challenge", &challenge),
        ("clientDataJSON", &client_data),
        ("attestationObject", &attestation),
        ("name", "phone"),
    ];
    let page = browser.post("/dashboard/passkeys", &form).await;
    assert_eq!(page.status, 200, "{}", page.body);

    let page = browser.post(&path, &[("csrf", &csrf), ("action", "approve")]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let start: Value = serde_json::from_str(&page.body).expect("start");
    let assertion = auth.assert(RP_ID, ORIGIN, start["challenge"].as_str().expect("challenge"));
    let form = [
        ("csrf", csrf.as_str()),
        ("action", "approve"),
        ("step_up_nonce", start["nonce"].as_str().expect("nonce")),
        ("step_up_credential", &assertion.credential_id),
        ("step_up_authenticator_data", &assertion.authenticator_data),
        ("step_up_client_data", &assertion.client_data_json),
        ("step_up_signature", &assertion.signature),
    ];
    let page = browser.post(&format!("/dashboard/approvals/{approval}/decide"), &form).await;
    assert_eq!(page.status, 303, "{backend:?}: {}", page.body);
    paid_once(&w, &approval, &payment, "2000.00", 1, &before).await;
    // Sent again (a double submit): it is decided already, nothing more is paid.
    let page = browser.post(&format!("/dashboard/approvals/{approval}/decide"), &form).await;
    assert_eq!(page.status, 409, "{backend:?}: {}", page.body);
    assert!(page.body.contains("(APPROVAL_NOT_PENDING)"), "{}", page.body);
    paid_once(&w, &approval, &payment, "2000.00", 1, &before).await;
}

// ---------------------------------------------------------------------------------------------
// Refusals.

per_backend!(step_up_refusals_name_their_reason_and_decide_nothing);
async fn step_up_refusals_name_their_reason_and_decide_nothing(backend: Backend) {
    let w = world(backend, 1).await;
    let app = &w.app;
    let rita = caller(app, &w.rita).await;
    let sam_key = reviewer(app, &w.s, "sam").await;
    let sam = caller(app, &sam_key).await;
    let (payment_a, a) = app.held_payment(&w.s, "2000.00").await;
    let (payment_b, b) = app.held_payment(&w.s, "2000.00").await;
    let before = balances_of(&w).await;

    // No passkey registered: nothing to sign with.
    let no_passkey = app.service.start_step_up(&rita, &approval_id(&b), None).await;
    assert_eq!(refusal(no_passkey).await, "NO_PASSKEY");

    let auth = Authenticator::new();
    register(app, &rita, &auth).await;
    let sams = Authenticator::new();
    register(app, &sam, &sams).await;

    // A registration challenge is used once.
    let options = app.service.passkey_registration_options(&rita).await.expect("options");
    let first = Authenticator::new();
    let (cd, ao) = first.register(RP_ID, ORIGIN, &options.challenge);
    let new = |cd: String, ao: String| NewPasskey {
        challenge: options.challenge.clone(),
        client_data_json: cd,
        attestation_object: ao,
        name: "again".into(),
    };
    app.service.register_passkey(&rita, new(cd, ao)).await.expect("first use");
    let second = Authenticator::new();
    let (cd, ao) = second.register(RP_ID, ORIGIN, &options.challenge);
    let items = app.store.item_count().await;
    assert_eq!(refusal(app.service.register_passkey(&rita, new(cd.clone(), ao.clone())).await).await, "NONCE_UNUSABLE");
    // Nor may another person use rita's (unused) challenge.
    let options = app.service.passkey_registration_options(&rita).await.expect("options");
    let items_after_options = app.store.item_count().await;
    assert_eq!(items_after_options, items + 1);
    let (cd, ao) = second.register(RP_ID, ORIGIN, &options.challenge);
    let theirs = NewPasskey {
        challenge: options.challenge.clone(),
        client_data_json: cd,
        attestation_object: ao,
        name: "x".into(),
    };
    assert_eq!(refusal(app.service.register_passkey(&sam, theirs).await).await, "NONCE_UNUSABLE");
    assert_eq!(app.store.item_count().await, items_after_options, "a refused registration writes nothing");
    let passkeys = app.service.list_passkeys(&rita).await.expect("list");
    assert_eq!(passkeys.len(), 2, "auth and first, not second: {passkeys:?}");

    // A nonce issued for approving, used to modify; one issued for 1,000.00, used for 900.00; one
    // issued for approval A, used on B.
    let (_, approve_proof) = step_up(app, &rita, &auth, &b, None).await;
    let r = decide(app, &rita, &b, Some("1000.00"), Some(approve_proof.clone())).await;
    assert_eq!(refusal(r).await, "NONCE_MISMATCH");
    nothing_decided(&w, &b, &payment_b, &before, &format!("{backend:?}, approve nonce used to modify")).await;
    let (_, modify_proof) = step_up(app, &rita, &auth, &b, Some("1000.00")).await;
    let r = decide(app, &rita, &b, Some("900.00"), Some(modify_proof)).await;
    assert_eq!(refusal(r).await, "NONCE_MISMATCH");
    nothing_decided(&w, &b, &payment_b, &before, &format!("{backend:?}, a nonce for another amount")).await;
    let (_, for_a) = step_up(app, &rita, &auth, &a, None).await;
    assert_eq!(refusal(decide(app, &rita, &b, None, Some(for_a.clone())).await).await, "NONCE_MISMATCH");
    nothing_decided(&w, &b, &payment_b, &before, &format!("{backend:?}, a nonce for another approval")).await;
    // rita's nonce is hers: sam may not spend it, even with his own registered passkey.
    let sams_answer = sams.assert(RP_ID, ORIGIN, &b64(&[0u8; 32])).proof(&approve_proof.nonce);
    assert_eq!(refusal(decide(app, &sam, &b, None, Some(sams_answer)).await).await, "NONCE_MISMATCH");
    nothing_decided(&w, &b, &payment_b, &before, &format!("{backend:?}, another person's nonce")).await;

    // Another person's registered credential, asserting over rita's challenge; and an
    // authenticator nobody registered.
    let (start, _) = step_up(app, &rita, &auth, &b, None).await;
    let by_sam = sams.assert(RP_ID, ORIGIN, &start.challenge).proof(&start.nonce);
    assert_eq!(refusal(decide(app, &rita, &b, None, Some(by_sam)).await).await, "UNKNOWN_CREDENTIAL");
    let stranger = Authenticator::new().assert(RP_ID, ORIGIN, &start.challenge).proof(&start.nonce);
    assert_eq!(refusal(decide(app, &rita, &b, None, Some(stranger)).await).await, "UNKNOWN_CREDENTIAL");
    nothing_decided(&w, &b, &payment_b, &before, &format!("{backend:?}, another person's credential")).await;

    // A signature over the wrong challenge (the one issued for A), another origin, another RP.
    let (start_a, _) = step_up(app, &rita, &auth, &a, None).await;
    for (what, rp, origin, challenge) in [
        ("wrong challenge", RP_ID, ORIGIN, start_a.challenge.as_str()),
        ("wrong origin", RP_ID, "http://localhost:8081", start.challenge.as_str()),
        ("wrong rp id", "evil.example", ORIGIN, start.challenge.as_str()),
    ] {
        let wrong = auth.assert(rp, origin, challenge).proof(&start.nonce);
        assert_eq!(refusal(decide(app, &rita, &b, None, Some(wrong)).await).await, "ASSERTION_INVALID", "{what}");
    }
    nothing_decided(&w, &b, &payment_b, &before, &format!("{backend:?}, an assertion that does not verify")).await;

    // Older than five minutes.
    let (_, late) = step_up(app, &rita, &auth, &b, None).await;
    app.clock.advance(Duration::minutes(6));
    assert_eq!(refusal(decide(app, &rita, &b, None, Some(late)).await).await, "NONCE_UNUSABLE");
    nothing_decided(&w, &b, &payment_b, &before, &format!("{backend:?}, an expired nonce")).await;

    // Success on A; the same proof replayed on A and on B is spent.
    let before_a = balances_of(&w).await;
    let (_, good) = step_up(app, &rita, &auth, &a, None).await;
    decide(app, &rita, &a, None, Some(good.clone())).await.expect("decided");
    paid_once(&w, &a, &payment_a, "2000.00", 1, &before_a).await;
    let after = balances_of(&w).await;
    // On A the real reason comes first: it is decided (and she voted).
    let (status, body) = envelope(decide(app, &rita, &a, None, Some(good.clone())).await.expect_err("decided")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("APPROVAL_NOT_PENDING")), "{body}");
    assert_eq!(refusal(decide(app, &rita, &b, None, Some(good)).await).await, "NONCE_UNUSABLE");
    paid_once(&w, &a, &payment_a, "2000.00", 1, &before_a).await;
    nothing_decided(&w, &b, &payment_b, &after, &format!("{backend:?}, a replayed proof")).await;

    // And B still approves with a proper step-up: the refusals were the checks, not a broken door.
    let (_, fine) = step_up(app, &rita, &auth, &b, None).await;
    decide(app, &rita, &b, None, Some(fine)).await.expect("decided");
    paid_once(&w, &b, &payment_b, "2000.00", 1, &after).await;
}

// ---------------------------------------------------------------------------------------------
// Concurrency and quorum.

per_backend!(two_racing_votes_with_one_proof_pay_once);
/// The same reviewer sends the same proof twice at once (a double click): at most one vote
/// counts; the payment is paid once. Three rounds.
async fn two_racing_votes_with_one_proof_pay_once(backend: Backend) {
    let w = world(backend, 1).await;
    let rita = caller(&w.app, &w.rita).await;
    let auth = Authenticator::new();
    register(&w.app, &rita, &auth).await;
    for round in 0..3 {
        let (payment, approval) = w.app.held_payment(&w.s, "2000.00").await;
        let before = balances_of(&w).await;
        let (_, proof) = step_up(&w.app, &rita, &auth, &approval, None).await;
        let (x, y) = tokio::join!(
            decide(&w.app, &rita, &approval, None, Some(proof.clone())),
            decide(&w.app, &rita, &approval, None, Some(proof.clone())),
        );
        let context = format!("{backend:?}, round {round}");
        assert_eq!([&x, &y].iter().filter(|r| r.is_ok()).count(), 1, "{context}: {x:?} {y:?}");
        let lost = if x.is_ok() { y } else { x };
        let (status, body) = envelope(lost.expect_err("one lost")).await;
        assert!((400..500).contains(&status), "{context}: the loser is refused, not a {status}: {body}");
        paid_once(&w, &approval, &payment, "2000.00", 1, &before).await;
    }
}

per_backend!(a_quorum_of_two_keeps_both_assertions);
/// Two approvals required: rita and sam each step up; both votes keep their passkey and the
/// receipt verifies both.
async fn a_quorum_of_two_keeps_both_assertions(backend: Backend) {
    let w = world(backend, 2).await;
    let sam_key = reviewer(&w.app, &w.s, "sam").await;
    let (rita, sam) = (caller(&w.app, &w.rita).await, caller(&w.app, &sam_key).await);
    let (ritas, sams) = (Authenticator::new(), Authenticator::new());
    register(&w.app, &rita, &ritas).await;
    register(&w.app, &sam, &sams).await;
    let (payment, approval) = w.app.held_payment(&w.s, "2000.00").await;
    let before = balances_of(&w).await;

    let (_, first) = step_up(&w.app, &rita, &ritas, &approval, None).await;
    let voted = decide(&w.app, &rita, &approval, None, Some(first)).await.expect("first vote");
    let status = serde_json::to_value(&voted.payment).expect("payment")["status"].clone();
    assert_eq!(status, "PENDING_APPROVAL", "{backend:?}");
    // The second vote needs its own step-up.
    let (status, body) = w.app.post(&format!("/v1/approvals/{approval}/approve"), &sam_key, json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("STEP_UP_REQUIRED")), "{body}");
    let (_, second) = step_up(&w.app, &sam, &sams, &approval, None).await;
    decide(&w.app, &sam, &approval, None, Some(second)).await.expect("second vote");
    paid_once(&w, &approval, &payment, "2000.00", 2, &before).await;

    let a = get(&w.app, &w.s.admin, &format!("/v1/approvals/{approval}")).await;
    let credentials: Vec<&str> = a["votes"]
        .as_array()
        .expect("votes")
        .iter()
        .map(|v| v["passkey"]["credentialId"].as_str().expect("passkey"))
        .collect();
    assert_eq!(credentials, [ritas.credential_id(), sams.credential_id()], "{a}");
    let (status, receipt) = w.app.get(&format!("/v1/payments/{payment}/receipt"), &w.s.agent).await;
    assert_eq!(status, 200, "{receipt}");
    let summary = verify_receipt(&receipt, &jwks(&w.app).await).expect("verifies");
    assert_eq!((summary.passkey_votes, summary.votes), (2, 2));
}

// ---------------------------------------------------------------------------------------------
// Bad input.

per_backend!(bad_step_up_input_is_a_clear_4xx_that_writes_nothing);
async fn bad_step_up_input_is_a_clear_4xx_that_writes_nothing(backend: Backend) {
    let w = world(backend, 1).await;
    let app = &w.app;
    let rita = caller(app, &w.rita).await;
    let auth = Authenticator::new();
    register(app, &rita, &auth).await;
    let (payment, approval) = app.held_payment(&w.s, "2000.00").await;
    let before = balances_of(&w).await;
    let (start, good) = step_up(app, &rita, &auth, &approval, None).await;
    let items = app.store.item_count().await;

    let oversize = b64(&vec![b' '; 5000]);
    type Edit = fn(&mut StepUpProof, &str);
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "authenticatorData not base64url",
            |p, _| p.authenticator_data = "!!!not base64!!!".into(),
            "ASSERTION_INVALID",
        ),
        ("clientDataJSON not base64url", |p, _| p.client_data_json = "%%%".into(), "ASSERTION_INVALID"),
        ("signature not base64url", |p, _| p.signature = "a b c".into(), "ASSERTION_INVALID"),
        ("credentialId not base64url", |p, _| p.credential_id = "***".into(), "UNKNOWN_CREDENTIAL"),
        ("nonce not hex", |p, _| p.nonce = "zz".into(), "NONCE_UNUSABLE"),
        ("clientDataJSON over 4096 bytes", |p, big| p.client_data_json = big.into(), "ASSERTION_INVALID"),
        ("a 3000-character nonce", |p, _| p.nonce = "a".repeat(3000), "NONCE_UNUSABLE"),
        ("a 3000-character credential id", |p, _| p.credential_id = "A".repeat(3000), "UNKNOWN_CREDENTIAL"),
    ];
    // Every case runs; the answers that are not the expected refusal are reported together.
    let mut wrong = Vec::new();
    for (what, edit, reason) in cases {
        let mut proof = good.clone();
        edit(&mut proof, &oversize);
        let outcome = decide(app, &rita, &approval, None, Some(proof)).await;
        let e = outcome.expect_err(what);
        let cause = format!("{e:?}");
        let (status, body) = envelope(e).await;
        if (status, body["error"]["details"]["reason"].as_str()) != (403, Some(reason)) {
            wrong.push(format!("{what}: expected 403 {reason}, got {status} {body}: {cause:.300}"));
        }
        nothing_decided(&w, &approval, &payment, &before, &format!("{backend:?}, {what}")).await;
        assert_eq!(app.store.item_count().await, items, "{backend:?}, {what}: nothing written");
    }

    // Registration: a garbage attestation object, an oversize clientDataJSON, bad base64.
    let options = app.service.passkey_registration_options(&rita).await.expect("options");
    let items = app.store.item_count().await;
    let other = Authenticator::new();
    let (cd, ao) = other.register(RP_ID, ORIGIN, &options.challenge);
    let garbage = b64(b"\xff\x00 this is not CBOR");
    let long_challenge = "A".repeat(3000);
    let cases: [(&str, &str, String, String); 5] = [
        ("garbage attestationObject", &options.challenge, cd.clone(), garbage),
        ("oversize clientDataJSON", &options.challenge, oversize.clone(), ao.clone()),
        ("clientDataJSON not base64url", &options.challenge, "!!".into(), ao.clone()),
        ("attestationObject not base64url", &options.challenge, cd.clone(), "~~".into()),
        ("a 3000-character challenge", &long_challenge, cd.clone(), ao.clone()),
    ];
    for (what, challenge, client_data_json, attestation_object) in cases {
        let new =
            NewPasskey { challenge: challenge.to_string(), client_data_json, attestation_object, name: "k".into() };
        let e = app.service.register_passkey(&rita, new).await.expect_err(what);
        let cause = format!("{e:?}");
        let (status, body) = envelope(e).await;
        if !(400..500).contains(&status) {
            wrong.push(format!("registration, {what}: expected a 4xx, got {status} {body}: {cause:.300}"));
        }
        assert_eq!(app.store.item_count().await, items, "{backend:?}, {what}: nothing written");
    }
    // The challenge survived the refusals: the proper registration still works with it.
    let new = NewPasskey {
        challenge: options.challenge.clone(),
        client_data_json: cd,
        attestation_object: ao,
        name: "k".into(),
    };
    app.service.register_passkey(&rita, new).await.expect("registered after the refusals");

    // The proof itself was never spent by the refusals.
    decide(app, &rita, &approval, None, Some(good)).await.expect("the good proof still decides");
    assert_eq!(start.amount, "2000.00");
    paid_once(&w, &approval, &payment, "2000.00", 1, &before).await;

    // Receipts: another organisation's payment is not found; a key without payments:read is refused.
    let stranger = app.scenario("10.00").await;
    let path = format!("/v1/payments/{payment}/receipt");
    let (status, body) = app.get(&path, &stranger.admin).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("PAYMENT_NOT_FOUND")), "{backend:?}: {body}");
    let (status, body) = app.get(&path, &w.s.reviewer).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("PERMISSION_DENIED")), "{backend:?}: {body}");
    assert!(wrong.is_empty(), "{backend:?}: {wrong:#?}");
}

#[tokio::test(flavor = "multi_thread")]
/// What a passkey signed binds the receipt: a modify vote whose assertion signed 1,000.00, in a
/// receipt whose payment says 2,000.00 (re-signed with the server's own key, as a server that
/// paid more than was approved would sign it), must not verify.
async fn a_receipt_does_not_verify_when_the_payment_is_not_what_the_passkey_signed() {
    let w = world(Backend::Sqlite, 1).await;
    let rita = caller(&w.app, &w.rita).await;
    let auth = Authenticator::new();
    register(&w.app, &rita, &auth).await;
    let (payment, approval) = w.app.held_payment(&w.s, "2000.00").await;
    let (_, proof) = step_up(&w.app, &rita, &auth, &approval, Some("1000.00")).await;
    decide(&w.app, &rita, &approval, Some("1000.00"), Some(proof)).await.expect("decided");
    let (status, receipt) = w.app.get(&format!("/v1/payments/{payment}/receipt"), &w.s.agent).await;
    assert_eq!(status, 200, "{receipt}");
    let keys = jwks(&w.app).await;
    verify_receipt(&receipt, &keys).expect("the receipt as issued verifies");

    let mut forged = receipt.clone();
    forged["payment"]["amount"] = json!("2000.00");
    let hash = hash_without(&forged, RECEIPT_UNHASHED);
    forged["hash"] = json!(to_hex(&hash));
    forged["signature"] = json!(w.signer.sign(&hash));
    let outcome = verify_receipt(&forged, &keys);
    assert!(outcome.is_err(), "a 2,000.00 payment verifies against a passkey that approved 1,000.00: {outcome:?}");

    // The receipt carries the sealed registration of rita's key; without it (re-signed by the
    // server), the key could be anyone's, and the receipt does not verify.
    let registrations = |r: &Value| {
        r["auditEntries"].as_array().unwrap().iter().filter(|e| e["entry"]["action"] == "passkey.registered").count()
    };
    assert_eq!(registrations(&receipt), 1, "{receipt}");
    let mut unregistered = receipt.clone();
    unregistered["auditEntries"].as_array_mut().unwrap().retain(|e| e["entry"]["action"] != "passkey.registered");
    let hash = hash_without(&unregistered, RECEIPT_UNHASHED);
    unregistered["hash"] = json!(to_hex(&hash));
    unregistered["signature"] = json!(w.signer.sign(&hash));
    let outcome = verify_receipt(&unregistered, &keys);
    assert!(
        matches!(&outcome, Err(ReceiptFault::Passkey { reason, .. }) if reason.contains("not registered")),
        "{outcome:?}"
    );
}

per_backend!(a_credential_id_of_webauthns_maximum_length_registers_and_steps_up);
/// WebAuthn allows credential ids up to 1023 bytes, and `verify_registration` accepts them: such
/// a passkey registers and steps up (or, at the least, is refused with a 4xx, never a 5xx).
async fn a_credential_id_of_webauthns_maximum_length_registers_and_steps_up(backend: Backend) {
    let w = world(backend, 1).await;
    let rita = caller(&w.app, &w.rita).await;
    let auth = Authenticator::with_credential_id(vec![7u8; 1023]);
    let options = w.app.service.passkey_registration_options(&rita).await.expect("options");
    let (client_data_json, attestation_object) = auth.register(RP_ID, ORIGIN, &options.challenge);
    let new = NewPasskey { challenge: options.challenge, client_data_json, attestation_object, name: "long".into() };
    if let Err(e) = w.app.service.register_passkey(&rita, new).await {
        let cause = format!("{e:?}");
        let (status, body) = envelope(e).await;
        panic!("{backend:?}: a 1023-byte credential id is refused with {status} {body}: {cause:.300}");
    }
    let (payment, approval) = w.app.held_payment(&w.s, "2000.00").await;
    let before = balances_of(&w).await;
    let (_, proof) = step_up(&w.app, &rita, &auth, &approval, None).await;
    decide(&w.app, &rita, &approval, None, Some(proof)).await.expect("decided");
    paid_once(&w, &approval, &payment, "2000.00", 1, &before).await;
}
