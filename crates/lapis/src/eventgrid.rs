//! Event Grid in the binary: opening the service on its own store (topic records in
//! `<dir>/meta`) and one event log per topic (`<dir>/topics`), or all in memory.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use lapis_core::events::{EventGridService, EventsRecovery};
use lapis_core::Clock;
use lapis_store::partition::{DirLogs, LogFactory, MemoryLogs};
use lapis_store::{CompactionPolicy, JournalOptions, KvLog, MemoryStore, Store};

/// The Event Grid service and the store under its topic records.
pub struct EventGrid {
    pub events: Arc<EventGridService>,
    pub store: Arc<dyn Store>,
}

pub fn open(dir: Option<&Path>, options: JournalOptions, clock: Arc<dyn Clock>) -> anyhow::Result<EventGrid> {
    let mut recovery = EventsRecovery::default();
    let (store, logs): (Arc<dyn Store>, Arc<dyn LogFactory>) = match dir {
        None => (Arc::new(MemoryStore), Arc::new(MemoryLogs)),
        Some(dir) => {
            let meta = dir.join("meta");
            let (kv, report) = KvLog::open(&meta, options.clone(), CompactionPolicy::default(), recovery.visitor())
                .with_context(|| format!("recovering {}", meta.display()))?;
            tracing::info!(records = report.records, truncated = report.truncated_bytes, "event grid storage recovered");
            (Arc::new(kv), Arc::new(DirLogs { root: dir.join("topics"), options }))
        }
    };
    let events = EventGridService::open(store.clone(), logs, clock, recovery).context("opening the event grid topics' logs")?;
    Ok(EventGrid { events: Arc::new(events), store })
}
