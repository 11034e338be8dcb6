//! Service Bus semantics: queues, topics and subscriptions (with correlation and SQL
//! rule filters and actions, in [`filter`]), peek-lock and receive-and-delete
//! delivery, settlement (complete, abandon, dead-letter, defer), lock renewal and
//! expiry, delivery counting, time to live, scheduled messages, duplicate detection,
//! sessions, peek, the dead-letter sub-queue, auto-forwarding and transactions.
//!
//! Message bodies are opaque bytes here; the AMQP adapter encodes and decodes them.

mod codec;
mod entity;
pub mod error;
pub mod filter;
pub mod model;
pub mod properties;
mod receive;
mod recovery;
mod send;
mod service;
mod sessions;
mod settle;
mod topics;
mod transactions;
mod upkeep;
mod wakeup;

pub use error::{BrokerError, BrokerResult};
pub use model::*;
pub use properties::{Defaults, QueueProperties, RuleProperties};
pub use recovery::BrokerRecovery;
pub use send::{REASON_FORWARD_FAILED, REASON_HOPS, REASON_NO_SESSION};
pub use service::{parse_address, Broker, RoutingReader, Staged, DEAD_LETTER_SUFFIX, MAX_FORWARD_HOPS};
pub use transactions::{TransactionId, MAX_TRANSACTION_OPS, TRANSACTION_TIMEOUT_MS};
pub use sessions::SessionLock;
pub use topics::{subscription_path, RULE_NAME_PROPERTY};

#[cfg(test)]
mod tests;
