//! The ways a Blob operation can be refused, each carrying what the adapter needs to
//! render Azure's error.

use lapis_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("The specified container does not exist.")]
    ContainerNotFound,
    #[error("The specified container already exists.")]
    ContainerAlreadyExists,
    #[error("The specified blob does not exist.")]
    BlobNotFound,
    /// Put Blob with `If-None-Match: *` found the blob already there.
    #[error("The specified blob already exists.")]
    BlobAlreadyExists,
    #[error("The specified resource name contains invalid characters.")]
    InvalidResourceName,
    #[error("The specified resource name length is not within the permissible limits.")]
    ResourceNameLength,
    #[error("The condition specified using HTTP conditional header(s) is not met.")]
    ConditionNotMet,
    /// A read whose `If-None-Match` / `If-Modified-Since` says the client's copy is
    /// current (HTTP 304).
    #[error("The condition specified using HTTP conditional header(s) is not met.")]
    NotModified { etag: String, last_modified: i64 },
    /// `If-None-Match: *` on a read, which can never succeed.
    #[error("The request includes an unsatisfiable condition for this operation.")]
    UnsatisfiableCondition,
    #[error("The range specified is invalid for the current size of the resource.")]
    InvalidRange { size: u64 },
    #[error("The request body is too large and exceeds the maximum permissible limit.")]
    BlobTooLarge { limit: usize },
    #[error("The metadata specified is invalid. It has characters that are not permitted.")]
    InvalidMetadata,
    #[error("The size of the specified metadata exceeds the maximum size permitted.")]
    MetadataTooLarge,
    #[error("The MD5 value specified in the request is invalid. The MD5 value must be 128 bits and Base64-encoded.")]
    InvalidMd5,
    #[error("The MD5 value specified in the request did not match with the MD5 value calculated by the server.")]
    Md5Mismatch { given: String, computed: String },
    /// A numeric parameter outside its bounds.
    #[error("One of the query parameters specified in the request URI is outside the permissible range.")]
    OutOfRange { name: &'static str, value: i64, min: i64, max: i64 },
    #[error("storage failure: {0}")]
    Store(#[from] StoreError),
}

pub type BlobResult<T> = Result<T, BlobError>;

/// The ways a block operation (Put Block, Put Block List, Get Block List) can be
/// refused: any Blob error, and the rules of blocks and block lists.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// Put Block with an id whose length differs from the blob's uncommitted blocks'.
    #[error("The specified blob or block content is invalid.")]
    InvalidBlobOrBlock,
    /// A block id that is empty or longer than 64 bytes, or, in a block list, of
    /// another length than the list's others.
    #[error("The specified block ID is invalid. The block ID must be Base64-encoded.")]
    InvalidBlockId,
    /// Put Block List names a block that is not where the list says to look.
    #[error("The specified block list is invalid.")]
    InvalidBlockList,
    #[error("The block list may not contain more than 50,000 blocks.")]
    BlockListTooLong,
    #[error("The uncommitted block count cannot exceed the maximum limit of 100,000 blocks.")]
    UncommittedBlockCountExceedsLimit,
}

impl From<StoreError> for BlockError {
    fn from(e: StoreError) -> Self {
        BlockError::Blob(BlobError::Store(e))
    }
}

pub type BlockResult<T> = Result<T, BlockError>;
