//! The uncommitted blocks of one blob name: staged by Put Block, taken into the blob
//! or discarded by Put Block List, discarded by Put Blob and Delete Blob, and
//! discarded a week after the last block was staged, as Azure collects them.

use std::collections::{HashMap, HashSet};

use lapis_store::Op;

use super::codec;
use super::limits::UNCOMMITTED_BLOCK_TTL_MS;
use super::model::ListedBlock;
use crate::body::{Body, InlineBudget};
use crate::clock::Millis;

#[derive(Debug, Clone)]
pub struct UncommittedBlock {
    /// Names the block's content key ([`codec::block_key`]) and its record
    /// ([`codec::staged_key`]); staging order is sequence order.
    pub seq: u64,
    pub size: u64,
    pub body: Body,
}

/// The uncommitted blocks of one blob name, by id.
#[derive(Debug, Default)]
pub struct Uncommitted {
    pub blocks: HashMap<Vec<u8>, UncommittedBlock>,
    /// When a block was last staged.
    pub last_staged: Millis,
}

impl Uncommitted {
    /// Whether the blocks are past their week and count as gone.
    pub fn expired(&self, now: Millis) -> bool {
        now.saturating_sub(self.last_staged) > UNCOMMITTED_BLOCK_TTL_MS
    }

    /// The length every id of this blob must have, once one block is staged.
    pub fn id_len(&self) -> Option<usize> {
        self.blocks.keys().next().map(Vec::len)
    }

    /// The blocks in the order they were staged.
    pub fn listing(&self) -> Vec<ListedBlock> {
        let mut blocks: Vec<_> = self.blocks.iter().collect();
        blocks.sort_by_key(|(_, b)| b.seq);
        blocks.into_iter().map(|(id, b)| ListedBlock { id: id.clone(), size: b.size }).collect()
    }

    /// The ops that discard every block, but for the content of those in `keep`
    /// (committed by the same write).
    pub fn discard_ops(&self, container_id: u64, keep: &HashSet<u64>) -> Vec<Op> {
        let mut ops = Vec::with_capacity(self.blocks.len() * 2);
        for b in self.blocks.values() {
            ops.push(Op::Delete { key: codec::staged_key(container_id, b.seq) });
            if !keep.contains(&b.seq) {
                ops.push(Op::Delete { key: codec::block_key(container_id, b.seq) });
            }
        }
        ops
    }

    /// Returns the inline memory of the blocks not in `keep` to `budget`.
    pub fn release(&self, budget: &InlineBudget, keep: &HashSet<u64>) {
        self.blocks.values().filter(|b| !keep.contains(&b.seq)).for_each(|b| budget.release(&b.body));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_in_staging_order_and_expires_after_a_week() {
        let mut u = Uncommitted { last_staged: 1000, ..Default::default() };
        for (id, seq) in [(b"bb", 9u64), (b"aa", 3), (b"cc", 12)] {
            u.blocks.insert(id.to_vec(), UncommittedBlock { seq, size: seq, body: Body::Stored { len: 0 } });
        }
        let ids: Vec<_> = u.listing().into_iter().map(|b| b.id).collect();
        assert_eq!(ids, [b"aa".to_vec(), b"bb".to_vec(), b"cc".to_vec()]);
        assert_eq!(u.id_len(), Some(2));
        assert!(!u.expired(1000 + UNCOMMITTED_BLOCK_TTL_MS));
        assert!(u.expired(1001 + UNCOMMITTED_BLOCK_TTL_MS));
        assert_eq!(u.discard_ops(1, &HashSet::from([3])).len(), 5, "a kept block loses its record, not its content");
    }
}
