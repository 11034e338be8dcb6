//! A custom topic: the schema its publishers use and its two access keys; and the
//! limits every topic has.

/// Largest request body a publish may carry (1 MB). An event has the same limit,
/// so the request's bound covers it.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// The schema a topic's publishers send, chosen per topic as in Azure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputSchema {
    EventGrid,
    CloudEvents,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    pub schema: InputSchema,
    /// `key1` and `key2` (base64), either of which a publisher may use.
    pub keys: [String; 2],
}
