//! What can go wrong publishing to a topic, in the service's terms; the HTTP adapter
//! maps each to its status and error body.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventsError {
    /// The body is not what the topic's schema asks for (400).
    #[error("{0}")]
    InvalidInput(String),
    /// One event, or the whole request, is over its limit (413).
    #[error("{what} of {size} bytes exceeds the limit of {limit} bytes.")]
    TooLarge { what: &'static str, size: usize, limit: usize },
    /// The content type does not fit the topic's schema (400).
    #[error("The content type '{0}' is not supported for this topic.")]
    UnsupportedContentType(String),
}

pub type EventsResult<T> = Result<T, EventsError>;
