//! The journal: an append-only, checksummed, segmented log with group commit.
//!
//! Appending is synchronous and cheap: under one lock the record is framed into a
//! pending buffer and given its final position, so callers can order their own state
//! changes exactly as the log orders them. A dedicated writer thread takes everything
//! pending, writes it, and issues one `fdatasync` for the whole batch; callers then
//! await the durable LSN their append returned. Many concurrent writers share a sync.
//!
//! Queue state (through `kv`) and, later, Event Hubs partitions sit on this type.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};
use tokio::sync::watch;

use crate::error::{StoreError, StoreResult};
use crate::record;
use crate::segment::{self, ScanEnd, SegmentId};

/// When an append counts as acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// After `fdatasync` has returned for it.
    Strict,
    /// After it is written to the OS; a background sync runs every `interval`.
    Relaxed { interval: Duration },
}

/// Test hooks that make the writer fail the way a disk can.
#[derive(Debug, Default)]
pub struct Faults {
    /// The next sync reports an I/O error.
    pub fail_next_sync: AtomicBool,
    /// Syncs wait while this is set (a slow disk, frozen).
    pub hold_syncs: AtomicBool,
}

#[derive(Debug, Clone)]
pub struct JournalOptions {
    pub durability: Durability,
    /// A segment is closed once it reaches this size.
    pub segment_bytes: u32,
    /// Skip (and log) records damaged in the middle of a segment instead of refusing to open.
    pub salvage: bool,
    pub faults: Option<Arc<Faults>>,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions { durability: Durability::Strict, segment_bytes: 64 << 20, salvage: false, faults: None }
    }
}

/// Where a record lives, and the LSN that must be durable before it may be relied on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    pub segment: SegmentId,
    /// Offset of the frame header within the segment.
    pub offset: u32,
    pub payload_len: u32,
    pub lsn_end: u64,
}

impl Loc {
    pub fn framed_len(&self) -> u64 {
        record::framed_len(self.payload_len as usize) as u64
    }
}

/// What recovery found and did, for the caller to log or assert on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments: usize,
    pub records: u64,
    /// Bytes cut from the end of the newest segment.
    pub truncated_bytes: u64,
    /// Damaged records skipped under `salvage`, as (segment, offset).
    pub salvaged: Vec<(SegmentId, u64)>,
}

#[derive(Debug, Clone, Default)]
struct Progress {
    written: u64,
    durable: u64,
    failed: Option<String>,
}

/// How many written buffers the writer keeps for reuse, and the largest it keeps.
const SPARE_BUFFERS: usize = 4;
const SPARE_BUFFER_BYTES: usize = 4 << 20;

struct Pending {
    chunks: Vec<(SegmentId, Vec<u8>)>,
    /// Buffers the writer is done with, kept for the next appends: a steady load
    /// reuses the same memory instead of faulting in fresh pages for every batch.
    spare: Vec<Vec<u8>>,
    active: SegmentId,
    active_len: u64,
    next_lsn: u64,
    shutdown: bool,
    failed: Option<String>,
}

struct Shared {
    dir: PathBuf,
    options: JournalOptions,
    pending: Mutex<Pending>,
    wake_writer: Condvar,
    progress: watch::Sender<Progress>,
    files: RwLock<BTreeMap<SegmentId, Arc<File>>>,
    /// Told each durable LSN by the writer thread itself, as soon as it is durable.
    on_durable: OnceLock<DurableHook>,
}

type DurableHook = Box<dyn Fn(u64) + Send + Sync>;

/// An open log directory. Dropping it flushes and stops the writer.
pub struct Journal {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

fn report_damage(
    dir: &Path,
    segment: SegmentId,
    offset: u64,
    framed_len: u64,
    options: &JournalOptions,
    report: &mut RecoveryReport,
) -> StoreResult<()> {
    if !options.salvage {
        return Err(StoreError::Corruption { dir: dir.to_path_buf(), segment, offset, framed_len });
    }
    tracing::error!(segment, offset, framed_len, dir = %dir.display(), "recovery: skipping a damaged record (salvage mode)");
    report.salvaged.push((segment, offset));
    Ok(())
}

fn open_segment(dir: &Path, id: SegmentId) -> StoreResult<File> {
    let p = segment::path(dir, id);
    OpenOptions::new().read(true).append(true).create(true).open(&p).map_err(|e| StoreError::io("opening segment", &p, e))
}

impl Journal {
    /// Opens (creating if needed) the log in `dir`, replaying every intact record in
    /// order through `visit` before any append can happen.
    pub fn open(
        dir: &Path,
        options: JournalOptions,
        mut visit: impl FnMut(Loc, &[u8]) -> StoreResult<()>,
    ) -> StoreResult<(Journal, RecoveryReport)> {
        assert!(options.segment_bytes >= 4096 && options.segment_bytes <= 1 << 30, "segment size out of bounds");
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io("creating log directory", dir, e))?;
        let ids = segment::list(dir)?;
        let mut report = RecoveryReport { segments: ids.len(), ..Default::default() };
        let mut files = BTreeMap::new();
        let mut active_len = 0u64;
        for (i, &id) in ids.iter().enumerate() {
            let newest = i + 1 == ids.len();
            let buf = segment::read_all(dir, id)?;
            let ends = segment::scan(&buf, |r| {
                report.records += 1;
                let loc = Loc { segment: id, offset: r.offset, payload_len: r.payload.len() as u32, lsn_end: 0 };
                visit(loc, r.payload)
            })?;
            let mut valid_len = buf.len() as u64;
            for end in ends {
                match end {
                    ScanEnd::Clean => {}
                    ScanEnd::TornTail { valid_len: keep, file_len } if newest => {
                        tracing::warn!(segment = id, dir = %dir.display(), kept = keep, cut = file_len - keep,
                            "recovery: truncating a torn tail (an unacknowledged write cut short by a crash)");
                        segment::truncate(dir, id, keep)?;
                        report.truncated_bytes += file_len - keep;
                        valid_len = keep;
                    }
                    ScanEnd::TornTail { valid_len: offset, file_len } => {
                        // Closed segments were synced whole, so damage at their end is corruption.
                        report_damage(dir, id, offset, file_len - offset, &options, &mut report)?;
                    }
                    ScanEnd::CorruptRecord { offset, framed_len } => {
                        report_damage(dir, id, offset, framed_len, &options, &mut report)?;
                    }
                }
            }
            if newest {
                active_len = valid_len;
            }
            files.insert(id, Arc::new(open_segment(dir, id)?));
        }
        let active = match ids.last() {
            Some(&id) => id,
            None => {
                files.insert(1, Arc::new(open_segment(dir, 1)?));
                segment::sync_dir(dir)?;
                1
            }
        };
        if report.truncated_bytes > 0 || !report.salvaged.is_empty() {
            tracing::info!(?report, "recovery finished with repairs");
        }
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            options,
            pending: Mutex::new(Pending {
                chunks: Vec::new(),
                spare: Vec::new(),
                active,
                active_len,
                next_lsn: 0,
                shutdown: false,
                failed: None,
            }),
            wake_writer: Condvar::new(),
            progress: watch::channel(Progress::default()).0,
            files: RwLock::new(files),
            on_durable: OnceLock::new(),
        });
        let writer_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("lapis-journal-writer".into())
            .spawn(move || run_writer(&writer_shared, active))
            .map_err(|e| StoreError::io("starting journal writer", dir, e))?;
        Ok((Journal { shared, writer: Mutex::new(Some(writer)) }, report))
    }

    /// Frames `payloads` into the log in order and returns where each landed. Nothing
    /// is durable yet: await [`Journal::wait_durable`] with the returned LSN.
    pub fn append<P: AsRef<[u8]>>(&self, payloads: &[P]) -> StoreResult<(Vec<Loc>, u64)> {
        self.append_parts(payloads.iter().map(|p| [p.as_ref()]))
    }

    /// As [`Journal::append`], for records each made of `N` parts one after another
    /// (a header and a body, say): they are framed without being joined first.
    pub fn append_parts<'a, const N: usize>(&self, records: impl ExactSizeIterator<Item = [&'a [u8]; N]> + Clone) -> StoreResult<(Vec<Loc>, u64)> {
        // Every record is checked before any is framed: an append lands whole or not
        // at all. The total is reserved once, so a large batch is not copied as its
        // buffer grows.
        let mut remaining = 0usize;
        for parts in records.clone() {
            let payload_len: usize = parts.iter().map(|p| p.len()).sum();
            if payload_len > record::MAX_PAYLOAD_LEN {
                return Err(StoreError::Malformed { context: "append", detail: format!("record of {payload_len} bytes exceeds the bound") });
            }
            remaining += record::framed_len(payload_len);
        }
        let mut p = self.shared.pending.lock();
        if let Some(reason) = &p.failed {
            return Err(StoreError::WriteFailed(reason.clone()));
        }
        if p.shutdown {
            return Err(StoreError::ShutDown);
        }
        let limit = self.shared.options.segment_bytes as u64;
        let mut locs = Vec::with_capacity(records.len());
        for parts in records {
            let payload_len: usize = parts.iter().map(|p| p.len()).sum();
            let framed = record::framed_len(payload_len) as u64;
            if p.active_len > 0 && p.active_len + framed > limit {
                p.active += 1;
                p.active_len = 0;
            }
            let seg = p.active;
            let offset = p.active_len as u32;
            match p.chunks.last_mut() {
                Some((id, buf)) if *id == seg => {
                    buf.reserve(remaining);
                    record::encode_parts_into(buf, &parts);
                }
                _ => {
                    let mut buf = p.spare.pop().unwrap_or_default();
                    buf.reserve(remaining);
                    record::encode_parts_into(&mut buf, &parts);
                    p.chunks.push((seg, buf));
                }
            }
            remaining -= framed as usize;
            p.active_len += framed;
            p.next_lsn += framed;
            locs.push(Loc { segment: seg, offset, payload_len: payload_len as u32, lsn_end: p.next_lsn });
        }
        let lsn = p.next_lsn;
        drop(p);
        self.shared.wake_writer.notify_one();
        Ok((locs, lsn))
    }

    /// Has the writer thread call `hook` with each LSN once everything up to it is
    /// durable, before any waiter wakes: for work that must not wait for a waiter's
    /// task to be scheduled. The hook must be quick; it runs on the writer. Set once.
    pub fn on_durable(&self, hook: impl Fn(u64) + Send + Sync + 'static) {
        let set = self.shared.on_durable.set(Box::new(hook));
        assert!(set.is_ok(), "a journal's durability hook is set once");
    }

    /// Resolves once everything up to `lsn` is acknowledged under the configured
    /// durability, or fails if the writer could not make it so.
    pub async fn wait_durable(&self, lsn: u64) -> StoreResult<()> {
        wait_until(&self.shared.progress, lsn, |p| p.durable).await
    }

    /// A handle that can wait for durability without borrowing the journal.
    pub fn waiter(&self, lsn: u64) -> DurableWaiter {
        DurableWaiter { progress: self.shared.progress.subscribe(), lsn }
    }

    /// Reads the payload at `loc`, waiting first until it has been written. Runs the
    /// read on the blocking pool.
    pub async fn read(&self, loc: Loc) -> StoreResult<Vec<u8>> {
        wait_until(&self.shared.progress, loc.lsn_end, |p| p.written).await?;
        let file = self.file(loc.segment)?;
        let dir = self.shared.dir.clone();
        tokio::task::spawn_blocking(move || read_payload(&dir, &file, loc))
            .await
            .map_err(|e| StoreError::Malformed { context: "read task", detail: e.to_string() })?
    }

    fn file(&self, id: SegmentId) -> StoreResult<Arc<File>> {
        self.shared.files.read().get(&id).cloned().ok_or_else(|| StoreError::Malformed {
            context: "read",
            detail: format!("segment {id} is not part of the log"),
        })
    }

    /// Up to `len` bytes of segment `id` from byte `offset` (fewer at the end of what is
    /// written). Blocking: call it off the async runtime.
    pub fn read_bytes(&self, id: SegmentId, offset: u64, len: usize) -> StoreResult<Vec<u8>> {
        let file = self.file(id)?;
        let p = segment::path(&self.shared.dir, id);
        let mut buf = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            match file.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(StoreError::io("reading segment", &p, e)),
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }

    /// Segments on disk, oldest first, and the one currently appended to.
    pub fn segments(&self) -> (Vec<SegmentId>, SegmentId) {
        let ids = self.shared.files.read().keys().copied().collect();
        (ids, self.shared.pending.lock().active)
    }

    /// Closes the current segment (when it holds records) so that appends go to a new
    /// one, and returns the id of the one now current. Lets a log drop records that
    /// would otherwise sit in a segment that is never filled.
    pub fn roll(&self) -> SegmentId {
        let mut p = self.shared.pending.lock();
        if p.active_len > 0 {
            p.active += 1;
            p.active_len = 0;
        }
        p.active
    }

    /// Reads a whole closed segment (for compaction or sequential consumers).
    pub fn read_segment(&self, id: SegmentId) -> StoreResult<Vec<u8>> {
        segment::read_all(&self.shared.dir, id)
    }

    /// Deletes a closed segment whose records are no longer needed. Readers holding
    /// its file handle keep reading it until they drop the handle.
    pub fn remove_segment(&self, id: SegmentId) -> StoreResult<()> {
        let active = self.shared.pending.lock().active;
        assert!(id < active, "cannot remove the active segment");
        self.shared.files.write().remove(&id);
        let p = segment::path(&self.shared.dir, id);
        std::fs::remove_file(&p).map_err(|e| StoreError::io("removing segment", &p, e))?;
        segment::sync_dir(&self.shared.dir)
    }

    /// Flushes everything pending, syncs it, and stops the writer.
    pub fn close(&self) {
        self.shared.pending.lock().shutdown = true;
        self.shared.wake_writer.notify_one();
        if let Some(handle) = self.writer.lock().take() {
            let _ = handle.join();
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
    }
}

/// Awaits durability of one LSN, independent of the journal's lifetime.
pub struct DurableWaiter {
    progress: watch::Receiver<Progress>,
    lsn: u64,
}

impl DurableWaiter {
    pub async fn wait(mut self) -> StoreResult<()> {
        loop {
            {
                let p = self.progress.borrow_and_update();
                if p.durable >= self.lsn {
                    return Ok(());
                }
                if let Some(reason) = &p.failed {
                    return Err(StoreError::WriteFailed(reason.clone()));
                }
            }
            self.progress.changed().await.map_err(|_| StoreError::ShutDown)?;
        }
    }
}

async fn wait_until(progress: &watch::Sender<Progress>, lsn: u64, reached: fn(&Progress) -> u64) -> StoreResult<()> {
    let mut rx = progress.subscribe();
    loop {
        {
            let p = rx.borrow_and_update();
            if reached(&p) >= lsn {
                return Ok(());
            }
            if let Some(reason) = &p.failed {
                return Err(StoreError::WriteFailed(reason.clone()));
            }
        }
        rx.changed().await.map_err(|_| StoreError::ShutDown)?;
    }
}

fn read_payload(dir: &Path, file: &File, loc: Loc) -> StoreResult<Vec<u8>> {
    let mut buf = vec![0u8; loc.framed_len() as usize];
    let p = segment::path(dir, loc.segment);
    file.read_exact_at(&mut buf, loc.offset as u64).map_err(|e| StoreError::io("reading record", &p, e))?;
    match record::decode(&buf) {
        record::Decoded::Record { payload, .. } => Ok(payload.to_vec()),
        other => Err(StoreError::Malformed { context: "read", detail: format!("record at {}:{} is {other:?}", loc.segment, loc.offset) }),
    }
}

/// The writer thread: batch, write, sync, publish. Exits after flushing on shutdown or
/// after the first failure (which every waiter then sees).
fn run_writer(shared: &Shared, mut active: SegmentId) {
    let relaxed_interval = match shared.options.durability {
        Durability::Strict => None,
        Durability::Relaxed { interval } => Some(interval),
    };
    let mut dirty = false;
    loop {
        let (chunks, lsn, shutdown) = {
            let mut p = shared.pending.lock();
            while p.chunks.is_empty() && !p.shutdown {
                match relaxed_interval {
                    Some(interval) if dirty => {
                        if shared.wake_writer.wait_for(&mut p, interval).timed_out() {
                            break;
                        }
                    }
                    _ => shared.wake_writer.wait(&mut p),
                }
            }
            (std::mem::take(&mut p.chunks), p.next_lsn, p.shutdown)
        };
        let result = write_batch(shared, &mut active, &chunks).and_then(|()| {
            if relaxed_interval.is_none() || shutdown || chunks.is_empty() {
                sync_active(shared, active)?;
                dirty = false;
            } else {
                dirty = true;
            }
            Ok(())
        });
        match result {
            Ok(()) => {
                // Strict mode synced above; relaxed mode acknowledges what is written.
                if let Some(hook) = shared.on_durable.get() {
                    hook(lsn);
                }
                shared.progress.send_modify(|p| {
                    p.written = lsn;
                    p.durable = lsn;
                });
            }
            Err(e) => {
                let reason = e.to_string();
                tracing::error!(error = %reason, "journal write failed; refusing further writes");
                shared.pending.lock().failed = Some(reason.clone());
                shared.progress.send_modify(|p| p.failed = Some(reason));
                return;
            }
        }
        let mut p = shared.pending.lock();
        for (_, mut buf) in chunks {
            if p.spare.len() < SPARE_BUFFERS && buf.capacity() <= SPARE_BUFFER_BYTES {
                buf.clear();
                p.spare.push(buf);
            }
        }
        if shutdown && p.chunks.is_empty() {
            return;
        }
    }
}

fn write_batch(shared: &Shared, active: &mut SegmentId, chunks: &[(SegmentId, Vec<u8>)]) -> StoreResult<()> {
    for (seg, bytes) in chunks {
        if *seg != *active {
            // The closed segment must be durable before its successor exists, so that
            // recovery only ever finds a torn tail in the newest segment.
            sync_active(shared, *active)?;
            let file = Arc::new(open_segment(&shared.dir, *seg)?);
            segment::sync_dir(&shared.dir)?;
            shared.files.write().insert(*seg, file);
            *active = *seg;
        }
        let file = shared.files.read().get(seg).cloned().ok_or_else(|| StoreError::Malformed { context: "write", detail: format!("segment {seg} is not registered") })?;
        (&*file).write_all(bytes).map_err(|e| StoreError::io("writing segment", &segment::path(&shared.dir, *seg), e))?;
    }
    Ok(())
}

fn sync_active(shared: &Shared, active: SegmentId) -> StoreResult<()> {
    let path = segment::path(&shared.dir, active);
    if let Some(faults) = &shared.options.faults {
        if faults.fail_next_sync.swap(false, Ordering::SeqCst) {
            return Err(StoreError::io("syncing segment", &path, std::io::Error::other("injected sync failure")));
        }
        while faults.hold_syncs.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let file = shared.files.read().get(&active).cloned();
    match file {
        Some(f) => f.sync_data().map_err(|e| StoreError::io("syncing segment", &path, e)),
        None => Ok(()),
    }
}
