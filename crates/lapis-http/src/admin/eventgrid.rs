//! The Event Grid part of the admin API, authenticated like the other parts. Bodies
//! and answers are JSON.
//!
//! - `/admin/eventgrid/topics[/T]`: `GET` lists or shows a topic (its input schema,
//!   endpoint, keys and the events it has accepted); `PUT` with
//!   `{"InputSchema": "EventGridSchema" | "CloudEventSchemaV1_0"}` creates one (201,
//!   409 if it exists); `DELETE` removes it with its events (204).

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use lapis_core::events::{InputSchema, TopicView};
use serde_json::{json, Value};

use super::json::{authorize, error, read_json, reply};
use super::AdminApi;
use crate::eventgrid::from_events;
use crate::server::HttpResponse;

pub const PREFIX: &str = "/admin/eventgrid/";

#[derive(Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TopicProperties {
    input_schema: Option<InputSchema>,
}

/// A topic as the admin API shows it; the endpoint is built from the request's host.
fn describe(topic: &TopicView, host: &str) -> Value {
    let r = &topic.record;
    json!({
        "Name": r.name,
        "InputSchema": r.schema,
        "Endpoint": format!("http://{host}/topics/{}/api/events", r.name),
        "Key1": r.keys[0],
        "Key2": r.keys[1],
        "CreatedAt": r.created_at,
        "PublishedEvents": topic.published,
    })
}

fn topic_name(path: &str) -> Option<Option<String>> {
    let rest = path.strip_prefix(PREFIX)?.trim_end_matches('/');
    match rest.split('/').collect::<Vec<_>>().as_slice() {
        ["topics"] => Some(None),
        ["topics", t] => Some(Some(percent_encoding::percent_decode_str(t).decode_utf8_lossy().into_owned())),
        _ => None,
    }
}

pub async fn handle(api: &AdminApi, req: Request<Incoming>) -> HttpResponse {
    if let Err(why) = authorize(api, &req) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized", why);
    }
    let Some(name) = topic_name(req.uri().path()) else {
        return error(StatusCode::NOT_FOUND, "NotFound", "no such admin resource");
    };
    let host = req.headers().get("host").and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1").to_string();
    let events = &api.events;
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
            match events.create_topic(&t, given.input_schema.unwrap_or(InputSchema::EventGrid)).await {
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
