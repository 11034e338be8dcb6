//! `music-share`: the reference application of Lapis — a music-sharing site whose
//! uploads and comments are never lost. This binary holds all of its parts:
//!
//! - [`db`]: the schema, migrations and queries (SQLite), idempotent writes.
//! - [`media`]: audio files (recognised by their bytes) and where they are kept.
//! - [`api`]: the HTTP API with its deliberate limits (`api`).
//! - [`messaging`]: one module per Lapis service, on the Rust library that reaches it.
//! - [`workers`]: the messaging mode's back end (`workers`).
//! - [`handlers`]: the "track published" webhooks (`handler`).
//! - [`mobile`]: simulated phones on a flaky network in either mode, writing a
//!   ledger (`mobile`); [`http`] their HTTP client with its faults.
//! - [`web`]: the web site (`web`).
//! - [`count`]: the ledger against the database (`count`).
//! - [`demo`]: everything at once, with faults, and the report (`demo`).

mod api;
mod count;
mod db;
mod demo;
mod handlers;
mod http;
mod media;
mod messaging;
mod mobile;
mod web;
mod workers;

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
        #[command(flatten)]
        database: DbArgs,
        /// Where uploaded audio files are kept.
        #[arg(long, default_value = "music-share-media")]
        media: PathBuf,
        #[command(flatten)]
        limits: LimitArgs,
        /// Direct mode: a handler URL told of each new track by the API itself
        /// (repeatable).
        #[arg(long)]
        notify: Vec<String>,
    },
    /// Run the messaging mode's workers: uploads, comments, trending.
    Workers {
        #[command(flatten)]
        database: DbArgs,
        #[arg(long, default_value = "music-share-media")]
        media: PathBuf,
        #[command(flatten)]
        lapis: messaging::lapis::Lapis,
        #[arg(long, default_value_t = 4)]
        upload_workers: usize,
        #[arg(long, default_value_t = 4)]
        comment_workers: usize,
        #[arg(long, default_value_t = 4)]
        connections: usize,
    },
    /// Run the web site: pages from the API; uploads, comments and plays sent as the mode says.
    Web {
        #[arg(long, default_value = "127.0.0.1:8000")]
        listen: SocketAddr,
        #[command(flatten)]
        front: FrontArgs,
    },
    /// Run one "track published" handler (an Event Grid webhook).
    Handler {
        /// `notifications` or `search-index`.
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
        #[command(flatten)]
        database: DbArgs,
    },
    /// Simulated phones uploading, commenting and playing over a flaky network; writes a ledger.
    Mobile {
        #[command(flatten)]
        phones: PhoneArgs,
        /// Where the ledger (what was tried and acknowledged) goes.
        #[arg(long, default_value = "ledger.json")]
        ledger: PathBuf,
    },
    /// Compares a ledger with the database: attempted, acknowledged, stored, lost, duplicated.
    Count {
        #[command(flatten)]
        database: DbArgs,
        #[arg(long, default_value = "ledger.json")]
        ledger: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Start the whole application (Lapis, API, workers, handlers, web site) until Ctrl-C.
    Up {
        #[command(flatten)]
        demo: demo::DemoArgs,
        #[arg(long, default_value_t = 8000)]
        web_port: u16,
    },
    /// Start Lapis, the API, the workers and handlers, run a burst with faults, count,
    /// and write an HTML report.
    Demo {
        #[command(flatten)]
        demo: demo::DemoArgs,
    },
}

/// Which database: a SQLite file, or PostgreSQL.
#[derive(clap::Args, Debug, Clone)]
pub struct DbArgs {
    /// The SQLite database file (created and migrated if new).
    #[arg(long, default_value = "music-share.db")]
    database: PathBuf,
    /// PostgreSQL instead (`postgres://user@host:port/dbname`): the same schema,
    /// migrated on first use.
    #[arg(long)]
    database_url: Option<String>,
}

impl DbArgs {
    fn target(&self) -> anyhow::Result<db::Target> {
        match &self.database_url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => Ok(db::Target::Postgres(url.clone())),
            Some(url) => anyhow::bail!("--database-url {url:?} is not a postgres:// URL"),
            None => Ok(db::Target::Sqlite(self.database.clone())),
        }
    }
}

/// The API's deliberate limits.
#[derive(clap::Args, Debug, Clone)]
pub struct LimitArgs {
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
}

/// How a front-end (the web site, the phones) reaches the back end.
#[derive(clap::Args, Debug, Clone)]
pub struct FrontArgs {
    #[arg(long, value_enum, default_value = "direct")]
    mode: mobile::Mode,
    /// The API's address (host:port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    api: String,
    #[command(flatten)]
    lapis: messaging::lapis::Lapis,
}

/// What the simulated phones do.
#[derive(clap::Args, Debug, Clone)]
pub struct PhoneArgs {
    #[command(flatten)]
    front: FrontArgs,
    #[arg(long, default_value_t = 20)]
    phones: usize,
    #[arg(long, default_value_t = 2)]
    uploads: usize,
    #[arg(long, default_value_t = 5)]
    comments: usize,
    #[arg(long, default_value_t = 5)]
    plays: usize,
    /// Tracks put in place first, which the phones comment on and play.
    #[arg(long, default_value_t = 4)]
    catalog: usize,
    /// Comments on a deleted track, one each from the first phones (poison).
    #[arg(long, default_value_t = 0)]
    stale_comments: usize,
    /// Chance that one attempt meets a network fault (0-1).
    #[arg(long, default_value_t = 0.2)]
    drop: f64,
    /// Direct mode: attempts per item before the phone gives up.
    #[arg(long, default_value_t = 3)]
    tries: u32,
    /// Messaging mode: seconds an item may wait in the phone's outbox.
    #[arg(long, default_value_t = 120)]
    outbox_secs: u64,
    /// One phone in ten starts offline for this many milliseconds, then catches up.
    #[arg(long, default_value_t = 0)]
    offline_ms: u64,
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Size of each simulated audio file.
    #[arg(long, default_value_t = 64 * 1024)]
    audio_bytes: usize,
}

impl LimitArgs {
    fn limits(&self) -> anyhow::Result<api::Limits> {
        anyhow::ensure!(self.workers > 0 && self.connections > 0, "--workers and --connections must be at least 1");
        Ok(api::Limits { workers: self.workers, queue_wait: Duration::from_millis(self.queue_wait_ms), connections: self.connections, timeout: Duration::from_millis(self.timeout_ms) })
    }
}

impl PhoneArgs {
    fn plan(&self) -> anyhow::Result<mobile::Plan> {
        anyhow::ensure!((0.0..=1.0).contains(&self.drop), "--drop is a chance, between 0 and 1");
        anyhow::ensure!(self.tries > 0, "--tries must be at least 1");
        Ok(mobile::Plan {
            mode: self.front.mode,
            api: self.front.api.clone(),
            lapis: self.front.lapis.clone(),
            phones: self.phones,
            uploads: self.uploads,
            comments: self.comments,
            plays: self.plays,
            catalog: self.catalog,
            stale: self.stale_comments,
            drop: self.drop,
            tries: self.tries,
            outbox: Duration::from_secs(self.outbox_secs),
            offline: Duration::from_millis(self.offline_ms),
            timeout: Duration::from_millis(self.timeout_ms),
            seed: self.seed,
            audio_bytes: self.audio_bytes,
        })
    }
}

/// The messaging clients run on a current-thread runtime (docs/design/music-share-clients.md).
fn current_thread() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(tracing_subscriber::EnvFilter::try_from_env("MUSIC_SHARE_LOG").unwrap_or_else(|_| "warn".into())).init();
    let cli = Cli::parse();
    match cli.command {
        Command::Api { listen, database, media, limits, notify } => {
            let limits = limits.limits()?;
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(async {
                let db = db::Db::open(&database.target()?, limits.connections, limits.timeout).await?;
                api::serve(listen, api::app(db, media, limits, notify)).await
            })
        }
        Command::Workers { database, media, lapis, upload_workers, comment_workers, connections } => {
            anyhow::ensure!(connections > 0, "--connections must be at least 1");
            current_thread()?.block_on(async {
                // A worker waits for a connection less than a session lock lasts (10 s in
                // the demo), so a stored comment is completed while its lock holds.
                let db = db::Db::open(&database.target()?, connections, Duration::from_secs(5)).await?;
                workers::run(std::sync::Arc::new(workers::Context { lapis, db, media }), upload_workers, comment_workers).await
            })
        }
        Command::Web { listen, front } => current_thread()?.block_on(web::serve(listen, front.mode, front.api, front.lapis)),
        Command::Handler { name, listen, database } => current_thread()?.block_on(async {
            let db = db::Db::open(&database.target()?, 2, Duration::from_secs(10)).await?;
            handlers::serve(listen, name, db).await
        }),
        Command::Mobile { phones, ledger } => {
            let plan = phones.plan()?;
            let result = current_thread()?.block_on(mobile::run(plan, Default::default()))?;
            std::fs::write(&ledger, serde_json::to_vec_pretty(&result)?)?;
            let acked = |v: &[mobile::Attempt]| v.iter().filter(|a| a.acknowledged).count();
            println!(
                "uploads {}/{}, comments {}/{}, plays {}/{} acknowledged; ledger in {}",
                acked(&result.uploads),
                result.uploads.len(),
                acked(&result.comments),
                result.comments.len(),
                acked(&result.plays),
                result.plays.len(),
                ledger.display()
            );
            Ok(())
        }
        Command::Count { database, ledger, json } => {
            let ledger: mobile::Ledger = serde_json::from_slice(&std::fs::read(&ledger)?)?;
            let target = database.target()?;
            let tallies = current_thread()?.block_on(async { count::count(&db::Db::open(&target, 1, Duration::from_secs(30)).await?, &ledger).await })?;
            if json {
                println!("{}", serde_json::to_string(&tallies)?);
            } else {
                print!("{}", count::table(&tallies));
            }
            Ok(())
        }
        Command::Up { demo, web_port } => current_thread()?.block_on(demo::up(demo, web_port)),
        Command::Demo { demo } => current_thread()?.block_on(demo::run(demo)),
    }
}
