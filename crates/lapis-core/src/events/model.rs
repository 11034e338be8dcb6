//! A custom topic: the schema its publishers use and its two access keys; and the
//! limits every topic has.

/// Largest request body a publish may carry (1 MB). An event has the same limit,
/// so the request's bound covers it.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

use serde::{Deserialize, Serialize};

use super::error::{EventsError, EventsResult};
use crate::clock::Millis;

/// The schema a topic's publishers send, chosen per topic as in Azure (named as
/// Azure's `inputSchema` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InputSchema {
    #[serde(rename = "EventGridSchema")]
    EventGrid,
    #[serde(rename = "CloudEventSchemaV1_0")]
    CloudEvents,
}

/// A custom topic (published at `/topics/T/api/events`, push delivery) or a namespace
/// topic (published with `:publish`, CloudEvents only, pull delivery as well).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TopicKind {
    #[default]
    Custom,
    Namespace,
}

/// A topic as it is kept in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    #[serde(default)]
    pub kind: TopicKind,
    /// Names the topic's event log; never reused.
    pub id: u64,
    pub name: String,
    pub created_at: Millis,
    pub schema: InputSchema,
    /// `key1` and `key2` (base64), either of which a publisher may use.
    pub keys: [String; 2],
}

/// The resource path Event Grid stamps into an Event Grid schema event's `topic`.
pub fn resource_path(topic: &str) -> String {
    format!("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/lapis/providers/Microsoft.EventGrid/topics/{topic}")
}

/// Azure's rule for custom topic names: 3-50 letters, digits and '-'.
pub fn check_topic_name(name: &str) -> EventsResult<()> {
    let ok = (3..=50).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(EventsError::Invalid(format!("Topic name '{name}' is not valid: it must be between 3 and 50 characters in length, of letters, digits and '-'.")))
    }
}
