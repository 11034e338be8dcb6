//! The ways an Event Hubs operation can be refused; each maps to one AMQP error
//! condition at the adapter edge.

use lapis_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("The messaging entity '{0}' could not be found.")]
    HubNotFound(String),
    #[error("The messaging entity '{0}' already exists.")]
    HubAlreadyExists(String),
    #[error("The messaging entity '{hub}/consumergroups/{group}' could not be found.")]
    ConsumerGroupNotFound { hub: String, group: String },
    #[error("The consumer group '{0}' already exists.")]
    ConsumerGroupAlreadyExists(String),
    #[error("The partition '{partition}' of '{hub}' does not exist: the hub has partitions 0 to {last}.")]
    PartitionNotFound { hub: String, partition: String, last: u32 },
    #[error("{0}")]
    Invalid(String),
    #[error("The event of {size} bytes exceeds the maximum of {limit} bytes.")]
    EventTooLarge { size: usize, limit: usize },
    #[error("A new receiver with epoch {new}, not lower than this one's, was created, so this receiver with epoch {old} was disconnected.")]
    ReceiverDisconnected { old: String, new: i64 },
    #[error("A receiver with epoch {held} already holds this partition; a receiver with {asked} cannot take it.")]
    EpochTooLow { held: i64, asked: String },
    #[error("Exceeded the maximum number of allowed receivers per partition in a consumer group, which is {0}.")]
    TooManyReceivers(usize),
    #[error("storage failure: {0}")]
    Store(#[from] StoreError),
}

pub type StreamResult<T> = Result<T, StreamError>;
