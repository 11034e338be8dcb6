//! An event subscription as its owner declares it: where events go (a webhook, or a
//! Storage Queue, Service Bus queue or topic, or event hub in this server), which ones
//! (its filter), in which schema, how hard to retry, and where dead letters go — with
//! the service's bounds on each.

use serde::{Deserialize, Serialize};

use super::error::{EventsError, EventsResult};
use super::filter::SubscriptionFilter;
use super::model::InputSchema;

pub const MAX_DELIVERY_ATTEMPTS: u32 = 30;
pub const MAX_EVENT_TTL_MINUTES: u32 = 1440;
pub const MAX_EVENTS_PER_BATCH: u32 = 5000;
pub const MAX_PREFERRED_BATCH_KB: u32 = 1024;
/// A queue subscription's lock: 60 s by default, at most 300 s.
pub const DEFAULT_LOCK_SECONDS: u32 = 60;
pub const MAX_LOCK_SECONDS: u32 = 300;
/// Receives of one event before it is dead-lettered: 10 by default and at most.
pub const MAX_QUEUE_DELIVERY_COUNT: u32 = 10;
/// How long a queue subscription keeps an event: 7 days, the namespace topic's
/// retention, by default and at most.
pub const MAX_QUEUE_TTL_MS: i64 = 7 * 24 * 3600 * 1000;

fn default_attempts() -> u32 {
    MAX_DELIVERY_ATTEMPTS
}
fn default_ttl() -> u32 {
    MAX_EVENT_TTL_MINUTES
}
fn default_batch() -> u32 {
    1
}
fn default_batch_kb() -> u32 {
    64
}
fn default_lock() -> u32 {
    DEFAULT_LOCK_SECONDS
}
fn default_queue_deliveries() -> u32 {
    MAX_QUEUE_DELIVERY_COUNT
}

/// Where a subscription's events go (`destination` in the management API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "endpointType", content = "properties")]
pub enum Destination {
    WebHook {
        #[serde(rename = "endpointUrl")]
        endpoint_url: String,
        #[serde(rename = "maxEventsPerBatch", default = "default_batch")]
        max_events_per_batch: u32,
        #[serde(rename = "preferredBatchSizeInKilobytes", default = "default_batch_kb")]
        preferred_batch_size_kb: u32,
    },
    StorageQueue {
        #[serde(rename = "queueName")]
        queue_name: String,
        /// Seconds, or -1 for never; the queue's default (7 days) when absent.
        #[serde(rename = "queueMessageTimeToLiveInSeconds", default, skip_serializing_if = "Option::is_none")]
        queue_message_ttl_seconds: Option<i64>,
    },
    ServiceBusQueue {
        #[serde(rename = "queueName")]
        queue_name: String,
    },
    ServiceBusTopic {
        #[serde(rename = "topicName")]
        topic_name: String,
    },
    EventHub {
        #[serde(rename = "eventHubName")]
        event_hub_name: String,
    },
    /// Pull delivery (a namespace topic's queue subscription): clients receive events
    /// under a lock and acknowledge, release or reject them.
    Queue {
        #[serde(rename = "receiveLockDurationInSeconds", default = "default_lock")]
        lock_seconds: u32,
        #[serde(rename = "maxDeliveryCount", default = "default_queue_deliveries")]
        max_delivery_count: u32,
        /// ISO 8601 duration (`P1D`); the topic's retention (7 days) when absent.
        #[serde(rename = "eventTimeToLive", default, skip_serializing_if = "Option::is_none")]
        event_time_to_live: Option<String>,
    },
}

impl Destination {
    /// A queue subscription's time to live in milliseconds.
    pub fn queue_ttl_ms(&self) -> Option<i64> {
        match self {
            Destination::Queue { event_time_to_live, .. } => Some(event_time_to_live.as_deref().and_then(crate::time_fmt::parse_duration).unwrap_or(MAX_QUEUE_TTL_MS)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    #[serde(default = "default_attempts")]
    pub max_delivery_attempts: u32,
    #[serde(default = "default_ttl")]
    pub event_time_to_live_in_minutes: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_delivery_attempts: MAX_DELIVERY_ATTEMPTS, event_time_to_live_in_minutes: MAX_EVENT_TTL_MINUTES }
    }
}

/// What a subscription's owner declares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionSpec {
    pub destination: Destination,
    #[serde(default)]
    pub filter: SubscriptionFilter,
    /// The schema events are delivered in; by default the topic's.
    pub event_delivery_schema: Option<InputSchema>,
    #[serde(default)]
    pub retry_policy: RetryPolicy,
    /// A container of this server's Blob service (`devstoreaccount1`) for events that
    /// could not be delivered.
    pub dead_letter_container: Option<String>,
}

/// Azure's rule: 3-64 letters, digits and '-'.
pub fn check_subscription_name(name: &str) -> EventsResult<()> {
    if (3..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        Ok(())
    } else {
        Err(EventsError::Invalid(format!("Event subscription name '{name}' is not valid: it must be between 3 and 64 characters in length, of letters, digits and '-'.")))
    }
}

fn within(what: &str, value: u32, max: u32) -> EventsResult<()> {
    if (1..=max).contains(&value) {
        Ok(())
    } else {
        Err(EventsError::Invalid(format!("{what} must be between 1 and {max}, not {value}.")))
    }
}

impl SubscriptionSpec {
    /// The schema events go out in for a topic of `input`, checked against what the
    /// service converts: Event Grid events to either schema, CloudEvents only as
    /// CloudEvents.
    pub fn delivery_schema(&self, input: InputSchema) -> EventsResult<InputSchema> {
        match (input, self.event_delivery_schema.unwrap_or(input)) {
            (InputSchema::CloudEvents, InputSchema::EventGrid) => Err(EventsError::Invalid("A CloudEvents topic delivers only CloudEvents (eventDeliverySchema CloudEventSchemaV1_0).".into())),
            (_, out) => Ok(out),
        }
    }

    /// Refuses what the service refuses.
    pub fn check(&self, input: InputSchema) -> EventsResult<()> {
        self.filter.check()?;
        self.delivery_schema(input)?;
        within("maxDeliveryAttempts", self.retry_policy.max_delivery_attempts, MAX_DELIVERY_ATTEMPTS)?;
        within("eventTimeToLiveInMinutes", self.retry_policy.event_time_to_live_in_minutes, MAX_EVENT_TTL_MINUTES)?;
        match &self.destination {
            Destination::WebHook { endpoint_url, max_events_per_batch, preferred_batch_size_kb } => {
                let lower = endpoint_url.to_ascii_lowercase();
                if !(lower.starts_with("http://") || lower.starts_with("https://")) || endpoint_url.len() < "http://x".len() {
                    return Err(EventsError::Invalid(format!("The webhook endpoint '{endpoint_url}' is not an http or https URL.")));
                }
                within("maxEventsPerBatch", *max_events_per_batch, MAX_EVENTS_PER_BATCH)?;
                within("preferredBatchSizeInKilobytes", *preferred_batch_size_kb, MAX_PREFERRED_BATCH_KB)?;
            }
            Destination::Queue { lock_seconds, max_delivery_count, event_time_to_live } => {
                if !(60..=MAX_LOCK_SECONDS).contains(lock_seconds) {
                    return Err(EventsError::Invalid(format!("receiveLockDurationInSeconds must be between 60 and {MAX_LOCK_SECONDS}, not {lock_seconds}.")));
                }
                within("maxDeliveryCount", *max_delivery_count, MAX_QUEUE_DELIVERY_COUNT)?;
                if let Some(text) = event_time_to_live {
                    match crate::time_fmt::parse_duration(text) {
                        Some(ms) if ms > 0 && ms <= MAX_QUEUE_TTL_MS => {}
                        _ => return Err(EventsError::Invalid(format!("eventTimeToLive '{text}' must be an ISO 8601 duration of at most 7 days (P7D)."))),
                    }
                }
            }
            Destination::StorageQueue { queue_name: n, .. } | Destination::ServiceBusQueue { queue_name: n } | Destination::ServiceBusTopic { topic_name: n } | Destination::EventHub { event_hub_name: n } => {
                if n.trim().is_empty() {
                    return Err(EventsError::Invalid("The destination needs the name of its queue, topic or event hub.".into()));
                }
            }
        }
        if let Destination::StorageQueue { queue_message_ttl_seconds: Some(ttl), .. } = &self.destination {
            if *ttl == 0 || *ttl < -1 {
                return Err(EventsError::Invalid(format!("queueMessageTimeToLiveInSeconds must be positive or -1 (never), not {ttl}.")));
            }
        }
        if let Some(c) = &self.dead_letter_container {
            if c.trim().is_empty() {
                return Err(EventsError::Invalid("The dead-letter container needs a name.".into()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> SubscriptionSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_webhook_subscription_gets_the_services_defaults() {
        let s = spec(json!({"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": "http://127.0.0.1:9000/hook"}}}));
        assert_eq!(s.retry_policy, RetryPolicy { max_delivery_attempts: 30, event_time_to_live_in_minutes: 1440 });
        assert!(matches!(s.destination, Destination::WebHook { max_events_per_batch: 1, preferred_batch_size_kb: 64, .. }));
        assert!(s.check(InputSchema::EventGrid).is_ok());
        assert_eq!(s.delivery_schema(InputSchema::CloudEvents), Ok(InputSchema::CloudEvents));
    }

    #[test]
    fn bounds_and_conversions_are_checked() {
        let hook = |props: serde_json::Value, rest: serde_json::Value| {
            let mut v = json!({"destination": {"endpointType": "WebHook", "properties": props}});
            v.as_object_mut().unwrap().extend(rest.as_object().unwrap().clone());
            spec(v).check(InputSchema::EventGrid)
        };
        let url = "http://127.0.0.1:9000/hook";
        assert!(hook(json!({"endpointUrl": url}), json!({"retryPolicy": {"maxDeliveryAttempts": 31}})).is_err());
        assert!(hook(json!({"endpointUrl": url}), json!({"retryPolicy": {"maxDeliveryAttempts": 0}})).is_err());
        assert!(hook(json!({"endpointUrl": url}), json!({"retryPolicy": {"eventTimeToLiveInMinutes": 1441}})).is_err());
        assert!(hook(json!({"endpointUrl": url, "maxEventsPerBatch": 5001}), json!({})).is_err());
        assert!(hook(json!({"endpointUrl": url, "preferredBatchSizeInKilobytes": 1025}), json!({})).is_err());
        assert!(hook(json!({"endpointUrl": "ftp://x/y"}), json!({})).is_err());
        assert!(hook(json!({"endpointUrl": url, "maxEventsPerBatch": 5000}), json!({"eventDeliverySchema": "CloudEventSchemaV1_0"})).is_ok(), "Event Grid events may go out as CloudEvents");
        let ce_as_grid = spec(json!({"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": url}}, "eventDeliverySchema": "EventGridSchema"}));
        assert!(ce_as_grid.check(InputSchema::CloudEvents).is_err(), "CloudEvents are not turned into Event Grid events");
        let queue = spec(json!({"destination": {"endpointType": "StorageQueue", "properties": {"queueName": "uploads"}}}));
        assert!(queue.check(InputSchema::EventGrid).is_ok());
        assert!(serde_json::from_value::<SubscriptionSpec>(json!({"destination": {"endpointType": "Carrier pigeon", "properties": {}}})).is_err());
    }

    #[test]
    fn names_follow_azure() {
        assert!(check_subscription_name("notify-1").is_ok());
        assert!(check_subscription_name("ab").is_err());
        assert!(check_subscription_name(&"a".repeat(65)).is_err());
        assert!(check_subscription_name("no_underscores").is_err());
    }
}
