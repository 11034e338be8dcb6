//! Event Grid in the binary: opening the service on its own store (topic records in
//! `<dir>/meta`) and one event log per topic (`<dir>/topics`), or all in memory.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use lapis_core::events::{EventGridService, EventsRecovery};
use lapis_core::Clock;
use lapis_store::{JournalOptions, Store};

/// The Event Grid service and the store under its topic records.
pub struct EventGrid {
    pub events: Arc<EventGridService>,
    pub store: Arc<dyn Store>,
}

/// Opens the service on `dir` (or in memory) with every recovered topic's log open.
pub fn open(dir: Option<&Path>, options: JournalOptions, clock: Arc<dyn Clock>) -> anyhow::Result<EventGrid> {
    let mut recovery = EventsRecovery::default();
    let (store, logs) = crate::stores::open_records_and_logs(dir, options, "topics", "event grid", recovery.visitor())?;
    let events = EventGridService::open(store.clone(), logs, clock, recovery).context("opening the event grid topics' logs")?;
    Ok(EventGrid { events: Arc::new(events), store })
}
