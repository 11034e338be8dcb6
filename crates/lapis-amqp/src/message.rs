//! Reading what the broker needs out of an encoded AMQP message (ids, session, time to
//! live, scheduling, routing properties), splitting Service Bus batch envelopes, and
//! building the small messages Lapis itself sends (CBS answers).

use std::collections::BTreeMap;

use fe2o3_amqp_types::messaging::message::__private::{Deserializable, Serializable};
use fe2o3_amqp_types::messaging::{ApplicationProperties, Body, Message, MessageId, Properties};
use fe2o3_amqp_types::primitives::{SimpleValue, Symbol, Value};
use lapis_core::broker::{OutgoingMessage, PropertyValue, RoutingProperties};

/// The message format of a Service Bus batch: one `data` section per encoded message.
pub const BATCH_FORMAT: u32 = 0x8001_3700;

#[derive(Debug, thiserror::Error)]
#[error("the message could not be decoded: {0}")]
pub struct DecodeError(pub String);

pub type Decoded = Message<Body<Value>>;

pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    serde_amqp::from_slice::<Deserializable<Decoded>>(bytes).map(|d| d.0).map_err(|e| DecodeError(e.to_string()))
}

pub fn message_id_text(id: &MessageId) -> String {
    match id {
        MessageId::String(s) => s.clone(),
        MessageId::Ulong(n) => n.to_string(),
        MessageId::Uuid(u) => uuid::Uuid::from_bytes(*u.as_inner()).to_string(),
        MessageId::Binary(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

fn property_value(v: &SimpleValue) -> Option<PropertyValue> {
    Some(match v {
        SimpleValue::String(s) => PropertyValue::String(s.clone()),
        SimpleValue::Symbol(s) => PropertyValue::String(s.0.clone()),
        SimpleValue::Bool(b) => PropertyValue::Bool(*b),
        SimpleValue::Long(n) => PropertyValue::Long(*n),
        SimpleValue::Int(n) => PropertyValue::Long(*n as i64),
        SimpleValue::Short(n) => PropertyValue::Long(*n as i64),
        SimpleValue::Byte(n) => PropertyValue::Long(*n as i64),
        SimpleValue::Uint(n) => PropertyValue::Long(*n as i64),
        SimpleValue::Ushort(n) => PropertyValue::Long(*n as i64),
        SimpleValue::Ubyte(n) => PropertyValue::Long(*n as i64),
        SimpleValue::Ulong(n) => PropertyValue::Long(*n as i64),
        SimpleValue::Double(d) => PropertyValue::Double(d.into_inner()),
        SimpleValue::Float(f) => PropertyValue::Double(f.into_inner() as f64),
        SimpleValue::Timestamp(t) => PropertyValue::Timestamp(t.milliseconds()),
        _ => return None,
    })
}

fn annotation_timestamp(m: &Decoded, key: &str) -> Option<i64> {
    let annotations = m.message_annotations.as_ref()?;
    annotations.0.iter().find_map(|(k, v)| match (k, v) {
        (fe2o3_amqp_types::messaging::annotations::OwnedKey::Symbol(s), Value::Timestamp(t)) if s.0 == key => Some(t.milliseconds()),
        _ => None,
    })
}

/// What the broker keeps of one message: the bytes as received, plus the fields its
/// semantics need.
pub fn to_outgoing(bytes: Vec<u8>) -> Result<OutgoingMessage, DecodeError> {
    let m = decode(&bytes)?;
    let p = m.properties.clone().unwrap_or_else(|| Properties::builder().build());
    let application = match &m.application_properties {
        Some(ApplicationProperties(map)) => map.iter().filter_map(|(k, v)| Some((k.clone(), property_value(v)?))).collect(),
        None => BTreeMap::new(),
    };
    let routing = RoutingProperties {
        message_id: p.message_id.as_ref().map(message_id_text),
        correlation_id: p.correlation_id.as_ref().map(message_id_text),
        to: p.to.clone(),
        reply_to: p.reply_to.clone(),
        subject: p.subject.clone(),
        session_id: p.group_id.clone(),
        reply_to_session_id: p.reply_to_group_id.clone(),
        content_type: p.content_type.as_ref().map(|s: &Symbol| s.0.clone()),
        time_to_live_ms: m.header.as_ref().and_then(|h| h.ttl).map(|t| t as i64),
        scheduled_enqueue_at: annotation_timestamp(&m, "x-opt-scheduled-enqueue-time"),
        size: bytes.len() as i64,
        application,
    };
    Ok(OutgoingMessage {
        message_id: routing.message_id.clone(),
        session_id: routing.session_id.clone(),
        ttl_ms: routing.time_to_live_ms,
        scheduled_enqueue_at: routing.scheduled_enqueue_at,
        routing,
        body: bytes,
    })
}

/// The encoded messages inside a batch envelope, or the message itself.
pub fn split(bytes: Vec<u8>, format: u32) -> Result<Vec<Vec<u8>>, DecodeError> {
    if format != BATCH_FORMAT {
        return Ok(vec![bytes]);
    }
    match decode(&bytes)?.body {
        Body::Data(batch) => Ok(batch.into_iter().map(|d| d.0.into_vec()).collect()),
        _ => Err(DecodeError("a batch envelope must carry data sections".into())),
    }
}

/// A message of one data section carrying `body`, with a message id, content type
/// and string application properties: what Event Grid delivers into a Service Bus
/// entity or an event hub.
pub fn data_message(body: Vec<u8>, message_id: &str, content_type: &str, properties: &[(&str, String)]) -> Vec<u8> {
    let mut app = ApplicationProperties::builder();
    for (name, value) in properties {
        app = app.insert(name.to_string(), value.clone());
    }
    let props = Properties::builder().message_id(MessageId::String(message_id.to_string())).content_type(Symbol::from(content_type)).build();
    let m = Message::builder().properties(props).application_properties(app.build()).data(fe2o3_amqp_types::primitives::Binary::from(body)).build();
    serde_amqp::to_vec(&Serializable(m)).expect("a data message encodes")
}

#[cfg(test)]
mod data_message_tests {
    use super::*;

    #[test]
    fn a_data_message_reads_back_with_its_properties() {
        let bytes = data_message(br#"{"id":"1"}"#.to_vec(), "m-1", "application/json", &[("aeg-event-type", "Notification".into())]);
        let o = to_outgoing(bytes.clone()).unwrap();
        assert_eq!(o.message_id.as_deref(), Some("m-1"));
        assert_eq!(o.routing.content_type.as_deref(), Some("application/json"));
        assert_eq!(o.routing.application.get("aeg-event-type"), Some(&PropertyValue::String("Notification".into())));
        match decode(&bytes).unwrap().body {
            Body::Data(d) => assert_eq!(d.into_iter().next().unwrap().0.into_vec(), br#"{"id":"1"}"#.to_vec()),
            other => panic!("{other:?}"),
        }
    }
}
