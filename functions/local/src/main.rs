//! `countersign serve`: every route, the expiry sweep and the webhook worker in one process on an
//! embedded SQLite store under the data directory. `countersign mcp --url URL`: a server's MCP
//! tools over stdio, for desktop clients.

mod mcp;
mod verify;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use countersign_core::adapters::sqlite::SqliteStore;
use countersign_core::local::first_run;
use countersign_core::ports::SystemClock;

// Every request builds and drops many small JSON trees and strings across threads; mimalloc's
// per-thread free lists cost a fraction of glibc's arena locking for that (bench/RESULTS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "countersign", version, about = "Countersign: human approval for agent payments")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API on an embedded store.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Where the embedded store keeps its file.
        #[arg(long, default_value = ".countersign")]
        data_dir: PathBuf,
        /// Seconds between expiry sweeps.
        #[arg(long, env = "COUNTERSIGN_SWEEP_INTERVAL_SECONDS", default_value_t = 30)]
        sweep_interval_seconds: u64,
        /// On a new data directory (no organisation, no COUNTERSIGN_ADMIN_KEY), also seed a demo:
        /// an agent key, two wallets, a policy, and a held payment waiting in the queue.
        #[arg(long)]
        demo: bool,
    },
    /// Serve the MCP tools of the Countersign server at URL over stdin/stdout (for desktop MCP
    /// clients); the tools act as the API key in COUNTERSIGN_API_KEY.
    Mcp {
        /// The server's base URL (e.g. http://127.0.0.1:8080) or its /mcp URL.
        #[arg(long, env = "COUNTERSIGN_URL")]
        url: String,
    },
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        command: VerifyCommand,
    },
    /// Payment receipt tools.
    Receipt {
        #[command(subcommand)]
        command: VerifyCommand,
    },
}

#[derive(Subcommand)]
enum VerifyCommand {
    /// Verify FILE offline (an export of GET /v1/audit-logs/export, or a receipt from
    /// GET /v1/payments/{id}/receipt): exit 0 if everything verifies, 1 naming the first fault.
    Verify {
        file: PathBuf,
        /// The published keys (a saved GET /.well-known/countersign-keys).
        #[arg(long)]
        key: Option<PathBuf>,
        /// Without --key: the local server's data directory, whose signing key is used.
        #[arg(long, default_value = ".countersign")]
        data_dir: PathBuf,
    },
}

/// Where servers mount MCP.
const MCP_PATH: &str = "/mcp";

/// How often the webhook worker polls the local queue when it is idle.
const QUEUE_POLL: Duration = Duration::from_millis(100);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    match Cli::parse().command {
        Command::Serve { addr, data_dir, sweep_interval_seconds, demo } => {
            serve(addr, data_dir, sweep_interval_seconds, demo).await
        }
        // No log on stdout: it carries the MCP session. Errors go to stderr, which desktop
        // clients show in their MCP logs.
        Command::Audit { command: VerifyCommand::Verify { file, key, data_dir } } => {
            finish(verify::audit(&file, key.as_deref(), &data_dir))
        }
        Command::Receipt { command: VerifyCommand::Verify { file, key, data_dir } } => {
            finish(verify::receipt(&file, key.as_deref(), &data_dir))
        }
        Command::Mcp { url } => {
            if let Err(e) = mcp::run(&url, std::env::var(mcp::API_KEY_ENV).ok()).await {
                eprintln!("countersign mcp: {e}");
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

/// Prints a verification's outcome: stdout and exit 0, or stderr and exit 1.
fn finish(outcome: Result<String, String>) -> Result<(), Box<dyn std::error::Error>> {
    match outcome {
        Ok(summary) => {
            println!("{summary}");
            Ok(())
        }
        Err(fault) => {
            eprintln!("FAILED: {fault}");
            std::process::exit(1);
        }
    }
}

async fn serve(
    addr: SocketAddr,
    data_dir: PathBuf,
    sweep_interval_seconds: u64,
    demo: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    countersign_core::config::init_tracing();
    let mut settings = countersign_core::config::settings_from_env()?;
    if settings.session_secret.is_none() {
        // Kept in the data directory (0600), so sessions and review links survive restarts.
        settings.session_secret = Some(Arc::new(first_run::session_secret(&data_dir)?));
    }
    if settings.audit_signer.is_none() {
        // Kept like the session secret: what it signed keeps verifying across restarts.
        settings.audit_signer = Some(Arc::new(first_run::signing_key(&data_dir)?));
    }
    if settings.encryption_key.is_none() {
        // Kept like the signing key: the Slack secrets sealed with it stay readable.
        settings.encryption_key = Some(Arc::new(first_run::encryption_key(&data_dir)?));
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let listening = listener.local_addr()?;
    if settings.public_url.is_none() && listening.ip().is_loopback() {
        // Review links point at this server when it only listens on loopback, by the name
        // `localhost`: passkeys need a host name (browsers refuse an IP as relying party).
        settings.public_url = Some(format!("http://localhost:{}", listening.port()));
    }
    let operator = settings.operator_key_hash.is_some();
    let store = SqliteStore::open_dir(&data_dir)?;
    let (service, queue) = countersign_core::local::wire(Arc::new(store.clone()), Arc::new(SystemClock), settings)?;
    // With an operator key, the operator creates organisations (README); without one, a data
    // directory with none gets a first organisation and its admin key (printed once, below).
    let first = if operator { None } else { first_run::bootstrap(&service, &store, demo).await? };
    if demo && first.is_none() {
        let why = if operator { "COUNTERSIGN_ADMIN_KEY is set" } else { "this data directory has an organisation" };
        tracing::warn!("--demo seeds only a new data directory without an operator key: {why}; nothing seeded");
    }
    tokio::spawn(countersign_core::local::run_sweeper(
        service.clone(),
        Duration::from_secs(sweep_interval_seconds.max(1)),
    ));
    tokio::spawn(countersign_core::local::run_queue_worker(service.clone(), queue, QUEUE_POLL));
    tracing::info!(addr = %listening, data_dir = %data_dir.display(), "countersign listening; reviewer dashboard at /dashboard");
    let mut router = countersign_core::api::router(service.clone());
    if let Some(first) = &first {
        router = router.layer(axum::Extension(first.link.clone()));
    }
    // Plain stdout, never the log: on a first run this carries the admin key and the link.
    let base = first_run::base_url(service.settings().public_url.as_deref(), listening);
    let mut out = std::io::stdout().lock();
    out.write_all(first_run::announcement(first.as_ref(), &base).as_bytes())?;
    out.flush()?;
    drop(out);
    drop(first);
    axum::serve(listener, router).with_graceful_shutdown(shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    {
        if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
            return;
        }
    }
    ctrl_c.await;
}
