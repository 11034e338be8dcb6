//! `music-share demo --mode direct|messaging`: the whole application under a burst,
//! with faults, counted from the database.
//!
//! It starts what the mode needs (Lapis from the `lapis` binary in messaging mode;
//! the API, the two "track published" handlers, and in messaging mode the workers),
//! puts a small catalog in place, then lets the phones loose — thousands of uploads,
//! comments and plays within seconds over a flaky network, one phone in ten
//! offline for the first two seconds — while it takes a
//! handler down for a while and SIGKILLs the API (and the workers) mid-burst, then
//! starts them again. When the phones are done it waits for every backlog to drain,
//! counts attempted / acknowledged / stored / lost / duplicated per task, prints the
//! table and writes `report.html` (the table, and charts of acknowledged against
//! stored and of each service's backlog over time, sampled every half second).

mod procs;
mod proxy;
mod report;
mod sample;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use serde_json::json;

use crate::messaging::eventgrid::{TRACKS_TOPIC, TRACK_PUBLISHED};
use crate::messaging::lapis::{Lapis, TOPIC_KEY};
use crate::mobile::{self, Mode, Progress};
use procs::{free_port, Proc};

#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    #[arg(long, value_enum, default_value = "messaging")]
    pub mode: Mode,
    /// Where the demo keeps its databases, logs, ledger and report (emptied first).
    #[arg(long, default_value = "music-share-demo")]
    pub dir: PathBuf,
    /// PostgreSQL instead of the SQLite file in `--dir` (its music-share tables are
    /// dropped first).
    #[arg(long)]
    pub database_url: Option<String>,
    /// The `lapis` binary (messaging mode).
    #[arg(long, env = "LAPIS_BIN", default_value = "lapis")]
    pub lapis_bin: PathBuf,
    #[arg(long, default_value_t = 200)]
    pub phones: usize,
    #[arg(long, default_value_t = 5)]
    pub uploads: usize,
    #[arg(long, default_value_t = 10)]
    pub comments: usize,
    #[arg(long, default_value_t = 10)]
    pub plays: usize,
    #[arg(long, default_value_t = 0.1)]
    pub drop: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = 16 * 1024)]
    pub audio_bytes: usize,
    /// Comments on a deleted track (poison), one each from the first phones.
    #[arg(long, default_value_t = 2)]
    pub stale_comments: usize,
    /// Leave out the restarts, the handler outage and the cut connections (the
    /// phones' own per-attempt faults stay).
    #[arg(long)]
    pub no_faults: bool,
    /// How long the search-index handler stays down, in seconds.
    #[arg(long, default_value_t = 5)]
    pub handler_down_secs: u64,
    /// The longest the demo waits for the backlogs to drain, in seconds.
    #[arg(long, default_value_t = 240)]
    pub settle_secs: u64,
    /// Print the tallies as JSON (after the table).
    #[arg(long)]
    pub json: bool,
}

/// Everything the demo started, by role.
struct System {
    lapis: Option<Proc>,
    api: Proc,
    workers: Option<Proc>,
    handlers: Vec<Proc>,
    ports: Lapis,
    api_addr: String,
}

impl System {
    /// SIGKILLs the API and the workers (the demo's crash mid-burst).
    async fn kill_back_end(&mut self) {
        self.api.kill().await;
        if let Some(w) = self.workers.as_mut() {
            w.kill().await;
        }
    }

    async fn start_back_end(&mut self) -> anyhow::Result<()> {
        self.api.start().await?;
        if let Some(w) = self.workers.as_mut() {
            w.start().await?;
        }
        Ok(())
    }

    /// Stops everything the demo started.
    async fn stop(&mut self) {
        self.kill_back_end().await;
        for p in self.handlers.iter_mut().chain(self.lapis.as_mut()) {
            p.kill().await;
        }
    }
}

fn lapis_config() -> serde_json::Value {
    json!({
        "UserConfig": {
            "Namespaces": [{"Name": "sbemulatorns", "Queues": [{"Name": crate::messaging::servicebus::COMMENTS, "Properties": {
                "RequiresSession": true, "RequiresDuplicateDetection": true, "DuplicateDetectionHistoryTimeWindow": "PT10M",
                "MaxDeliveryCount": 5, "LockDuration": "PT10S"}}]}],
            "NamespaceConfig": [{"Type": "EventHub", "Name": "emulatorNs1", "Entities": [
                {"Name": crate::messaging::eventhubs::PLAYS, "PartitionCount": 4, "ConsumerGroups": [{"Name": crate::messaging::eventhubs::TRENDING_GROUP}]}]}],
        },
        "EventGrid": {"Topics": [{"Name": TRACKS_TOPIC, "Key1": TOPIC_KEY, "Key2": TOPIC_KEY}]},
    })
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

async fn start(args: &DemoArgs, dir: &Path) -> anyhow::Result<System> {
    let me = std::env::current_exe()?;
    let db = db_flags(args, dir);
    let media = s(&dir.join("media"));
    let ports = Lapis { host: "127.0.0.1".into(), queue_port: free_port()?, blob_port: free_port()?, amqp_port: free_port()?, http_port: free_port()? };
    let lapis = match args.mode {
        Mode::Direct => None,
        Mode::Messaging => {
            let config = dir.join("lapis-config.json");
            std::fs::write(&config, serde_json::to_vec_pretty(&lapis_config())?)?;
            let mut serve: Vec<String> = vec!["serve".into(), "--data-dir".into(), s(&dir.join("lapis-data")), "--config".into(), s(&config), "--kafka-port".into(), "0".into(), "--host".into(), ports.host.clone()];
            // The same port flags as the app's, after its --lapis-host pair.
            serve.extend(lapis_flags(&ports).into_iter().skip(2));
            let mut p = Proc::new("lapis", &args.lapis_bin, serve, dir, Some(ports.http_addr()));
            p.start().await.context("starting Lapis (is the `lapis` binary on PATH, or LAPIS_BIN set?)")?;
            Some(p)
        }
    };
    let mut handlers = Vec::new();
    let mut hook_urls = Vec::new();
    for name in crate::handlers::HANDLERS {
        let addr = format!("127.0.0.1:{}", free_port()?);
        let mut h = Proc::new(name, &me, [vec!["handler".into(), "--name".into(), name.into(), "--listen".into(), addr.clone()], db.clone()].concat(), dir, Some(addr.clone()));
        h.start().await?;
        hook_urls.push(format!("http://{addr}/hooks/{name}"));
        handlers.push(h);
    }
    if args.mode == Mode::Messaging {
        for (name, url) in crate::handlers::HANDLERS.iter().zip(&hook_urls) {
            crate::messaging::admin::subscribe_webhook(&ports, TRACKS_TOPIC, name, url, TRACK_PUBLISHED).await?;
        }
    }
    let api_addr = format!("127.0.0.1:{}", free_port()?);
    let mut api_args: Vec<String> = [vec!["api".into(), "--listen".into(), api_addr.clone(), "--media".into(), media.clone()], db.clone()].concat();
    if args.mode == Mode::Direct {
        for url in &hook_urls {
            api_args.extend(["--notify".into(), url.clone()]);
        }
    }
    let mut api = Proc::new("api", &me, api_args, dir, Some(api_addr.clone()));
    api.start().await?;
    let workers = match args.mode {
        Mode::Direct => None,
        Mode::Messaging => {
            let mut w: Vec<String> = [vec!["workers".into(), "--media".into(), media], db.clone()].concat();
            w.extend(lapis_flags(&ports));
            let mut p = Proc::new("workers", &me, w, dir, None);
            p.start().await?;
            Some(p)
        }
    };
    Ok(System { lapis, api, workers, handlers, ports, api_addr })
}

/// Waits until the phones have finished `share` of their items, either way.
async fn until_finished(progress: &Progress, total: usize, share: f64) {
    let goal = (total as f64 * share) as usize;
    while progress.finished.load(Ordering::Relaxed) < goal {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The faults, placed by how far the burst has got (so they land mid-burst at any
/// size): at a tenth the search-index handler goes down; at a third the API (and
/// the workers) are SIGKILLed, and started again a second later, and (messaging)
/// every connection of the phones to Lapis is cut; the handler comes back after
/// `--handler-down-secs`.
async fn inject_faults(system: &tokio::sync::Mutex<System>, args: &DemoArgs, progress: &Progress, total: usize, events: &sample::Log, blip: &watch::Sender<u64>) -> anyhow::Result<()> {
    until_finished(progress, total, 0.1).await;
    let handler_down = tokio::time::Instant::now();
    system.lock().await.handlers[1].kill().await;
    events.note("search-index handler down");
    until_finished(progress, total, 0.33).await;
    system.lock().await.kill_back_end().await;
    events.note("API and workers killed (SIGKILL)");
    if args.mode == Mode::Messaging {
        // At the same moment the phones' network blips: every open connection to
        // Lapis is cut.
        blip.send_modify(|n| *n += 1);
        events.note("network blip: every phone connection to Lapis cut");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    system.lock().await.start_back_end().await?;
    events.note("API and workers started again");
    tokio::time::sleep_until(handler_down + Duration::from_secs(args.handler_down_secs)).await;
    system.lock().await.handlers[1].start().await?;
    events.note("search-index handler back");
    Ok(())
}

/// The demo's database: PostgreSQL when given, else a SQLite file in its directory.
fn target(args: &DemoArgs, dir: &Path) -> crate::db::Target {
    match &args.database_url {
        Some(url) => crate::db::Target::Postgres(url.clone()),
        None => crate::db::Target::Sqlite(dir.join("music-share.db")),
    }
}

/// The flags that give the app's other commands the same database.
fn db_flags(args: &DemoArgs, dir: &Path) -> Vec<String> {
    match target(args, dir) {
        crate::db::Target::Postgres(url) => vec!["--database-url".into(), url],
        crate::db::Target::Sqlite(path) => vec!["--database".into(), s(&path)],
    }
}

/// Lapis's ports behind proxies that cut each connection after 32 KiB to 512 KiB,
/// and every open one at a blip.
async fn flaky(ports: &Lapis, seed: u64, cuts: Arc<AtomicUsize>, blip: &watch::Receiver<u64>) -> anyhow::Result<Lapis> {
    let via = |port: u16, n: u64| {
        let (cuts, blip) = (cuts.clone(), blip.clone());
        async move { proxy::start(format!("127.0.0.1:{port}").parse()?, seed.wrapping_add(n), 32 << 10, 512 << 10, cuts, blip).await.map_err(anyhow::Error::from) }
    };
    Ok(Lapis { host: "127.0.0.1".into(), queue_port: via(ports.queue_port, 1).await?, blob_port: via(ports.blob_port, 2).await?, amqp_port: via(ports.amqp_port, 3).await?, http_port: ports.http_port })
}

/// Empties (or makes) the demo's directory, and its database.
async fn fresh(args: &DemoArgs) -> anyhow::Result<()> {
    let dir = &args.dir;
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("emptying {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    if let t @ crate::db::Target::Postgres(_) = target(args, dir) {
        crate::db::Db::reset(&t).await.context("dropping the music-share tables on PostgreSQL")?;
    }
    Ok(())
}

/// `music-share up`: the whole application without the burst — Lapis (in messaging
/// mode), the API, the workers, the handlers and the web site — until Ctrl-C.
pub async fn up(args: DemoArgs, web_port: u16) -> anyhow::Result<()> {
    fresh(&args).await?;
    let mut system = start(&args, &args.dir).await?;
    let listen = format!("127.0.0.1:{web_port}");
    let me = std::env::current_exe()?;
    let mut web_args: Vec<String> = vec!["web".into(), "--listen".into(), listen.clone(), "--mode".into(), args.mode.name().into(), "--api".into(), system.api_addr.clone()];
    web_args.extend(lapis_flags(&system.ports));
    let mut web = Proc::new("web", &me, web_args, &args.dir, Some(listen.clone()));
    web.start().await?;
    println!("music-share is up in {} mode: the web site on http://{listen}, the API on http://{}", args.mode.name(), system.api_addr);
    if system.lapis.is_some() {
        println!("Lapis: queues :{}, blobs :{}, AMQP :{}, Event Grid and admin :{}", system.ports.queue_port, system.ports.blob_port, system.ports.amqp_port, system.ports.http_port);
    }
    tokio::signal::ctrl_c().await?;
    web.kill().await;
    system.stop().await;
    Ok(())
}

/// The app's flags naming Lapis's address and ports.
fn lapis_flags(p: &Lapis) -> Vec<String> {
    vec![
        "--lapis-host".into(),
        p.host.clone(),
        "--queue-port".into(),
        p.queue_port.to_string(),
        "--blob-port".into(),
        p.blob_port.to_string(),
        "--amqp-port".into(),
        p.amqp_port.to_string(),
        "--http-port".into(),
        p.http_port.to_string(),
    ]
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let dir = args.dir.clone();
    fresh(&args).await?;
    let system = start(&args, &dir).await?;
    let mut plan = mobile::Plan {
        mode: args.mode,
        api: system.api_addr.clone(),
        lapis: system.ports.clone(),
        phones: args.phones,
        uploads: args.uploads,
        comments: args.comments,
        plays: args.plays,
        catalog: 4,
        stale: args.stale_comments,
        drop: args.drop,
        tries: 3,
        outbox: Duration::from_secs(120),
        offline: Duration::from_secs(2),
        timeout: Duration::from_secs(2),
        seed: args.seed,
        audio_bytes: args.audio_bytes,
    };
    let ports = system.ports.clone();
    // The phones reach Lapis through the flaky network.
    let cuts = Arc::new(AtomicUsize::new(0));
    let (blip, blipped) = watch::channel(0u64);
    if args.mode == Mode::Messaging && !args.no_faults {
        plan.lapis = flaky(&ports, args.seed, cuts.clone(), &blipped).await?;
    }
    let system = Arc::new(tokio::sync::Mutex::new(system));
    let progress = Arc::new(Progress::default());
    let log = Arc::new(sample::Log::default());
    let db = crate::db::Db::open(&target(&args, &dir), 2, Duration::from_secs(30)).await?;
    let sampler = tokio::spawn(sample::every_half_second(args.mode, ports.clone(), db.clone(), progress.clone(), log.clone()));
    let started = tokio::time::Instant::now();
    let total = args.phones * (args.uploads + args.comments + args.plays);
    let faults = {
        let (system, args, log, progress) = (system.clone(), args.clone(), log.clone(), progress.clone());
        tokio::spawn(async move {
            if args.no_faults {
                return Ok(());
            }
            inject_faults(&system, &args, &progress, total, &log, &blip).await
        })
    };
    let ledger = mobile::run(plan, progress.clone()).await?;
    log.note("phones done");
    if cuts.load(Ordering::Relaxed) > 0 {
        log.note(&format!("the network cut {} of the phones' connections to Lapis", cuts.load(Ordering::Relaxed)));
    }
    let burst = started.elapsed();
    faults.await??;
    let settled = sample::settle(args.mode, &ports, &db, &ledger, Duration::from_secs(args.settle_secs)).await;
    log.note(if settled { "settled" } else { "gave up waiting to settle" });
    tokio::time::sleep(Duration::from_millis(600)).await;
    sampler.abort();
    std::fs::write(dir.join("ledger.json"), serde_json::to_vec_pretty(&ledger)?)?;
    // Event Hubs keeps the plays: read them all again from the start, as a new
    // aggregator would; nothing may be counted twice.
    let replayed = match args.mode {
        Mode::Messaging => {
            let ctx = crate::workers::Context { lapis: ports.clone(), db: db.clone(), media: dir.join("media") };
            Some(crate::workers::trending::replay(&ctx).await?)
        }
        Mode::Direct => None,
    };
    let tallies = crate::count::count(&db, &ledger).await?;
    let dead_lettered = match args.mode {
        Mode::Messaging => crate::messaging::admin::queue_counts(&ports, crate::messaging::servicebus::COMMENTS).await.map(|c| c.1).unwrap_or(-1),
        Mode::Direct => 0,
    };
    let stale_refused = ledger.stale.iter().filter(|a| !a.acknowledged).count();
    std::fs::write(dir.join("tallies.json"), serde_json::to_vec_pretty(&tallies)?)?;
    let replay_note = replayed.map(|r| format!(" Plays replayed from the hub's start: {} events, {} counted anew.", r.events, r.new_plays)).unwrap_or_default();
    let poison = match args.mode {
        Mode::Messaging => format!("Comments on a deleted track: {} sent, {dead_lettered} in the dead-letter queue (shown on the web site's /admin).{replay_note}", ledger.stale.len()),
        Mode::Direct => format!("Comments on a deleted track: {} sent, {stale_refused} refused with 404.", ledger.stale.len()),
    };
    let report = dir.join("report.html");
    std::fs::write(&report, report::html(&args, &tallies, &poison, &log.samples(), &log.notes(), burst, started.elapsed()))?;
    system.lock().await.stop().await;
    println!("music-share demo, {} mode: {} phones, burst {:.1} s, settled in {:.1} s", args.mode.name(), args.phones, burst.as_secs_f64(), started.elapsed().as_secs_f64());
    print!("{}", crate::count::table(&tallies));
    println!("{poison}");
    println!("report: {}", report.display());
    if args.json {
        let retried = [&ledger.uploads, &ledger.comments, &ledger.plays].iter().flat_map(|l| l.iter()).filter(|a| a.attempts > 1).count();
        let notes: Vec<String> = log.notes().into_iter().map(|(_, n)| n).collect();
        println!("{}", json!({"tallies": tallies, "notes": notes, "retried_items": retried, "settled": settled, "stale_sent": ledger.stale.len(), "stale_refused": stale_refused, "dead_lettered": dead_lettered, "replayed": replayed}));
    }
    Ok(())
}
