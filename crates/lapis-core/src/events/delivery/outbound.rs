//! What delivery puts on the wire: events in the subscription's schema, webhook
//! requests with the service's headers and batch bodies, the two validation
//! handshakes, and dead-letter blobs in the service's path and record format.

use std::time::Duration;

use serde_json::{Map, Value};

use super::super::model::InputSchema;
use super::schedule::Failure;
use super::transport::{HttpMethod, HttpRequest, HttpResponse, OutEvent};
use crate::clock::Millis;
use crate::time_fmt::iso8601_7;

/// How long an endpoint has to answer one request (the service's 30 s).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// The origin named in the CloudEvents abuse-protection handshake and on deliveries.
pub const ORIGIN: &str = "eventgrid.azure.net";

const JSON_UTF8: &str = "application/json; charset=utf-8";
const CLOUDEVENT_UTF8: &str = "application/cloudevents+json; charset=utf-8";
const CLOUDEVENTS_BATCH_UTF8: &str = "application/cloudevents-batch+json; charset=utf-8";

/// An event kept in the topic's log, turned into the delivery schema: Event Grid
/// events go out as they were stored, or as CloudEvents (the service's mapping:
/// `source` the topic, `type` the event type, `time` the event time, `dataschema`
/// `#` and the data version); CloudEvents go out as stored.
pub fn convert(stored: Value, input: InputSchema, output: InputSchema) -> Value {
    match (input, output, stored) {
        (InputSchema::EventGrid, InputSchema::CloudEvents, Value::Object(mut e)) => {
            let mut ce = Map::new();
            let mut take = |from: &str, to: &str, ce: &mut Map<String, Value>| {
                if let Some(v) = e.remove(from) {
                    ce.insert(to.to_string(), v);
                }
            };
            take("id", "id", &mut ce);
            take("topic", "source", &mut ce);
            take("eventType", "type", &mut ce);
            take("subject", "subject", &mut ce);
            take("eventTime", "time", &mut ce);
            ce.insert("specversion".into(), Value::String("1.0".into()));
            let version = e.get("dataVersion").and_then(Value::as_str).unwrap_or("");
            ce.insert("dataschema".into(), Value::String(format!("#{version}")));
            if let Some(data) = e.remove("data") {
                ce.insert("data".into(), data);
            }
            Value::Object(ce)
        }
        (_, _, v) => v,
    }
}

/// The `dataVersion` of an Event Grid schema event.
pub fn data_version(event: &Value, schema: InputSchema) -> Option<String> {
    match schema {
        InputSchema::EventGrid => Some(event.get("dataVersion").and_then(Value::as_str).unwrap_or("").to_string()),
        InputSchema::CloudEvents => None,
    }
}

fn metadata_version(schema: InputSchema) -> &'static str {
    match schema {
        InputSchema::EventGrid => "1",
        InputSchema::CloudEvents => "1.0",
    }
}

/// The JSON array of `events`.
fn json_array(events: &[OutEvent]) -> Vec<u8> {
    let mut body = Vec::with_capacity(events.iter().map(|e| e.json.len() + 1).sum::<usize>() + 2);
    body.push(b'[');
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&e.json);
    }
    body.push(b']');
    body
}

/// One push of `events` (at least one) to a webhook: Event Grid events always as a
/// JSON array; one CloudEvent structured, several as a CloudEvents batch.
pub fn notification(url: &str, subscription: &str, schema: InputSchema, events: &[OutEvent], delivery_count: u32) -> HttpRequest {
    assert!(!events.is_empty(), "a delivery carries at least one event");
    let (content_type, body) = match (schema, events) {
        (InputSchema::CloudEvents, [one]) => (CLOUDEVENT_UTF8, one.json.clone()),
        (InputSchema::CloudEvents, _) => (CLOUDEVENTS_BATCH_UTF8, json_array(events)),
        (InputSchema::EventGrid, _) => (JSON_UTF8, json_array(events)),
    };
    let (first_id, first_data_version) = events[0].described(schema);
    let mut headers = vec![
        ("content-type", content_type.to_string()),
        ("aeg-event-type", "Notification".to_string()),
        ("aeg-subscription-name", subscription.to_ascii_uppercase()),
        ("aeg-delivery-count", delivery_count.to_string()),
        ("aeg-metadata-version", metadata_version(schema).to_string()),
        ("aeg-output-event-id", first_id),
    ];
    match schema {
        InputSchema::EventGrid => headers.push(("aeg-data-version", first_data_version.unwrap_or_default())),
        InputSchema::CloudEvents => headers.push(("origin", ORIGIN.to_string())),
    }
    HttpRequest { method: HttpMethod::Post, url: url.to_string(), headers, body, timeout: ATTEMPT_TIMEOUT }
}

/// The properties a message delivered to one of this server's services carries: the
/// webhook headers' values.
pub fn message_properties(subscription: &str, schema: InputSchema, event: &OutEvent, delivery_count: u32) -> Vec<(&'static str, String)> {
    let (id, data_version) = event.described(schema);
    let mut props = vec![
        ("aeg-subscription-name", subscription.to_ascii_uppercase()),
        ("aeg-delivery-count", delivery_count.to_string()),
        ("aeg-event-type", "Notification".to_string()),
        ("aeg-metadata-version", metadata_version(schema).to_string()),
        ("aeg-output-event-id", id),
    ];
    if let Some(v) = data_version {
        props.push(("aeg-data-version", v));
    }
    props
}

/// The message id of an event delivered to a Service Bus entity: the same on every
/// attempt, so that duplicate detection can drop a repeat, and not the event's own id
/// (as in Azure).
pub fn message_id(topic: &str, subscription: &str, seq: i64) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{}/{}/{seq}", topic.to_ascii_lowercase(), subscription.to_ascii_lowercase()).as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
}

/// How long an endpoint that chose manual validation has to GET its
/// `validationUrl` (the service's 10 minutes).
pub const MANUAL_VALIDATION_MS: Millis = 10 * 60 * 1000;

/// A fresh validation code.
pub fn validation_code() -> String {
    uuid::Uuid::new_v4().to_string().to_ascii_uppercase()
}

/// The Event Grid schema handshake: a `SubscriptionValidationEvent` carrying `code`,
/// which the endpoint echoes, or whose `validation_url` it GETs later (manual
/// validation).
pub fn validation_request(url: &str, subscription: &str, topic_path: &str, now: Millis, code: &str, validation_url: &str) -> HttpRequest {
    let event = serde_json::json!([{
        "id": uuid::Uuid::new_v4().to_string(),
        "topic": topic_path,
        "subject": "",
        "data": {
            "validationCode": code,
            "validationUrl": validation_url,
        },
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "eventTime": iso8601_7(now),
        "metadataVersion": "1",
        "dataVersion": "1",
    }]);
    let headers = vec![
        ("content-type", JSON_UTF8.to_string()),
        ("aeg-event-type", "SubscriptionValidation".to_string()),
        ("aeg-subscription-name", subscription.to_ascii_uppercase()),
        ("aeg-delivery-count", "0".to_string()),
        ("aeg-metadata-version", "1".to_string()),
        ("aeg-data-version", "1".to_string()),
    ];
    let body = serde_json::to_vec(&event).expect("JSON values serialize");
    HttpRequest { method: HttpMethod::Post, url: url.to_string(), headers, body, timeout: ATTEMPT_TIMEOUT }
}

/// How an endpoint answered the validation event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// 200 with `{"validationResponse": code}`: valid now.
    Echoed,
    /// 200 without a code: it will GET the validation URL (manual validation).
    Manual,
}

/// Whether the endpoint passed the Event Grid schema handshake: 200 with the code
/// echoed, or 200 without one (manual validation); 202 and other codes do not count.
pub fn check_validation(response: &HttpResponse, code: &str) -> Result<Validation, String> {
    if response.status != 200 {
        return Err(format!("the endpoint answered the validation event with {} (it must answer 200 with the validation code)", response.status));
    }
    let echoed = serde_json::from_slice::<Value>(&response.body).ok().and_then(|v| v.get("validationResponse").and_then(Value::as_str).map(str::to_string));
    match echoed {
        Some(c) if c.eq_ignore_ascii_case(code) => Ok(Validation::Echoed),
        Some(c) => Err(format!("the endpoint answered validation code '{c}', not '{code}'")),
        None => Ok(Validation::Manual),
    }
}

/// The CloudEvents abuse-protection handshake.
pub fn options_request(url: &str) -> HttpRequest {
    HttpRequest {
        method: HttpMethod::Options,
        url: url.to_string(),
        headers: vec![("webhook-request-origin", ORIGIN.to_string()), ("webhook-request-rate", "120".to_string())],
        body: Vec::new(),
        timeout: ATTEMPT_TIMEOUT,
    }
}

/// Whether the endpoint consented: `WebHook-Allowed-Origin` naming us or `*` (the
/// status alone is no consent).
pub fn check_options(response: &HttpResponse) -> Result<(), String> {
    match response.header("webhook-allowed-origin") {
        Some(o) if o.trim() == "*" || o.trim().eq_ignore_ascii_case(ORIGIN) => Ok(()),
        Some(o) => Err(format!("the endpoint allowed origin '{o}', not '{ORIGIN}'")),
        None => Err(format!("the endpoint answered OPTIONS with {} and no WebHook-Allowed-Origin header", response.status)),
    }
}

/// Why events are dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterReason {
    MaxDeliveryAttemptsExceeded,
    TimeToLiveExceeded,
    /// An answer no retry can change (400, 401, 403, 413).
    Undeliverable,
    /// A pull client rejected the event.
    Rejected,
}

impl DeadLetterReason {
    fn text(self, last: Option<&Failure>) -> String {
        match (self, last) {
            (DeadLetterReason::MaxDeliveryAttemptsExceeded, _) => "MaxDeliveryAttemptsExceeded".into(),
            (DeadLetterReason::TimeToLiveExceeded, _) => "TimeToLiveExceeded".into(),
            (DeadLetterReason::Undeliverable, Some(f)) => match f.status {
                Some(_) => format!("UndeliverableDueToHttp{:?}", f.outcome),
                None => format!("UndeliverableDueTo{:?}", f.outcome),
            },
            (DeadLetterReason::Undeliverable, None) => "Undeliverable".into(),
            (DeadLetterReason::Rejected, _) => "Rejected".into(),
        }
    }
}

/// `<year>/<month>/<day>/<hour>/<guid>.json` at `now` (UTC, not zero-padded): the tail
/// of every dead-letter blob's name.
fn dated_blob_name(now: Millis) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(now as i128 * 1_000_000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!("{}/{}/{}/{}/{}.json", at.year(), u8::from(at.month()), at.day(), at.hour(), uuid::Uuid::new_v4())
}

/// What a dead-letter record says beside the event.
pub struct DeadLetterInfo<'a> {
    pub reason: DeadLetterReason,
    pub attempts: u32,
    pub last: Option<&'a Failure>,
    pub last_attempt_at: Option<Millis>,
}

/// The blob for dead-lettered `events`: its name,
/// `<SUBSCRIPTION>/<year>/<month>/<day>/<hour>/<guid>.json` (UTC, not zero-padded),
/// and a JSON array of each event with the service's fields added (lower-case names
/// for CloudEvents).
pub fn dead_letter_blob(subscription: &str, schema: InputSchema, events: &[(Value, Millis)], info: &DeadLetterInfo<'_>, now: Millis) -> (String, Vec<u8>) {
    let name = format!("{}/{}", subscription.to_ascii_uppercase(), dated_blob_name(now));
    let names: [&str; 6] = match schema {
        InputSchema::EventGrid => ["deadLetterReason", "deliveryAttempts", "lastDeliveryOutcome", "lastHttpStatusCode", "publishTime", "lastDeliveryAttemptTime"],
        InputSchema::CloudEvents => ["deadletterreason", "deliveryattempts", "lastdeliveryoutcome", "lasthttpstatuscode", "publishtime", "lastdeliveryattempttime"],
    };
    let records: Vec<Value> = events
        .iter()
        .map(|(event, published_at)| {
            let mut record = match event {
                Value::Object(m) => m.clone(),
                other => Map::from_iter([("data".to_string(), other.clone())]),
            };
            record.insert(names[0].into(), Value::String(info.reason.text(info.last)));
            record.insert(names[1].into(), Value::from(info.attempts));
            let outcome = info.last.map(|f| format!("{:?}", f.outcome)).unwrap_or_else(|| "Probation".into());
            record.insert(names[2].into(), Value::String(outcome));
            record.insert(names[3].into(), Value::from(info.last.and_then(|f| f.status).unwrap_or(0)));
            record.insert(names[4].into(), Value::String(iso8601_7(*published_at)));
            if let Some(t) = info.last_attempt_at {
                record.insert(names[5].into(), Value::String(iso8601_7(t)));
            }
            Value::Object(record)
        })
        .collect();
    (name, serde_json::to_vec(&records).expect("JSON values serialize"))
}

/// The namespace Lapis's namespace topics live in (it names dead-letter blobs).
pub const NAMESPACE: &str = "lapis";

/// A namespace topic's dead-letter blob: named
/// `<namespace>/<topic>/<subscription>/<year>/<month>/<day>/<hour>/<guid>.json` (UTC, not
/// zero-padded), holding an array of `{"event", "deadletterProperties"}`.
pub fn namespace_dead_letter_blob(topic: &str, subscription: &str, events: &[(Value, Millis)], reason: DeadLetterReason, attempts: u32, now: Millis) -> (String, Vec<u8>) {
    let name = format!("{NAMESPACE}/{topic}/{subscription}/{}", dated_blob_name(now));
    let (why, result) = match reason {
        DeadLetterReason::MaxDeliveryAttemptsExceeded => ("Maximum delivery attempts was exceeded.", "Event was not acknowledged nor rejected."),
        DeadLetterReason::TimeToLiveExceeded => ("Time to live was exceeded.", "Event was not acknowledged nor rejected."),
        DeadLetterReason::Rejected | DeadLetterReason::Undeliverable => ("Event was rejected.", "Rejected"),
    };
    let records: Vec<Value> = events
        .iter()
        .map(|(event, published_at)| {
            serde_json::json!({
                "event": event,
                "deadletterProperties": {
                    "deadletterreason": why,
                    "deliveryattempts": attempts,
                    "deliveryresult": result,
                    "publishutc": iso8601_7(*published_at),
                    "deliveryattemptutc": iso8601_7(now),
                },
            })
        })
        .collect();
    (name, serde_json::to_vec(&records).expect("JSON values serialize"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn out(id: &str, json: Value) -> OutEvent {
        OutEvent { seq: 0, id: Some(id.into()), json: serde_json::to_vec(&json).unwrap(), data_version: Some("2.0".into()), published_at: 0 }
    }

    #[test]
    fn an_event_grid_event_becomes_a_cloud_event() {
        let e = json!({"id": "7", "topic": "/t/orders", "subject": "a/b", "eventType": "Order.Placed", "eventTime": "2026-12-01T10:00:00Z", "data": {"n": 1}, "dataVersion": "2.0", "metadataVersion": "1"});
        let ce = convert(e.clone(), InputSchema::EventGrid, InputSchema::CloudEvents);
        assert_eq!(ce, json!({"id": "7", "source": "/t/orders", "type": "Order.Placed", "subject": "a/b", "time": "2026-12-01T10:00:00Z", "specversion": "1.0", "dataschema": "#2.0", "data": {"n": 1}}));
        assert_eq!(convert(e.clone(), InputSchema::EventGrid, InputSchema::EventGrid), e);
    }

    #[test]
    fn webhook_requests_carry_the_services_headers_and_bodies() {
        let events = [out("a", json!({"id": "a"})), out("b", json!({"id": "b"}))];
        let r = notification("http://h/x", "Sub-1", InputSchema::EventGrid, &events[..1], 0);
        assert_eq!(r.body, br#"[{"id":"a"}]"#, "Event Grid events always go as an array");
        let header = |r: &HttpRequest, n: &str| r.headers.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone());
        assert_eq!(header(&r, "aeg-subscription-name").as_deref(), Some("SUB-1"));
        assert_eq!(header(&r, "aeg-data-version").as_deref(), Some("2.0"));
        assert_eq!(header(&r, "aeg-event-type").as_deref(), Some("Notification"));
        let one = notification("http://h/x", "s", InputSchema::CloudEvents, &events[..1], 3);
        assert_eq!(one.body, br#"{"id":"a"}"#);
        assert_eq!(header(&one, "content-type").as_deref(), Some(CLOUDEVENT_UTF8));
        assert_eq!(header(&one, "aeg-delivery-count").as_deref(), Some("3"));
        let batch = notification("http://h/x", "s", InputSchema::CloudEvents, &events, 0);
        assert_eq!(batch.body, br#"[{"id":"a"},{"id":"b"}]"#);
        assert_eq!(header(&batch, "content-type").as_deref(), Some(CLOUDEVENTS_BATCH_UTF8));
    }

    #[test]
    fn handshakes_need_the_echoed_code_or_the_allowed_origin() {
        let code = validation_code();
        let req = validation_request("http://h/x", "s", "/t", 0, &code, "http://lapis/eventgrid/validate");
        let sent: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(sent[0]["data"]["validationCode"], code.as_str());
        assert_eq!(sent[0]["data"]["validationUrl"], "http://lapis/eventgrid/validate");
        let answer = |status, body: Value| HttpResponse { status, headers: vec![], body: serde_json::to_vec(&body).unwrap() };
        assert_eq!(check_validation(&answer(200, json!({"validationResponse": code})), &code), Ok(Validation::Echoed));
        assert!(check_validation(&answer(202, json!({"validationResponse": code})), &code).is_err());
        assert!(check_validation(&answer(200, json!({"validationResponse": "nope"})), &code).is_err());
        assert_eq!(check_validation(&answer(200, json!({})), &code), Ok(Validation::Manual), "no code: the endpoint validates by hand");
        let allowed = HttpResponse { status: 200, headers: vec![("webhook-allowed-origin".into(), ORIGIN.into())], body: vec![] };
        assert!(check_options(&allowed).is_ok());
        assert!(check_options(&HttpResponse { status: 200, ..Default::default() }).is_err());
    }

    #[test]
    fn a_dead_letter_blob_has_the_services_path_and_fields() {
        let failure = Failure::from_status(400);
        let info = DeadLetterInfo { reason: DeadLetterReason::Undeliverable, attempts: 1, last: Some(&failure), last_attempt_at: Some(1_000) };
        // 2026-03-04T05:06:07Z
        let now = 1_772_600_767_000;
        let (name, body) = dead_letter_blob("hooks", InputSchema::EventGrid, &[(json!({"id": "1"}), 0)], &info, now);
        assert!(name.starts_with("HOOKS/2026/3/4/5/") && name.ends_with(".json"), "{name}");
        let records: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(records[0]["id"], "1");
        assert_eq!(records[0]["deadLetterReason"], "UndeliverableDueToHttpBadRequest");
        assert_eq!(records[0]["lastDeliveryOutcome"], "BadRequest");
        assert_eq!(records[0]["lastHttpStatusCode"], 400);
        assert_eq!(records[0]["deliveryAttempts"], 1);
        let (_, ce) = dead_letter_blob("hooks", InputSchema::CloudEvents, &[(json!({"id": "1"}), 0)], &info, now);
        let ce: Value = serde_json::from_slice(&ce).unwrap();
        assert_eq!(ce[0]["deadletterreason"], "UndeliverableDueToHttpBadRequest");
    }
}
