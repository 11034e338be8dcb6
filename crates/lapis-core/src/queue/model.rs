//! The domain types of Storage Queues, as the core hands them to adapters.

use serde::{Deserialize, Serialize};

use crate::clock::Millis;

pub use crate::storage_rules::Metadata;

/// A stored access policy on a queue (`SignedIdentifier` in the REST API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIdentifier {
    pub id: String,
    pub start: Option<String>,
    pub expiry: Option<String>,
    pub permission: Option<String>,
}

/// What Put Message answers.
#[derive(Debug, Clone)]
pub struct PutReceipt {
    pub id: String,
    pub inserted: Millis,
    pub expires: Millis,
    pub pop_receipt: String,
    pub next_visible: Millis,
}

/// A message as Get or Peek returns it. Peek leaves `pop_receipt` and
/// `next_visible` empty.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    pub id: String,
    pub inserted: Millis,
    pub expires: Millis,
    pub dequeue_count: u32,
    pub text: String,
    pub pop_receipt: Option<String>,
    pub next_visible: Option<Millis>,
}

/// What Update Message answers.
#[derive(Debug, Clone)]
pub struct UpdateReceipt {
    pub pop_receipt: String,
    pub next_visible: Millis,
}

/// One entry of List Queues.
#[derive(Debug, Clone)]
pub struct QueueListing {
    pub name: String,
    pub metadata: Metadata,
}

/// A page of List Queues.
#[derive(Debug, Clone)]
pub struct QueuePage {
    pub queues: Vec<QueueListing>,
    pub next_marker: Option<String>,
}

/// Whether Create Queue made a new queue or found an identical one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    New,
    AlreadyExisted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    pub enabled: bool,
    pub days: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logging {
    pub version: String,
    pub delete: bool,
    pub read: bool,
    pub write: bool,
    pub retention: RetentionPolicy,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metrics {
    pub version: String,
    pub enabled: bool,
    pub include_apis: Option<bool>,
    pub retention: RetentionPolicy,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    pub allowed_origins: String,
    pub allowed_methods: String,
    pub allowed_headers: String,
    pub exposed_headers: String,
    pub max_age_seconds: u32,
}

/// Queue service properties. Set Service Properties replaces only the parts given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceProperties {
    pub logging: Logging,
    pub hour_metrics: Metrics,
    pub minute_metrics: Metrics,
    pub cors: Vec<CorsRule>,
}

/// The parts of [`ServiceProperties`] a Set request carried.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServicePropertiesUpdate {
    pub logging: Option<Logging>,
    pub hour_metrics: Option<Metrics>,
    pub minute_metrics: Option<Metrics>,
    pub cors: Option<Vec<CorsRule>>,
}

impl Default for ServiceProperties {
    fn default() -> Self {
        let off = RetentionPolicy { enabled: false, days: None };
        let metrics = Metrics { version: "1.0".into(), enabled: false, include_apis: None, retention: off.clone() };
        ServiceProperties {
            logging: Logging { version: "1.0".into(), delete: false, read: false, write: false, retention: off },
            hour_metrics: metrics.clone(),
            minute_metrics: metrics,
            cors: Vec::new(),
        }
    }
}
