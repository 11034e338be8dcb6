//! Opening a service's stores: its records (recovered from `dir`, every record handed
//! to the service's visitor, with one log line saying what was found) and, for the
//! services that keep event logs, the logs beside them.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use lapis_store::partition::{DirLogs, LogFactory, MemoryLogs};
use lapis_store::{CompactionPolicy, JournalOptions, KvLog, MemoryStore, ReplayEvent, Store, StoreResult};

/// The record store in `dir`, recovered through `visit`.
pub fn open_records(dir: &Path, options: JournalOptions, service: &'static str, visit: impl FnMut(ReplayEvent<'_>) -> StoreResult<()>) -> anyhow::Result<Arc<dyn Store>> {
    let started = std::time::Instant::now();
    let (kv, report) = KvLog::open(dir, options, CompactionPolicy::default(), visit).with_context(|| format!("recovering {}", dir.display()))?;
    tracing::info!(service, records = report.records, segments = report.segments, truncated = report.truncated_bytes,
        elapsed_ms = started.elapsed().as_millis() as u64, "storage recovered");
    Ok(Arc::new(kv))
}

/// Records in `<dir>/meta` and event logs in `<dir>/<logs>`, or both in memory.
pub fn open_records_and_logs(
    dir: Option<&Path>,
    options: JournalOptions,
    logs: &str,
    service: &'static str,
    visit: impl FnMut(ReplayEvent<'_>) -> StoreResult<()>,
) -> anyhow::Result<(Arc<dyn Store>, Arc<dyn LogFactory>)> {
    Ok(match dir {
        None => (Arc::new(MemoryStore), Arc::new(MemoryLogs)),
        Some(dir) => (open_records(&dir.join("meta"), options.clone(), service, visit)?, Arc::new(DirLogs { root: dir.join(logs), options })),
    })
}
