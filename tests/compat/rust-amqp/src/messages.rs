//! Building and reading the messages the tests send and receive: encoding, decoding,
//! string bodies, the header's delivery-count.

use fe2o3_amqp_types::messaging::message::__private::{Deserializable, Serializable};
use fe2o3_amqp_types::messaging::{AmqpValue, Body, Message, Properties};
use fe2o3_amqp_types::primitives::Value;
use serde::Serialize;

use crate::wire::AnyMessage;

pub fn encode<T: Serialize>(message: &Message<T>) -> Vec<u8>
where
    for<'a> Serializable<&'a Message<T>>: Serialize,
{
    serde_amqp::to_vec(&Serializable(message)).expect("encode message")
}

pub fn decode(bytes: &[u8]) -> AnyMessage {
    let m: Deserializable<AnyMessage> = serde_amqp::from_slice(bytes).unwrap_or_else(|e| panic!("decode message ({} bytes): {e}", bytes.len()));
    m.0
}

/// A message with a string amqp-value body and a message id.
pub fn text_message(body: &str) -> Vec<u8> {
    let message = Message::builder()
        .properties(Properties::builder().message_id(uuid::Uuid::new_v4().to_string()).build())
        .body(Body::<Value>::Value(AmqpValue(Value::String(body.to_string()))))
        .build();
    encode(&message)
}

/// The string amqp-value body of a message.
pub fn text_of(m: &AnyMessage) -> String {
    match &m.body {
        Body::Value(AmqpValue(Value::String(s))) => s.clone(),
        other => panic!("expected a string amqp-value body, got {other:?}"),
    }
}

/// The header's delivery-count (0 when the header or the field is absent, as the
/// specification defines).
pub fn delivery_count(m: &AnyMessage) -> u32 {
    m.header.as_ref().map(|h| h.delivery_count).unwrap_or(0)
}
