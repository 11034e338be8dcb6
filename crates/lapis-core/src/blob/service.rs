//! The Blob service: containers and block blobs, in domain terms.
//!
//! As in the queue service, each mutating operation changes the in-memory state and
//! commits the matching store ops while holding the container's lock (so the log's
//! order is the state's order), then releases the lock and awaits durability before
//! answering. Block operations are in [`super::block_ops`].

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use lapis_store::{Commit, Op, Store, StoreError};
use parking_lot::{Mutex, RwLock};

use super::codec::{self, BlobRecord, ContainerRecord};
use super::error::{BlobError, BlobResult};
use super::content::{BlockSeq, Content};
use super::limits::{check_blob_name, check_container_name, check_metadata, content_md5, decode_md5, page_size, MAX_PUT_BLOB_BYTES};
use super::model::*;
use super::recovery::Recovery;
use super::state::{BlobEntry, ContainerState};
use crate::body::{Body, InlineBudget};
use crate::clock::{Clock, Millis};

pub(super) type ContainerRef = Arc<Mutex<ContainerState>>;

/// How often Get Blob looks again when the content it is reading is replaced under it.
const READ_ATTEMPTS: usize = 8;

pub struct BlobService {
    pub(super) store: Arc<dyn Store>,
    pub(super) clock: Arc<dyn Clock>,
    containers: RwLock<BTreeMap<(String, String), ContainerRef>>,
    /// Container and blob ids and block sequence numbers come from one sequence.
    next_id: AtomicU64,
    last_etag: AtomicU64,
    pub(super) bodies: InlineBudget,
}

/// The inclusive range of a blob of `size` bytes that `range` asks for.
fn resolve_range(range: Option<ByteRange>, size: u64) -> BlobResult<Option<(u64, u64)>> {
    let Some(r) = range else { return Ok(None) };
    if r.start >= size || r.end.is_some_and(|end| end < r.start) {
        return Err(BlobError::InvalidRange { size });
    }
    Ok(Some((r.start, r.end.map_or(size - 1, |end| end.min(size - 1)))))
}

/// Checks the request's MD5 against the content and fills in the stored one.
fn settle_md5(blob: &mut NewBlob) -> BlobResult<()> {
    let computed = content_md5(&blob.content, blob.transactional_md5.as_deref())?;
    match &blob.settings.content_md5 {
        Some(stored) => {
            decode_md5(stored)?;
        }
        None => blob.settings.content_md5 = Some(B64.encode(computed)),
    }
    Ok(())
}

fn put_container(record: &ContainerRecord) -> Op {
    Op::Put { key: codec::container_key(&record.account, &record.name), value: codec::encode_json(record) }
}

pub(super) fn put_record(record: &BlobRecord) -> Op {
    Op::Put { key: codec::record_key(record.container_id, record.id), value: codec::encode_json(record) }
}

/// The value of a put op, given back after its commit so it need not be copied.
pub(super) fn value_of(op: Option<Op>) -> Vec<u8> {
    match op {
        Some(Op::Put { value, .. }) => value,
        _ => Vec::new(),
    }
}

/// The ops that remove blob `name` (record and content) and discard its uncommitted
/// blocks, but for the blocks in `keep`.
pub(super) fn removal_ops(c: &ContainerState, name: &str, keep: &HashSet<u64>) -> Vec<Op> {
    let mut ops = Vec::new();
    if let Some(e) = c.blobs.get(name) {
        ops.push(Op::Delete { key: codec::record_key(e.record.container_id, e.record.id) });
        ops.extend(e.content.delete_ops(&e.record, keep));
    }
    if let Some(u) = c.staged.get(name) {
        ops.extend(u.discard_ops(c.record.id, keep));
    }
    ops
}

impl BlobService {
    /// A service with no containers.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> BlobService {
        let recovery = Recovery::new(store.keeps_values_on_disk());
        Self::recover(store, clock, recovery)
    }

    /// A service holding what `recovery` rebuilt from the store's replay.
    /// Uncommitted blocks past their week, and keys nothing refers to, are deleted.
    pub fn recover(store: Arc<dyn Store>, clock: Arc<dyn Clock>, recovery: Recovery) -> BlobService {
        let mut rebuilt = recovery.finish();
        let bodies = InlineBudget::new(store.keeps_values_on_disk(), rebuilt.inline_budget_left);
        let now = clock.now_ms();
        let mut ops: Vec<Op> = std::mem::take(&mut rebuilt.strays).into_iter().map(|key| Op::Delete { key }).collect();
        let none = HashSet::new();
        for c in &mut rebuilt.containers {
            let expired: Vec<String> = c.staged.iter().filter(|(_, u)| u.expired(now)).map(|(name, _)| name.clone()).collect();
            for u in expired.iter().filter_map(|name| c.staged.remove(name)) {
                ops.extend(u.discard_ops(c.record.id, &none));
                u.release(&bodies, &none);
            }
        }
        // Nobody waits on this commit: should it be lost, the next start does it again.
        if let Err(e) = store.commit(&ops).map(drop) {
            tracing::warn!(error = %e, "blob recovery: could not delete expired or stray blob keys");
        }
        let containers = rebuilt.containers.into_iter().map(|c| {
            let key = (c.record.account.clone(), c.record.name.clone());
            (key, Arc::new(Mutex::new(c)))
        });
        BlobService {
            clock,
            containers: RwLock::new(containers.collect()),
            next_id: AtomicU64::new(rebuilt.next_id),
            last_etag: AtomicU64::new(rebuilt.last_etag),
            bodies,
            store,
        }
    }

    /// A fresh ETag and the time of the write it marks.
    pub(super) fn stamp(&self) -> (Etag, Millis) {
        let now = self.clock.now_ms();
        let next = |last| Some(Etag::next(now, last).0);
        let previous = self.last_etag.fetch_update(Ordering::SeqCst, Ordering::SeqCst, next).unwrap_or_else(|v| v);
        (Etag::next(now, previous), now)
    }

    pub(super) fn take_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::SeqCst)
    }

    /// Runs `f` on the live container `account`/`name`, holding its lock.
    pub(super) fn with_container_as<T, E: From<BlobError>>(
        &self,
        account: &str,
        name: &str,
        f: impl FnOnce(&mut ContainerState) -> Result<T, E>,
    ) -> Result<T, E> {
        let container = self.containers.read().get(&(account.to_string(), name.to_string())).cloned();
        let container = container.ok_or(BlobError::ContainerNotFound)?;
        let mut c = container.lock();
        if c.deleted {
            return Err(BlobError::ContainerNotFound.into());
        }
        f(&mut c)
    }

    pub(super) fn with_container<T>(&self, account: &str, name: &str, f: impl FnOnce(&mut ContainerState) -> BlobResult<T>) -> BlobResult<T> {
        self.with_container_as(account, name, f)
    }

    /// Runs a mutation that answers `T` and commits, then awaits its durability.
    pub(super) async fn committed<T, E: From<BlobError>>(&self, change: Result<(T, Commit), E>) -> Result<T, E> {
        let (answer, commit) = change?;
        commit.durable().await.map_err(|e| E::from(BlobError::Store(e)))?;
        Ok(answer)
    }

    /// After [`removal_ops`] for `name` committed: puts `entry` in place of the blob
    /// (or removes it) and drops its uncommitted blocks, returning their memory but for
    /// the blocks in `keep`.
    pub(super) fn replace_entry(&self, c: &mut ContainerState, name: &str, entry: Option<BlobEntry>, keep: &HashSet<u64>) {
        let old = match entry {
            Some(e) => c.blobs.insert(name.to_string(), e),
            None => c.blobs.remove(name),
        };
        if let Some(old) = old {
            old.content.release(&self.bodies, keep);
        }
        if let Some(u) = c.staged.remove(name) {
            u.release(&self.bodies, keep);
        }
    }

    // ---- containers ---------------------------------------------------------------

    pub async fn create_container(&self, account: &str, name: &str, metadata: Metadata, public_access: Option<String>) -> BlobResult<ContainerInfo> {
        check_container_name(name)?;
        check_metadata(&metadata)?;
        let change = (|| {
            let mut containers = self.containers.write();
            let key = (account.to_string(), name.to_string());
            if containers.contains_key(&key) {
                return Err(BlobError::ContainerAlreadyExists);
            }
            let (etag, now) = self.stamp();
            let record = ContainerRecord {
                id: self.take_id(),
                account: account.to_string(),
                name: name.to_string(),
                metadata,
                etag: etag.0,
                last_modified: now,
                public_access,
            };
            let commit = self.store.commit(&[put_container(&record)])?;
            let info = record.info();
            containers.insert(key, Arc::new(Mutex::new(ContainerState::new(record))));
            Ok((info, commit))
        })();
        self.committed(change).await
    }

    /// Deletes a container with all its blobs.
    pub async fn delete_container(&self, account: &str, name: &str, conditions: &Conditions) -> BlobResult<()> {
        let change = (|| {
            let mut containers = self.containers.write();
            let key = (account.to_string(), name.to_string());
            let container = containers.get(&key).cloned().ok_or(BlobError::ContainerNotFound)?;
            let mut c = container.lock();
            conditions.check_write(Some(c.record.current()))?;
            let ops = [
                Op::Delete { key: codec::container_key(account, name) },
                Op::DeletePrefix { prefix: codec::blobs_prefix(c.record.id) },
            ];
            let commit = self.store.commit(&ops)?;
            let none = HashSet::new();
            std::mem::take(&mut c.blobs).values().for_each(|b| b.content.release(&self.bodies, &none));
            std::mem::take(&mut c.staged).values().for_each(|u| u.release(&self.bodies, &none));
            c.deleted = true;
            containers.remove(&key);
            Ok(((), commit))
        })();
        self.committed(change).await
    }

    pub fn container_properties(&self, account: &str, name: &str) -> BlobResult<ContainerInfo> {
        self.with_container(account, name, |c| Ok(c.record.info()))
    }

    /// Replaces a container's metadata.
    pub async fn set_container_metadata(&self, account: &str, name: &str, metadata: Metadata, conditions: &Conditions) -> BlobResult<ContainerInfo> {
        check_metadata(&metadata)?;
        let change = self.with_container(account, name, |c| {
            conditions.check_write(Some(c.record.current()))?;
            let (etag, now) = self.stamp();
            let record = ContainerRecord { metadata, etag: etag.0, last_modified: now, ..c.record.clone() };
            let commit = self.store.commit(&[put_container(&record)])?;
            c.record = record;
            Ok((c.record.info(), commit))
        });
        self.committed(change).await
    }

    /// Containers of `account` whose names start with `prefix`, in name order, from
    /// `marker` (the first name of the page) on.
    pub fn list_containers(&self, account: &str, prefix: &str, marker: Option<&str>, max_results: Option<i64>) -> BlobResult<ContainerPage> {
        let max = page_size(max_results)?;
        let containers = self.containers.read();
        let (containers, next_marker) = crate::storage_rules::page(&containers, account, prefix, marker, max, |_, c| c.lock().record.info());
        Ok(ContainerPage { containers, next_marker })
    }

    // ---- blobs --------------------------------------------------------------------

    /// Put Blob: creates or replaces a block blob with its content, properties and
    /// metadata. Uncommitted blocks of the name are discarded.
    pub async fn put_blob(&self, account: &str, container: &str, name: &str, mut blob: NewBlob, conditions: &Conditions) -> BlobResult<BlobInfo> {
        check_blob_name(name)?;
        check_metadata(&blob.metadata)?;
        if blob.content.len() > MAX_PUT_BLOB_BYTES {
            return Err(BlobError::BlobTooLarge { limit: MAX_PUT_BLOB_BYTES });
        }
        settle_md5(&mut blob)?;
        let NewBlob { content, settings, metadata, .. } = blob;
        let change = self.with_container(account, container, |c| {
            let existing = c.blobs.get(name);
            if existing.is_some() && conditions.if_absent() {
                return Err(BlobError::BlobAlreadyExists);
            }
            conditions.check_write(existing.map(BlobEntry::current))?;
            let (etag, now) = self.stamp();
            let record = BlobRecord {
                id: self.take_id(),
                container_id: c.record.id,
                name: name.to_string(),
                size: content.len() as u64,
                settings,
                metadata,
                etag: etag.0,
                created: existing.map_or(now, |e| e.record.created),
                last_modified: now,
                blocks: false,
            };
            let none = HashSet::new();
            let mut ops = removal_ops(c, name, &none);
            ops.push(put_record(&record));
            ops.push(Op::Put { key: codec::content_key(record.container_id, record.id), value: content });
            let commit = self.store.commit(&ops)?;
            let entry = BlobEntry { record, content: Content::Whole(self.bodies.hold(value_of(ops.pop()))) };
            let info = entry.info();
            self.replace_entry(c, name, Some(entry), &none);
            Ok((info, commit))
        });
        self.committed(change).await
    }

    /// The blob's current entry after `conditions` pass, and its container's id.
    fn readable(&self, account: &str, container: &str, name: &str, conditions: &Conditions) -> BlobResult<(BlobEntry, u64)> {
        self.with_container(account, container, |c| {
            let entry = c.blobs.get(name).ok_or(BlobError::BlobNotFound)?;
            conditions.check_read(entry.current())?;
            Ok((entry.clone(), c.record.id))
        })
    }

    /// Get Blob: the content (or the part `range` asks for) with its properties. Of a
    /// blob of blocks only the blocks holding the range are read.
    pub async fn get_blob(&self, account: &str, container: &str, name: &str, conditions: &Conditions, range: Option<ByteRange>) -> BlobResult<BlobContent> {
        for _ in 0..READ_ATTEMPTS {
            let (entry, container_id) = self.readable(account, container, name, conditions)?;
            let range = resolve_range(range, entry.record.size)?;
            let read = match &entry.content {
                Content::Whole(Body::Inline(bytes)) => Some((ReadBytes::Shared(bytes.clone()), 0)),
                Content::Whole(Body::Stored { .. }) => {
                    self.store.read(&codec::content_key(container_id, entry.record.id)).await?.map(|bytes| (ReadBytes::Read(bytes), 0))
                }
                Content::Blocks(blocks) => {
                    let (start, end) = range.unwrap_or((0, entry.record.size.saturating_sub(1)));
                    self.read_blocks(container_id, blocks, start, end).await?.map(|bytes| (ReadBytes::Read(bytes), start))
                }
            };
            // None: replaced or deleted since we looked, so look again.
            if let Some((content, offset)) = read {
                return Ok(BlobContent { info: entry.info(), content, offset, range });
            }
        }
        Err(BlobError::Store(StoreError::Malformed { context: "get blob", detail: format!("the content of {name:?} kept changing while it was read") }))
    }

    /// The bytes `start..=end` of a blob of `blocks`; `None` if a block is gone from the
    /// store (the blob was replaced).
    async fn read_blocks(&self, container_id: u64, blocks: &BlockSeq, start: u64, end: u64) -> BlobResult<Option<Vec<u8>>> {
        let malformed = || BlobError::Store(StoreError::Malformed { context: "get blob", detail: "a block is shorter than its list says".into() });
        let mut out = Vec::with_capacity(end.saturating_sub(start).saturating_add(1).min(blocks.size()) as usize);
        for (block, part) in blocks.pieces(start, end) {
            match &block.body {
                Body::Inline(bytes) => out.extend_from_slice(bytes.get(part).ok_or_else(malformed)?),
                Body::Stored { .. } => match self.store.read(&codec::block_key(container_id, block.seq)).await? {
                    Some(bytes) => out.extend_from_slice(bytes.get(part).ok_or_else(malformed)?),
                    None => return Ok(None),
                },
            }
        }
        Ok(Some(out))
    }

    /// Get Blob Properties: everything but the content.
    pub fn blob_properties(&self, account: &str, container: &str, name: &str, conditions: &Conditions) -> BlobResult<BlobInfo> {
        Ok(self.readable(account, container, name, conditions)?.0.info())
    }

    /// Replaces a blob's metadata; its content and properties stay.
    pub async fn set_blob_metadata(&self, account: &str, container: &str, name: &str, metadata: Metadata, conditions: &Conditions) -> BlobResult<BlobInfo> {
        check_metadata(&metadata)?;
        let change = self.with_container(account, container, |c| {
            let entry = c.blobs.get_mut(name).ok_or(BlobError::BlobNotFound)?;
            conditions.check_write(Some(entry.current()))?;
            let (etag, now) = self.stamp();
            let record = BlobRecord { metadata, etag: etag.0, last_modified: now, ..entry.record.clone() };
            let commit = self.store.commit(&[put_record(&record)])?;
            entry.record = record;
            Ok((entry.info(), commit))
        });
        self.committed(change).await
    }

    /// Deletes a blob with its content and uncommitted blocks.
    pub async fn delete_blob(&self, account: &str, container: &str, name: &str, conditions: &Conditions) -> BlobResult<()> {
        let change = self.with_container(account, container, |c| {
            let entry = c.blobs.get(name).ok_or(BlobError::BlobNotFound)?;
            conditions.check_write(Some(entry.current()))?;
            let none = HashSet::new();
            let commit = self.store.commit(&removal_ops(c, name, &none))?;
            self.replace_entry(c, name, None, &none);
            Ok(((), commit))
        });
        self.committed(change).await
    }

    /// A page of List Blobs.
    pub fn list_blobs(&self, account: &str, container: &str, query: &ListBlobs<'_>) -> BlobResult<BlobPage> {
        let max = page_size(query.max_results)?;
        self.with_container(account, container, |c| Ok(c.list(query, max)))
    }
}
