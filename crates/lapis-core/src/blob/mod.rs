//! The Azure Blob subset that Event Hubs checkpoint stores and the reference
//! application need: containers with metadata; block blobs written whole (Put Blob)
//! or staged in blocks and committed as a block list (Put Block, Put Block List, Get
//! Block List), with content, properties and metadata; ranged reads; ETag and date
//! conditions; and listing with prefixes, delimiters and paging. Containers, blobs
//! and uncommitted blocks are durable through the [`lapis_store::Store`] trait, and
//! contents beyond the inline budget are read back from it. Bounds are in [`limits`].

mod block_ops;
pub mod codec;
pub mod conditions;
pub mod content;
pub mod error;
pub mod limits;
pub mod model;
pub mod recovery;
pub mod service;
pub mod staging;
pub mod state;
#[cfg(test)]
mod tests;

pub use error::{BlobError, BlobResult, BlockError, BlockResult};
pub use model::*;
pub use recovery::Recovery;
pub use service::BlobService;
