//! The semantics of the services Lapis runs, written once and shared by every protocol
//! adapter.
//!
//! - [`broker`]: Service Bus queues (peek-lock, settlement, dead-lettering, TTL,
//!   scheduling, duplicate detection, deferral).
//! - [`queue`]: Azure Storage Queues (visibility timeouts, pop receipts, TTL, ACLs,
//!   service properties and CORS rules).
//! - [`blob`]: the Azure Blob subset Event Hubs checkpoint stores use (containers,
//!   block blobs with metadata, ETag conditions, listing).
//! - [`storage_rules`]: the names and metadata rules the storage services share.
//! - [`stream`]: Event Hubs (hubs, partitions, consumer groups, epochs, retention).
//! - [`advisor`]: which service fits a communication task (`lapis choose`).
//! - [`auth`]: storage accounts and keys, HMAC signatures, SAS rules.
//! - [`clock`]: the injected clock, so tests can move time without sleeping.
//!
//! This crate speaks in domain types. It must not know about HTTP, XML or AMQP; it
//! persists through the [`lapis_store::Store`] trait.

pub mod advisor;
pub mod auth;
pub mod blob;
pub mod broker;
pub mod body;
pub mod clock;
pub mod events;
pub mod queue;
pub mod stream;
pub mod storage_rules;
pub mod time_fmt;

pub use clock::{Clock, ShiftableClock, SystemClock};
