//! The Event Hubs `$management` node: `READ` of `com.microsoft:eventhub` (name,
//! creation time, partition ids) and of `com.microsoft:partition` (sequence numbers,
//! offset, last enqueued time, emptiness), with the exact AMQP types the SDKs read
//! (the Rust SDK panics on any other). Answers carry `status-code` (200) and the
//! description under both names the SDKs read.

use fe2o3_amqp_types::messaging::{AmqpValue, ApplicationProperties, Body, Message, Properties};
use fe2o3_amqp_types::primitives::{Array, OrderedMap, SimpleValue, Timestamp, Value};
use lapis_core::stream::{StreamError, StreamService};

use crate::message::Decoded;

/// The address of the Event Hubs management node.
pub const NODE: &str = "$management";

fn app(request: &Decoded, key: &str) -> Option<String> {
    match request.application_properties.as_ref()?.0.get(key)? {
        SimpleValue::String(s) => Some(s.clone()),
        SimpleValue::Symbol(s) => Some(s.0.clone()),
        _ => None,
    }
}

type Map = OrderedMap<Value, Value>;

fn put(m: &mut Map, k: &str, v: Value) {
    m.insert(Value::String(k.to_string()), v);
}

/// A failure: status code, description, condition.
struct Failure(i32, String, &'static str);

impl From<StreamError> for Failure {
    fn from(e: StreamError) -> Self {
        match e {
            StreamError::HubNotFound(_) => Failure(404, e.to_string(), "amqp:not-found"),
            StreamError::PartitionNotFound { .. } => Failure(404, e.to_string(), "com.microsoft:argument-out-of-range"),
            other => Failure(500, other.to_string(), "amqp:internal-error"),
        }
    }
}

fn read(streams: &StreamService, request: &Decoded) -> Result<Map, Failure> {
    if app(request, "operation").as_deref() != Some("READ") {
        return Err(Failure(400, "Only the READ operation is supported.".into(), "com.microsoft:argument-error"));
    }
    let name = app(request, "name").ok_or_else(|| Failure(400, "The request names no event hub.".into(), "com.microsoft:argument-error"))?;
    let mut out = Map::new();
    match app(request, "type").as_deref() {
        Some("com.microsoft:eventhub") => {
            let hub = streams.hub_view(&name)?;
            let ids = (0..hub.config.partitions).map(|p| Value::String(p.to_string())).collect();
            put(&mut out, "name", Value::String(hub.name));
            put(&mut out, "type", Value::String("com.microsoft:eventhub".into()));
            put(&mut out, "created_at", Value::Timestamp(Timestamp::from_milliseconds(hub.created_at)));
            put(&mut out, "partition_count", Value::Int(hub.config.partitions as i32));
            put(&mut out, "partition_ids", Value::Array(Array(ids)));
        }
        Some("com.microsoft:partition") => {
            let partition = app(request, "partition").ok_or_else(|| Failure(400, "The request names no partition.".into(), "com.microsoft:argument-error"))?;
            let hub = streams.hub_view(&name)?;
            let info = streams.partition_info(&name, &partition)?;
            let (last_offset, last_time) = if info.is_empty { ("-1".to_string(), 0) } else { (info.last_offset.to_string(), info.last_enqueued_at) };
            put(&mut out, "name", Value::String(hub.name));
            put(&mut out, "type", Value::String("com.microsoft:partition".into()));
            put(&mut out, "partition", Value::String(partition));
            put(&mut out, "begin_sequence_number", Value::Long(info.begin_seq));
            put(&mut out, "last_enqueued_sequence_number", Value::Long(info.last_seq));
            put(&mut out, "begin_sequence_number_epoch", Value::Long(0));
            put(&mut out, "last_enqueued_sequence_number_epoch", Value::Long(0));
            put(&mut out, "last_enqueued_offset", Value::String(last_offset));
            put(&mut out, "last_enqueued_time_utc", Value::Timestamp(Timestamp::from_milliseconds(last_time)));
            put(&mut out, "is_partition_empty", Value::Bool(info.is_empty));
        }
        other => return Err(Failure(400, format!("Cannot READ an entity of type {other:?}."), "com.microsoft:argument-error")),
    }
    Ok(out)
}

/// The answer to one `$management` request.
pub fn handle(streams: &StreamService, request: &Decoded) -> Message<Body<Value>> {
    let (status, description, condition, body) = match read(streams, request) {
        Ok(body) => (200, "OK".to_string(), None, Value::Map(body)),
        Err(Failure(status, description, condition)) => (status, description, Some(condition), Value::Null),
    };
    let mut props = Properties::builder().build();
    props.correlation_id = request.properties.as_ref().and_then(|p| p.message_id.clone());
    let mut app = ApplicationProperties::builder()
        .insert("status-code", SimpleValue::Int(status))
        .insert("status-description", SimpleValue::String(description.clone()))
        .insert("statusDescription", SimpleValue::String(description))
        .build();
    if let Some(c) = condition {
        app.0.insert("error-condition".into(), SimpleValue::Symbol(c.into()));
    }
    Message::builder().properties(props).application_properties(app).body(Body::Value(AmqpValue(body))).build()
}
