//! The ways a Service Bus operation can be refused; each maps to one AMQP error
//! condition at the adapter edge.

use lapis_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("The messaging entity '{0}' could not be found.")]
    EntityNotFound(String),
    #[error("The messaging entity '{0}' already exists.")]
    EntityAlreadyExists(String),
    #[error("The entity name '{0}' is not valid: 1-260 characters of letters, digits, '.', '-', '_' and '/', not starting or ending with '/'.")]
    InvalidEntityName(String),
    #[error("The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue.")]
    MessageLockLost,
    #[error("The requested session '{0}' cannot be accepted. It may be locked by another receiver.")]
    SessionCannotBeLocked(String),
    #[error("The session lock has expired on the session. Accept a new session.")]
    SessionLockLost,
    #[error("The message with sequence number {0} was not found.")]
    MessageNotFound(i64),
    #[error("The message of {size} bytes exceeds the maximum message size of {limit} bytes.")]
    MessageSizeExceeded { size: u64, limit: u64 },
    #[error("The entity '{0}' is full: its maximum size is reached.")]
    QuotaExceeded(String),
    #[error("{0}")]
    InvalidOperation(String),
    #[error("The transaction '{0}' is not known: it was never declared, or it was already discharged.")]
    UnknownTransaction(u64),
    #[error("The transaction was rolled back: {0}")]
    TransactionRolledBack(String),
    #[error("The transaction '{0}' timed out and was rolled back.")]
    TransactionTimedOut(u64),
    #[error("storage failure: {0}")]
    Store(#[from] StoreError),
}

pub type BrokerResult<T> = Result<T, BrokerError>;
