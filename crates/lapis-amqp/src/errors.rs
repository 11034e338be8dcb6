//! The one place broker refusals become AMQP errors: conditions the SDKs map to the
//! exceptions a user expects (`com.microsoft:message-lock-lost` → MessageLockLostError,
//! `amqp:not-found` → MessagingEntityNotFoundError, …), and the status codes the
//! `$management` node answers with.

use fe2o3_amqp_types::definitions::{AmqpError, Error, ErrorCondition, LinkError};
use fe2o3_amqp_types::transaction::TransactionError;
use fe2o3_amqp_types::primitives::Symbol;
use lapis_core::broker::BrokerError;
use lapis_core::stream::StreamError;

/// An AMQP error. `info` is always present (empty): pyamqp reads it by position and
/// fails on the shorter list the encoder writes when it is null.
pub fn error(condition: ErrorCondition, description: impl Into<String>) -> Error {
    Error { condition, description: Some(description.into()), info: Some(Box::default()) }
}

/// An error with a Service Bus (`com.microsoft:…`) condition.
pub fn custom(symbol: &str, description: impl Into<String>) -> Error {
    error(ErrorCondition::Custom(Symbol::from(symbol)), description)
}

pub fn amqp(condition: AmqpError, description: impl Into<String>) -> Error {
    error(ErrorCondition::AmqpError(condition), description)
}

pub fn unauthorized(entity: &str) -> Error {
    amqp(AmqpError::UnauthorizedAccess, format!("Unauthorized access to '{entity}': put a valid token on $cbs first (or the token expired)."))
}

pub const TIMEOUT: &str = "com.microsoft:timeout";
pub const ARGUMENT_ERROR: &str = "com.microsoft:argument-error";

/// The AMQP error a broker refusal maps to.
pub fn broker_error(e: &BrokerError) -> Error {
    let text = e.to_string();
    match e {
        BrokerError::EntityNotFound(_) => amqp(AmqpError::NotFound, text),
        BrokerError::MessageSizeExceeded { .. } => error(ErrorCondition::LinkError(LinkError::MessageSizeExceeded), text),
        BrokerError::QuotaExceeded(_) => amqp(AmqpError::ResourceLimitExceeded, text),
        BrokerError::MessageLockLost => custom("com.microsoft:message-lock-lost", text),
        BrokerError::SessionLockLost => custom("com.microsoft:session-lock-lost", text),
        BrokerError::SessionCannotBeLocked(_) => custom("com.microsoft:session-cannot-be-locked", text),
        BrokerError::MessageNotFound(_) => custom("com.microsoft:message-not-found", text),
        BrokerError::EntityAlreadyExists(_) => custom("com.microsoft:entity-already-exists", text),
        BrokerError::InvalidEntityName(_) | BrokerError::InvalidOperation(_) => amqp(AmqpError::NotAllowed, text),
        BrokerError::UnknownTransaction(_) => error(ErrorCondition::TransactionError(TransactionError::UnknownId), text),
        BrokerError::TransactionRolledBack(_) => error(ErrorCondition::TransactionError(TransactionError::Rollback), text),
        BrokerError::TransactionTimedOut(_) => error(ErrorCondition::TransactionError(TransactionError::Timeout), text),
        BrokerError::Store(_) => amqp(AmqpError::InternalError, "The server could not store the message. Please retry."),
    }
}

/// The AMQP error an Event Hubs refusal maps to (the conditions the SDKs map to their
/// errors: `amqp:link:stolen` for a lost or refused owner level, …).
pub fn stream_error(e: &StreamError) -> Error {
    let text = e.to_string();
    match e {
        StreamError::HubNotFound(_) | StreamError::ConsumerGroupNotFound { .. } => amqp(AmqpError::NotFound, text),
        StreamError::PartitionNotFound { .. } => custom("com.microsoft:argument-out-of-range", text),
        StreamError::EventTooLarge { .. } => error(ErrorCondition::LinkError(LinkError::MessageSizeExceeded), text),
        StreamError::ReceiverDisconnected { .. } | StreamError::EpochTooLow { .. } => error(ErrorCondition::LinkError(LinkError::Stolen), text),
        StreamError::TooManyReceivers(_) => amqp(AmqpError::ResourceLimitExceeded, text),
        StreamError::HubAlreadyExists(_) | StreamError::ConsumerGroupAlreadyExists(_) => custom("com.microsoft:entity-already-exists", text),
        StreamError::Invalid(_) => custom(ARGUMENT_ERROR, text),
        StreamError::Store(_) => amqp(AmqpError::InternalError, "The server could not store the event. Please retry."),
    }
}

/// The `$management` status code of a broker refusal.
pub fn status_code(e: &BrokerError) -> i32 {
    match e {
        BrokerError::EntityNotFound(_) | BrokerError::MessageNotFound(_) => 404,
        BrokerError::MessageLockLost | BrokerError::SessionLockLost => 410,
        BrokerError::SessionCannotBeLocked(_) | BrokerError::EntityAlreadyExists(_) => 409,
        BrokerError::MessageSizeExceeded { .. } | BrokerError::QuotaExceeded(_) => 403,
        BrokerError::Store(_) => 500,
        _ => 400,
    }
}

/// The condition of an error as the symbol text written on the wire.
pub fn condition_text(e: &Error) -> String {
    match &e.condition {
        ErrorCondition::Custom(s) => s.0.clone(),
        other => {
            let encoded = serde_amqp::to_vec(other).unwrap_or_default();
            serde_amqp::from_slice::<Symbol>(&encoded).map(|s| s.0).unwrap_or_else(|_| format!("{other:?}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_are_written_as_their_symbols() {
        assert_eq!(condition_text(&broker_error(&BrokerError::EntityNotFound("q".into()))), "amqp:not-found");
        assert_eq!(condition_text(&broker_error(&BrokerError::MessageLockLost)), "com.microsoft:message-lock-lost");
        assert_eq!(condition_text(&broker_error(&BrokerError::UnknownTransaction(3))), "amqp:transaction:unknown-id");
    }
}
