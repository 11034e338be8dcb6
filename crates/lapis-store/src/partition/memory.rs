//! A partition's log in memory, behind `--in-memory`: the same numbering, visibility
//! and retention as [`super::FileLog`], with nothing on disk.

use std::collections::VecDeque;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::{Appended, Cursor, EventLog, PartitionInfo, ReadFuture, Seek, StoredEvent, Visibility, Visible, NONE};
use crate::error::StoreResult;

/// Bytes an event counts for, as if it were framed on disk (so offsets look alike).
fn footprint(body: &[u8]) -> i64 {
    (crate::record::framed_len(super::record::HEADER_LEN + body.len())) as i64
}

#[derive(Default)]
struct State {
    events: VecDeque<StoredEvent>,
    next_seq: i64,
    next_offset: i64,
    last_time: i64,
    bytes: u64,
}

impl State {
    fn begin_seq(&self) -> i64 {
        self.events.front().map(|e| e.seq).unwrap_or(self.next_seq)
    }

    /// Index in `events` of the first event for which `before` is false.
    fn first_not(&self, before: impl Fn(&StoredEvent) -> bool) -> usize {
        self.events.partition_point(before)
    }
}

pub struct MemoryLog {
    state: Mutex<State>,
    visible: std::sync::Arc<Visibility>,
}

impl Default for MemoryLog {
    fn default() -> Self {
        MemoryLog { state: Mutex::new(State::default()), visible: Visibility::new(Visible { seq: NONE, offset: 0, enqueued_at: 0 }) }
    }
}

impl EventLog for MemoryLog {
    fn append(&self, now_ms: i64, bodies: &[&[u8]]) -> StoreResult<Appended> {
        let mut st = self.state.lock();
        let time = now_ms.max(st.last_time);
        let mut events = Vec::with_capacity(bodies.len());
        for body in bodies {
            let (seq, offset) = (st.next_seq, st.next_offset);
            st.next_seq += 1;
            st.next_offset += footprint(body);
            st.bytes += footprint(body) as u64;
            st.events.push_back(StoredEvent { seq, offset, enqueued_at: time, body: body.to_vec() });
            events.push((seq, offset, time));
        }
        st.last_time = time;
        // Nothing to make durable: readers see the events at once.
        if let Some(&(seq, offset, enqueued_at)) = events.last() {
            self.visible.advance(Visible { seq, offset, enqueued_at });
        }
        Ok(Appended { events, waiter: None, visible: self.visible.clone() })
    }

    fn watch_visible(&self) -> watch::Receiver<Visible> {
        self.visible.watch()
    }

    fn seek(&self, to: Seek) -> Cursor {
        let st = self.state.lock();
        let begin = st.begin_seq();
        let (min_offset, min_time) = Cursor::limits(to);
        match to {
            Seek::Start => Cursor::at_seq(begin),
            Seek::End => Cursor::at_seq((self.visible.get().seq + 1).max(begin)),
            Seek::Seq { seq, inclusive } => Cursor::at_seq((if inclusive { seq } else { seq.saturating_add(1) }).max(begin)),
            Seek::Offset { .. } => Cursor::at_seq(begin + st.first_not(|e| e.offset < min_offset) as i64),
            Seek::Time { .. } => Cursor::at_seq(begin + st.first_not(|e| e.enqueued_at < min_time) as i64),
        }
    }

    fn read<'a>(&'a self, cursor: &'a mut Cursor, max_events: usize, max_bytes: usize) -> ReadFuture<'a> {
        let visible = self.visible.get().seq;
        let st = self.state.lock();
        let begin = st.begin_seq();
        cursor.next_seq = cursor.next_seq.max(begin);
        let mut out = Vec::new();
        let mut bytes = 0;
        let start = (cursor.next_seq - begin) as usize;
        for e in st.events.iter().skip(start) {
            if e.seq > visible || out.len() >= max_events.max(1) || bytes >= max_bytes.max(1) {
                break;
            }
            cursor.next_seq = e.seq + 1;
            if !cursor.skips(e.offset, e.enqueued_at) {
                bytes += e.body.len();
                out.push(e.clone());
            }
        }
        drop(st);
        Box::pin(async move { Ok(out) })
    }

    fn info(&self) -> PartitionInfo {
        let st = self.state.lock();
        let v = self.visible.get();
        PartitionInfo {
            begin_seq: st.begin_seq(),
            last_seq: v.seq,
            last_offset: v.offset,
            last_enqueued_at: v.enqueued_at,
            is_empty: st.events.is_empty() || v.seq < st.begin_seq(),
            bytes: st.bytes,
        }
    }

    fn retain(&self, keep_from_ms: i64, max_bytes: u64) -> StoreResult<u64> {
        let mut st = self.state.lock();
        let mut removed = 0;
        // Keep the newest event whatever its age, as the file log keeps its active segment.
        while st.events.len() > 1 {
            let front = &st.events[0];
            if front.enqueued_at >= keep_from_ms && st.bytes <= max_bytes {
                break;
            }
            let gone = footprint(&front.body) as u64;
            st.events.pop_front();
            st.bytes -= gone;
            removed += 1;
        }
        Ok(removed)
    }

    fn close(&self) {}
}
