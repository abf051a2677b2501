//! The tamper-evident audit log on both stores: the sweep seals entries at least 60 s old into
//! chained, signed checkpoints (never on the write path); the export verifies offline with the
//! published keys; 50 concurrent intakes are all sealed; two sweeps racing make each checkpoint
//! once; and `countersign audit verify` names the first line that was edited, removed,
//! inserted, reordered or re-signed.

use std::io::Write;
use std::process::Command;

use chrono::Duration;
use countersign_core::proof::export::verify_export;
use countersign_core::proof::signing::Jwks;
use countersign_tests::{per_backend, Backend, TestApp};
use futures::future::join_all;
use serde_json::{json, Value};

async fn export(app: &TestApp, key: &str) -> String {
    let res = app.http.get(format!("{}/v1/audit-logs/export", app.base)).bearer_auth(key).send().await.expect("export");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    res.text().await.expect("body")
}

async fn jwks(app: &TestApp) -> Jwks {
    let res = app.http.get(format!("{}/.well-known/countersign-keys", app.base)).send().await.expect("keys");
    assert_eq!(res.status().as_u16(), 200, "public: no key needed");
    res.json().await.expect("jwks")
}

fn lines(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

fn is_checkpoint(line: &Value) -> bool {
    line["type"] == "checkpoint"
}

/// Seals what is 60 s old, as the sweep does.
async fn seal(app: &TestApp) -> countersign_core::service::SealSummary {
    app.clock.advance(Duration::seconds(61));
    let (summary, late) = app.service.seal_audit_logs(&|| true).await.expect("seal");
    assert!(!late);
    summary
}

per_backend!(entries_are_sealed_into_signed_chained_checkpoints_that_verify_offline);
async fn entries_are_sealed_into_signed_chained_checkpoints_that_verify_offline(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("5000.00").await;
    app.post("/v1/payments", &s.agent, json!({"from": s.from, "to": s.to, "amount": "5.00"})).await;
    let before = lines(&export(&app, &s.admin).await);
    assert!(before.len() >= 5 && !before.iter().any(is_checkpoint), "{backend:?}: nothing sealed yet: {before:?}");
    assert!(before.iter().all(|e| e["hash"].as_str().is_some_and(|h| h.len() == 64)), "every entry is hashed");

    // Not yet 60 s old: the sweep leaves them.
    let (early, _) = app.service.seal_audit_logs(&|| true).await.expect("seal");
    assert_eq!(early.entries_sealed, 0, "{backend:?}");

    let first = seal(&app).await;
    assert_eq!((first.checkpoints, first.entries_sealed), (1, before.len()), "{backend:?}: {first:?}");
    let (_, held) = app.held_payment(&s, "2000.00").await;
    let second = seal(&app).await;
    assert_eq!(second.checkpoints, 1, "{backend:?}: the new entries in a second checkpoint");
    assert_eq!(seal(&app).await.checkpoints, 0, "caught up: nothing to seal");

    let text = export(&app, &s.admin).await;
    let all = lines(&text);
    let checkpoints: Vec<&Value> = all.iter().filter(|l| is_checkpoint(l)).collect();
    assert_eq!(checkpoints.len(), 2);
    assert_eq!(checkpoints[0]["seq"], 1);
    assert_eq!(checkpoints[0]["prevCheckpointHash"], "0".repeat(64));
    assert_eq!(checkpoints[1]["prevCheckpointHash"], checkpoints[0]["hash"], "chained");
    assert!(all.last().is_some_and(is_checkpoint), "each checkpoint follows the last entry it seals");
    assert!(text.contains(&held));
    let keys = jwks(&app).await;
    assert_eq!(keys.keys.len(), 1);
    let summary = verify_export(text.as_bytes(), &keys).expect("verifies");
    assert_eq!((summary.checkpoints, summary.unsealed), (2, 0), "{summary:?}");
    assert_eq!(summary.last.map(|(seq, _)| seq), Some(2));

    // Another organisation's log is its own: it sees none of these, and a wallet-bound key none.
    let other = app.org("other").await;
    assert!(!export(&app, &other).await.contains(&s.from));
    let bound = app.key_for(&s.admin, None, &["audit:read"]).await;
    let _ = bound;
    let res = app.http.get(format!("{}/v1/audit-logs/export", app.base)).bearer_auth(&s.agent).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 403, "the agent key lacks audit:read");
    let res = app.http.get(format!("{}/v1/audit-logs/export", app.base)).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 401);
}

per_backend!(fifty_concurrent_intakes_are_all_sealed_and_two_sweeps_make_each_checkpoint_once);
async fn fifty_concurrent_intakes_are_all_sealed_and_two_sweeps_make_each_checkpoint_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("100000.00").await;
    let paid = join_all((0..50).map(|i| {
        let body = json!({"from": s.from, "to": s.to, "amount": format!("{}.00", i + 1)});
        let (app, agent) = (&app, &s.agent);
        async move { app.post("/v1/payments", agent, body).await.0 }
    }))
    .await;
    assert!(paid.iter().all(|status| *status == 201), "{backend:?}: {paid:?}");
    let entries = lines(&export(&app, &s.admin).await).len();
    assert!(entries >= 50 + 5, "{entries}");

    app.clock.advance(Duration::seconds(61));
    let (a, b) = tokio::join!(app.service.seal_audit_logs(&|| true), app.service.seal_audit_logs(&|| true));
    let (a, b) = (a.expect("seal").0, b.expect("seal").0);
    // The loser of each checkpoint stops; together they sealed every entry exactly once.
    assert_eq!(a.entries_sealed + b.entries_sealed, entries, "{backend:?}: {a:?} {b:?}");

    let text = export(&app, &s.admin).await;
    let summary = verify_export(text.as_bytes(), &jwks(&app).await).expect("verifies");
    assert_eq!((summary.entries, summary.unsealed), (entries as u64, 0), "{backend:?}: {summary:?}");
    let seqs: Vec<u64> = lines(&text).iter().filter(|l| is_checkpoint(l)).filter_map(|c| c["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "one checkpoint per sequence number");
}

/// Writes `lines` as a file and runs `countersign audit verify` on it with `keys`.
fn verify_with_cli(name: &str, lines: &[String], keys: &Jwks) -> (i32, String, String) {
    let binary = std::env::var("COUNTERSIGN_BIN").expect("COUNTERSIGN_BIN (the built countersign binary)");
    let dir = std::env::temp_dir().join(format!("countersign-audit-verify-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&dir).unwrap();
    let export = dir.join(format!("{name}.jsonl"));
    let mut file = std::fs::File::create(&export).unwrap();
    for line in lines {
        writeln!(file, "{line}").unwrap();
    }
    let key_file = dir.join("keys.json");
    std::fs::write(&key_file, serde_json::to_vec(keys).unwrap()).unwrap();
    let out = Command::new(binary).args(["audit", "verify"]).arg(&export).arg("--key").arg(&key_file).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_verify_names_the_first_line_that_was_tampered_with() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let s = app.scenario("5000.00").await;
    for amount in ["1.00", "2.00"] {
        app.post("/v1/payments", &s.agent, json!({"from": s.from, "to": s.to, "amount": amount})).await;
        seal(&app).await;
    }
    app.post("/v1/payments", &s.agent, json!({"from": s.from, "to": s.to, "amount": "3.00"})).await;
    seal(&app).await;
    let text = export(&app, &s.admin).await;
    let good: Vec<String> = text.lines().map(str::to_string).collect();
    let keys = jwks(&app).await;
    let (code, stdout, _) = verify_with_cli("good", &good, &keys);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("last checkpoint: seq 3"), "{stdout}");

    let values = lines(&text);
    let first_entry = values.iter().position(|l| !is_checkpoint(l)).unwrap();
    let first_checkpoint = values.iter().position(is_checkpoint).unwrap();
    let mut cases: Vec<(&str, Vec<String>, usize)> = Vec::new();
    let mut edited = good.clone();
    let mut entry = values[1].clone();
    entry["details"] = json!({"amount": "999.00"});
    edited[1] = entry.to_string();
    cases.push(("edited", edited, 2));
    let mut removed = good.clone();
    removed.remove(1);
    cases.push(("removed", removed, first_checkpoint)); // the checkpoint's count no longer matches
    let mut inserted = good.clone();
    let mut forged = values[first_entry].clone();
    forged["id"] = json!(format!("{}Z", forged["id"].as_str().unwrap()));
    forged["hash"] = json!(countersign_core::proof::checkpoint::entry_hash(&forged));
    inserted.insert(first_entry + 1, forged.to_string());
    cases.push(("inserted", inserted, first_checkpoint + 2));
    let mut reordered = good.clone();
    reordered.swap(0, 1);
    cases.push(("reordered", reordered, 2));
    let mut resigned = good.clone();
    let mut checkpoint = values[first_checkpoint].clone();
    let signature = checkpoint["signature"].as_str().unwrap().to_string();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    checkpoint["signature"] = json!(format!("{flipped}{}", &signature[1..]));
    resigned[first_checkpoint] = checkpoint.to_string();
    cases.push(("bad signature", resigned, first_checkpoint + 1));
    let mut rerooted = good.clone();
    let mut checkpoint = values[first_checkpoint].clone();
    checkpoint["merkleRoot"] = json!("ab".repeat(32));
    rerooted[first_checkpoint] = checkpoint.to_string();
    cases.push(("changed root", rerooted, first_checkpoint + 1));

    for (name, tampered, line) in cases {
        let (code, stdout, stderr) = verify_with_cli(name, &tampered, &keys);
        assert_eq!(code, 1, "{name}: {stdout}{stderr}");
        assert!(stderr.contains(&format!("line {line}")), "{name}: expected line {line}: {stderr}");
    }
    // Another server's keys verify nothing.
    let stranger = Jwks { keys: vec![countersign_core::proof::signing::AuditSigner::generate().jwk()] };
    assert_eq!(verify_with_cli("stranger", &good, &stranger).0, 1);
}
