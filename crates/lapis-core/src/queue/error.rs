//! The ways a Storage Queue operation can be refused, each carrying what the adapter
//! needs to render Azure's error.

use lapis_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("The specified queue does not exist.")]
    QueueNotFound,
    #[error("The specified queue already exists.")]
    QueueAlreadyExists,
    #[error("The specified message does not exist.")]
    MessageNotFound,
    #[error("The specified resource name contains invalid characters.")]
    InvalidResourceName,
    #[error("The specified resource name length is not within the permissible limits.")]
    ResourceNameLength,
    /// A numeric parameter outside its bounds.
    #[error("One of the query parameters specified in the request URI is outside the permissible range.")]
    OutOfRange { name: &'static str, value: i64, min: i64, max: i64 },
    /// A parameter whose value breaks a rule other than a simple range.
    #[error("Value for one of the query parameters specified in the request URI is invalid.")]
    InvalidParameter { name: &'static str, value: String, reason: &'static str },
    #[error("The request body is too large and exceeds the maximum permissible limit.")]
    MessageTooLarge { limit: usize },
    #[error("XML specified is not syntactically valid.")]
    InvalidXml { detail: String },
    #[error("The metadata specified is invalid. It has characters that are not permitted.")]
    InvalidMetadata,
    #[error("storage failure: {0}")]
    Store(#[from] StoreError),
}

pub type QueueResult<T> = Result<T, QueueError>;
