//! Event Hubs semantics: hubs of partitions, each an event log (from
//! [`lapis_store::partition`]); consumer groups; producers sending to a partition, by
//! partition key (hashed exactly as Azure does, [`hash`]) or round robin; readers
//! from any position with owner levels (epochs, [`readers`]); retention.
//!
//! Event bodies are opaque bytes here; the AMQP adapter encodes and decodes them.

pub mod error;
pub mod hash;
pub mod model;
pub mod properties;
mod readers;
mod service;

pub use error::{StreamError, StreamResult};
/// The event-log types readers and producers see, from the storage engine.
pub use lapis_store::partition::{PartitionInfo, Seek, StoredEvent, Visible};
pub use model::*;
pub use properties::{GroupDecl, HubProperties};
pub use readers::Reader;
pub use service::{Hub, HubView, Sent, StreamRecovery, StreamService};

#[cfg(test)]
mod tests;
