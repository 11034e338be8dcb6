//! What can go wrong publishing to a topic, in the service's terms; the HTTP adapter
//! maps each to its status and error body.

use crate::auth::eventgrid_sas::PublishAuthError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventsError {
    #[error("The topic '{0}' was not found.")]
    TopicNotFound(String),
    #[error("A topic named '{0}' already exists.")]
    TopicAlreadyExists(String),
    #[error("The event subscription '{name}' of topic '{topic}' was not found.")]
    SubscriptionNotFound { topic: String, name: String },
    #[error("The topic '{topic}' already has an event subscription named '{name}'.")]
    SubscriptionAlreadyExists { topic: String, name: String },
    /// A name or setting the service refuses (400).
    #[error("{0}")]
    Invalid(String),
    /// The publisher's key or token (401).
    #[error(transparent)]
    Unauthorized(#[from] PublishAuthError),
    /// The store failed; the event was not accepted (500).
    #[error("storage failure: {0}")]
    Store(String),
    /// The body is not what the topic's schema asks for (400).
    #[error("{0}")]
    InvalidInput(String),
    /// One event, or the whole request, is over its limit (413).
    #[error("{what} of {size} bytes exceeds the limit of {limit} bytes.")]
    TooLarge { what: &'static str, size: usize, limit: usize },
    /// A webhook did not pass the validation handshake (400).
    #[error("Webhook validation handshake failed for {url}: {why}. Lapis sends a SubscriptionValidationEvent (Event Grid schema) or a CloudEvents OPTIONS request (CloudEvents schema) first; see https://aka.ms/esvalidation.")]
    ValidationFailed { url: String, why: String },
    /// The content type does not fit the topic's schema (400).
    #[error("The content type '{0}' is not supported for this topic.")]
    UnsupportedContentType(String),
}

pub type EventsResult<T> = Result<T, EventsError>;

impl EventsError {
    pub fn subscription_not_found(topic: &str, name: &str) -> EventsError {
        EventsError::SubscriptionNotFound { topic: topic.to_string(), name: name.to_string() }
    }
}

impl From<lapis_store::StoreError> for EventsError {
    fn from(e: lapis_store::StoreError) -> Self {
        EventsError::Store(e.to_string())
    }
}
