//! The domain types of Service Bus entities as the core sees them. Message bodies are
//! opaque bytes (the encoded AMQP message): the adapter owns the wire format, the
//! broker owns the system properties it stamps and the state it keeps.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::Millis;

/// Properties of a queue (Azure's defaults where it has them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueConfig {
    pub lock_duration_ms: Millis,
    pub max_delivery_count: u32,
    /// `None`: messages live until consumed (Azure: TimeSpan.MaxValue).
    pub default_ttl_ms: Option<Millis>,
    pub dead_letter_on_expiration: bool,
    pub requires_session: bool,
    /// Duplicate detection window; `None` turns detection off.
    pub duplicate_detection_window_ms: Option<Millis>,
    pub max_size_bytes: u64,
    pub max_message_bytes: u64,
    /// Auto-forwarding: every message that arrives is moved on to this entity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_to: Option<String>,
    /// Dead-lettered messages are moved on to this entity instead of staying in the
    /// dead-letter sub-queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_dead_lettered_to: Option<String>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            lock_duration_ms: 60_000,
            max_delivery_count: 10,
            default_ttl_ms: None,
            dead_letter_on_expiration: false,
            requires_session: false,
            duplicate_detection_window_ms: None,
            max_size_bytes: 1 << 30,
            max_message_bytes: 256 * 1024,
            forward_to: None,
            forward_dead_lettered_to: None,
        }
    }
}

/// The properties of a message that rule filters and actions see: the system
/// properties Service Bus exposes as `sys.*` and the application properties. The
/// adapter fills them from the wire message; actions may change them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoutingProperties {
    pub message_id: Option<String>,
    pub correlation_id: Option<String>,
    pub to: Option<String>,
    pub reply_to: Option<String>,
    /// `sys.Label` / `sys.Subject`.
    pub subject: Option<String>,
    pub session_id: Option<String>,
    pub reply_to_session_id: Option<String>,
    pub content_type: Option<String>,
    pub time_to_live_ms: Option<Millis>,
    pub scheduled_enqueue_at: Option<Millis>,
    /// Body size in bytes (`sys.Size`).
    pub size: i64,
    pub application: BTreeMap<String, PropertyValue>,
}

/// A message as a sender hands it over.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutgoingMessage {
    /// The encoded message, stored and returned verbatim.
    pub body: Vec<u8>,
    pub message_id: Option<String>,
    pub session_id: Option<String>,
    pub ttl_ms: Option<Millis>,
    /// Hold the message until this instant (scheduled messages).
    pub scheduled_enqueue_at: Option<Millis>,
    /// What topic subscription rules evaluate.
    pub routing: RoutingProperties,
}

/// A value a settlement may set on a message's application properties (abandon,
/// defer and dead-letter carry "properties to modify").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PropertyValue {
    String(String),
    Long(i64),
    Double(f64),
    Bool(bool),
    Timestamp(Millis),
}

/// Which sub-queue of an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SubQueue {
    Main,
    DeadLetter,
}

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageState {
    Active,
    Deferred,
    Scheduled,
}

/// Why a message went to the dead-letter sub-queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub reason: Option<String>,
    pub description: Option<String>,
}

/// A message as the broker hands it to a receiver or a peek.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub body: Vec<u8>,
    pub sequence_number: i64,
    pub enqueued_at: Millis,
    pub expires_at: Option<Millis>,
    /// Prior unsuccessful deliveries (AMQP `header.delivery-count`).
    pub delivery_count: u32,
    pub lock_token: Option<uuid::Uuid>,
    pub locked_until: Option<Millis>,
    pub state: MessageState,
    pub message_id: Option<String>,
    pub session_id: Option<String>,
    pub dead_letter: Option<DeadLetter>,
    /// Application properties set by settlements, to merge over the message's own.
    pub property_overrides: BTreeMap<String, PropertyValue>,
}

/// How a receiver takes messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiveMode {
    PeekLock,
    ReceiveAndDelete,
}

/// What a receiver does with a locked message.
#[derive(Debug, Clone, PartialEq)]
pub enum Settlement {
    Complete,
    Abandon { properties: BTreeMap<String, PropertyValue> },
    DeadLetter { reason: Option<String>, description: Option<String>, properties: BTreeMap<String, PropertyValue> },
    Defer { properties: BTreeMap<String, PropertyValue> },
    /// Give the message back without counting a failed delivery (a receiver that got
    /// it when it was not asking for messages).
    Release,
}

/// A subscription rule: which messages it takes, and how it changes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub name: String,
    pub filter: super::filter::Filter,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<super::filter::SqlAction>,
}

/// The rule every new subscription starts with: it takes every message.
pub const DEFAULT_RULE: &str = "$Default";

/// Dead-letter reasons the broker itself writes.
pub const REASON_MAX_DELIVERY: &str = "MaxDeliveryCountExceeded";
pub const REASON_TTL: &str = "TTLExpiredException";
