//! The Blob service: containers and block blobs, in domain terms.
//!
//! As in the queue service, each mutating operation changes the in-memory state and
//! commits the matching store ops while holding the container's lock (so the log's
//! order is the state's order), then releases the lock and awaits durability before
//! answering.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use lapis_store::{Commit, Op, Store, StoreError};
use md5::{Digest, Md5};
use parking_lot::{Mutex, RwLock};

use super::codec::{self, BlobRecord, ContainerRecord};
use super::error::{BlobError, BlobResult};
use super::limits::{check_blob_name, check_container_name, check_metadata, decode_md5, page_size, MAX_BLOB_BYTES};
use super::model::*;
use super::recovery::Recovery;
use super::state::{BlobEntry, ContainerState};
use crate::body::{Body, InlineBudget};
use crate::clock::{Clock, Millis};

type ContainerRef = Arc<Mutex<ContainerState>>;

/// How often Get Blob looks again when the content it is reading is replaced under it.
const READ_ATTEMPTS: usize = 8;

pub struct BlobService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    containers: RwLock<BTreeMap<(String, String), ContainerRef>>,
    /// Container and blob ids come from one sequence.
    next_id: AtomicU64,
    last_etag: AtomicU64,
    bodies: InlineBudget,
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
    let computed: [u8; 16] = Md5::digest(&blob.content).into();
    if let Some(given) = &blob.transactional_md5 {
        if decode_md5(given)? != computed {
            return Err(BlobError::Md5Mismatch { given: given.clone(), computed: B64.encode(computed) });
        }
    }
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

fn put_record(record: &BlobRecord) -> Op {
    Op::Put { key: codec::record_key(record.container_id, record.id), value: codec::encode_json(record) }
}

/// The ops that remove a blob's record and content.
fn delete_blob_ops(record: &BlobRecord) -> [Op; 2] {
    [
        Op::Delete { key: codec::record_key(record.container_id, record.id) },
        Op::Delete { key: codec::content_key(record.container_id, record.id) },
    ]
}

impl BlobService {
    /// A service with no containers.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> BlobService {
        let recovery = Recovery::new(store.keeps_values_on_disk());
        Self::recover(store, clock, recovery)
    }

    /// A service holding what `recovery` rebuilt from the store's replay.
    pub fn recover(store: Arc<dyn Store>, clock: Arc<dyn Clock>, recovery: Recovery) -> BlobService {
        let rebuilt = recovery.finish();
        let containers = rebuilt.containers.into_iter().map(|c| {
            let key = (c.record.account.clone(), c.record.name.clone());
            (key, Arc::new(Mutex::new(c)))
        });
        BlobService {
            clock,
            containers: RwLock::new(containers.collect()),
            next_id: AtomicU64::new(rebuilt.next_id),
            last_etag: AtomicU64::new(rebuilt.last_etag),
            bodies: InlineBudget::new(store.keeps_values_on_disk(), rebuilt.inline_budget_left),
            store,
        }
    }

    /// A fresh ETag and the time of the write it marks.
    fn stamp(&self) -> (Etag, Millis) {
        let now = self.clock.now_ms();
        let next = |last| Some(Etag::next(now, last).0);
        let previous = self.last_etag.fetch_update(Ordering::SeqCst, Ordering::SeqCst, next).unwrap_or_else(|v| v);
        (Etag::next(now, previous), now)
    }

    fn take_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::SeqCst)
    }

    /// Runs `f` on the live container `account`/`name`, holding its lock.
    fn with_container<T>(&self, account: &str, name: &str, f: impl FnOnce(&mut ContainerState) -> BlobResult<T>) -> BlobResult<T> {
        let container = self.containers.read().get(&(account.to_string(), name.to_string())).cloned();
        let container = container.ok_or(BlobError::ContainerNotFound)?;
        let mut c = container.lock();
        if c.deleted {
            return Err(BlobError::ContainerNotFound);
        }
        f(&mut c)
    }

    /// Runs a mutation that answers `T` and commits, then awaits its durability.
    async fn committed<T>(&self, change: BlobResult<(T, Commit)>) -> BlobResult<T> {
        let (answer, commit) = change?;
        commit.durable().await?;
        Ok(answer)
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
            std::mem::take(&mut c.blobs).values().for_each(|b| self.bodies.release(&b.body));
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
    /// metadata.
    pub async fn put_blob(&self, account: &str, container: &str, name: &str, mut blob: NewBlob, conditions: &Conditions) -> BlobResult<BlobInfo> {
        check_blob_name(name)?;
        check_metadata(&blob.metadata)?;
        if blob.content.len() > MAX_BLOB_BYTES {
            return Err(BlobError::BlobTooLarge { limit: MAX_BLOB_BYTES });
        }
        settle_md5(&mut blob)?;
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
                size: blob.content.len() as u64,
                settings: blob.settings,
                metadata: blob.metadata,
                etag: etag.0,
                created: existing.map_or(now, |e| e.record.created),
                last_modified: now,
            };
            let mut ops: Vec<Op> = existing.map(|e| delete_blob_ops(&e.record).into()).unwrap_or_default();
            ops.push(Op::Put { key: codec::content_key(record.container_id, record.id), value: blob.content.clone() });
            ops.push(put_record(&record));
            let commit = self.store.commit(&ops)?;
            let entry = BlobEntry { record, body: self.bodies.hold(blob.content) };
            let info = entry.info();
            if let Some(old) = c.blobs.insert(name.to_string(), entry) {
                self.bodies.release(&old.body);
            }
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

    /// Get Blob: the content (or the part `range` asks for) with its properties.
    pub async fn get_blob(&self, account: &str, container: &str, name: &str, conditions: &Conditions, range: Option<ByteRange>) -> BlobResult<BlobContent> {
        for _ in 0..READ_ATTEMPTS {
            let (entry, container_id) = self.readable(account, container, name, conditions)?;
            let range = resolve_range(range, entry.record.size)?;
            let content: Arc<[u8]> = match &entry.body {
                Body::Inline(bytes) => bytes.clone(),
                Body::Stored { .. } => match self.store.read(&codec::content_key(container_id, entry.record.id)).await? {
                    Some(bytes) => bytes.into(),
                    // Replaced or deleted since we looked: look again.
                    None => continue,
                },
            };
            return Ok(BlobContent { info: entry.info(), content, range });
        }
        Err(BlobError::Store(StoreError::Malformed { context: "get blob", detail: format!("the content of {name:?} kept changing while it was read") }))
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

    pub async fn delete_blob(&self, account: &str, container: &str, name: &str, conditions: &Conditions) -> BlobResult<()> {
        let change = self.with_container(account, container, |c| {
            let entry = c.blobs.get(name).ok_or(BlobError::BlobNotFound)?;
            conditions.check_write(Some(entry.current()))?;
            let commit = self.store.commit(&delete_blob_ops(&entry.record))?;
            if let Some(old) = c.blobs.remove(name) {
                self.bodies.release(&old.body);
            }
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
