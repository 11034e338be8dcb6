//! The Blob subset in the binary: opening its service on its own store (`<data
//! dir>/blob`, or in memory).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use lapis_core::blob::{BlobService, Recovery};
use lapis_core::Clock;
use lapis_store::{CompactionPolicy, JournalOptions, KvLog, MemoryStore, Store};

/// The blob service and the store under it.
pub struct Blobs {
    pub service: Arc<BlobService>,
    pub store: Arc<dyn Store>,
}

/// Opens the blob service on `dir`, recovering what is there, or in memory.
pub fn open(dir: Option<&Path>, options: JournalOptions, clock: Arc<dyn Clock>) -> anyhow::Result<Blobs> {
    let mut recovery = Recovery::new(dir.is_some());
    let store: Arc<dyn Store> = match dir {
        None => Arc::new(MemoryStore),
        Some(dir) => {
            let started = std::time::Instant::now();
            let (kv, report) = KvLog::open(dir, options, CompactionPolicy::default(), recovery.visitor())
                .with_context(|| format!("recovering {}", dir.display()))?;
            tracing::info!(records = report.records, segments = report.segments, truncated = report.truncated_bytes,
                elapsed_ms = started.elapsed().as_millis() as u64, "blob storage recovered");
            Arc::new(kv)
        }
    };
    Ok(Blobs { service: Arc::new(BlobService::recover(store.clone(), clock, recovery)), store })
}
