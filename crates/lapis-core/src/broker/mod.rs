//! Service Bus semantics: queues, topics and subscriptions (with correlation and SQL
//! rule filters and actions, in [`filter`]), peek-lock and receive-and-delete
//! delivery, settlement (complete, abandon, dead-letter, defer), lock renewal and
//! expiry, delivery counting, time to live, scheduled messages, duplicate detection,
//! sessions, peek, and the dead-letter sub-queue. Auto-forwarding and transactions
//! are still to come.
//!
//! Message bodies are opaque bytes here; the AMQP adapter encodes and decodes them.

mod codec;
mod entity;
pub mod error;
pub mod filter;
pub mod model;
pub mod properties;
mod recovery;
mod service;
mod sessions;
mod topics;

pub use error::{BrokerError, BrokerResult};
pub use model::*;
pub use properties::{Defaults, QueueProperties, RuleProperties};
pub use recovery::BrokerRecovery;
pub use service::{parse_address, Broker, DEAD_LETTER_SUFFIX};
pub use sessions::SessionLock;
pub use topics::{subscription_path, RULE_NAME_PROPERTY};

#[cfg(test)]
mod tests;
