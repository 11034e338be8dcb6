//! Turning a broker delivery into the message a Service Bus receiver expects: the
//! stored message with the broker's annotations (`x-opt-sequence-number`,
//! `x-opt-enqueued-time`, `x-opt-locked-until`, `x-opt-message-state`), the delivery
//! count in its header,
//! settlement-made property changes and dead-letter reasons in its application
//! properties — and the lock token as the delivery tag.

use fe2o3_amqp_types::messaging::annotations::OwnedKey;
use fe2o3_amqp_types::messaging::message::__private::Serializable;
use fe2o3_amqp_types::messaging::{ApplicationProperties, MessageAnnotations};
use fe2o3_amqp_types::primitives::{SimpleValue, Symbol, Timestamp, Value};
use lapis_core::broker::{Delivery, PropertyValue};

use crate::message::{self, DecodeError};

/// The lock token as Service Bus puts it in the delivery tag: a GUID in .NET byte
/// order, which Python reads with `uuid.UUID(bytes_le=…)`.
pub fn lock_token_tag(token: uuid::Uuid) -> Vec<u8> {
    token.to_bytes_le().to_vec()
}

/// The lock token a delivery tag carries.
pub fn tag_lock_token(tag: &[u8]) -> Option<uuid::Uuid> {
    <[u8; 16]>::try_from(tag).ok().map(uuid::Uuid::from_bytes_le)
}

fn simple(v: &PropertyValue) -> SimpleValue {
    match v {
        PropertyValue::String(s) => SimpleValue::String(s.clone()),
        PropertyValue::Long(n) => SimpleValue::Long(*n),
        PropertyValue::Double(d) => SimpleValue::Double((*d).into()),
        PropertyValue::Bool(b) => SimpleValue::Bool(*b),
        PropertyValue::Timestamp(t) => SimpleValue::Timestamp(Timestamp::from_milliseconds(*t)),
    }
}

/// The header section, written by hand so that every field (a zero delivery count
/// included) is present: the SDKs read the count from it.
fn header_section(durable: bool, priority: u8, ttl: Option<u32>, delivery_count: u32) -> Vec<u8> {
    let mut fields = vec![5u8];
    fields.push(if durable { 0x41 } else { 0x42 });
    fields.extend_from_slice(&[0x50, priority]);
    match ttl {
        Some(t) => {
            fields.push(0x70);
            fields.extend_from_slice(&t.to_be_bytes());
        }
        None => fields.push(0x40),
    }
    fields.push(0x42);
    fields.push(0x70);
    fields.extend_from_slice(&delivery_count.to_be_bytes());
    let mut out = vec![0x00, 0x53, 0x70, 0xc0, fields.len() as u8];
    out.extend_from_slice(&fields);
    out
}

/// The encoded message to transfer for `d`.
pub fn encode(d: &Delivery) -> Result<Vec<u8>, DecodeError> {
    let mut m = message::decode(&d.body)?;
    let header = m.header.take();
    let mut annotations = m.message_annotations.take().unwrap_or_else(|| MessageAnnotations::builder().build());
    let mut put = |key: &str, v: Value| {
        annotations.0.insert(OwnedKey::Symbol(Symbol::from(key)), v);
    };
    put("x-opt-sequence-number", Value::Long(d.sequence_number));
    put("x-opt-enqueued-time", Value::Timestamp(Timestamp::from_milliseconds(d.enqueued_at)));
    // 0 active, 1 deferred, 2 scheduled, as the SDKs read it.
    let state = match d.state {
        lapis_core::broker::MessageState::Active => 0,
        lapis_core::broker::MessageState::Deferred => 1,
        lapis_core::broker::MessageState::Scheduled => 2,
    };
    put("x-opt-message-state", Value::Int(state));
    if let Some(until) = d.locked_until {
        put("x-opt-locked-until", Value::Timestamp(Timestamp::from_milliseconds(until)));
    }
    m.message_annotations = Some(annotations);

    let mut app = m.application_properties.take().unwrap_or_else(|| ApplicationProperties::builder().build());
    for (k, v) in &d.property_overrides {
        match k.strip_prefix("sys.") {
            Some(system) => {
                let props = m.properties.get_or_insert_with(|| fe2o3_amqp_types::messaging::Properties::builder().build());
                let text = match v {
                    PropertyValue::String(s) => s.clone(),
                    other => format!("{other:?}"),
                };
                match system {
                    "To" => props.to = Some(text),
                    "ReplyTo" => props.reply_to = Some(text),
                    "Label" => props.subject = Some(text),
                    "ContentType" => props.content_type = Some(Symbol::from(text)),
                    "ReplyToSessionId" => props.reply_to_group_id = Some(text),
                    _ => {}
                }
            }
            None => {
                app.0.insert(k.clone(), simple(v));
            }
        }
    }
    if let Some(dl) = &d.dead_letter {
        if let Some(r) = &dl.reason {
            app.0.insert("DeadLetterReason".into(), SimpleValue::String(r.clone()));
        }
        if let Some(desc) = &dl.description {
            app.0.insert("DeadLetterErrorDescription".into(), SimpleValue::String(desc.clone()));
        }
    }
    if !app.0.is_empty() {
        m.application_properties = Some(app);
    }
    let rest = serde_amqp::to_vec(&Serializable(m)).map_err(|e| DecodeError(e.to_string()))?;
    let (durable, priority, ttl) = header.map(|h| (h.durable, h.priority.0, h.ttl)).unwrap_or((true, 4, None));
    let mut out = header_section(durable, priority, ttl, d.delivery_count);
    out.extend_from_slice(&rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_tokens_round_trip_through_tags() {
        let t = uuid::Uuid::new_v4();
        assert_eq!(tag_lock_token(&lock_token_tag(t)), Some(t));
        assert_eq!(tag_lock_token(&[1, 2, 3]), None);
    }

    #[test]
    fn the_hand_written_header_decodes_with_its_delivery_count() {
        let mut bytes = header_section(true, 4, Some(1000), 0);
        let body = fe2o3_amqp_types::messaging::Message::builder().value("x".to_string()).build();
        bytes.extend(serde_amqp::to_vec(&Serializable(body)).unwrap());
        let m = message::decode(&bytes).unwrap();
        let h = m.header.unwrap();
        assert_eq!((h.durable, h.ttl, h.delivery_count), (true, Some(1000), 0));
    }
}
