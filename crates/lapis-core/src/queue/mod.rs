//! Azure Storage Queues: queues with metadata and stored access policies, messages with
//! visibility timeouts, pop receipts, dequeue counts and expiry, and per-account
//! service properties (logging, metrics, CORS).

pub mod codec;
pub mod cors;
pub mod error;
pub mod limits;
pub mod recovery;
pub mod model;
pub mod service;
pub mod state;

pub use error::{QueueError, QueueResult};
pub use model::*;
pub use recovery::Recovery;
pub use service::{PutOptions, QueueService};
