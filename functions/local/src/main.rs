//! `countersign serve`: every route, and the expiry sweep, in one process on an embedded SQLite
//! store under the data directory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use countersign_core::adapters::sqlite::SqliteStore;
use countersign_core::config::settings_from_env;
use countersign_core::ports::SystemClock;
use countersign_core::service::Countersign;

#[derive(Parser)]
#[command(
    name = "countersign",
    version,
    about = "Countersign: human approval for agent payments"
)]
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
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    countersign_core::config::init_tracing();
    let Command::Serve {
        addr,
        data_dir,
        sweep_interval_seconds,
    } = Cli::parse().command;
    let settings = settings_from_env()?;
    if settings.operator_key_hash.is_none() {
        tracing::warn!("COUNTERSIGN_ADMIN_KEY is not set: no one can create organisations");
    }
    let store = SqliteStore::open_dir(&data_dir)?;
    let service = Arc::new(Countersign::new(
        Arc::new(store),
        Arc::new(SystemClock),
        settings,
    ));
    spawn_sweep(
        service.clone(),
        Duration::from_secs(sweep_interval_seconds.max(1)),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, data_dir = %data_dir.display(), "countersign listening");
    axum::serve(listener, countersign_core::api::router(service))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

/// Expires due approvals on a fixed interval, as the scheduled Lambda does in AWS.
fn spawn_sweep(service: Arc<Countersign>, every: Duration) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        loop {
            ticker.tick().await;
            loop {
                match service.expire_due(100).await {
                    Ok(summary) if summary.read == 100 => continue, // more may be due
                    Ok(_) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "expiry sweep failed");
                        break;
                    }
                }
            }
        }
    });
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await.unwrap_or_default(),
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
