//! Service Bus semantics: queues with peek-lock and receive-and-delete delivery,
//! settlement (complete, abandon, dead-letter, defer), lock renewal and expiry,
//! delivery counting, time to live, scheduled messages, duplicate detection, peek, and
//! the dead-letter sub-queue. Topics, subscriptions, sessions, forwarding and
//! transactions build on this.
//!
//! Message bodies are opaque bytes here; the AMQP adapter encodes and decodes them.

mod codec;
mod entity;
pub mod error;
pub mod model;
pub mod properties;
mod recovery;
mod service;
mod sessions;

pub use error::{BrokerError, BrokerResult};
pub use model::*;
pub use properties::{Defaults, QueueProperties};
pub use recovery::BrokerRecovery;
pub use service::{parse_address, Broker, DEAD_LETTER_SUFFIX};
pub use sessions::SessionLock;

#[cfg(test)]
mod tests;
