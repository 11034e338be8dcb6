//! A keyed log: puts, deletes and prefix deletes over the journal, with an in-memory
//! index of where each live key's latest value sits, and compaction that reclaims the
//! oldest segment by carrying its live records forward.
//!
//! Update-heavy state (queue messages, visibility, locks) lives here. The index holds
//! only positions; values stay on disk and are read back on demand.
//!
//! Compaction only ever works on the oldest segment. That is what makes dropping its
//! tombstones safe: no older segment can hold a value they would need to shadow.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;

use parking_lot::Mutex;

use crate::error::{StoreError, StoreResult};
use crate::journal::{Journal, JournalOptions, Loc, RecoveryReport};
use crate::segment::{self, SegmentId};
use crate::{Commit, Op, ReplayEvent, Store};

const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;
const TAG_DELETE_PREFIX: u8 = 3;

/// Keys are bounded so that a record header stays small and predictable.
pub const MAX_KEY_LEN: usize = 1024;

fn encode(op: &Op) -> Vec<u8> {
    let (tag, key, value): (u8, &[u8], &[u8]) = match op {
        Op::Put { key, value } => (TAG_PUT, key, value),
        Op::Delete { key } => (TAG_DELETE, key, &[]),
        Op::DeletePrefix { prefix } => (TAG_DELETE_PREFIX, prefix, &[]),
    };
    assert!(key.len() <= MAX_KEY_LEN, "key exceeds bound");
    let mut out = Vec::with_capacity(3 + key.len() + value.len());
    out.push(tag);
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    out
}

fn decode(payload: &[u8]) -> StoreResult<ReplayEvent<'_>> {
    let malformed = |detail: &str| StoreError::Malformed { context: "keyed log record", detail: detail.to_string() };
    if payload.len() < 3 {
        return Err(malformed("shorter than its header"));
    }
    let key_len = u16::from_le_bytes([payload[1], payload[2]]) as usize;
    let rest = &payload[3..];
    if rest.len() < key_len {
        return Err(malformed("key runs past the record"));
    }
    let (key, value) = rest.split_at(key_len);
    match payload[0] {
        TAG_PUT => Ok(ReplayEvent::Put { key, value }),
        TAG_DELETE => Ok(ReplayEvent::Delete { key }),
        TAG_DELETE_PREFIX => Ok(ReplayEvent::DeletePrefix { prefix: key }),
        _ => Err(malformed("unknown tag")),
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct SegmentStats {
    total: u64,
    live: u64,
}

#[derive(Default)]
struct Index {
    keys: BTreeMap<Box<[u8]>, Loc>,
    segments: BTreeMap<SegmentId, SegmentStats>,
}

impl Index {
    fn account(&mut self, loc: Loc, live: bool) {
        let s = self.segments.entry(loc.segment).or_default();
        s.total += loc.framed_len();
        if live {
            s.live += loc.framed_len();
        }
    }

    fn forget(&mut self, loc: Loc) {
        if let Some(s) = self.segments.get_mut(&loc.segment) {
            s.live -= loc.framed_len();
        }
    }

    fn apply(&mut self, event: &ReplayEvent<'_>, loc: Loc) {
        match event {
            ReplayEvent::Put { key, .. } => {
                if let Some(old) = self.keys.insert((*key).into(), loc) {
                    self.forget(old);
                }
                self.account(loc, true);
            }
            ReplayEvent::Delete { key } => {
                if let Some(old) = self.keys.remove(*key) {
                    self.forget(old);
                }
                self.account(loc, false);
            }
            ReplayEvent::DeletePrefix { prefix } => {
                let doomed: Vec<Box<[u8]>> = self
                    .keys
                    .range::<[u8], _>((Bound::Included(*prefix), Bound::Unbounded))
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in doomed {
                    if let Some(old) = self.keys.remove(&k) {
                        self.forget(old);
                    }
                }
                self.account(loc, false);
            }
        }
    }

    fn live_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.live).sum()
    }

    fn total_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.total).sum()
    }
}

/// When compaction of the oldest segment is worth its I/O.
#[derive(Debug, Clone, Copy)]
pub struct CompactionPolicy {
    /// Never compact while the log is smaller than this.
    pub min_total_bytes: u64,
    /// Compact when garbage exceeds this fraction of the log.
    pub max_garbage_ratio: f64,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy { min_total_bytes: 128 << 20, max_garbage_ratio: 0.5 }
    }
}

/// The durable keyed log.
pub struct KvLog {
    journal: Journal,
    index: Mutex<Index>,
    policy: CompactionPolicy,
}

impl KvLog {
    /// Opens the log in `dir`, handing every record to `visit` in log order so the
    /// caller can rebuild its state.
    pub fn open(
        dir: &Path,
        options: JournalOptions,
        policy: CompactionPolicy,
        mut visit: impl FnMut(ReplayEvent<'_>) -> StoreResult<()>,
    ) -> StoreResult<(KvLog, RecoveryReport)> {
        let mut index = Index::default();
        let (journal, report) = Journal::open(dir, options, |loc, payload| {
            let event = decode(payload)?;
            index.apply(&event, loc);
            visit(event)
        })?;
        Ok((KvLog { journal, index: Mutex::new(index), policy }, report))
    }

    /// Number of live keys.
    pub fn len(&self) -> usize {
        self.index.lock().keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reclaims the oldest segment if the policy says it is worth it. Returns whether it
    /// did. Safe to run while writers are active.
    pub async fn compact_once(&self) -> StoreResult<bool> {
        let oldest = {
            let index = self.index.lock();
            let total = index.total_bytes();
            let garbage = total - index.live_bytes();
            if total < self.policy.min_total_bytes || (garbage as f64) < self.policy.max_garbage_ratio * total as f64 {
                return Ok(false);
            }
            let (segments, active) = self.journal.segments();
            match segments.first() {
                Some(&id) if id < active => id,
                _ => return Ok(false),
            }
        };
        self.compact_segment(oldest).await?;
        Ok(true)
    }

    async fn compact_segment(&self, id: SegmentId) -> StoreResult<()> {
        let bytes = self.journal.read_segment(id)?;
        let mut survivors: Vec<(Vec<u8>, u32)> = Vec::new();
        segment::scan(&bytes, |r| {
            if let ReplayEvent::Put { .. } = decode(r.payload)? {
                survivors.push((r.payload.to_vec(), r.offset));
            }
            Ok(())
        })?;
        let mut lsn = 0;
        for batch in survivors.chunks(256) {
            let mut index = self.index.lock();
            let live: Vec<&Vec<u8>> = batch
                .iter()
                .filter(|(payload, offset)| match decode(payload) {
                    Ok(ReplayEvent::Put { key, .. }) => {
                        index.keys.get(key).is_some_and(|l| l.segment == id && l.offset == *offset)
                    }
                    _ => false,
                })
                .map(|(payload, _)| payload)
                .collect();
            if live.is_empty() {
                continue;
            }
            let (locs, end) = self.journal.append(&live)?;
            for (payload, loc) in live.iter().zip(locs) {
                index.apply(&decode(payload)?, loc);
            }
            lsn = end;
        }
        self.journal.wait_durable(lsn).await?;
        {
            let mut index = self.index.lock();
            let stats = index.segments.remove(&id).unwrap_or_default();
            assert_eq!(stats.live, 0, "compacted segment still holds live records");
        }
        self.journal.remove_segment(id)?;
        tracing::debug!(segment = id, "compacted segment");
        Ok(())
    }

    /// Flushes and stops the writer.
    pub fn close(&self) {
        self.journal.close();
    }
}

impl Store for KvLog {
    fn commit(&self, ops: &[Op]) -> StoreResult<Commit> {
        if ops.is_empty() {
            return Ok(Commit::ready());
        }
        let payloads: Vec<Vec<u8>> = ops.iter().map(encode).collect();
        let mut index = self.index.lock();
        let (locs, lsn) = self.journal.append(&payloads)?;
        for (payload, loc) in payloads.iter().zip(locs) {
            index.apply(&decode(payload)?, loc);
        }
        drop(index);
        Ok(Commit::waiting(self.journal.waiter(lsn)))
    }

    fn read<'a>(&'a self, key: &'a [u8]) -> crate::ReadFuture<'a> {
        Box::pin(async move {
            let Some(loc) = self.index.lock().keys.get(key).copied() else {
                return Ok(None);
            };
            let payload = self.journal.read(loc).await?;
            match decode(&payload)? {
                ReplayEvent::Put { value, .. } => Ok(Some(value.to_vec())),
                _ => Err(StoreError::Malformed { context: "read", detail: "index points at a non-put record".into() }),
            }
        })
    }

    fn keeps_values_on_disk(&self) -> bool {
        true
    }

    fn maintain(&self) -> crate::MaintainFuture<'_> {
        Box::pin(self.compact_once())
    }

    fn close(&self) {
        KvLog::close(self)
    }
}
