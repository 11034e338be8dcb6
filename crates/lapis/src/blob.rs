//! The Blob subset in the binary: opening its service on its own store (`<data
//! dir>/blob`, or in memory).

use std::path::Path;
use std::sync::Arc;

use lapis_core::blob::{BlobService, Recovery};
use lapis_core::Clock;
use lapis_store::{JournalOptions, MemoryStore, Store};

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
        Some(dir) => crate::stores::open_records(dir, options, "blob", recovery.visitor())?,
    };
    Ok(Blobs { service: Arc::new(BlobService::recover(store.clone(), clock, recovery)), store })
}
