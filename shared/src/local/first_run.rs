//! The local server's first run (`countersign serve` on a data directory with no organisation and
//! no `COUNTERSIGN_ADMIN_KEY`): it sets up a first organisation through the same use case as
//! `POST /v1/organizations`, and prints once, on stdout, its admin API key and a one-time
//! sign-in link to the dashboard (`api::SignInLink`), as Vault's dev mode prints its root token.
//! Later starts print only the dashboard's address. Nothing here goes through `tracing`: the
//! key and the link are secrets, and logs never carry secrets.
//!
//! The dashboard's session secret, when `COUNTERSIGN_SESSION_SECRET` is unset, is a random one
//! kept in `<data dir>/session-secret` (made on first use, owner-only, 0600), so sessions and
//! review links survive restarts. The audit signing key, when `COUNTERSIGN_SIGNING_KEY` is unset,
//! is kept the same way in `<data dir>/signing-key`, so checkpoints and receipts signed before a
//! restart still verify under the published key.

use std::io::{ErrorKind, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;

use crate::adapters::sqlite::SqliteStore;
use crate::api::{SignInLink, SIGN_IN_LINK_MINUTES};
use crate::domain::encryption::EncryptionKey;
use crate::domain::money::{Amount, Currency};
use crate::domain::payment::{NewPayment, PaymentOutcome};
use crate::domain::permission::Permission;
use crate::domain::policy::PolicyPatch;
use crate::domain::secret::ServerSecret;
use crate::domain::wallet::NewWallet;
use crate::error::AppError;
use crate::ports::StoreError;
use crate::proof::signing::AuditSigner;
use crate::service::{Caller, Countersign, FundRequest, NewApiKey};

/// The session secret's file in the data directory.
pub const SESSION_SECRET_FILE: &str = "session-secret";
/// The audit signing key's file in the data directory.
pub const SIGNING_KEY_FILE: &str = "signing-key";
pub const ENCRYPTION_KEY_FILE: &str = "encryption-key";

/// The name of the organisation a first run sets up (a label: the organisation record and its
/// audit entry carry it).
pub const FIRST_ORGANIZATION_NAME: &str = "My organisation";

/// The prefixes of the lines that carry the secrets (tests and scripts read them).
pub const ADMIN_KEY_LINE: &str = "Admin API key:";
pub const SIGN_IN_LINE: &str = "Sign-in link:";
pub const AGENT_KEY_LINE: &str = "Demo agent API key:";
pub const DASHBOARD_LINE: &str = "Dashboard:";

#[derive(Debug, thiserror::Error)]
pub enum FirstRunError {
    #[error("cannot use {path}: {source}")]
    SecretFile { path: PathBuf, source: std::io::Error },
    #[error("{path} holds no usable secret (at least 32 characters): delete it to make a new one")]
    BadSecret { path: PathBuf },
    #[error("{path} holds no usable signing key (base64url of 32 bytes): restore it from a backup, or delete it to make a new one (what the old key signed then verifies only under its published public key)")]
    BadSigningKey { path: PathBuf },
    #[error("cannot read the data directory: {0}")]
    Store(#[from] StoreError),
    #[error("cannot set up the first organisation: {0}")]
    Setup(#[from] AppError),
    #[error("cannot seed the demo: {0}")]
    Demo(&'static str),
}

/// The dashboard's secret from `dir/session-secret`, made (random, 0600) if the file is missing.
pub fn session_secret(dir: &Path) -> Result<ServerSecret, FirstRunError> {
    let (path, text) = secret_file(dir, SESSION_SECRET_FILE)?;
    ServerSecret::new(&text).map_err(|_| FirstRunError::BadSecret { path })
}

/// The audit signing key from `dir/signing-key`, made (random, 0600) if the file is missing.
pub fn signing_key(dir: &Path) -> Result<AuditSigner, FirstRunError> {
    let (path, text) = secret_file(dir, SIGNING_KEY_FILE)?;
    AuditSigner::from_secret(&text).map_err(|_| FirstRunError::BadSigningKey { path })
}

/// The key sealing stored secrets (a Slack app's) from `dir/encryption-key`, made (random,
/// 0600) if the file is missing: losing it loses those secrets, not the data.
pub fn encryption_key(dir: &Path) -> Result<EncryptionKey, FirstRunError> {
    let (path, text) = secret_file(dir, ENCRYPTION_KEY_FILE)?;
    EncryptionKey::parse(&text).map_err(|_| FirstRunError::BadSecret { path })
}

/// The text of `dir/name`: 32 random bytes in base64url, written owner-only on first use.
fn secret_file(dir: &Path, name: &str) -> Result<(PathBuf, String), FirstRunError> {
    let path = dir.join(name);
    let failed = |source| FirstRunError::SecretFile { path: path.clone(), source };
    std::fs::create_dir_all(dir).map_err(failed)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut file) => {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            let text = URL_SAFE_NO_PAD.encode(bytes);
            file.write_all(format!("{text}\n").as_bytes()).and_then(|()| file.sync_all()).map_err(failed)?;
            Ok((path, text))
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            warn_if_shared(&path);
            let text = std::fs::read_to_string(&path).map_err(failed)?;
            Ok((path, text.trim().to_string()))
        }
        Err(e) => Err(failed(e)),
    }
}

/// Warns (without the secret) when others than the owner may read the secret's file.
fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
            tracing::warn!(path = %path.display(), "the session secret's file is readable by others: chmod 600 it");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// What a first run set up: the admin key's secret and the one-time sign-in link, and with
/// `--demo` the demo's agent key.
pub struct FirstRun {
    pub admin_key: String,
    pub link: Arc<SignInLink>,
    pub token: String,
    pub demo: Option<Demo>,
}

/// What `--demo` seeds on a first run, through the same use cases as the API (the README's curl
/// walkthrough): an agent key (a person of its own, so the admin may approve its payments), the
/// agent's wallet funded with 10000.00 USD and a payee's, a policy that holds payments above
/// 1000.00 for a human, one small payment executed and one large payment held, so the
/// dashboard's queue has an approval in it.
pub struct Demo {
    pub agent_key: String,
    pub approval_id: String,
}

impl std::fmt::Debug for FirstRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FirstRun(<redacted>)")
    }
}

/// On a store with no organisation: the first organisation, its admin key (which may read and
/// decide approvals, so it signs in to the dashboard) and a sign-in link for it. `None` when an
/// organisation exists already. The caller decides whether to run it (not with an operator key).
/// With `demo`, it also seeds the demo (`Demo`).
pub async fn bootstrap(
    service: &Countersign,
    store: &SqliteStore,
    demo: bool,
) -> Result<Option<FirstRun>, FirstRunError> {
    if store.has_organization().await? {
        return Ok(None);
    }
    // The process itself acts as the operator here: it is the deployment on its own data.
    let created = service.create_organization(&Caller::Operator, FIRST_ORGANIZATION_NAME.into()).await?;
    let admin = Caller::Key(created.admin_key.key);
    let demo = if demo { Some(seed_demo(service, &admin).await?) } else { None };
    let admin_key = created.admin_key.secret;
    let (link, token) = SignInLink::new(admin_key.clone(), Duration::from_secs(SIGN_IN_LINK_MINUTES * 60));
    Ok(Some(FirstRun { admin_key, link, token, demo }))
}

async fn seed_demo(service: &Countersign, admin: &Caller) -> Result<Demo, FirstRunError> {
    let amount = |text: &str| Amount::parse(text).map_err(AppError::from);
    let agent = NewApiKey {
        name: "demo agent".into(),
        permissions: vec![Permission::PaymentsWrite, Permission::PaymentsRead],
        wallet_ids: vec![],
        member_id: None,
        budgets: vec![],
    };
    let agent = service.create_api_key(admin, agent).await?;
    let wallet = |name: &str, agent_name: Option<&str>| NewWallet {
        name: name.into(),
        agent_name: agent_name.map(Into::into),
        currency: Currency::USD,
        metadata: Default::default(),
    };
    let from = service.create_wallet(admin, wallet("Demo agent wallet", Some("demo agent"))).await?;
    let to = service.create_wallet(admin, wallet("ACME Corp", None)).await?;
    let fund = FundRequest { amount: amount("10000.00")?, idempotency: None };
    service.fund_wallet(admin, &from.id, fund).await?;
    let policy = PolicyPatch {
        name: Some("Large payment review".into()),
        max_transaction_amount: Some(Some(amount("1000.00")?)),
        require_human_approval: Some(true),
        ..PolicyPatch::default()
    };
    service.create_policy(admin, &from.id, policy).await?;
    let agent_caller = Caller::Key(agent.key);
    let small = NewPayment {
        description: Some("Coffee beans".into()),
        ..NewPayment::new(from.id.clone(), to.id.clone(), amount("10.00")?)
    };
    service.create_payment(&agent_caller, small).await?;
    let large = NewPayment {
        description: Some("Large vendor payment".into()),
        agent_reasoning: Some("Invoice 1042 from ACME Corp is due this week.".into()),
        ..NewPayment::new(from.id, to.id, amount("5000.00")?)
    };
    match service.create_payment(&agent_caller, large).await?.outcome {
        PaymentOutcome::Held { approval, .. } => {
            Ok(Demo { agent_key: agent.secret, approval_id: approval.id.as_str().to_string() })
        }
        PaymentOutcome::Executed { .. } => Err(FirstRunError::Demo("the demo policy did not hold the large payment")),
    }
}

/// The base URL people open: `public_url` when set, else the address the server listens on
/// (a loopback one when it listens on every address).
pub fn base_url(public_url: Option<&str>, listening: SocketAddr) -> String {
    if let Some(url) = public_url {
        return url.to_string();
    }
    let mut addr = listening;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
    }
    format!("http://{addr}")
}

/// What `countersign serve` prints on stdout once it listens: the first run's secrets (once),
/// and the dashboard's address.
pub fn announcement(first: Option<&FirstRun>, base: &str) -> String {
    let dashboard = format!("{DASHBOARD_LINE} {base}/dashboard");
    let Some(first) = first else {
        return format!("\nCountersign is ready.\n{dashboard}\n\n");
    };
    format!(
        "\nCountersign is ready. This data directory was new, so it now holds a first organisation\n\
         (\"{FIRST_ORGANIZATION_NAME}\") with an admin API key. It is shown this once and stored only as a hash:\n\
         keep it somewhere safe.\n\n\
         {ADMIN_KEY_LINE} {key}\n\n\
         Open this link to reach the dashboard signed in (it works once, for {SIGN_IN_LINK_MINUTES} minutes,\n\
         and only until this process stops; the admin key also signs in at {base}/dashboard):\n\n\
         {SIGN_IN_LINE} {base}{path}\n\n\
         {demo}{dashboard}\n\n",
        key = first.admin_key,
        path = SignInLink::path(&first.token),
        demo = first.demo.as_ref().map(demo_text).unwrap_or_default(),
    )
}

fn demo_text(demo: &Demo) -> String {
    format!(
        "Demo: two wallets, a policy that holds payments above 1000.00 USD, and a held payment\n\
         ({id}) waiting in the queue. The demo agent's key (payments:write, payments:read)\n\
         submits more:\n\n\
         {AGENT_KEY_LINE} {key}\n\n",
        id = demo.approval_id,
        key = demo.agent_key,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("countersign-first-run-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_session_secret_is_made_once_owner_only_and_kept() {
        let dir = temp_dir();
        let first = session_secret(&dir).unwrap();
        let path = dir.join(SESSION_SECRET_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.trim().len() >= 32, "{}", text.len());
        let again = session_secret(&dir).unwrap();
        let tag = first.tag(crate::domain::secret::Purpose::Session, b"x");
        assert!(again.verify(crate::domain::secret::Purpose::Session, b"x", &tag), "the same secret after a restart");
        std::fs::write(&path, "short").unwrap();
        assert!(matches!(session_secret(&dir), Err(FirstRunError::BadSecret { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn urls_point_where_people_can_open_them() {
        assert_eq!(base_url(None, "127.0.0.1:8080".parse().unwrap()), "http://127.0.0.1:8080");
        assert_eq!(base_url(None, "0.0.0.0:9000".parse().unwrap()), "http://127.0.0.1:9000");
        assert_eq!(base_url(None, "[::]:9000".parse().unwrap()), "http://[::1]:9000");
        assert_eq!(base_url(Some("https://cs.example.com"), "0.0.0.0:1".parse().unwrap()), "https://cs.example.com");
    }

    #[tokio::test]
    async fn a_first_run_sets_up_one_organisation_whose_key_signs_in() {
        let store = SqliteStore::in_memory().unwrap();
        let (service, _queue) = super::super::wire(
            Arc::new(store.clone()),
            Arc::new(crate::ports::SystemClock),
            crate::service::Settings::default(),
        )
        .unwrap();
        let first = bootstrap(&service, &store, false).await.unwrap().expect("a first run");
        assert!(first.demo.is_none());
        assert!(first.admin_key.starts_with("csk_"));
        service.sign_in(&first.admin_key).await.expect("the admin key signs in to the dashboard");
        let text = announcement(Some(&first), "http://127.0.0.1:8080");
        assert!(text.contains(&format!("{ADMIN_KEY_LINE} {}", first.admin_key)), "{text}");
        assert!(text.contains(&format!("{SIGN_IN_LINE} http://127.0.0.1:8080/dashboard/start/{}", first.token)));
        assert!(bootstrap(&service, &store, true).await.unwrap().is_none(), "an organisation exists now");
        let later = announcement(None, "http://127.0.0.1:8080");
        assert!(!later.contains("csk_") && later.contains("http://127.0.0.1:8080/dashboard"), "{later}");
    }
}
