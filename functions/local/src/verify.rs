//! `countersign audit verify FILE` and `countersign receipt verify FILE`: offline checks of an
//! audit log export and of a payment receipt against the published signing keys (a JWKS file
//! from `/.well-known/countersign-keys`, or the local data directory's own key). Exit 0 when
//! everything verifies; exit 1 naming the first thing that does not.

use std::io::BufReader;
use std::path::Path;

use countersign_core::local::first_run::SIGNING_KEY_FILE;
use countersign_core::proof::export::verify_export;
use countersign_core::proof::receipt::verify_receipt;
use countersign_core::proof::signing::{AuditSigner, Jwks};

/// The keys to verify with: `--key FILE`, else the data directory's signing key (the local
/// server's), else a clear refusal.
fn keys(key: Option<&Path>, data_dir: &Path) -> Result<Jwks, String> {
    if let Some(path) = key {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        return serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a JWKS ({{\"keys\": [...]}}): {e}", path.display()));
    }
    let path = data_dir.join(SIGNING_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(secret) => {
            let signer = AuditSigner::from_secret(secret.trim()).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(Jwks { keys: vec![signer.jwk()] })
        }
        Err(_) => Err(format!(
            "no keys to verify with: pass --key JWKS_FILE (save GET /.well-known/countersign-keys), or --data-dir of the local server ({} not found)",
            path.display()
        )),
    }
}

pub fn audit(file: &Path, key: Option<&Path>, data_dir: &Path) -> Result<String, String> {
    let jwks = keys(key, data_dir)?;
    let input = std::fs::File::open(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let summary = verify_export(BufReader::new(input), &jwks).map_err(|fault| fault.to_string())?;
    let last = match &summary.last {
        Some((seq, hash)) => format!("last checkpoint: seq {seq}, hash {hash}"),
        None => "no checkpoint yet".to_string(),
    };
    Ok(format!(
        "OK: {} entries in {} checkpoints verify; {last}; {} newer entries not sealed yet (hashes checked)",
        summary.entries - summary.unsealed,
        summary.checkpoints,
        summary.unsealed
    ))
}

pub fn receipt(file: &Path, key: Option<&Path>, data_dir: &Path) -> Result<String, String> {
    let jwks = keys(key, data_dir)?;
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let receipt: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", file.display()))?;
    let s = verify_receipt(&receipt, &jwks).map_err(|fault| fault.to_string())?;
    Ok(format!(
        "OK: receipt for {} ({}) verifies: server signature; {} of {} votes signed with a passkey, each assertion checked; {} audit entries proven in {} checkpoints, {} not sealed yet",
        s.payment_id, s.status, s.passkey_votes, s.votes, s.entries_proven, s.checkpoints, s.entries_unsealed
    ))
}
