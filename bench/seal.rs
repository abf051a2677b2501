//! Sealing the audit log: how many entries a sweep seals per second, on the embedded store and
//! on DynamoDB Local, beside its floor (hashing, the Merkle root and the signature alone, no
//! store). Entries are written straight into one organisation's log (10,000 of them, as 1,000
//! transactions of 10), then one sealing pass is timed.

use std::sync::Arc;
use std::time::Instant;

use chrono::Duration as ChronoDuration;
use countersign_core::domain::audit::AuditEntry;
use countersign_core::domain::ids::OrgId;
use countersign_core::layout;
use countersign_core::proof::checkpoint::{Checkpoint, SealedEntry, GENESIS};
use countersign_core::proof::signing::AuditSigner;
use countersign_core::service::{Countersign, Settings, MAX_CHECKPOINT_ENTRIES};
use countersign_tests::{Backend, ManualClock, TestStore};
use futures::stream::{self, StreamExt};
use serde_json::json;

use crate::figures::Figures;

const SECTION: &str = "Audit log sealing (one organisation, 10,000 entries)";
const ENTRIES: usize = 10_000;

/// One organisation's entries, in id order (made in one millisecond, their ids order by their
/// random part only).
fn entries(org: &OrgId, at: chrono::DateTime<chrono::Utc>) -> Vec<AuditEntry> {
    let mut log: Vec<AuditEntry> = (0..ENTRIES)
        .map(|i| {
            let details =
                json!({"amount": format!("{}.00", i % 5000), "paymentId": format!("pay_{i}"), "note": "bench"});
            AuditEntry::new(org, "payment.completed", "payment", &format!("pay_{i}"), "key_bench", details, at)
        })
        .collect();
    log.sort_by(|a, b| a.id.cmp(&b.id));
    log
}

/// What each entry costs when it is written: its JCS form and SHA-256 (entries/s).
fn write_time_hashing(log: &[AuditEntry]) -> f64 {
    let started = Instant::now();
    let hashed = log.iter().filter(|e| e.content_hash().len() == 64).count();
    hashed as f64 / started.elapsed().as_secs_f64()
}

/// The floor: the Merkle roots and signatures of 10,000 entries over their stored hashes, no
/// store (what a sweep computes once it has read them).
fn floor(signer: &AuditSigner, log: &[AuditEntry]) -> f64 {
    let started = Instant::now();
    let mut prev = GENESIS.to_string();
    for (n, chunk) in log.chunks(MAX_CHECKPOINT_ENTRIES).enumerate() {
        let sealed: Vec<SealedEntry> =
            chunk.iter().map(|e| SealedEntry { id: e.id.to_string(), hash: e.hash.clone() }).collect();
        let checkpoint =
            Checkpoint::seal("org_bench", n as u64 + 1, &prev, &sealed, chrono::Utc::now(), signer).expect("seal");
        prev = checkpoint.hash;
    }
    ENTRIES as f64 / started.elapsed().as_secs_f64()
}

async fn sealed_per_second(backend: Backend, signer: Arc<AuditSigner>) -> (f64, usize) {
    let store = TestStore::new(backend).await;
    let clock = ManualClock::new();
    let settings = Settings { audit_signer: Some(signer), ..Settings::default() };
    let service = Countersign::new(store.store(), clock.clone(), settings);
    let org = countersign_core::domain::org::Organization {
        id: OrgId::generate(),
        name: "bench".into(),
        created_at: chrono::Utc::now(),
    };
    let raw = store.store();
    raw.transact(vec![layout::create(&org).expect("org")]).await.expect("org");
    let log = entries(&org.id, countersign_core::ports::Clock::now(clock.as_ref()));
    let chunks: Vec<Vec<AuditEntry>> = log.chunks(10).map(<[AuditEntry]>::to_vec).collect();
    stream::iter(chunks)
        .map(|chunk| {
            let raw = raw.clone();
            async move {
                let writes = chunk.iter().map(|e| layout::create(e).expect("entry")).collect();
                raw.transact(writes).await.expect("write entries");
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    clock.advance(ChronoDuration::seconds(61));
    let started = Instant::now();
    let (summary, _) = service.seal_audit_logs(&|| true).await.expect("seal");
    let rate = summary.entries_sealed as f64 / started.elapsed().as_secs_f64();
    assert_eq!(summary.entries_sealed, ENTRIES, "every entry sealed");
    (rate, summary.checkpoints)
}

pub async fn seal_rate(figures: &Figures, dynamo: bool) {
    println!("== audit log sealing");
    let signer = Arc::new(AuditSigner::generate());
    let org = OrgId::generate();
    let log = entries(&org, chrono::Utc::now());
    figures.plain(SECTION, "write-time hashing (JCS + SHA-256), per entry", write_time_hashing(&log), "entries/s");
    let floor_rate = floor(&signer, &log);
    figures.plain(SECTION, "floor: Merkle roots + signatures over stored hashes, no store", floor_rate, "entries/s");
    let floor = Some(("Merkle + signature, no store".to_string(), floor_rate));
    let mut stores = vec![("embedded store", Backend::Sqlite)];
    if dynamo {
        stores.push(("DynamoDB Local", Backend::Dynamo));
    }
    for (name, backend) in stores {
        let (rate, checkpoints) = sealed_per_second(backend, signer.clone()).await;
        figures.add(crate::figures::Figure {
            section: SECTION,
            name: format!("sealed by one sweep, {name} ({checkpoints} checkpoints)"),
            value: rate,
            unit: "entries/s",
            target: "",
            floor: floor.clone(),
        });
    }
}
