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
const OP_HEADER_LEN: usize = 7;

/// Keys are bounded so that a record header stays small and predictable.
pub const MAX_KEY_LEN: usize = 1024;

/// Frames a whole commit as one record, so a commit is atomic: recovery sees all of
/// its ops or none. Layout per op: `[tag u8][key len u16][value len u32][key][value]`.
fn encode<'a>(ops: impl IntoIterator<Item = ReplayEvent<'a>>) -> Vec<u8> {
    let mut out = Vec::new();
    for op in ops {
        let (tag, key, value): (u8, &[u8], &[u8]) = match op {
            ReplayEvent::Put { key, value } => (TAG_PUT, key, value),
            ReplayEvent::Delete { key } => (TAG_DELETE, key, &[]),
            ReplayEvent::DeletePrefix { prefix } => (TAG_DELETE_PREFIX, prefix, &[]),
        };
        assert!(key.len() <= MAX_KEY_LEN, "key exceeds bound");
        out.push(tag);
        out.extend_from_slice(&(key.len() as u16).to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(value);
    }
    out
}

fn as_event(op: &Op) -> ReplayEvent<'_> {
    match op {
        Op::Put { key, value } => ReplayEvent::Put { key, value },
        Op::Delete { key } => ReplayEvent::Delete { key },
        Op::DeletePrefix { prefix } => ReplayEvent::DeletePrefix { prefix },
    }
}

/// One op decoded from a commit record, with where its value sits in the payload.
struct DecodedOp<'a> {
    event: ReplayEvent<'a>,
    value_offset: u32,
    encoded_len: u64,
}

fn decode(payload: &[u8]) -> StoreResult<Vec<DecodedOp<'_>>> {
    let malformed = |detail: &str| StoreError::Malformed { context: "keyed log record", detail: detail.to_string() };
    let mut ops = Vec::new();
    let mut pos = 0usize;
    while pos < payload.len() {
        let header = payload.get(pos..pos + OP_HEADER_LEN).ok_or_else(|| malformed("op header runs past the record"))?;
        let key_len = u16::from_le_bytes([header[1], header[2]]) as usize;
        let value_len = u32::from_le_bytes([header[3], header[4], header[5], header[6]]) as usize;
        let key_start = pos + OP_HEADER_LEN;
        let value_start = key_start + key_len;
        let end = value_start + value_len;
        if end > payload.len() {
            return Err(malformed("op runs past the record"));
        }
        let key = &payload[key_start..value_start];
        let event = match header[0] {
            TAG_PUT => ReplayEvent::Put { key, value: &payload[value_start..end] },
            TAG_DELETE => ReplayEvent::Delete { key },
            TAG_DELETE_PREFIX => ReplayEvent::DeletePrefix { prefix: key },
            _ => return Err(malformed("unknown op tag")),
        };
        ops.push(DecodedOp { event, value_offset: value_start as u32, encoded_len: (end - pos) as u64 });
        pos = end;
    }
    Ok(ops)
}

/// Where a live key's latest value is: inside the commit record at `loc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    loc: Loc,
    value_offset: u32,
    value_len: u32,
    encoded_len: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct SegmentStats {
    total: u64,
    live: u64,
}

#[derive(Default)]
struct Index {
    keys: BTreeMap<Box<[u8]>, Slot>,
    segments: BTreeMap<SegmentId, SegmentStats>,
}

impl Index {
    fn forget(&mut self, old: Slot) {
        if let Some(s) = self.segments.get_mut(&old.loc.segment) {
            s.live -= old.encoded_len;
        }
    }

    /// Applies one whole commit record found at `loc`.
    fn apply_record(&mut self, ops: &[DecodedOp<'_>], loc: Loc) {
        self.segments.entry(loc.segment).or_default().total += loc.framed_len();
        for op in ops {
            self.apply(op, loc);
        }
    }

    fn apply(&mut self, op: &DecodedOp<'_>, loc: Loc) {
        match op.event {
            ReplayEvent::Put { key, value } => {
                let slot = Slot { loc, value_offset: op.value_offset, value_len: value.len() as u32, encoded_len: op.encoded_len };
                if let Some(old) = self.keys.insert(key.into(), slot) {
                    self.forget(old);
                }
                self.segments.entry(loc.segment).or_default().live += op.encoded_len;
            }
            ReplayEvent::Delete { key } => {
                if let Some(old) = self.keys.remove(key) {
                    self.forget(old);
                }
            }
            ReplayEvent::DeletePrefix { prefix } => {
                let doomed: Vec<Box<[u8]>> = self
                    .keys
                    .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in doomed {
                    if let Some(old) = self.keys.remove(&k) {
                        self.forget(old);
                    }
                }
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
            let ops = decode(payload)?;
            index.apply_record(&ops, loc);
            ops.into_iter().try_for_each(|op| visit(op.event))
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
        let mut lsn = 0;
        let mut carried = Vec::new();
        let mut flush = |carried: &mut Vec<(Vec<u8>, Vec<u8>)>, index: &mut Index| -> StoreResult<()> {
            if carried.is_empty() {
                return Ok(());
            }
            let payload = encode(carried.iter().map(|(k, v)| ReplayEvent::Put { key: k, value: v }));
            let (locs, end) = self.journal.append(&[&payload])?;
            index.apply_record(&decode(&payload)?, locs[0]);
            lsn = end;
            carried.clear();
            Ok(())
        };
        segment::scan(&bytes, |r| {
            let ops = decode(r.payload)?;
            // The index lock is held from the liveness check to the re-append, so no
            // writer can supersede a value between the two.
            let mut index = self.index.lock();
            for op in &ops {
                if let ReplayEvent::Put { key, value } = op.event {
                    let live = index
                        .keys
                        .get(key)
                        .is_some_and(|s| s.loc.segment == id && s.loc.offset == r.offset && s.value_offset == op.value_offset);
                    if live {
                        carried.push((key.to_vec(), value.to_vec()));
                    }
                }
            }
            if carried.len() >= 256 {
                flush(&mut carried, &mut index)?;
            }
            Ok(())
        })?;
        flush(&mut carried, &mut self.index.lock())?;
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
        let payload = encode(ops.iter().map(as_event));
        let decoded = decode(&payload)?;
        let mut index = self.index.lock();
        let (locs, lsn) = self.journal.append(&[&payload])?;
        index.apply_record(&decoded, locs[0]);
        drop(index);
        Ok(Commit::waiting(self.journal.waiter(lsn)))
    }

    fn read<'a>(&'a self, key: &'a [u8]) -> crate::ReadFuture<'a> {
        Box::pin(async move {
            let Some(slot) = self.index.lock().keys.get(key).copied() else {
                return Ok(None);
            };
            let payload = self.journal.read(slot.loc).await?;
            let start = slot.value_offset as usize;
            payload
                .get(start..start + slot.value_len as usize)
                .map(|v| Some(v.to_vec()))
                .ok_or_else(|| StoreError::Malformed { context: "read", detail: "value lies outside its record".into() })
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
