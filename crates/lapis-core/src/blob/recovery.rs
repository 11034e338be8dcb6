//! Rebuilding blob state from the store's replay. Compaction may carry records
//! forward out of their original order, so events are folded per key first and
//! containers, blob records, contents, block lists, blocks and uncommitted-block
//! records are joined at the end. Keys nothing refers to are handed back to be
//! deleted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use lapis_store::{ReplayEvent, StoreResult};

use super::codec::{self, BlobRecord, ContainerRecord, Key, ListEntry, StagedRecord};
use super::content::{BlockSeq, CommittedBlock, Content};
use super::staging::UncommittedBlock;
use super::state::{BlobEntry, ContainerState};
use crate::body::{Body, InlineBudget, DEFAULT_INLINE_BODY_BUDGET};

type Ids = (u64, u64);

/// Accumulates replayed events.
pub struct Recovery {
    budget: InlineBudget,
    containers: BTreeMap<Vec<u8>, ContainerRecord>,
    records: BTreeMap<Ids, BlobRecord>,
    contents: BTreeMap<Ids, Body>,
    lists: BTreeMap<Ids, Vec<ListEntry>>,
    /// Block contents by (container id, sequence number).
    blocks: BTreeMap<Ids, Body>,
    staged: BTreeMap<Ids, StagedRecord>,
    /// The highest container, blob or block id seen in any key.
    max_id: u64,
}

/// What recovery produced.
pub struct Rebuilt {
    pub containers: Vec<ContainerState>,
    /// The next free container, blob or block id.
    pub next_id: u64,
    /// The highest ETag handed out, so new ones keep increasing.
    pub last_etag: u64,
    pub inline_budget_left: i64,
    /// Keys that nothing live refers to (left by damage), to delete.
    pub strays: Vec<Vec<u8>>,
}

/// Removes every entry of container `cid` from `map`, returning the values.
fn take_container<V>(map: &mut BTreeMap<Ids, V>, cid: u64) -> Vec<V> {
    let doomed: Vec<Ids> = map.range((cid, 0)..=(cid, u64::MAX)).map(|(k, _)| *k).collect();
    doomed.iter().filter_map(|k| map.remove(k)).collect()
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
            lists: BTreeMap::new(),
            blocks: BTreeMap::new(),
            staged: BTreeMap::new(),
            max_id: 0,
        }
    }

    /// A visitor to pass to the store's open.
    pub fn visitor(&mut self) -> impl FnMut(ReplayEvent<'_>) -> StoreResult<()> + '_ {
        move |event| {
            self.apply(event);
            Ok(())
        }
    }

    fn hold(map: &mut BTreeMap<Ids, Body>, budget: &InlineBudget, key: Ids, value: &[u8]) {
        let body = budget.hold(value.to_vec());
        if let Some(old) = map.insert(key, body) {
            budget.release(&old);
        }
    }

    fn drop_body(map: &mut BTreeMap<Ids, Body>, budget: &InlineBudget, key: Ids) {
        if let Some(old) = map.remove(&key) {
            budget.release(&old);
        }
    }

    fn put(&mut self, key: &[u8], value: &[u8]) {
        let unreadable = |what: &str| tracing::warn!("blob recovery: ignoring an unreadable {what}");
        match codec::parse_key(key) {
            Key::Container => match codec::decode_container(value) {
                Some(rec) => {
                    self.max_id = self.max_id.max(rec.id);
                    self.containers.insert(key.to_vec(), rec);
                }
                None => unreadable("container record"),
            },
            Key::BlobRecord { container_id, blob_id } => match codec::decode_blob(value) {
                Some(rec) => drop(self.records.insert((container_id, blob_id), rec)),
                None => unreadable("blob record"),
            },
            Key::BlobContent { container_id, blob_id } => Self::hold(&mut self.contents, &self.budget, (container_id, blob_id), value),
            Key::BlockList { container_id, blob_id } => match codec::decode_list(value) {
                Some(list) => drop(self.lists.insert((container_id, blob_id), list)),
                None => unreadable("block list"),
            },
            Key::Block { container_id, seq } => Self::hold(&mut self.blocks, &self.budget, (container_id, seq), value),
            Key::Staged { container_id, seq } => match codec::decode_staged(value) {
                Some(rec) => drop(self.staged.insert((container_id, seq), rec)),
                None => unreadable("uncommitted block record"),
            },
            Key::BlobsOf { .. } | Key::Unknown => tracing::warn!("blob recovery: ignoring an unknown key"),
        }
        if let Some(id) = key.get(9..17).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).filter(|_| key.first() == Some(&b'B')) {
            self.max_id = self.max_id.max(id);
        }
    }

    pub fn apply(&mut self, event: ReplayEvent<'_>) {
        match event {
            ReplayEvent::Put { key, value } => self.put(key, value),
            ReplayEvent::Delete { key } => match codec::parse_key(key) {
                Key::Container => drop(self.containers.remove(key)),
                Key::BlobRecord { container_id, blob_id } => drop(self.records.remove(&(container_id, blob_id))),
                Key::BlobContent { container_id, blob_id } => Self::drop_body(&mut self.contents, &self.budget, (container_id, blob_id)),
                Key::BlockList { container_id, blob_id } => drop(self.lists.remove(&(container_id, blob_id))),
                Key::Block { container_id, seq } => Self::drop_body(&mut self.blocks, &self.budget, (container_id, seq)),
                Key::Staged { container_id, seq } => drop(self.staged.remove(&(container_id, seq))),
                Key::BlobsOf { .. } | Key::Unknown => {}
            },
            ReplayEvent::DeletePrefix { prefix } => {
                if let Key::BlobsOf { container_id } = codec::parse_key(prefix) {
                    take_container(&mut self.records, container_id);
                    take_container(&mut self.lists, container_id);
                    take_container(&mut self.staged, container_id);
                    let bodies = take_container(&mut self.contents, container_id).into_iter().chain(take_container(&mut self.blocks, container_id));
                    bodies.for_each(|b| self.budget.release(&b));
                }
            }
        }
    }

    /// The content of `record`, taking what it uses out of the replayed contents;
    /// `None` when some of it is missing.
    fn content_of(&mut self, record: &BlobRecord, committed: &mut HashSet<Ids>) -> Option<Content> {
        let key = (record.container_id, record.id);
        if !record.blocks {
            return self.contents.remove(&key).map(Content::Whole);
        }
        let list = self.lists.get(&key)?;
        let blocks: Option<Vec<CommittedBlock>> = list
            .iter()
            .map(|e| {
                let body = self.blocks.get(&(key.0, e.seq))?.clone();
                Some(CommittedBlock { id: e.id.clone(), seq: e.seq, size: e.size, body })
            })
            .collect();
        let blocks = BlockSeq::new(blocks?);
        if blocks.size() != record.size {
            tracing::warn!(blob = %record.name, "blob recovery: a block list does not add up to its blob's size");
            return None;
        }
        self.lists.remove(&key);
        committed.extend(blocks.blocks().iter().map(|b| (key.0, b.seq)));
        Some(Content::Blocks(Arc::new(blocks)))
    }

    pub fn finish(mut self) -> Rebuilt {
        let mut by_id: HashMap<u64, ContainerState> = HashMap::new();
        let mut last_etag = 0;
        for rec in std::mem::take(&mut self.containers).into_values() {
            last_etag = last_etag.max(rec.etag);
            by_id.insert(rec.id, ContainerState::new(rec));
        }
        let mut strays = Vec::new();
        let mut committed = HashSet::new();
        for ((container_id, blob_id), record) in std::mem::take(&mut self.records) {
            let content = match by_id.contains_key(&container_id) {
                true => self.content_of(&record, &mut committed),
                false => None,
            };
            match (by_id.get_mut(&container_id), content) {
                (Some(c), Some(content)) => {
                    last_etag = last_etag.max(record.etag);
                    c.blobs.insert(record.name.clone(), BlobEntry { record, content });
                }
                _ => strays.push(codec::record_key(container_id, blob_id)),
            }
        }
        // Committed blocks now belong to their blobs' entries.
        committed.iter().for_each(|k| drop(self.blocks.remove(k)));
        for ((container_id, seq), rec) in std::mem::take(&mut self.staged) {
            let id = B64.decode(&rec.id).ok();
            let (Some(c), Some(id)) = (by_id.get_mut(&container_id), id) else {
                strays.push(codec::staged_key(container_id, seq));
                continue;
            };
            let Some(body) = self.blocks.remove(&(container_id, seq)) else {
                strays.push(codec::staged_key(container_id, seq));
                continue;
            };
            let u = c.staged.entry(rec.name).or_default();
            u.last_staged = u.last_staged.max(rec.staged);
            if let Some(old) = u.blocks.insert(id, UncommittedBlock { seq, size: rec.size, body }) {
                self.budget.release(&old.body);
                strays.extend([codec::staged_key(container_id, old.seq), codec::block_key(container_id, old.seq)]);
            }
        }
        strays.extend(self.contents.keys().map(|&(c, b)| codec::content_key(c, b)));
        strays.extend(self.lists.keys().map(|&(c, b)| codec::list_key(c, b)));
        strays.extend(self.blocks.keys().map(|&(c, s)| codec::block_key(c, s)));
        self.contents.values().chain(self.blocks.values()).for_each(|b| self.budget.release(b));
        if !strays.is_empty() {
            tracing::warn!(strays = strays.len(), "blob recovery: dropping blob keys that nothing refers to");
        }
        Rebuilt {
            containers: by_id.into_values().collect(),
            next_id: self.max_id + 1,
            last_etag,
            inline_budget_left: self.budget.left(),
            strays,
        }
    }
}
