//! The storage engine's error type.

use std::path::{Path, PathBuf};

/// Everything that can go wrong in the storage engine.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },

    /// A sync (or write) failed. The log can no longer promise durability for anything
    /// not yet synced, so it refuses further writes; the process must restart.
    #[error("the log failed to make writes durable and accepts no more writes: {0}")]
    WriteFailed(String),

    #[error("segment {segment} of {dir} has a corrupt record at byte {offset} ({framed_len} bytes) followed by intact records; \
             this is damage to acknowledged data, not a torn write. Start with --salvage to skip the damaged record(s)")]
    Corruption { dir: PathBuf, segment: u32, offset: u64, framed_len: u64 },

    #[error("malformed record in {context}: {detail}")]
    Malformed { context: &'static str, detail: String },

    #[error("the log is shut down")]
    ShutDown,
}

impl StoreError {
    pub(crate) fn io(what: &'static str, path: &Path, source: std::io::Error) -> Self {
        StoreError::Io { what, path: path.to_path_buf(), source }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
