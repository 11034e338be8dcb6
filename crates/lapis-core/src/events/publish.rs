//! Reading a publish request: the body as the topic's schema defines it, every
//! required field present and well formed, each event and the request within their
//! limits. An accepted event is kept as the JSON it will be delivered as.

use serde_json::{Map, Value};

use super::error::{EventsError, EventsResult};
use super::model::{InputSchema, MAX_REQUEST_BYTES};
use crate::time_fmt::parse_iso8601;

/// One accepted event: what filters look at, and the event itself.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedEvent {
    pub id: String,
    pub event_type: String,
    pub subject: Option<String>,
    /// The event as it will be delivered (Event Grid schema: with `topic` and
    /// `metadataVersion` filled in by the service).
    pub event: Value,
}

impl PublishedEvent {
    /// An event as a topic of `schema` keeps it, with what filters look at.
    pub fn from_stored(schema: InputSchema, event: Value) -> PublishedEvent {
        let text = |name: &str| event.get(name).and_then(Value::as_str).map(str::to_string);
        let (id, event_type) = match schema {
            InputSchema::EventGrid => (text("id"), text("eventType")),
            InputSchema::CloudEvents => (text("id"), text("type")),
        };
        let subject = text("subject");
        PublishedEvent { id: id.unwrap_or_default(), event_type: event_type.unwrap_or_default(), subject, event }
    }
}

const CLOUDEVENTS_SINGLE: &str = "application/cloudevents+json";
const CLOUDEVENTS_BATCH: &str = "application/cloudevents-batch+json";
const JSON: &str = "application/json";

fn invalid(message: impl Into<String>) -> EventsError {
    EventsError::InvalidInput(message.into())
}

/// The media type without parameters (`; charset=utf-8`), lowercased.
fn media_type(content_type: Option<&str>) -> String {
    content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// The events of a publish to a topic of `schema` whose resource path is `topic`.
pub fn parse_publish(schema: InputSchema, content_type: Option<&str>, body: &[u8], topic: &str) -> EventsResult<Vec<PublishedEvent>> {
    if body.len() > MAX_REQUEST_BYTES {
        return Err(EventsError::TooLarge { what: "The request", size: body.len(), limit: MAX_REQUEST_BYTES });
    }
    let media = media_type(content_type);
    let single_allowed = match (schema, media.as_str()) {
        (InputSchema::EventGrid, JSON) => false,
        (InputSchema::CloudEvents, CLOUDEVENTS_SINGLE | JSON) => true,
        (InputSchema::CloudEvents, CLOUDEVENTS_BATCH) => false,
        _ => return Err(EventsError::UnsupportedContentType(content_type.unwrap_or("").to_string())),
    };
    let parsed: Value = serde_json::from_slice(body).map_err(|e| invalid(format!("The request body is not valid JSON: {e}.")))?;
    let items = match parsed {
        Value::Array(items) => items,
        Value::Object(one) if single_allowed => vec![Value::Object(one)],
        _ => {
            return Err(invalid(match schema {
                InputSchema::EventGrid => "The request body must be a JSON array of Event Grid events.",
                InputSchema::CloudEvents => "The request body must be a JSON array of CloudEvents for a batch.",
            }))
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let Value::Object(fields) = item else { return Err(invalid(format!("Event {i} is not a JSON object."))) };
            match schema {
                InputSchema::EventGrid => event_grid_event(fields, topic),
                InputSchema::CloudEvents => cloud_event(fields),
            }
            .map_err(|e| match e {
                EventsError::InvalidInput(m) => invalid(format!("Event {i}: {m}")),
                other => other,
            })
        })
        .collect()
}

/// A required, non-empty string field.
fn required_text(fields: &Map<String, Value>, name: &str) -> EventsResult<String> {
    match fields.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(invalid(format!("Required property '{name}' is empty."))),
        Some(_) => Err(invalid(format!("Property '{name}' must be a string."))),
        None => Err(invalid(format!("Required property '{name}' was not set."))),
    }
}

fn optional_text(fields: &Map<String, Value>, name: &str) -> EventsResult<Option<String>> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(format!("Property '{name}' must be a string."))),
    }
}

fn timestamp(fields: &Map<String, Value>, name: &str, required: bool) -> EventsResult<()> {
    match fields.get(name) {
        None | Some(Value::Null) if !required => Ok(()),
        None | Some(Value::Null) => Err(invalid(format!("Required property '{name}' was not set."))),
        Some(Value::String(s)) if parse_iso8601(s).is_some() => Ok(()),
        Some(_) => Err(invalid(format!("Property '{name}' must be a date-time (RFC 3339)."))),
    }
}

fn event_grid_event(mut fields: Map<String, Value>, topic: &str) -> EventsResult<PublishedEvent> {
    let id = required_text(&fields, "id")?;
    let subject = required_text(&fields, "subject")?;
    let event_type = required_text(&fields, "eventType")?;
    timestamp(&fields, "eventTime", true)?;
    optional_text(&fields, "dataVersion")?;
    match optional_text(&fields, "metadataVersion")? {
        None => {}
        Some(v) if v == "1" => {}
        Some(v) => return Err(invalid(format!("Property 'metadataVersion' must be '1', not '{v}'."))),
    }
    // Both are the service's to set.
    fields.insert("topic".into(), Value::String(topic.to_string()));
    fields.insert("metadataVersion".into(), Value::String("1".into()));
    fields.entry("dataVersion").or_insert_with(|| Value::String(String::new()));
    Ok(PublishedEvent { id, event_type, subject: Some(subject), event: Value::Object(fields) })
}

/// CloudEvents 1.0 context attributes: the four required ones, the optional ones'
/// types, and extension names (lowercase ASCII letters and digits).
fn cloud_event(fields: Map<String, Value>) -> EventsResult<PublishedEvent> {
    let id = required_text(&fields, "id")?;
    required_text(&fields, "source")?;
    let event_type = required_text(&fields, "type")?;
    match required_text(&fields, "specversion")?.as_str() {
        "1.0" => {}
        other => return Err(invalid(format!("Property 'specversion' must be '1.0', not '{other}'."))),
    }
    let subject = optional_text(&fields, "subject")?;
    optional_text(&fields, "datacontenttype")?;
    optional_text(&fields, "dataschema")?;
    timestamp(&fields, "time", false)?;
    if fields.contains_key("data") && fields.contains_key("data_base64") {
        return Err(invalid("An event carries 'data' or 'data_base64', not both."));
    }
    if let Some(v) = fields.get("data_base64") {
        let ok = matches!(v, Value::String(s) if base64::Engine::decode(&base64::engine::general_purpose::STANDARD, s).is_ok());
        if !ok {
            return Err(invalid("Property 'data_base64' must be base64 text."));
        }
    }
    if let Some(bad) = fields.keys().find(|k| !(k.as_str() == "data_base64" || (!k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())))) {
        return Err(invalid(format!("Attribute name '{bad}' is not lowercase ASCII letters and digits.")));
    }
    Ok(PublishedEvent { id, event_type, subject, event: Value::Object(fields) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TOPIC: &str = "/subscriptions/lapis/resourceGroups/lapis/providers/Microsoft.EventGrid/topics/orders";

    fn eg(events: Value) -> EventsResult<Vec<PublishedEvent>> {
        parse_publish(InputSchema::EventGrid, Some("application/json; charset=utf-8"), events.to_string().as_bytes(), TOPIC)
    }

    fn ce(content_type: &str, body: Value) -> EventsResult<Vec<PublishedEvent>> {
        parse_publish(InputSchema::CloudEvents, Some(content_type), body.to_string().as_bytes(), TOPIC)
    }

    fn grid_event() -> Value {
        json!({"id": "1", "subject": "tracks/7", "eventType": "Track.Uploaded", "eventTime": "2026-12-01T10:00:00.1234567+00:00", "data": {"n": 1}, "dataVersion": "1.0"})
    }

    fn cloud() -> Value {
        json!({"id": "1", "source": "/music", "type": "Track.Uploaded", "specversion": "1.0", "time": "2026-12-01T10:00:00Z", "data": "x", "traceparent": "00-ab"})
    }

    #[test]
    fn an_event_grid_array_is_accepted_with_topic_and_metadata_version_set() {
        let got = eg(json!([grid_event(), grid_event()])).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].id.as_str(), got[0].event_type.as_str(), got[0].subject.as_deref()), ("1", "Track.Uploaded", Some("tracks/7")));
        assert_eq!(got[0].event["topic"], TOPIC);
        assert_eq!(got[0].event["metadataVersion"], "1");
        assert_eq!(got[0].event["data"], json!({"n": 1}));
    }

    #[test]
    fn every_required_event_grid_field_is_checked() {
        for field in ["id", "subject", "eventType", "eventTime"] {
            let mut e = grid_event();
            e.as_object_mut().unwrap().remove(field);
            let err = eg(json!([e])).unwrap_err();
            assert_eq!(err, EventsError::InvalidInput(format!("Event 0: Required property '{field}' was not set.")));
        }
        let mut e = grid_event();
        e["eventTime"] = json!("yesterday");
        assert!(matches!(eg(json!([e])), Err(EventsError::InvalidInput(m)) if m.contains("date-time")));
        let mut e = grid_event();
        e["metadataVersion"] = json!("2");
        assert!(eg(json!([e])).is_err());
    }

    #[test]
    fn an_event_grid_topic_wants_an_array_as_json() {
        assert!(matches!(eg(grid_event()), Err(EventsError::InvalidInput(_))));
        let r = parse_publish(InputSchema::EventGrid, Some(CLOUDEVENTS_BATCH), json!([grid_event()]).to_string().as_bytes(), TOPIC);
        assert!(matches!(r, Err(EventsError::UnsupportedContentType(_))));
        assert!(matches!(parse_publish(InputSchema::EventGrid, Some(JSON), b"[{", TOPIC), Err(EventsError::InvalidInput(m)) if m.contains("not valid JSON")));
    }

    #[test]
    fn cloud_events_single_batch_and_extensions() {
        assert_eq!(ce(CLOUDEVENTS_SINGLE, cloud()).unwrap().len(), 1);
        assert_eq!(ce(CLOUDEVENTS_BATCH, json!([cloud(), cloud(), cloud()])).unwrap().len(), 3);
        assert!(ce(CLOUDEVENTS_BATCH, cloud()).is_err(), "a batch is an array");
        let got = ce(CLOUDEVENTS_SINGLE, cloud()).unwrap();
        assert_eq!(got[0].event["traceparent"], "00-ab", "extensions are kept");
        assert!(got[0].event.get("topic").is_none(), "a CloudEvent is kept as sent");
    }

    #[test]
    fn cloud_event_rules() {
        for field in ["id", "source", "type", "specversion"] {
            let mut e = cloud();
            e.as_object_mut().unwrap().remove(field);
            assert_eq!(ce(CLOUDEVENTS_SINGLE, e).unwrap_err(), EventsError::InvalidInput(format!("Event 0: Required property '{field}' was not set.")));
        }
        let mut e = cloud();
        e["specversion"] = json!("0.3");
        assert!(ce(CLOUDEVENTS_SINGLE, e).is_err());
        let mut e = cloud();
        e["data_base64"] = json!("aGk=");
        assert!(ce(CLOUDEVENTS_SINGLE, e).is_err(), "data and data_base64 together");
        let mut e = cloud();
        e.as_object_mut().unwrap().remove("data");
        e["data_base64"] = json!("aGk=");
        assert!(ce(CLOUDEVENTS_SINGLE, e).is_ok());
        let mut e = cloud();
        e["Bad-Name"] = json!("x");
        assert!(ce(CLOUDEVENTS_SINGLE, e).is_err());
    }

    #[test]
    fn a_request_over_one_megabyte_is_too_large() {
        let mut e = grid_event();
        e["data"] = json!("y".repeat(MAX_REQUEST_BYTES - 100));
        assert!(matches!(eg(json!([e])), Err(EventsError::TooLarge { what: "The request", .. })));
        let mut e = grid_event();
        e["data"] = json!("y".repeat(MAX_REQUEST_BYTES - 1000));
        assert!(eg(json!([e])).is_ok(), "just under is fine");
    }
}
