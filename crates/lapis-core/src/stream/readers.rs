//! Who reads a partition for a consumer group, and owner levels (epochs): a reader
//! with an epoch takes the partition from every reader with a lower or equal one and
//! from readers without one, a reader with a lower epoch is refused, and at most
//! [`MAX_READERS_PER_PARTITION`] readers without an epoch share a partition. A reader
//! that loses the partition is told through its `kicked` watch and fails its next
//! read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use lapis_store::partition::{Cursor, EventLog, StoredEvent, Visible};
use parking_lot::Mutex;
use tokio::sync::watch;

use super::error::{StreamError, StreamResult};
use super::model::MAX_READERS_PER_PARTITION;

type SlotKey = (String, u32);

struct Holder {
    id: u64,
    epoch: Option<i64>,
    /// Set to the epoch that took the partition.
    kick: watch::Sender<Option<i64>>,
}

/// The readers of one hub.
#[derive(Default)]
pub(super) struct Readers {
    slots: Mutex<HashMap<SlotKey, Vec<Holder>>>,
    next_id: AtomicU64,
}

fn epoch_text(epoch: Option<i64>) -> String {
    epoch.map(|e| e.to_string()).unwrap_or_else(|| "no epoch".into())
}

impl Readers {
    fn join(&self, key: &SlotKey, epoch: Option<i64>) -> StreamResult<(u64, watch::Receiver<Option<i64>>)> {
        let mut slots = self.slots.lock();
        let holders = slots.entry(key.clone()).or_default();
        let held = holders.iter().filter_map(|h| h.epoch).max();
        match (epoch, held) {
            (Some(e), Some(m)) if e < m => return Err(StreamError::EpochTooLow { held: m, asked: e.to_string() }),
            (None, Some(m)) => return Err(StreamError::EpochTooLow { held: m, asked: epoch_text(None) }),
            (Some(e), _) => {
                for h in holders.drain(..) {
                    h.kick.send_replace(Some(e));
                }
            }
            (None, None) if holders.len() >= MAX_READERS_PER_PARTITION => return Err(StreamError::TooManyReceivers(MAX_READERS_PER_PARTITION)),
            (None, None) => {}
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (kick, kicked) = watch::channel(None);
        holders.push(Holder { id, epoch, kick });
        Ok((id, kicked))
    }

    fn leave(&self, key: &SlotKey, id: u64) {
        let mut slots = self.slots.lock();
        if let Some(holders) = slots.get_mut(key) {
            holders.retain(|h| h.id != id);
            if holders.is_empty() {
                slots.remove(key);
            }
        }
    }
}

/// Leaves the registry when the reader goes.
struct Membership {
    readers: Arc<Readers>,
    key: SlotKey,
    id: u64,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.readers.leave(&self.key, self.id);
    }
}

/// One reader of one partition for one consumer group.
pub struct Reader {
    log: Arc<dyn EventLog>,
    pub cursor: Cursor,
    visible: watch::Receiver<Visible>,
    kicked: watch::Receiver<Option<i64>>,
    epoch: Option<i64>,
    _membership: Membership,
}

impl Reader {
    pub(super) fn join(readers: &Arc<Readers>, group: &str, partition: u32, epoch: Option<i64>, log: Arc<dyn EventLog>, cursor: Cursor) -> StreamResult<Reader> {
        let key = (group.to_ascii_lowercase(), partition);
        let (id, kicked) = readers.join(&key, epoch)?;
        let visible = log.watch_visible();
        Ok(Reader { log, cursor, visible, kicked, epoch, _membership: Membership { readers: readers.clone(), key, id } })
    }

    /// Fails once a reader with a higher (or equal) epoch has taken the partition.
    pub fn check(&self) -> StreamResult<()> {
        match *self.kicked.borrow() {
            Some(new) => Err(StreamError::ReceiverDisconnected { old: epoch_text(self.epoch), new }),
            None => Ok(()),
        }
    }

    /// Up to `max_events` events (about `max_bytes`) from where the reader is.
    pub async fn read(&mut self, max_events: usize, max_bytes: usize) -> StreamResult<Vec<StoredEvent>> {
        self.check()?;
        Ok(self.log.read(&mut self.cursor, max_events, max_bytes).await?)
    }

    /// Marks the newest visible event as seen, before reading: a watch cloned after
    /// this fires only for events that become visible later.
    pub fn mark_seen(&mut self) {
        self.visible.borrow_and_update();
    }

    /// Whether visible events wait for this reader.
    pub fn has_events(&self) -> bool {
        self.cursor.next_seq <= self.visible.borrow().seq
    }

    /// The newest visible event of the partition.
    pub fn last_visible(&self) -> Visible {
        *self.visible.borrow()
    }

    /// What changes when there is something to do: new events, or the partition taken.
    pub fn watches(&self) -> (watch::Receiver<Visible>, watch::Receiver<Option<i64>>) {
        (self.visible.clone(), self.kicked.clone())
    }
}
