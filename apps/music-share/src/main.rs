//! `music-share`: the reference application of Lapis — a music-sharing site whose
//! uploads and comments are never lost. This binary holds its parts: the web API over
//! the SQL database (`api`); the workers, web site, mobile simulator and demo come on
//! top of it.
//!
//! - [`db`]: the schema, migrations and queries (SQLite), idempotent writes.
//! - [`media`]: audio files (recognised by their bytes) and where they are kept.
//! - [`api`]: the HTTP API with its deliberate limits.

mod api;
mod db;
mod media;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "music-share", about = "The music-sharing reference application on Lapis")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web API over the SQL database.
    Api {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// The SQLite database file (created and migrated if new).
        #[arg(long, default_value = "music-share.db")]
        database: PathBuf,
        /// Where uploaded audio files are kept.
        #[arg(long, default_value = "music-share-media")]
        media: PathBuf,
        /// Requests handled at once.
        #[arg(long, default_value_t = 16)]
        workers: usize,
        /// Milliseconds a request waits for a worker before it gets 503.
        #[arg(long, default_value_t = 500)]
        queue_wait_ms: u64,
        /// Database connections.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Milliseconds a request may take.
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::try_from_env("MUSIC_SHARE_LOG").unwrap_or_else(|_| "warn".into())).init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Api { listen, database, media, workers, queue_wait_ms, connections, timeout_ms } => {
            anyhow::ensure!(workers > 0 && connections > 0, "--workers and --connections must be at least 1");
            let limits = api::Limits { workers, queue_wait: Duration::from_millis(queue_wait_ms), connections, timeout: Duration::from_millis(timeout_ms) };
            runtime.block_on(async {
                let db = db::Db::open(&database, limits.connections, limits.timeout)?;
                api::serve(listen, api::app(db, media, limits)).await
            })
        }
    }
}
