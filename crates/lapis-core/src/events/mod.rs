//! Event Grid: custom topics and what their publishers may send. This module owns
//! the rules of the two input schemas (Event Grid and CloudEvents 1.0) and the
//! publish limits; it knows nothing of HTTP. Subscriptions, filters and delivery
//! come on top of the events it accepts.

mod error;
mod filter;
mod model;
mod publish;
mod service;
mod subscription;
#[cfg(test)]
mod tests;

pub use error::{EventsError, EventsResult};
pub use filter::{AdvancedFilter, SubscriptionFilter, MAX_ADVANCED_FILTERS, MAX_FILTER_STRING, MAX_FILTER_VALUES};
pub use model::{check_topic_name, resource_path, InputSchema, TopicRecord, MAX_REQUEST_BYTES};
pub use publish::{parse_publish, PublishedEvent};
pub use subscription::{check_subscription_name, Destination, RetryPolicy, SubscriptionSpec};
pub use service::{EventGridService, EventsRecovery, PublishCredential, Published, SubscriptionRecord, TopicView};
