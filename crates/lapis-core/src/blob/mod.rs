//! The Azure Blob subset that Event Hubs checkpoint stores (and other small-state
//! users) need: containers with metadata, block blobs with content, properties and
//! metadata, ETag and date conditions, and listing with prefixes, delimiters and
//! paging. Containers and blobs are durable through the [`lapis_store::Store`] trait.

pub mod codec;
pub mod conditions;
pub mod error;
pub mod limits;
pub mod model;
pub mod recovery;
pub mod service;
pub mod state;
#[cfg(test)]
mod tests;

pub use error::{BlobError, BlobResult};
pub use model::*;
pub use recovery::Recovery;
pub use service::BlobService;
