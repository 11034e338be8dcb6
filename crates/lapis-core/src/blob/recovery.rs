//! Rebuilding blob state from the store's replay. Compaction may carry records
//! forward out of their original order, so events are folded per key first and
//! containers, blob records and contents are joined at the end.

use std::collections::{BTreeMap, HashMap};

use lapis_store::{ReplayEvent, StoreResult};

use super::codec::{self, BlobRecord, ContainerRecord, Key};
use super::state::{BlobEntry, ContainerState};
use crate::body::{Body, InlineBudget, DEFAULT_INLINE_BODY_BUDGET};

/// Accumulates replayed events.
pub struct Recovery {
    budget: InlineBudget,
    containers: BTreeMap<Vec<u8>, ContainerRecord>,
    records: BTreeMap<(u64, u64), BlobRecord>,
    contents: BTreeMap<(u64, u64), Body>,
}

/// What recovery produced.
pub struct Rebuilt {
    pub containers: Vec<ContainerState>,
    /// The next free container or blob id.
    pub next_id: u64,
    /// The highest ETag handed out, so new ones keep increasing.
    pub last_etag: u64,
    pub inline_budget_left: i64,
}

impl Recovery {
    /// `keeps_values`: whether the store can read contents back later.
    pub fn new(keeps_values: bool) -> Recovery {
        Self::with_inline_budget(keeps_values, DEFAULT_INLINE_BODY_BUDGET)
    }

    /// As [`Recovery::new`], keeping at most `budget` bytes of content in memory (the
    /// rest is read from the store when asked for).
    pub fn with_inline_budget(keeps_values: bool, budget: i64) -> Recovery {
        Recovery {
            budget: InlineBudget::new(keeps_values, budget),
            containers: BTreeMap::new(),
            records: BTreeMap::new(),
            contents: BTreeMap::new(),
        }
    }

    /// A visitor to pass to the store's open.
    pub fn visitor(&mut self) -> impl FnMut(ReplayEvent<'_>) -> StoreResult<()> + '_ {
        move |event| {
            self.apply(event);
            Ok(())
        }
    }

    fn drop_content(&mut self, key: (u64, u64)) {
        if let Some(old) = self.contents.remove(&key) {
            self.budget.release(&old);
        }
    }

    pub fn apply(&mut self, event: ReplayEvent<'_>) {
        match event {
            ReplayEvent::Put { key, value } => match codec::parse_key(key) {
                Key::Container => match codec::decode_container(value) {
                    Some(rec) => drop(self.containers.insert(key.to_vec(), rec)),
                    None => tracing::warn!("blob recovery: ignoring an unreadable container record"),
                },
                Key::BlobRecord { container_id, blob_id } => match codec::decode_blob(value) {
                    Some(rec) => drop(self.records.insert((container_id, blob_id), rec)),
                    None => tracing::warn!("blob recovery: ignoring an unreadable blob record"),
                },
                Key::BlobContent { container_id, blob_id } => {
                    self.drop_content((container_id, blob_id));
                    let body = self.budget.hold(value.to_vec());
                    self.contents.insert((container_id, blob_id), body);
                }
                Key::BlobsOf { .. } | Key::Unknown => tracing::warn!("blob recovery: ignoring an unknown key"),
            },
            ReplayEvent::Delete { key } => match codec::parse_key(key) {
                Key::Container => drop(self.containers.remove(key)),
                Key::BlobRecord { container_id, blob_id } => drop(self.records.remove(&(container_id, blob_id))),
                Key::BlobContent { container_id, blob_id } => self.drop_content((container_id, blob_id)),
                Key::BlobsOf { .. } | Key::Unknown => {}
            },
            ReplayEvent::DeletePrefix { prefix } => {
                if let Key::BlobsOf { container_id } = codec::parse_key(prefix) {
                    let range = (container_id, 0)..=(container_id, u64::MAX);
                    let doomed: Vec<_> = self.records.range(range.clone()).map(|(k, _)| *k).collect();
                    doomed.iter().for_each(|k| drop(self.records.remove(k)));
                    let doomed: Vec<_> = self.contents.range(range).map(|(k, _)| *k).collect();
                    doomed.into_iter().for_each(|k| self.drop_content(k));
                }
            }
        }
    }

    pub fn finish(mut self) -> Rebuilt {
        let mut by_id: HashMap<u64, ContainerState> = HashMap::new();
        let (mut max_id, mut last_etag) = (0, 0);
        for rec in std::mem::take(&mut self.containers).into_values() {
            (max_id, last_etag) = (max_id.max(rec.id), last_etag.max(rec.etag));
            by_id.insert(rec.id, ContainerState::new(rec));
        }
        let mut orphans = 0usize;
        for ((container_id, blob_id), record) in std::mem::take(&mut self.records) {
            let (Some(c), Some(body)) = (by_id.get_mut(&container_id), self.contents.remove(&(container_id, blob_id))) else {
                orphans += 1;
                continue;
            };
            (max_id, last_etag) = (max_id.max(blob_id), last_etag.max(record.etag));
            c.blobs.insert(record.name.clone(), BlobEntry { record, body });
        }
        if orphans > 0 || !self.contents.is_empty() {
            tracing::warn!(orphans, stray_contents = self.contents.len(), "blob recovery: dropped blob records without a container or content");
        }
        Rebuilt {
            containers: by_id.into_values().collect(),
            next_id: max_id + 1,
            last_etag,
            inline_budget_left: self.budget.left(),
        }
    }
}
