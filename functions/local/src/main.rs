//! `countersign serve`: every route, the expiry sweep and the webhook worker in one process on an
//! embedded SQLite store under the data directory. `countersign mcp --url URL`: a server's MCP
//! tools over stdio, for desktop clients.

mod mcp;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use countersign_core::domain::secret::ServerSecret;

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
    },
    /// Serve the MCP tools of the Countersign server at URL over stdin/stdout (for desktop MCP
    /// clients); the tools act as the API key in COUNTERSIGN_API_KEY.
    Mcp {
        /// The server's base URL (e.g. http://127.0.0.1:8080) or its /mcp URL.
        #[arg(long, env = "COUNTERSIGN_URL")]
        url: String,
    },
}

/// Where servers mount MCP.
const MCP_PATH: &str = "/mcp";

/// How often the webhook worker polls the local queue when it is idle.
const QUEUE_POLL: Duration = Duration::from_millis(100);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    match Cli::parse().command {
        Command::Serve { addr, data_dir, sweep_interval_seconds } => {
            serve(addr, data_dir, sweep_interval_seconds).await
        }
        // No log on stdout: it carries the MCP session. Errors go to stderr, which desktop
        // clients show in their MCP logs.
        Command::Mcp { url } => {
            if let Err(e) = mcp::run(&url, std::env::var(mcp::API_KEY_ENV).ok()).await {
                eprintln!("countersign mcp: {e}");
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

async fn serve(
    addr: SocketAddr,
    data_dir: PathBuf,
    sweep_interval_seconds: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    countersign_core::config::init_tracing();
    let mut settings = countersign_core::config::settings_from_env()?;
    if settings.session_secret.is_none() {
        tracing::warn!(
            "COUNTERSIGN_SESSION_SECRET is not set: dashboard sessions and review links last until this process stops"
        );
        settings.session_secret = Some(Arc::new(ServerSecret::random()));
    }
    if settings.public_url.is_none() && addr.ip().is_loopback() {
        // Review links point at this server when it only listens on loopback.
        settings.public_url = Some(format!("http://{addr}"));
    }
    let (service, queue) = countersign_core::local::open_with(&data_dir, settings)?;
    if service.settings().operator_key_hash.is_none() {
        tracing::warn!("COUNTERSIGN_ADMIN_KEY is not set: no one can create organisations");
    }
    tokio::spawn(countersign_core::local::run_sweeper(
        service.clone(),
        Duration::from_secs(sweep_interval_seconds.max(1)),
    ));
    tokio::spawn(countersign_core::local::run_queue_worker(service.clone(), queue, QUEUE_POLL));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, data_dir = %data_dir.display(), "countersign listening; reviewer dashboard at /dashboard");
    axum::serve(listener, countersign_core::api::router(service)).with_graceful_shutdown(shutdown_signal()).await?;
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
