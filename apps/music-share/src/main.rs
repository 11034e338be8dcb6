//! `music-share`: the reference application of Lapis — a music-sharing site whose
//! uploads and comments are never lost. This binary holds its parts: the web API over
//! the SQL database (`api`); the workers, web site, mobile simulator and demo come on
//! top of it.
//!
//! - [`db`]: the schema, migrations and queries (SQLite), idempotent writes.
//! - [`media`]: audio files (recognised by their bytes) and where they are kept.
//! - [`api`]: the HTTP API with its deliberate limits.
//! - [`mobile`]: simulated phones on a flaky network, writing a ledger; [`http`] their
//!   client with its faults.
//! - [`count`]: the ledger against the database: attempted, acknowledged, stored, lost,
//!   duplicated.

mod api;
mod count;
mod db;
mod http;
mod media;
mod mobile;

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
    /// Simulated phones uploading and commenting over a flaky network; writes a ledger.
    Mobile {
        /// The API's address (host:port).
        #[arg(long, default_value = "127.0.0.1:8080")]
        api: String,
        #[arg(long, default_value_t = 20)]
        phones: usize,
        #[arg(long, default_value_t = 2)]
        uploads: usize,
        #[arg(long, default_value_t = 5)]
        comments: usize,
        /// Chance that one attempt meets a network fault (0-1).
        #[arg(long, default_value_t = 0.2)]
        drop: f64,
        /// Attempts per item before the phone gives up.
        #[arg(long, default_value_t = 3)]
        tries: u32,
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Size of each simulated audio file.
        #[arg(long, default_value_t = 64 * 1024)]
        audio_bytes: usize,
        /// Where the ledger (what was tried and acknowledged) goes.
        #[arg(long, default_value = "ledger.json")]
        ledger: PathBuf,
    },
    /// Compares a ledger with the database: attempted, acknowledged, stored, lost, duplicated.
    Count {
        #[arg(long, default_value = "music-share.db")]
        database: PathBuf,
        #[arg(long, default_value = "ledger.json")]
        ledger: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(tracing_subscriber::EnvFilter::try_from_env("MUSIC_SHARE_LOG").unwrap_or_else(|_| "warn".into())).init();
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
        Command::Mobile { api, phones, uploads, comments, drop, tries, timeout_ms, seed, audio_bytes, ledger } => {
            anyhow::ensure!((0.0..=1.0).contains(&drop), "--drop is a chance, between 0 and 1");
            anyhow::ensure!(tries > 0, "--tries must be at least 1");
            let plan = mobile::Plan { api, phones, uploads, comments, drop, tries, timeout: Duration::from_millis(timeout_ms), seed, audio_bytes };
            let result = runtime.block_on(mobile::run(plan))?;
            std::fs::write(&ledger, serde_json::to_vec_pretty(&result)?)?;
            let acked = |v: &[mobile::Attempt]| v.iter().filter(|a| a.acknowledged).count();
            println!("uploads {}/{} acknowledged, comments {}/{} acknowledged; ledger in {}", acked(&result.uploads), result.uploads.len(), acked(&result.comments), result.comments.len(), ledger.display());
            Ok(())
        }
        Command::Count { database, ledger, json } => {
            let ledger: mobile::Ledger = serde_json::from_slice(&std::fs::read(&ledger)?)?;
            let (uploads, comments) = count::count(&database, &ledger)?;
            if json {
                println!("{}", serde_json::json!({"uploads": uploads, "comments": comments}));
            } else {
                print!("{}", count::table(&uploads, &comments));
            }
            Ok(())
        }
    }
}
