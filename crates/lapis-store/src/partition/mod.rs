//! Event logs: one per Event Hubs partition. An event log assigns each appended event
//! its sequence number, its offset (the byte position of its record in the
//! partition, as Event Hubs defines it) and its enqueued time, keeps events in
//! order, makes them visible to readers once they are durable, and drops whole
//! segments of old events (retention by time and by size).
//!
//! - [`FileLog`]: segment files of the [`crate::journal`] (checksums, group commit,
//!   torn-tail recovery) with a sparse in-memory index, so memory stays small however
//!   much is retained; reads come from the files (the page cache).
//! - [`MemoryLog`]: the same behind `--in-memory`.
//!
//! This module knows nothing of AMQP or consumer groups: bodies are opaque bytes.

mod file;
mod memory;
mod record;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;

use crate::error::StoreResult;
use crate::journal::DurableWaiter;

pub use file::FileLog;
pub use memory::MemoryLog;

/// Sequence number of "no event yet".
pub const NONE: i64 = -1;

/// An event as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: i64,
    pub offset: i64,
    /// Milliseconds since the Unix epoch.
    pub enqueued_at: i64,
    pub body: Vec<u8>,
}

/// Where a reader starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seek {
    /// The oldest retained event.
    Start,
    /// After the newest visible event: only events appended from now on.
    End,
    Seq { seq: i64, inclusive: bool },
    Offset { offset: i64, inclusive: bool },
    /// Events enqueued after (or, inclusive, at or after) this instant.
    Time { ms: i64, inclusive: bool },
}

/// A reader's position: the sequence number it reads next, once known where in the
/// files that event starts, and (after a seek by offset or time) the first offset and
/// time it still has to reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub next_seq: i64,
    pub(crate) at: Option<(u32, u32)>,
    /// The offset of the record at `at`, when known ([`i64::MIN`] when not): it bounds
    /// a read by what is visible.
    pub(crate) at_offset: i64,
    pub(crate) min_offset: i64,
    pub(crate) min_time: i64,
}

impl Cursor {
    pub fn at_seq(next_seq: i64) -> Cursor {
        Cursor { next_seq, at: None, at_offset: i64::MIN, min_offset: i64::MIN, min_time: i64::MIN }
    }

    /// Whether an event at `offset` and `time` is still before where the reader
    /// wants to start; the first one that is not clears the condition.
    pub(crate) fn skips(&mut self, offset: i64, time: i64) -> bool {
        if offset < self.min_offset || time < self.min_time {
            return true;
        }
        self.min_offset = i64::MIN;
        self.min_time = i64::MIN;
        false
    }

    /// The first offset and time `to` asks for (when it asks by offset or time).
    pub(crate) fn limits(to: Seek) -> (i64, i64) {
        match to {
            Seek::Offset { offset, inclusive } => (if inclusive { offset } else { offset.saturating_add(1) }, i64::MIN),
            Seek::Time { ms, inclusive } => (i64::MIN, if inclusive { ms } else { ms.saturating_add(1) }),
            _ => (i64::MIN, i64::MIN),
        }
    }
}

/// The newest event readers may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visible {
    /// [`NONE`] when no event is visible yet.
    pub seq: i64,
    pub offset: i64,
    pub enqueued_at: i64,
}

/// What a partition holds, as Event Hubs reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The oldest retained sequence number (the next one when empty).
    pub begin_seq: i64,
    /// The newest visible sequence number, or [`NONE`].
    pub last_seq: i64,
    pub last_offset: i64,
    pub last_enqueued_at: i64,
    pub is_empty: bool,
    /// Bytes of retained records.
    pub bytes: u64,
}

/// The events one append placed, and the wait for their durability.
#[must_use = "an append is not acknowledged until `durable` resolves"]
pub struct Appended {
    /// (sequence number, offset, enqueued time) of each event, in order.
    pub events: Vec<(i64, i64, i64)>,
    waiter: Option<DurableWaiter>,
    visible: Arc<Visibility>,
}

impl Appended {
    /// Resolves once the events are durable; from then on readers see them.
    pub async fn durable(self) -> StoreResult<()> {
        if let Some(w) = self.waiter {
            w.wait().await?;
        }
        if let Some(&(seq, offset, enqueued_at)) = self.events.last() {
            self.visible.advance(Visible { seq, offset, enqueued_at });
        }
        Ok(())
    }
}

/// The newest event readers may see: the log is ordered, so once an append is
/// durable everything before it is too.
pub(crate) struct Visibility {
    last: watch::Sender<Visible>,
}

impl Visibility {
    pub fn new(last: Visible) -> Arc<Visibility> {
        Arc::new(Visibility { last: watch::Sender::new(last) })
    }

    pub fn advance(&self, to: Visible) {
        self.last.send_if_modified(|v| {
            let moved = to.seq > v.seq;
            if moved {
                *v = to;
            }
            moved
        });
    }

    pub fn get(&self) -> Visible {
        *self.last.borrow()
    }

    pub fn watch(&self) -> watch::Receiver<Visible> {
        self.last.subscribe()
    }
}

pub type ReadFuture<'a> = Pin<Box<dyn Future<Output = StoreResult<Vec<StoredEvent>>> + Send + 'a>>;

/// What the Event Hubs core needs of a partition's log.
pub trait EventLog: Send + Sync + 'static {
    /// Appends `bodies` in order, enqueued at `now_ms` (never earlier than the
    /// previous event).
    fn append(&self, now_ms: i64, bodies: &[&[u8]]) -> StoreResult<Appended>;
    /// The newest visible event, as it changes.
    fn watch_visible(&self) -> watch::Receiver<Visible>;
    /// The position `to` names (for times and offsets: the first event at or after it).
    fn seek(&self, to: Seek) -> Cursor;
    /// Up to `max_events` visible events (and about `max_bytes`) from `cursor` on,
    /// moving it past them. A cursor behind retention moves to the oldest event.
    fn read<'a>(&'a self, cursor: &'a mut Cursor, max_events: usize, max_bytes: usize) -> ReadFuture<'a>;
    fn info(&self) -> PartitionInfo;
    /// Drops the oldest segments whose events were all enqueued before
    /// `keep_from_ms`, and more while the log holds over `max_bytes`. Returns how
    /// many events went.
    fn retain(&self, keep_from_ms: i64, max_bytes: u64) -> StoreResult<u64>;
    /// Flushes and stops.
    fn close(&self);
}

/// Opens the event logs of partitions: files under a data directory, or memory.
pub trait LogFactory: Send + Sync + 'static {
    /// The log of partition `partition` of the hub with id `hub` (created if new).
    fn open(&self, hub: u64, partition: u32) -> StoreResult<Arc<dyn EventLog>>;
    /// Deletes every partition log of hub `hub` (its logs must be closed).
    fn remove_hub(&self, hub: u64) -> StoreResult<()>;
}

/// Partition logs in `<root>/<hub id>/<partition>/`.
pub struct DirLogs {
    pub root: std::path::PathBuf,
    pub options: crate::journal::JournalOptions,
}

impl LogFactory for DirLogs {
    fn open(&self, hub: u64, partition: u32) -> StoreResult<Arc<dyn EventLog>> {
        let dir = self.root.join(hub.to_string()).join(partition.to_string());
        let (log, report) = FileLog::open(&dir, self.options.clone())?;
        if report.truncated_bytes > 0 || !report.salvaged.is_empty() {
            tracing::warn!(hub, partition, ?report, "event log recovered with repairs");
        }
        Ok(Arc::new(log))
    }

    fn remove_hub(&self, hub: u64) -> StoreResult<()> {
        let dir = self.root.join(hub.to_string());
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => crate::segment::sync_dir(&self.root),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(crate::error::StoreError::io("removing an event hub's logs", &dir, e)),
        }
    }
}

/// Partition logs in memory (`--in-memory`).
#[derive(Default)]
pub struct MemoryLogs;

impl LogFactory for MemoryLogs {
    fn open(&self, _hub: u64, _partition: u32) -> StoreResult<Arc<dyn EventLog>> {
        Ok(Arc::new(MemoryLog::default()))
    }

    fn remove_hub(&self, _hub: u64) -> StoreResult<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
