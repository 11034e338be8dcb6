//! The Event Grid part of the admin API, authenticated like the other parts. Bodies
//! and answers are JSON.
//!
//! - `/admin/eventgrid/topics[/T]`: `GET` lists or shows a topic (its input schema,
//!   endpoint, keys and the events it has accepted); `PUT` with
//!   `{"InputSchema": "EventGridSchema" | "CloudEventSchemaV1_0"}` creates a custom
//!   topic, with `{"Kind": "Namespace"}` a namespace topic (201, 409 if it exists); `DELETE` removes it with its events and subscriptions (204).
//! - `/admin/eventgrid/topics/T/subscriptions[/S]`: `GET` lists or shows; `PUT` with
//!   the subscription's properties as Azure's management API names them
//!   (`destination`, `filter`, `eventDeliverySchema`, `retryPolicy`, plus
//!   `deadLetterContainer`) creates one (201, 409 if it exists; 400 when a webhook
//!   fails the validation handshake); `DELETE` removes it. Each shows its
//!   `deliveryMetrics` (matched, delivered, failed attempts, dead-lettered, dropped,
//!   retrying, latency p50/p99) since the server started.

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use lapis_core::events::{EventGridService, InputSchema, SubscriptionRecord, SubscriptionSpec, TopicKind, TopicView};
use serde_json::{json, Value};

use super::json::{authorize, error, path_segments, read_json, reply};
use super::AdminApi;
use crate::eventgrid::from_events;
use crate::server::HttpResponse;

pub const PREFIX: &str = "/admin/eventgrid/";

#[derive(Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TopicProperties {
    input_schema: Option<InputSchema>,
    /// `Custom` (the default) or `Namespace`.
    kind: Option<TopicKind>,
}

/// A topic as the admin API shows it; the endpoint is built from the request's host
/// (a namespace topic's is the namespace's, which its clients are given).
fn describe(topic: &TopicView, host: &str) -> Value {
    let r = &topic.record;
    let endpoint = match r.kind {
        TopicKind::Custom => format!("http://{host}/topics/{}/api/events", r.name),
        TopicKind::Namespace => format!("http://{host}"),
    };
    json!({
        "Name": r.name,
        "Kind": r.kind,
        "InputSchema": r.schema,
        "Endpoint": endpoint,
        "Key1": r.keys[0],
        "Key2": r.keys[1],
        "CreatedAt": r.created_at,
        "PublishedEvents": topic.published,
    })
}

/// A subscription with its delivery counters since the server started.
fn describe_subscription(events: &EventGridService, s: &SubscriptionRecord) -> Value {
    let mut v = serde_json::to_value(&s.spec).unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut v {
        fields.insert("name".into(), json!(s.name));
        fields.insert("topic".into(), json!(s.topic));
        fields.insert("createdAt".into(), json!(s.created_at));
        fields.insert("provisioningState".into(), json!(s.provisioning_state(events.now_ms())));
        if let Some(v) = &s.awaiting_validation {
            fields.insert("validationUrl".into(), json!(v.url));
        }
        if let Ok(metrics) = events.delivery_metrics(&s.topic, &s.name) {
            fields.insert("deliveryMetrics".into(), serde_json::to_value(metrics).unwrap_or(Value::Null));
        }
    }
    v
}

enum Resource {
    Topics(Option<String>),
    Subscriptions { topic: String, name: Option<String> },
}

fn parse_path(path: &str) -> Option<Resource> {
    let parts = path_segments(path, PREFIX)?;
    Some(match parts.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["topics"] => Resource::Topics(None),
        ["topics", t] => Resource::Topics(Some(t.to_string())),
        ["topics", t, "subscriptions"] => Resource::Subscriptions { topic: t.to_string(), name: None },
        ["topics", t, "subscriptions", s] => Resource::Subscriptions { topic: t.to_string(), name: Some(s.to_string()) },
        _ => return None,
    })
}

/// `PUT …/subscriptions/S`: the body is the subscription (a destination is required).
async fn put_subscription(api: &AdminApi, req: Request<Incoming>, topic: &str, name: &str) -> HttpResponse {
    let body: Option<Value> = match read_json(req).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    let spec: SubscriptionSpec = match body.map(serde_json::from_value).transpose() {
        Ok(Some(spec)) => spec,
        Ok(None) => return error(StatusCode::BAD_REQUEST, "BadRequest", "a subscription needs at least a destination"),
        Err(e) => return error(StatusCode::BAD_REQUEST, "BadRequest", format!("invalid subscription: {e}")),
    };
    match api.events.create_subscription(topic, name, spec).await {
        Ok(record) => reply(StatusCode::CREATED, describe_subscription(&api.events, &record)),
        Err(e) => from_events(&e),
    }
}

pub async fn handle(api: &AdminApi, req: Request<Incoming>) -> HttpResponse {
    if let Err(why) = authorize(api, &req) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized", why);
    }
    let Some(resource) = parse_path(req.uri().path()) else {
        return error(StatusCode::NOT_FOUND, "NotFound", "no such admin resource");
    };
    let host = req.headers().get("host").and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1").to_string();
    let events = &api.events;
    let name = match resource {
        Resource::Topics(name) => name,
        Resource::Subscriptions { topic, name } => {
            return match (req.method().clone(), name) {
                (Method::GET, None) => match events.list_subscriptions(&topic) {
                    Ok(subs) => reply(StatusCode::OK, json!({ "Subscriptions": subs.iter().map(|s| describe_subscription(events, s)).collect::<Vec<_>>() })),
                    Err(e) => from_events(&e),
                },
                (Method::GET, Some(s)) => match events.subscription(&topic, &s) {
                    Ok(sub) => reply(StatusCode::OK, describe_subscription(events, &sub)),
                    Err(e) => from_events(&e),
                },
                (Method::PUT, Some(s)) => put_subscription(api, req, &topic, &s).await,
                (Method::DELETE, Some(s)) => match events.delete_subscription(&topic, &s).await {
                    Ok(()) => reply(StatusCode::NO_CONTENT, Value::Null),
                    Err(e) => from_events(&e),
                },
                _ => error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "GET a collection or an item; PUT or DELETE an item"),
            };
        }
    };
    match (req.method().clone(), name) {
        (Method::GET, None) => {
            let topics: Vec<Value> = events.list_topics().iter().map(|t| describe(t, &host)).collect();
            reply(StatusCode::OK, json!({ "Topics": topics }))
        }
        (Method::GET, Some(t)) => match events.topic_view(&t) {
            Ok(view) => reply(StatusCode::OK, describe(&view, &host)),
            Err(e) => from_events(&e),
        },
        (Method::PUT, Some(t)) => {
            let given: TopicProperties = match read_json(req).await {
                Ok(p) => p,
                Err(response) => return response,
            };
            let created = match given.kind.unwrap_or_default() {
                TopicKind::Custom => events.create_topic(&t, given.input_schema.unwrap_or(InputSchema::EventGrid)).await,
                TopicKind::Namespace if given.input_schema.is_some_and(|s| s != InputSchema::CloudEvents) => {
                    return error(StatusCode::BAD_REQUEST, "BadRequest", "a namespace topic takes CloudEvents only");
                }
                TopicKind::Namespace => events.create_namespace_topic(&t, None).await,
            };
            match created {
                Ok(view) => reply(StatusCode::CREATED, describe(&view, &host)),
                Err(e) => from_events(&e),
            }
        }
        (Method::DELETE, Some(t)) => match events.delete_topic(&t).await {
            Ok(()) => reply(StatusCode::NO_CONTENT, Value::Null),
            Err(e) => from_events(&e),
        },
        _ => error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "GET a collection or an item; PUT or DELETE an item"),
    }
}
