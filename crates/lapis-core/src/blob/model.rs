//! The domain types of the Blob subset, as the core hands them to adapters.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use super::conditions::{Conditions, Etag};
use crate::clock::Millis;
pub use crate::storage_rules::Metadata;

/// The content type a blob reports when none was given.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// The standard HTTP properties stored with a blob and returned on reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentSettings {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    /// Base64 MD5 of the whole content: the client's `x-ms-blob-content-md5`, or the
    /// one computed at upload.
    pub content_md5: Option<String>,
}

impl ContentSettings {
    pub fn content_type(&self) -> &str {
        self.content_type.as_deref().filter(|t| !t.is_empty()).unwrap_or(DEFAULT_CONTENT_TYPE)
    }
}

/// A container as Get Container Properties and List Containers describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub name: String,
    pub metadata: Metadata,
    pub etag: Etag,
    pub last_modified: Millis,
    pub public_access: Option<String>,
}

/// A blob's properties and metadata, without its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub name: String,
    pub size: u64,
    pub settings: ContentSettings,
    pub metadata: Metadata,
    pub etag: Etag,
    pub created: Millis,
    pub last_modified: Millis,
}

/// What Put Blob stores.
#[derive(Debug, Clone, Default)]
pub struct NewBlob {
    pub content: Vec<u8>,
    pub settings: ContentSettings,
    pub metadata: Metadata,
    /// The request's `Content-MD5`: the content must hash to it.
    pub transactional_md5: Option<String>,
}

/// An inclusive byte range as `x-ms-range` / `Range` ask for it; `end: None` reads to
/// the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: Option<u64>,
}

/// What Get Blob answers: the blob, its whole content, and the part asked for.
#[derive(Debug, Clone)]
pub struct BlobContent {
    pub info: BlobInfo,
    pub content: Arc<[u8]>,
    /// The inclusive range served, when one was asked for.
    pub range: Option<(u64, u64)>,
}

impl BlobContent {
    /// The bytes to send: the range, or everything.
    pub fn served(&self) -> &[u8] {
        match self.range {
            Some((start, end)) => self.content.get(start as usize..=end as usize).unwrap_or_default(),
            None => &self.content,
        }
    }
}

/// The parameters of List Blobs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListBlobs<'a> {
    pub prefix: &'a str,
    /// Groups names by the text up to this delimiter after the prefix (`BlobPrefix`).
    pub delimiter: Option<&'a str>,
    pub marker: Option<&'a str>,
    pub max_results: Option<i64>,
}

/// One entry of a List Blobs page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    Blob(BlobInfo),
    /// Names sharing this prefix up to and including the delimiter.
    Prefix(String),
}

#[derive(Debug, Clone)]
pub struct BlobPage {
    pub items: Vec<Listed>,
    pub next_marker: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ContainerPage {
    pub containers: Vec<ContainerInfo>,
    pub next_marker: Option<String>,
}
