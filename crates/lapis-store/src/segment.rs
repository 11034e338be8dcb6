//! Segment files: naming, listing, and the recovery scan that decides what on disk is
//! trustworthy.
//!
//! A log is a directory of files named `<20-digit id>.seg`. Only the newest segment
//! can end in a torn write: a segment is synced before its successor is created.
//! Recovery therefore truncates a damaged tail of the newest segment and treats any
//! other damage as corruption that must be reported.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{StoreError, StoreResult};
use crate::record::{self, Decoded};

/// Identifies one segment file within a log directory.
pub type SegmentId = u32;

const SUFFIX: &str = ".seg";

/// Path of segment `id` inside `dir`.
pub fn path(dir: &Path, id: SegmentId) -> PathBuf {
    dir.join(format!("{id:020}{SUFFIX}"))
}

/// Segment ids present in `dir`, oldest first.
pub fn list(dir: &Path) -> StoreResult<Vec<SegmentId>> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StoreError::io("listing log directory", dir, e))? {
        let entry = entry.map_err(|e| StoreError::io("listing log directory", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(SUFFIX) {
            if let Ok(id) = stem.parse::<SegmentId>() {
                ids.push(id);
            }
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// One intact record found by a scan, with its position in the segment.
pub struct ScannedRecord<'a> {
    pub offset: u32,
    pub payload: &'a [u8],
}

/// What a scan of one segment concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanEnd {
    /// Every byte belongs to an intact record.
    Clean,
    /// The bytes from `valid_len` on are a torn or garbled tail with no intact record
    /// after them.
    TornTail { valid_len: u64, file_len: u64 },
    /// A damaged record at `offset` is followed by intact records: this is not a torn
    /// write but damage to data that was once acknowledged.
    CorruptRecord { offset: u64, framed_len: u64 },
}

/// Reads a whole segment into memory.
pub fn read_all(dir: &Path, id: SegmentId) -> StoreResult<Vec<u8>> {
    let p = path(dir, id);
    let mut buf = Vec::new();
    File::open(&p)
        .and_then(|mut f| f.read_to_end(&mut buf))
        .map_err(|e| StoreError::io("reading segment", &p, e))?;
    Ok(buf)
}

/// Walks the records of `buf`, calling `visit` for each intact one, and reports how the
/// segment ends. A damaged record whose successor is intact is skipped over (and
/// reported) so that the caller can decide whether to salvage the rest.
pub fn scan<'a>(
    buf: &'a [u8],
    mut visit: impl FnMut(ScannedRecord<'a>) -> StoreResult<()>,
) -> StoreResult<Vec<ScanEnd>> {
    let mut problems = Vec::new();
    let mut pos = 0usize;
    while pos < buf.len() {
        match record::decode(&buf[pos..]) {
            Decoded::Record { payload, framed_len } => {
                visit(ScannedRecord { offset: pos as u32, payload })?;
                pos += framed_len;
            }
            Decoded::Truncated => {
                problems.push(ScanEnd::TornTail { valid_len: pos as u64, file_len: buf.len() as u64 });
                return Ok(problems);
            }
            Decoded::Corrupt { claimed_len } => {
                let next = claimed_len.map(|len| pos + len);
                let successor_intact = next
                    .filter(|&n| n < buf.len())
                    .is_some_and(|n| matches!(record::decode(&buf[n..]), Decoded::Record { .. }));
                match (successor_intact, next) {
                    (true, Some(n)) => {
                        problems.push(ScanEnd::CorruptRecord { offset: pos as u64, framed_len: (n - pos) as u64 });
                        pos = n;
                    }
                    _ => {
                        problems.push(ScanEnd::TornTail { valid_len: pos as u64, file_len: buf.len() as u64 });
                        return Ok(problems);
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        problems.push(ScanEnd::Clean);
    }
    Ok(problems)
}

/// Cuts a segment file back to `len` bytes and makes the cut durable.
pub fn truncate(dir: &Path, id: SegmentId, len: u64) -> StoreResult<()> {
    let p = path(dir, id);
    let f = fs::OpenOptions::new().write(true).open(&p).map_err(|e| StoreError::io("opening segment", &p, e))?;
    f.set_len(len).map_err(|e| StoreError::io("truncating segment", &p, e))?;
    f.sync_all().map_err(|e| StoreError::io("syncing truncated segment", &p, e))
}

/// Makes creations and removals of files in `dir` durable.
pub fn sync_dir(dir: &Path) -> StoreResult<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("syncing log directory", dir, e))
}
