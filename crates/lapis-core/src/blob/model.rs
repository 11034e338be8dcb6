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

/// Bytes Get Blob read: shared with the copy kept in memory, or read from the store
/// (and owned, so the answer can carry them without another copy).
#[derive(Debug, Clone)]
pub enum ReadBytes {
    Shared(Arc<[u8]>),
    Read(Vec<u8>),
}

impl AsRef<[u8]> for ReadBytes {
    fn as_ref(&self) -> &[u8] {
        match self {
            ReadBytes::Shared(b) => b,
            ReadBytes::Read(b) => b,
        }
    }
}

/// What Get Blob answers: the blob, the bytes read, and the part asked for.
#[derive(Debug, Clone)]
pub struct BlobContent {
    pub info: BlobInfo,
    /// The bytes read: the whole content, or for a blob of blocks just the range asked
    /// for (so a range of a large blob does not read the rest).
    pub content: ReadBytes,
    /// Where `content` starts in the blob.
    pub offset: u64,
    /// The inclusive range served, when one was asked for.
    pub range: Option<(u64, u64)>,
}

impl BlobContent {
    /// Where the bytes to send lie in `content`.
    pub fn served_span(&self) -> std::ops::Range<usize> {
        let len = self.content.as_ref().len();
        let Some((start, end)) = self.range else { return 0..len };
        let from = start.saturating_sub(self.offset) as usize;
        let to = (end.saturating_sub(self.offset) as usize).saturating_add(1);
        from.min(len)..to.min(len)
    }

    /// The bytes to send: the range, or everything.
    pub fn served(&self) -> &[u8] {
        self.content.as_ref().get(self.served_span()).unwrap_or_default()
    }
}

/// What Put Block stages.
#[derive(Debug, Clone, Default)]
pub struct NewBlock {
    /// The block id, decoded from its base64 form.
    pub id: Vec<u8>,
    pub content: Vec<u8>,
    /// The request's `Content-MD5`: the content must hash to it.
    pub transactional_md5: Option<String>,
}

/// What Put Block answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedBlockInfo {
    /// Base64 MD5 of the block's content.
    pub content_md5: String,
}

/// One entry of a Put Block List: a block id and where to look for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockRef {
    /// Among the blob's committed blocks.
    Committed(Vec<u8>),
    /// Among its uncommitted blocks.
    Uncommitted(Vec<u8>),
    /// Uncommitted first, then committed.
    Latest(Vec<u8>),
}

impl BlockRef {
    pub fn id(&self) -> &[u8] {
        match self {
            BlockRef::Committed(id) | BlockRef::Uncommitted(id) | BlockRef::Latest(id) => id,
        }
    }
}

/// What Put Block List commits: the blocks in order, and the blob's properties and
/// metadata.
#[derive(Debug, Clone, Default)]
pub struct NewBlockList {
    pub blocks: Vec<BlockRef>,
    /// `content_md5` is stored as given; none is computed for a blob of blocks.
    pub settings: ContentSettings,
    pub metadata: Metadata,
}

/// Which lists Get Block List answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BlockListType {
    #[default]
    Committed,
    Uncommitted,
    All,
}

impl BlockListType {
    pub fn committed(self) -> bool {
        self != BlockListType::Uncommitted
    }

    pub fn uncommitted(self) -> bool {
        self != BlockListType::Committed
    }
}

/// A block as Get Block List describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedBlock {
    pub id: Vec<u8>,
    pub size: u64,
}

/// What Get Block List answers. A list not asked for is `None`.
#[derive(Debug, Clone)]
pub struct BlockListing {
    /// The committed blob, if there is one (there may be only uncommitted blocks).
    pub blob: Option<BlobInfo>,
    pub committed: Option<Vec<ListedBlock>>,
    /// In the order they were staged.
    pub uncommitted: Option<Vec<ListedBlock>>,
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
