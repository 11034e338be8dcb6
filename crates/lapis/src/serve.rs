//! `lapis serve`: open storage, recover the services, bind the endpoints, run until
//! SIGINT/SIGTERM, then stop accepting, finish in-flight requests and flush storage.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use lapis_core::broker::Broker;
use lapis_core::queue::{QueueService, Recovery};
use lapis_core::{Clock, ShiftableClock, SystemClock};
use lapis_http::admin::AdminApi;
use lapis_http::blob::BlobApi;
use lapis_http::queue::QueueApi;
use lapis_store::{Durability, JournalOptions, MemoryStore, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::blob;
use crate::cli::{DurabilityArg, ServeArgs};
use crate::config::{Settings, Storage};
use crate::endpoints;
use crate::eventgrid;
use crate::eventhubs;
use crate::servicebus;

const EXPIRY_SWEEP_EVERY: Duration = Duration::from_secs(30);
const COMPACTION_CHECK_EVERY: Duration = Duration::from_secs(5);
const RELAXED_SYNC_INTERVAL: Duration = Duration::from_millis(50);
const BROKER_UPKEEP_EVERY: Duration = Duration::from_secs(5);
/// How often partitions drop events past their retention.
const STREAM_RETENTION_EVERY: Duration = Duration::from_secs(5);

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(args)?;
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log_level).context("--log-level")?;
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(serve(settings))
}

/// Holds an exclusive lock on the data directory for the life of the process, so two
/// servers never write the same files.
struct DirLock(#[allow(dead_code)] std::fs::File);

fn lock_data_dir(dir: &Path) -> anyhow::Result<DirLock> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating data directory {}", dir.display()))?;
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
    // SAFETY: flock on a file descriptor we own; no memory is shared.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        bail!("data directory {} is in use by another lapis process", dir.display());
    }
    Ok(DirLock(file))
}

/// The queue service with the store under it and, on disk, the lock on its directory.
struct QueueBackend {
    service: Arc<QueueService>,
    store: Arc<dyn Store>,
    _lock: Option<DirLock>,
}

fn open_queue_service(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<QueueBackend> {
    let Storage::Disk(dir) = &settings.storage else {
        let store: Arc<dyn Store> = Arc::new(MemoryStore);
        return Ok(QueueBackend { service: Arc::new(QueueService::new(store.clone(), clock)), store, _lock: None });
    };
    let lock = lock_data_dir(dir)?;
    let options = journal_options(settings);
    let mut recovery = Recovery::new(true);
    let store = crate::stores::open_records(&dir.join("queues"), options, "storage queues", recovery.visitor())?;
    Ok(QueueBackend { service: Arc::new(QueueService::recover(store.clone(), clock, recovery)), store, _lock: Some(lock) })
}

fn journal_options(settings: &Settings) -> JournalOptions {
    JournalOptions {
        durability: match settings.durability {
            DurabilityArg::Strict => Durability::Strict,
            DurabilityArg::Relaxed => Durability::Relaxed { interval: RELAXED_SYNC_INTERVAL },
        },
        salvage: settings.salvage,
        ..Default::default()
    }
}

async fn bind(host: std::net::IpAddr, port: u16, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind((host, port)).await.with_context(|| format!("binding the {what} endpoint to {host}:{port}"))
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let test_clock = settings.enable_test_clock.then(|| Arc::new(ShiftableClock::default()));
    let clock: Arc<dyn Clock> = match &test_clock {
        Some(c) => c.clone(),
        None => Arc::new(SystemClock),
    };
    let backend = open_queue_service(&settings, clock.clone())?;
    let (queues, store) = (backend.service.clone(), backend.store.clone());
    let blob_dir = match &settings.storage {
        Storage::Disk(dir) => Some(dir.join("blob")),
        Storage::Memory => None,
    };
    let blobs = blob::open(blob_dir.as_deref(), journal_options(&settings), clock.clone())?;
    let sb_dir = match &settings.storage {
        Storage::Disk(dir) => Some(dir.join("servicebus")),
        Storage::Memory => None,
    };
    let servicebus = servicebus::open(sb_dir.as_deref(), journal_options(&settings), clock.clone(), settings.servicebus.as_ref()).await?;
    let eh_dir = match &settings.storage {
        Storage::Disk(dir) => Some(dir.join("eventhubs")),
        Storage::Memory => None,
    };
    let eventhubs = eventhubs::open(eh_dir.as_deref(), journal_options(&settings), clock.clone(), settings.max_partitions, settings.eventhubs.as_ref()).await?;
    let eg_dir = match &settings.storage {
        Storage::Disk(dir) => Some(dir.join("eventgrid")),
        Storage::Memory => None,
    };
    let eventgrid = eventgrid::open(eg_dir.as_deref(), journal_options(&settings), clock, settings.eventgrid.as_ref()).await?;
    // The two share the AMQP port's addresses (the admin API refuses new clashes).
    if let Some(hub) = eventhubs.streams.list_hubs().into_iter().find(|h| servicebus.broker.queue_config(&h.name).is_ok()) {
        anyhow::bail!("'{}' is both a Service Bus queue or topic and an event hub; rename one (they share the AMQP port's addresses)", hub.name);
    }
    let amqp_service = Arc::new(lapis_amqp::AmqpService {
        broker: servicebus.broker.clone(),
        streams: eventhubs.streams.clone(),
        sas_keys: settings.sas_keys.clone(),
    });
    // Dead letters forwarded to a topic are routed again by their stored properties.
    servicebus.broker.set_routing_reader(Arc::new(|body: &[u8]| lapis_amqp::message::to_outgoing(body.to_vec()).ok().map(|m| m.routing)));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut servers = tokio::task::JoinSet::new();

    if settings.queue_port != 0 {
        let listener = bind(settings.host, settings.queue_port, "Storage Queue").await?;
        let api = Arc::new(QueueApi {
            service: queues.clone(),
            accounts: Arc::new(settings.accounts.clone()),
            auth_clock: Arc::new(SystemClock),
        });
        servers.spawn(lapis_http::server::serve(listener, move |req| api.clone().handle(req), shutdown_rx.clone()));
    }
    if settings.blob_port != 0 {
        let listener = bind(settings.host, settings.blob_port, "Blob").await?;
        let api = Arc::new(BlobApi { service: blobs.service.clone(), accounts: Arc::new(settings.accounts.clone()), auth_clock: Arc::new(SystemClock) });
        servers.spawn(lapis_http::server::serve(listener, move |req| api.clone().handle(req), shutdown_rx.clone()));
    }
    if settings.amqp_port != 0 {
        let listener = bind(settings.host, settings.amqp_port, "AMQP").await?;
        servers.spawn(lapis_amqp::serve(listener, amqp_service.clone(), None, shutdown_rx.clone()));
    }
    if let Some(tls) = &settings.amqps {
        let acceptor = lapis_amqp::tls::acceptor(&tls.cert, &tls.key)?;
        let listener = bind(settings.host, tls.port, "AMQP over TLS").await?;
        servers.spawn(lapis_amqp::serve(listener, amqp_service.clone(), Some(acceptor), shutdown_rx.clone()));
    }
    if settings.http_port != 0 {
        let listener = bind(settings.host, settings.http_port, "HTTP").await?;
        let admin = Arc::new(AdminApi { test_clock, broker: servicebus.broker.clone(), streams: eventhubs.streams.clone(), events: eventgrid.events.clone(), sas_keys: settings.sas_keys.clone(), endpoints: endpoints::advisor_endpoints(&settings) });
        servers.spawn(lapis_http::server::serve(listener, move |req| admin.clone().handle(req), shutdown_rx.clone()));
    }
    eventgrid.events.set_public_endpoint(&endpoints::http_base(&settings));
    eventgrid.events.start_delivery(Arc::new(crate::eventgrid_transport::LapisTransport {
        webhooks: lapis_http::webhook::WebhookClient::new(&settings.webhook_ca)?,
        queues: queues.clone(),
        broker: servicebus.broker.clone(),
        streams: eventhubs.streams.clone(),
        blobs: blobs.service.clone(),
    }));
    print!("{}", endpoints::banner(&settings));

    let maintenance = tokio::spawn(maintain(queues.clone(), store.clone()));
    let broker_upkeep = tokio::spawn(maintain_broker(servicebus.broker.clone(), servicebus.store.clone()));
    let blob_upkeep = tokio::spawn(maintain_store(blobs.store.clone()));
    let stream_upkeep = tokio::spawn(maintain_streams(eventhubs.streams.clone(), eventhubs.store.clone()));
    let events_upkeep = tokio::spawn(maintain_events(eventgrid.events.clone(), eventgrid.store.clone()));
    wait_for_signal().await?;
    tracing::info!("shutting down: finishing in-flight requests");
    let _ = shutdown_tx.send(true);
    while servers.join_next().await.is_some() {}
    eventgrid.events.stop_delivery().await;
    maintenance.abort();
    broker_upkeep.abort();
    blob_upkeep.abort();
    stream_upkeep.abort();
    events_upkeep.abort();
    for closing in [store.clone(), servicebus.store.clone(), blobs.store.clone(), eventhubs.store.clone(), eventgrid.store.clone()] {
        tokio::task::spawn_blocking(move || closing.close()).await?;
    }
    let streams = eventhubs.streams.clone();
    tokio::task::spawn_blocking(move || streams.close()).await?;
    let events = eventgrid.events.clone();
    tokio::task::spawn_blocking(move || events.close()).await?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Background upkeep of Event Hubs: retention of every partition, compaction of the
/// hub records.
async fn maintain_streams(streams: Arc<lapis_core::stream::StreamService>, store: Arc<dyn Store>) {
    let mut tick = tokio::time::interval(STREAM_RETENTION_EVERY);
    loop {
        tick.tick().await;
        match streams.maintain().await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "event hubs retention removed old events"),
            Err(e) => tracing::warn!(error = %e, "event hubs retention failed"),
        }
        compact(&store).await;
    }
}

/// Background upkeep: purge expired messages, compact storage.
async fn maintain(queues: Arc<QueueService>, store: Arc<dyn Store>) {
    let mut sweep = tokio::time::interval(EXPIRY_SWEEP_EVERY);
    let mut compact_tick = tokio::time::interval(COMPACTION_CHECK_EVERY);
    loop {
        tokio::select! {
            _ = sweep.tick() => {
                if let Err(e) = queues.sweep_expired().await {
                    tracing::warn!(error = %e, "expiry sweep failed");
                }
            }
            _ = compact_tick.tick() => compact(&store).await,
        }
    }
}

/// Background upkeep of the broker: lock expiry, TTL, duplicate-detection history, and
/// compaction of its store.
async fn maintain_broker(broker: Arc<Broker>, store: Arc<dyn Store>) {
    let mut tick = tokio::time::interval(BROKER_UPKEEP_EVERY);
    loop {
        tick.tick().await;
        if let Err(e) = broker.maintain().await {
            tracing::warn!(error = %e, "broker upkeep failed");
        }
        compact(&store).await;
    }
}

/// Background upkeep of Event Grid: retention of the topics' logs, compaction of the
/// records.
async fn maintain_events(events: Arc<lapis_core::events::EventGridService>, store: Arc<dyn Store>) {
    let mut tick = tokio::time::interval(STREAM_RETENTION_EVERY);
    loop {
        tick.tick().await;
        if let Err(e) = events.retain() {
            tracing::warn!(error = %e, "event grid retention failed");
        }
        compact(&store).await;
    }
}

/// Background upkeep of a store that needs nothing but compaction (blobs).
async fn maintain_store(store: Arc<dyn Store>) {
    let mut tick = tokio::time::interval(COMPACTION_CHECK_EVERY);
    loop {
        tick.tick().await;
        compact(&store).await;
    }
}

async fn compact(store: &Arc<dyn Store>) {
    loop {
        match store.maintain().await {
            Ok(true) => continue,
            Ok(false) => break,
            Err(e) => {
                tracing::warn!(error = %e, "compaction failed");
                break;
            }
        }
    }
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
