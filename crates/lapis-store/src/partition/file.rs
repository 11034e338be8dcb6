//! A partition's log on disk: the journal's segment files, one record per event, and
//! a sparse index in memory — the first event of every segment and one entry per
//! [`INDEX_EVERY`] bytes after it — from which a reader finds where to start and
//! then reads the files in chunks. Memory grows with the number of index entries
//! (about 40 bytes per 64 KiB retained), not with the events. Events become visible
//! to readers from the journal's writer thread, the moment their sync finishes.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::record::{self as event_record, Header};
use super::{Appended, Cursor, EventLog, PartitionInfo, ReadFuture, Seek, StoredEvent, Visibility, Visible, NONE};
use crate::error::{StoreError, StoreResult};
use crate::journal::{Journal, JournalOptions, Loc, RecoveryReport};
use crate::record::{self as frame, Decoded};
use crate::segment::SegmentId;

/// Bytes of records between two index entries.
pub const INDEX_EVERY: u64 = 64 << 10;
/// Bytes read from a segment file at a time.
const READ_CHUNK: usize = 256 << 10;
/// How far past the start of the newest visible record a read goes: records are
/// written before they are durable, and what follows that one is not visible yet, so
/// a reader at the tail reads only about what it may see. A longer record is read
/// whole on the next turn.
const VISIBLE_TAIL: usize = 4 << 10;

/// The events of one segment.
#[derive(Debug, Clone, Copy)]
struct Span {
    first_seq: i64,
    last_time: i64,
    /// Bytes of records in the segment (where the next one would start).
    end: u32,
    count: u64,
}

/// One index entry: where the event `seq` starts.
#[derive(Debug, Clone, Copy)]
struct Entry {
    seq: i64,
    offset: i64,
    time: i64,
    segment: SegmentId,
    pos: u32,
}

#[derive(Debug, Default)]
struct State {
    spans: BTreeMap<SegmentId, Span>,
    entries: Vec<Entry>,
    next_seq: i64,
    next_offset: i64,
    last_time: i64,
    since_entry: u64,
    bytes: u64,
}

impl State {
    /// Records that event `seq` landed at `loc`.
    fn note(&mut self, seq: i64, offset: i64, time: i64, loc: &Loc) {
        let framed = loc.framed_len();
        let span = self.spans.entry(loc.segment).or_insert(Span { first_seq: seq, last_time: time, end: 0, count: 0 });
        let first_of_segment = span.count == 0;
        span.last_time = time;
        span.end = loc.offset + framed as u32;
        span.count += 1;
        if first_of_segment || self.since_entry >= INDEX_EVERY {
            self.entries.push(Entry { seq, offset, time, segment: loc.segment, pos: loc.offset });
            self.since_entry = 0;
        }
        self.since_entry += framed;
        self.bytes += framed;
        self.next_seq = seq + 1;
        self.next_offset = offset + framed as i64;
        self.last_time = time;
    }

    fn begin_seq(&self) -> i64 {
        self.spans.values().next().map(|s| s.first_seq).unwrap_or(self.next_seq)
    }

    /// The last index entry at or before `key` (by `by`), else the first.
    fn entry_before(&self, key: i64, by: impl Fn(&Entry) -> i64) -> Option<Entry> {
        let i = self.entries.partition_point(|e| by(e) <= key);
        self.entries.get(i.saturating_sub(1)).copied()
    }
}

pub struct FileLog {
    journal: Arc<Journal>,
    state: Mutex<State>,
    visible: Arc<Visibility>,
    /// The last event of each append not yet durable, with the LSN that makes it so,
    /// in order: the journal's writer makes them visible as their syncs finish.
    marks: Arc<Mutex<VecDeque<(u64, Visible)>>>,
}

impl FileLog {
    /// Opens (creating if needed) the log in `dir`, rebuilding the index from the
    /// records recovery finds.
    pub fn open(dir: &Path, options: JournalOptions) -> StoreResult<(FileLog, RecoveryReport)> {
        let mut state = State::default();
        let mut last = Visible { seq: NONE, offset: 0, enqueued_at: 0 };
        let (journal, report) = Journal::open(dir, options, |loc, payload| {
            match event_record::decode(payload) {
                Some(Header { seq, offset, enqueued_at, .. }) => {
                    state.note(seq, offset, enqueued_at, &loc);
                    last = Visible { seq, offset, enqueued_at };
                }
                None => tracing::warn!(dir = %dir.display(), segment = loc.segment, offset = loc.offset, "event log: a record that is not an event; skipped"),
            }
            Ok(())
        })?;
        let visible = Visibility::new(last);
        let marks: Arc<Mutex<VecDeque<(u64, Visible)>>> = Arc::default();
        let (hook_marks, hook_visible) = (marks.clone(), visible.clone());
        journal.on_durable(move |durable| {
            let mut newest = None;
            let mut m = hook_marks.lock();
            while m.front().is_some_and(|&(lsn, _)| lsn <= durable) {
                newest = m.pop_front().map(|(_, v)| v);
            }
            drop(m);
            if let Some(v) = newest {
                hook_visible.advance(v);
            }
        });
        let log = FileLog { journal: Arc::new(journal), state: Mutex::new(state), visible, marks };
        Ok((log, report))
    }
}

/// A read of one chunk: the events taken and where the reader goes next.
enum Chunk {
    /// Continue reading after these.
    More,
    /// Nothing more is visible now.
    Done,
}

impl FileLog {
    async fn read_chunk(&self, cursor: &mut Cursor, out: &mut Vec<StoredEvent>, max_events: usize, max_bytes: usize, bytes: &mut usize) -> StoreResult<Chunk> {
        let newest = self.visible.get();
        let visible = newest.seq;
        if cursor.next_seq > visible {
            return Ok(Chunk::Done);
        }
        let (segment, pos, end) = {
            let st = self.state.lock();
            let begin = st.begin_seq();
            if cursor.next_seq < begin {
                // Retention removed what the reader was behind: it goes on from the oldest.
                cursor.next_seq = begin;
                cursor.at = None;
                cursor.at_offset = i64::MIN;
            }
            let here = match cursor.at {
                Some((s, p)) if st.spans.contains_key(&s) => Some((s, p)),
                _ => st.entry_before(cursor.next_seq, |e| e.seq).map(|e| {
                    cursor.at_offset = e.offset;
                    (e.segment, e.pos)
                }),
            };
            let Some((segment, pos)) = here else { return Ok(Chunk::Done) };
            let end = st.spans.get(&segment).map(|s| s.end).unwrap_or(0);
            if pos >= end {
                return match st.spans.range(segment + 1..).next() {
                    Some((next, _)) => {
                        cursor.at = Some((*next, 0));
                        Ok(Chunk::More)
                    }
                    None => Ok(Chunk::Done),
                };
            }
            (segment, pos, end)
        };
        let mut want = READ_CHUNK.min((end - pos) as usize);
        if cursor.at_offset != i64::MIN && newest.offset >= cursor.at_offset {
            want = want.min((newest.offset - cursor.at_offset) as usize + VISIBLE_TAIL);
        }
        // Nor much past what the caller asked for: a reader that wants a few events
        // reads a few events' worth.
        want = want.min(max_bytes.saturating_sub(*bytes).saturating_add(VISIBLE_TAIL));
        let buf = loop {
            let journal = self.journal.clone();
            let read = tokio::task::spawn_blocking(move || journal.read_bytes(segment, pos as u64, want))
                .await
                .map_err(|e| StoreError::Malformed { context: "event read task", detail: e.to_string() })?;
            let buf = match read {
                Ok(b) => b,
                // The segment went (retention) while we were about to read it.
                Err(_) if !self.state.lock().spans.contains_key(&segment) => {
                    cursor.at = None;
                    cursor.at_offset = i64::MIN;
                    return Ok(Chunk::More);
                }
                Err(e) => return Err(e),
            };
            match frame::decode(&buf) {
                // One record larger than the chunk: read exactly it.
                Decoded::Truncated if buf.len() >= frame::HEADER_LEN && want < (end - pos) as usize => {
                    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                    want = frame::framed_len(len).min((end - pos) as usize);
                }
                _ => break buf,
            }
        };
        let mut at = 0usize;
        while at < buf.len() {
            let (payload, framed_len) = match frame::decode(&buf[at..]) {
                Decoded::Record { payload, framed_len } => (payload, framed_len),
                // The end of this chunk (or of what is written): read on from here.
                Decoded::Truncated => break,
                Decoded::Corrupt { .. } => {
                    return Err(StoreError::Malformed { context: "event read", detail: format!("damaged record in segment {segment} at {}", pos as usize + at) });
                }
            };
            let h = event_record::decode(payload).ok_or_else(|| StoreError::Malformed { context: "event read", detail: format!("segment {segment} at {}", pos as usize + at) })?;
            if h.seq > visible {
                return Ok(Chunk::Done);
            }
            let next_pos = pos + (at + framed_len) as u32;
            if h.seq >= cursor.next_seq {
                cursor.next_seq = h.seq + 1;
                if !cursor.skips(h.offset, h.enqueued_at) {
                    *bytes += h.body.len();
                    out.push(StoredEvent { seq: h.seq, offset: h.offset, enqueued_at: h.enqueued_at, body: h.body.to_vec() });
                }
            }
            cursor.at = Some((segment, next_pos));
            cursor.at_offset = h.offset + framed_len as i64;
            at += framed_len;
            if out.len() >= max_events || *bytes >= max_bytes {
                return Ok(Chunk::Done);
            }
        }
        Ok(Chunk::More)
    }
}

impl EventLog for FileLog {
    fn append(&self, now_ms: i64, bodies: &[&[u8]]) -> StoreResult<Appended> {
        let mut st = self.state.lock();
        let time = now_ms.max(st.last_time);
        let (mut seq, mut offset) = (st.next_seq, st.next_offset);
        let mut headers = Vec::with_capacity(bodies.len());
        let mut events = Vec::with_capacity(bodies.len());
        for body in bodies {
            headers.push(event_record::header(seq, offset, time));
            events.push((seq, offset, time));
            offset += frame::framed_len(event_record::HEADER_LEN + body.len()) as i64;
            seq += 1;
        }
        // Held across the append, so the writer cannot finish this sync and look for
        // its mark before the mark is there.
        let mut marks = self.marks.lock();
        // Header and body go into the journal's buffer as they are: no joined copy.
        let (locs, lsn) = self.journal.append_parts(headers.iter().zip(bodies).map(|(h, body)| [&h[..], *body]))?;
        if let Some(&(seq, offset, enqueued_at)) = events.last() {
            marks.push_back((lsn, Visible { seq, offset, enqueued_at }));
        }
        drop(marks);
        for (&(seq, offset, time), loc) in events.iter().zip(&locs) {
            st.note(seq, offset, time, loc);
        }
        drop(st);
        Ok(Appended { events, waiter: Some(self.journal.waiter(lsn)), visible: self.visible.clone() })
    }

    fn watch_visible(&self) -> watch::Receiver<Visible> {
        self.visible.watch()
    }

    fn seek(&self, to: Seek) -> Cursor {
        let st = self.state.lock();
        let begin = st.begin_seq();
        let (min_offset, min_time) = Cursor::limits(to);
        let from_entry = |e: Option<Entry>| {
            let mut c = match e {
                Some(e) => Cursor { next_seq: e.seq, at: Some((e.segment, e.pos)), at_offset: e.offset, ..Cursor::at_seq(0) },
                None => Cursor::at_seq(begin),
            };
            (c.min_offset, c.min_time) = (min_offset, min_time);
            c
        };
        match to {
            Seek::Start => Cursor::at_seq(begin),
            Seek::End => Cursor::at_seq((self.visible.get().seq + 1).max(begin)),
            Seek::Seq { seq, inclusive } => Cursor::at_seq((if inclusive { seq } else { seq.saturating_add(1) }).max(begin)),
            Seek::Offset { .. } => from_entry(st.entry_before(min_offset, |e| e.offset)),
            Seek::Time { .. } => from_entry(st.entry_before(min_time.saturating_sub(1), |e| e.time)),
        }
    }

    fn read<'a>(&'a self, cursor: &'a mut Cursor, max_events: usize, max_bytes: usize) -> ReadFuture<'a> {
        Box::pin(async move {
            let mut out = Vec::new();
            let mut bytes = 0usize;
            // Bounded: each turn moves the cursor on or ends the read.
            for _ in 0..1024 {
                match self.read_chunk(cursor, &mut out, max_events.max(1), max_bytes.max(1), &mut bytes).await? {
                    Chunk::More => continue,
                    Chunk::Done => break,
                }
            }
            Ok(out)
        })
    }

    fn info(&self) -> PartitionInfo {
        let st = self.state.lock();
        let v = self.visible.get();
        PartitionInfo {
            begin_seq: st.begin_seq(),
            last_seq: v.seq,
            last_offset: v.offset,
            last_enqueued_at: v.enqueued_at,
            is_empty: st.spans.is_empty() || v.seq < st.begin_seq(),
            bytes: st.bytes,
        }
    }

    fn retain(&self, keep_from_ms: i64, max_bytes: u64) -> StoreResult<u64> {
        let mut removed = 0;
        loop {
            let (_, active) = self.journal.segments();
            let mut st = self.state.lock();
            let Some((&id, span)) = st.spans.iter().next() else { break };
            let span = *span;
            let old = span.last_time < keep_from_ms;
            let over = st.bytes > max_bytes;
            if !(old || over) {
                break;
            }
            if id >= active {
                // The current segment: only when everything in it has expired and is
                // durable (nothing is still to be written to it) is it closed and dropped.
                let all_durable = self.visible.get().seq + 1 == st.next_seq;
                if !old || !all_durable || self.journal.roll() == id {
                    break;
                }
            }
            // Under the state lock: no append can land in the segment meanwhile.
            self.journal.remove_segment(id)?;
            st.spans.remove(&id);
            st.entries.retain(|e| e.segment != id);
            st.bytes -= span.end as u64;
            removed += span.count;
        }
        Ok(removed)
    }

    fn close(&self) {
        self.journal.close();
    }
}
