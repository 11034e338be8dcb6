//! Where a committed blob's bytes are: one value (Put Blob), or a list of committed
//! blocks (Put Block List), each in memory while the inline budget lasts and read
//! back from the store otherwise. Also the store ops that remove a blob's content.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use lapis_store::Op;

use super::codec::{self, BlobRecord};
use super::model::ListedBlock;
use crate::body::{Body, InlineBudget};

/// One block of a committed block list.
#[derive(Debug, Clone)]
pub struct CommittedBlock {
    pub id: Vec<u8>,
    /// Names the block's content key ([`codec::block_key`]).
    pub seq: u64,
    pub size: u64,
    pub body: Body,
}

/// A committed block list, with where each block ends in the blob.
#[derive(Debug, Default)]
pub struct BlockSeq {
    blocks: Vec<CommittedBlock>,
    /// `ends[i]`: the blob offset just past block `i`.
    ends: Vec<u64>,
}

impl BlockSeq {
    pub fn new(blocks: Vec<CommittedBlock>) -> BlockSeq {
        let ends = blocks
            .iter()
            .scan(0u64, |at, b| {
                *at = at.saturating_add(b.size);
                Some(*at)
            })
            .collect();
        BlockSeq { blocks, ends }
    }

    pub fn blocks(&self) -> &[CommittedBlock] {
        &self.blocks
    }

    pub fn size(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }

    /// The blocks holding the blob's bytes `start..=end`, each with the part of it
    /// that falls in that range, in order.
    pub fn pieces(&self, start: u64, end: u64) -> Vec<(&CommittedBlock, Range<usize>)> {
        let first = self.ends.partition_point(|&e| e <= start);
        let mut out = Vec::new();
        for (block, &block_end) in self.blocks.iter().zip(&self.ends).skip(first) {
            let block_start = block_end - block.size;
            if block_start > end {
                break;
            }
            let from = start.max(block_start) - block_start;
            let to = end.saturating_add(1).min(block_end) - block_start;
            if to > from {
                out.push((block, from as usize..to as usize));
            }
        }
        out
    }

    /// The blocks by id (the first, should an id be listed twice).
    pub fn by_id(&self) -> HashMap<&[u8], &CommittedBlock> {
        let mut map = HashMap::with_capacity(self.blocks.len());
        for b in &self.blocks {
            map.entry(b.id.as_slice()).or_insert(b);
        }
        map
    }

    pub fn listing(&self) -> Vec<ListedBlock> {
        self.blocks.iter().map(|b| ListedBlock { id: b.id.clone(), size: b.size }).collect()
    }

    /// Each distinct block once (a list may name one block several times).
    fn distinct(&self) -> impl Iterator<Item = &CommittedBlock> {
        let mut seen = HashSet::new();
        self.blocks.iter().filter(move |b| seen.insert(b.seq))
    }
}

/// Where a committed blob's bytes are.
#[derive(Debug, Clone)]
pub enum Content {
    /// One value under the blob's [`codec::content_key`].
    Whole(Body),
    /// Committed blocks, in order; the list is under the blob's [`codec::list_key`].
    Blocks(Arc<BlockSeq>),
}

impl Content {
    pub fn blocks(&self) -> Option<&BlockSeq> {
        match self {
            Content::Whole(_) => None,
            Content::Blocks(b) => Some(b),
        }
    }

    /// The ops that remove the content of `record` (but not the record), leaving the
    /// blocks whose sequence numbers are in `keep` (committed again elsewhere).
    pub fn delete_ops(&self, record: &BlobRecord, keep: &HashSet<u64>) -> Vec<Op> {
        let cid = record.container_id;
        match self {
            Content::Whole(_) => vec![Op::Delete { key: codec::content_key(cid, record.id) }],
            Content::Blocks(blocks) => std::iter::once(Op::Delete { key: codec::list_key(cid, record.id) })
                .chain(blocks.distinct().filter(|b| !keep.contains(&b.seq)).map(|b| Op::Delete { key: codec::block_key(cid, b.seq) }))
                .collect(),
        }
    }

    /// Returns the memory of the content's inline parts to `budget`, but for the
    /// blocks in `keep`.
    pub fn release(&self, budget: &InlineBudget, keep: &HashSet<u64>) {
        match self {
            Content::Whole(body) => budget.release(body),
            Content::Blocks(blocks) => blocks.distinct().filter(|b| !keep.contains(&b.seq)).for_each(|b| budget.release(&b.body)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(sizes: &[u64]) -> BlockSeq {
        let blocks = sizes.iter().enumerate().map(|(i, &size)| CommittedBlock { id: vec![i as u8], seq: i as u64, size, body: Body::Stored { len: size as u32 } });
        BlockSeq::new(blocks.collect())
    }

    fn spans(s: &BlockSeq, start: u64, end: u64) -> Vec<(u64, Range<usize>)> {
        s.pieces(start, end).into_iter().map(|(b, r)| (b.seq, r)).collect()
    }

    #[test]
    fn ranges_map_onto_the_blocks_that_hold_them() {
        let s = seq(&[4, 0, 4, 2]);
        assert_eq!(s.size(), 10);
        assert_eq!(spans(&s, 0, 9), [(0, 0..4), (2, 0..4), (3, 0..2)], "empty blocks hold nothing");
        assert_eq!(spans(&s, 3, 4), [(0, 3..4), (2, 0..1)]);
        assert_eq!(spans(&s, 4, 7), [(2, 0..4)]);
        assert_eq!(spans(&s, 9, 100), [(3, 1..2)]);
        assert_eq!(spans(&s, 10, 20), []);
        assert!(seq(&[]).pieces(0, 0).is_empty());
    }

    #[test]
    fn content_ops_keep_what_is_committed_again() {
        let record = BlobRecord {
            id: 50,
            container_id: 1,
            name: "b".into(),
            size: 8,
            settings: Default::default(),
            metadata: vec![],
            etag: 1,
            created: 0,
            last_modified: 0,
            blocks: true,
        };
        let mut blocks = seq(&[4, 4]).blocks().to_vec();
        blocks.push(blocks[0].clone());
        let content = Content::Blocks(Arc::new(BlockSeq::new(blocks)));
        let keys = |ops: Vec<Op>| ops.into_iter().map(|op| if let Op::Delete { key } = op { key } else { panic!("{op:?}") }).collect::<Vec<_>>();
        assert_eq!(keys(content.delete_ops(&record, &HashSet::new())), [codec::list_key(1, 50), codec::block_key(1, 0), codec::block_key(1, 1)]);
        assert_eq!(keys(content.delete_ops(&record, &HashSet::from([0]))), [codec::list_key(1, 50), codec::block_key(1, 1)]);
        assert_eq!(keys(Content::Whole(Body::Stored { len: 0 }).delete_ops(&record, &HashSet::new())), [codec::content_key(1, 50)]);
    }
}
