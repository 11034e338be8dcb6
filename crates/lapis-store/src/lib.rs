//! Lapis's storage engine.
//!
//! - [`journal`]: append-only, checksummed segment files with group commit and crash
//!   recovery. Event Hubs partitions use it directly as their log.
//! - [`kv`]: a keyed log over the journal for update-heavy state (Storage Queue and
//!   Service Bus messages), with compaction.
//! - [`Store`]: the one trait the core talks to; [`KvLog`] and [`MemoryStore`]
//!   implement it.
//! - [`partition`]: event logs for Event Hubs partitions (segment files with a sparse
//!   index), behind the [`partition::EventLog`] trait.
//!
//! This crate knows nothing of queues, HTTP or AMQP: it stores opaque keys and values.

pub mod error;
pub mod journal;
pub mod kv;
pub mod memory;
pub mod partition;
pub mod record;
pub mod segment;

use std::future::Future;
use std::pin::Pin;

pub use error::{StoreError, StoreResult};
pub use journal::{Durability, Faults, Journal, JournalOptions, Loc, RecoveryReport};
pub use kv::{CompactionPolicy, KvLog};
pub use memory::MemoryStore;

/// One change to the keyed store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put { key: Vec<u8>, value: Vec<u8> },
    Delete { key: Vec<u8> },
    /// Deletes every key that starts with `prefix` (a whole queue's messages, say).
    DeletePrefix { prefix: Vec<u8> },
}

/// A record handed back during recovery, in the order it was committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayEvent<'a> {
    Put { key: &'a [u8], value: &'a [u8] },
    Delete { key: &'a [u8] },
    DeletePrefix { prefix: &'a [u8] },
}

pub type ReadFuture<'a> = Pin<Box<dyn Future<Output = StoreResult<Option<Vec<u8>>>> + Send + 'a>>;
pub type MaintainFuture<'a> = Pin<Box<dyn Future<Output = StoreResult<bool>> + Send + 'a>>;

/// The result of a commit: its place in the log is fixed; its durability is awaited.
#[must_use = "a commit is not acknowledged until `durable` resolves"]
pub struct Commit {
    waiter: Option<journal::DurableWaiter>,
}

impl Commit {
    pub fn ready() -> Self {
        Commit { waiter: None }
    }

    fn waiting(waiter: journal::DurableWaiter) -> Self {
        Commit { waiter: Some(waiter) }
    }

    /// Resolves once the commit is acknowledged under the store's durability mode.
    pub async fn durable(self) -> StoreResult<()> {
        match self.waiter {
            Some(w) => w.wait().await,
            None => Ok(()),
        }
    }
}

/// What the core needs from storage.
///
/// `commit` is synchronous so that callers can commit while holding their own lock,
/// making the log's order match the order in which they changed their state; they
/// then release the lock and await [`Commit::durable`] before answering a client.
pub trait Store: Send + Sync + 'static {
    fn commit(&self, ops: &[Op]) -> StoreResult<Commit>;
    /// The latest value of `key`, if the store keeps values.
    fn read<'a>(&'a self, key: &'a [u8]) -> ReadFuture<'a>;
    /// Whether values can be read back with [`Store::read`], so callers may drop their
    /// in-memory copies.
    fn keeps_values_on_disk(&self) -> bool;
    /// One round of background upkeep (compaction). Returns whether it did anything.
    fn maintain(&self) -> MaintainFuture<'_>;
    /// Flushes pending writes and stops background threads.
    fn close(&self);
}
