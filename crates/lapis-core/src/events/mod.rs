//! Event Grid: custom topics and what their publishers may send. This module owns
//! the rules of the two input schemas (Event Grid and CloudEvents 1.0) and the
//! publish limits, subscriptions and their filters, and delivery with its retries
//! and dead letters ([`delivery`]); it knows nothing of HTTP.

pub mod delivery;
mod error;
mod filter;
mod model;
mod publish;
mod recovery;
mod running;
mod service;
mod subscription;
mod subscriptions;
#[cfg(test)]
mod delivery_tests;
#[cfg(test)]
mod pull_tests;
#[cfg(test)]
mod tests;

pub use error::{EventsError, EventsResult};
pub use filter::{AdvancedFilter, SubscriptionFilter, MAX_ADVANCED_FILTERS, MAX_FILTER_STRING, MAX_FILTER_VALUES};
pub use model::{check_topic_name, resource_path, InputSchema, TopicKind, TopicRecord, MAX_REQUEST_BYTES};
pub use publish::{parse_publish, PublishedEvent};
pub use subscription::{check_subscription_name, Destination, RetryPolicy, SubscriptionSpec};
pub use recovery::EventsRecovery;
pub use service::{EventGridService, ManualValidation, PublishCredential, Published, SubscriptionRecord, TopicView};
