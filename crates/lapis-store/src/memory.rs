//! The store behind `--in-memory`: it keeps nothing, because the core already holds all
//! state in memory and a process without a data directory promises no durability.

use crate::error::StoreResult;
use crate::{Commit, Op, Store};

/// A store that acknowledges every commit at once and remembers nothing.
#[derive(Debug, Default)]
pub struct MemoryStore;

impl Store for MemoryStore {
    fn commit(&self, _ops: &[Op]) -> StoreResult<Commit> {
        Ok(Commit::ready())
    }

    fn read<'a>(&'a self, _key: &'a [u8]) -> crate::ReadFuture<'a> {
        Box::pin(async { Ok(None) })
    }

    fn keeps_values_on_disk(&self) -> bool {
        false
    }

    fn maintain(&self) -> crate::MaintainFuture<'_> {
        Box::pin(async { Ok(false) })
    }

    fn close(&self) {}
}
