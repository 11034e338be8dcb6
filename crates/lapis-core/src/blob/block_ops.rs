//! Put Block, Put Block List and Get Block List: staging blocks for a blob and
//! committing a list of them as its content, with Azure's rules.
//!
//! A staged block is one commit: its content and a record naming its blob. Committing
//! a list writes the blob's record and block list and removes the records of the
//! blocks it took (their content stays where it is) and everything else the blob no
//! longer uses: its previous content and the uncommitted blocks not listed. Each
//! operation answers once its commit is durable.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use lapis_store::Op;

use super::codec::{self, BlobRecord, StagedRecord};
use super::content::{BlockSeq, CommittedBlock, Content};
use super::error::{BlobError, BlobResult, BlockError, BlockResult};
use super::limits::{self, check_blob_name, check_metadata, decode_md5};
use super::model::*;
use super::service::{put_record, removal_ops, value_of, BlobService};
use super::staging::{Uncommitted, UncommittedBlock};
use super::state::BlobEntry;

/// Where [`BlobService::put_block_list`] finds one listed block: among the blob's
/// (unexpired) uncommitted blocks, its committed ones (by id), or first the one then
/// the other.
fn resolve(staged: Option<&Uncommitted>, committed: &HashMap<&[u8], &CommittedBlock>, wanted: &BlockRef) -> Option<CommittedBlock> {
    let id = wanted.id();
    let uncommitted = || staged?.blocks.get(id).map(|b| CommittedBlock { id: id.to_vec(), seq: b.seq, size: b.size, body: b.body.clone() });
    let committed = || committed.get(id).map(|b| (*b).clone());
    match wanted {
        BlockRef::Uncommitted(_) => uncommitted(),
        BlockRef::Committed(_) => committed(),
        BlockRef::Latest(_) => uncommitted().or_else(committed),
    }
}

impl BlobService {
    /// Put Block: stages a block for blob `name` (which need not exist). Staging an id
    /// again replaces its block. The blob itself is not changed.
    pub async fn put_block(&self, account: &str, container: &str, name: &str, block: NewBlock) -> BlockResult<StagedBlockInfo> {
        check_blob_name(name)?;
        limits::check_block_id(&block.id).map_err(|_| BlockError::InvalidBlockId)?;
        if block.content.len() > limits::MAX_BLOCK_BYTES {
            return Err(BlobError::BlobTooLarge { limit: limits::MAX_BLOCK_BYTES }.into());
        }
        let md5 = B64.encode(limits::content_md5(&block.content, block.transactional_md5.as_deref())?);
        let NewBlock { id, content, .. } = block;
        let change = self.with_container_as(account, container, |c| -> BlockResult<_> {
            let now = self.clock.now_ms();
            let expired = c.staged.get(name).is_some_and(|u| u.expired(now));
            let live = c.staged.get(name).filter(|_| !expired);
            if live.and_then(|u| u.id_len()).is_some_and(|len| len != id.len()) {
                return Err(BlockError::InvalidBlobOrBlock);
            }
            let replaced = live.and_then(|u| u.blocks.get(&id));
            let others = live.map_or(0, |u| u.blocks.len()) - usize::from(replaced.is_some());
            if others >= limits::MAX_UNCOMMITTED_BLOCKS {
                return Err(BlockError::UncommittedBlockCountExceedsLimit);
            }
            let cid = c.record.id;
            let mut ops = match (expired, replaced) {
                (true, _) => c.staged.get(name).map(|u| u.discard_ops(cid, &HashSet::new())).unwrap_or_default(),
                (false, Some(old)) => vec![Op::Delete { key: codec::staged_key(cid, old.seq) }, Op::Delete { key: codec::block_key(cid, old.seq) }],
                (false, None) => Vec::new(),
            };
            let seq = self.take_id();
            let size = content.len() as u64;
            let record = StagedRecord { name: name.to_string(), id: B64.encode(&id), size, staged: now };
            ops.push(Op::Put { key: codec::staged_key(cid, seq), value: codec::encode_json(&record) });
            ops.push(Op::Put { key: codec::block_key(cid, seq), value: content });
            let commit = self.store.commit(&ops)?;
            if expired {
                if let Some(u) = c.staged.remove(name) {
                    u.release(&self.bodies, &HashSet::new());
                }
            }
            let u = c.staged.entry(name.to_string()).or_default();
            u.last_staged = now;
            let block = UncommittedBlock { seq, size, body: self.bodies.hold(value_of(ops.pop())) };
            if let Some(old) = u.blocks.insert(id, block) {
                self.bodies.release(&old.body);
            }
            Ok((StagedBlockInfo { content_md5: md5 }, commit))
        });
        self.committed(change).await
    }

    /// Put Block List: makes blob `name` the listed blocks, in order, with the given
    /// properties and metadata, under `conditions` as Put Blob. Uncommitted blocks not
    /// listed are discarded, as are committed blocks the new list leaves out.
    pub async fn put_block_list(&self, account: &str, container: &str, name: &str, list: NewBlockList, conditions: &Conditions) -> BlockResult<BlobInfo> {
        check_blob_name(name)?;
        check_metadata(&list.metadata)?;
        if list.blocks.len() > limits::MAX_COMMITTED_BLOCKS {
            return Err(BlockError::BlockListTooLong);
        }
        if let Some(first) = list.blocks.first() {
            let len = first.id().len();
            if list.blocks.iter().any(|b| b.id().len() != len || limits::check_block_id(b.id()).is_err()) {
                return Err(BlockError::InvalidBlockId);
            }
        }
        if let Some(md5) = &list.settings.content_md5 {
            decode_md5(md5)?;
        }
        let NewBlockList { blocks: wanted, settings, metadata } = list;
        let change = self.with_container_as(account, container, |c| -> BlockResult<_> {
            let existing = c.blobs.get(name);
            if existing.is_some() && conditions.if_absent() {
                return Err(BlobError::BlobAlreadyExists.into());
            }
            conditions.check_write(existing.map(BlobEntry::current))?;
            let now = self.clock.now_ms();
            let staged = c.staged.get(name).filter(|u| !u.expired(now));
            let committed = existing.and_then(|e| e.content.blocks()).map(BlockSeq::by_id).unwrap_or_default();
            let chosen: Option<Vec<CommittedBlock>> = wanted.iter().map(|w| resolve(staged, &committed, w)).collect();
            let blocks = BlockSeq::new(chosen.ok_or(BlockError::InvalidBlockList)?);
            if blocks.size() > limits::MAX_BLOB_BYTES {
                return Err(BlobError::BlobTooLarge { limit: limits::MAX_BLOB_BYTES as usize }.into());
            }
            let keep: HashSet<u64> = blocks.blocks().iter().map(|b| b.seq).collect();
            let (etag, stamped) = self.stamp();
            let record = BlobRecord {
                id: self.take_id(),
                container_id: c.record.id,
                name: name.to_string(),
                size: blocks.size(),
                settings,
                metadata,
                etag: etag.0,
                created: existing.map_or(stamped, |e| e.record.created),
                last_modified: stamped,
                blocks: true,
            };
            let mut ops = removal_ops(c, name, &keep);
            let listed = blocks.blocks().iter().map(|b| (b.id.as_slice(), b.seq, b.size));
            ops.push(Op::Put { key: codec::list_key(record.container_id, record.id), value: codec::encode_list(listed) });
            ops.push(put_record(&record));
            let commit = self.store.commit(&ops)?;
            let entry = BlobEntry { record, content: Content::Blocks(Arc::new(blocks)) };
            let info = entry.info();
            self.replace_entry(c, name, Some(entry), &keep);
            Ok((info, commit))
        });
        self.committed(change).await
    }

    /// Get Block List: the blob's committed blocks, its uncommitted ones, or both. A
    /// name with uncommitted blocks only is found (with no blob).
    pub fn get_block_list(&self, account: &str, container: &str, name: &str, which: BlockListType) -> BlobResult<BlockListing> {
        check_blob_name(name)?;
        self.with_container(account, container, |c| {
            let now = self.clock.now_ms();
            let entry = c.blobs.get(name);
            let staged = c.staged.get(name).filter(|u| !u.expired(now));
            if entry.is_none() && staged.is_none() {
                return Err(BlobError::BlobNotFound);
            }
            let committed = which.committed().then(|| entry.and_then(|e| e.content.blocks()).map(BlockSeq::listing).unwrap_or_default());
            let uncommitted = which.uncommitted().then(|| staged.map(|u| u.listing()).unwrap_or_default());
            Ok(BlockListing { blob: entry.map(BlobEntry::info), committed, uncommitted })
        })
    }
}
