//! Event Grid on the HTTP port: `POST /topics/{topic}/api/events` publishes to a
//! custom topic as the real endpoint does (the SDKs post to the endpoint URL exactly
//! as configured, so a topic's endpoint is `http://<host>:<port>/topics/<topic>/api/events`).
//! Credentials are `aeg-sas-key` or `aeg-sas-token`; success is 200 with an empty
//! body once every event is durable; errors are `{"error":{"code","message"}}`.
//! Namespace topics (publish and pull delivery) are in [`namespace`].

pub mod namespace;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use lapis_core::events::{EventGridService, EventsError, PublishCredential, MAX_REQUEST_BYTES};

use crate::admin::json::error;
use crate::server::HttpResponse;

pub const PREFIX: &str = "/topics/";
const API_VERSION: &str = "2018-01-01";

/// The topic a publish path names: `/topics/{topic}/api/events`.
fn topic_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix(PREFIX)?;
    let (topic, tail) = rest.split_once('/')?;
    (tail.trim_end_matches('/').eq_ignore_ascii_case("api/events") && !topic.is_empty())
        .then(|| percent_encoding::percent_decode_str(topic).decode_utf8_lossy().into_owned())
}

/// The status and error code of each failure, as the service answers.
pub fn from_events(e: &EventsError) -> HttpResponse {
    let (status, code) = match e {
        EventsError::TopicNotFound(_) | EventsError::SubscriptionNotFound { .. } => (StatusCode::NOT_FOUND, "NotFound"),
        EventsError::TopicAlreadyExists(_) | EventsError::SubscriptionAlreadyExists { .. } => (StatusCode::CONFLICT, "Conflict"),
        EventsError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "Unauthorized"),
        EventsError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge"),
        EventsError::InvalidInput(_) | EventsError::UnsupportedContentType(_) | EventsError::Invalid(_) | EventsError::ValidationFailed { .. } => (StatusCode::BAD_REQUEST, "BadRequest"),
        EventsError::Store(_) => {
            tracing::error!(error = %e, "an event grid request failed in storage");
            (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError")
        }
    };
    error(status, code, e.to_string())
}

fn ok() -> HttpResponse {
    Response::builder()
        .status(StatusCode::OK)
        .header("api-supported-versions", API_VERSION)
        .body(Full::new(Bytes::new()))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// Where a webhook that validates by hand sends its GET (the `validationUrl`).
pub const VALIDATE_PATH: &str = "/eventgrid/validate";

/// Whether `path` is Event Grid's to answer.
pub fn handles(path: &str) -> bool {
    path.starts_with(PREFIX) || path == VALIDATE_PATH
}

/// `GET /eventgrid/validate?topic=T&subscription=S&code=C`: manual validation.
async fn validate(events: &EventGridService, req: &Request<Incoming>) -> HttpResponse {
    let param = |name: &str| namespace::query(req, name);
    let (Some(topic), Some(subscription), Some(code)) = (param("topic"), param("subscription"), param("code")) else {
        return error(StatusCode::BAD_REQUEST, "BadRequest", "A validation URL names its topic, subscription and code.");
    };
    match events.validate_manually(&topic, &subscription, &code).await {
        Ok(()) => Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from_static(b"Webhook successfully validated as a subscription endpoint.")))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))),
        Err(e) => from_events(&e),
    }
}

pub async fn handle(events: &EventGridService, req: Request<Incoming>) -> HttpResponse {
    if req.uri().path() == VALIDATE_PATH {
        return validate(events, &req).await;
    }
    if namespace::handles(req.uri().path()) {
        return namespace::handle(events, req).await;
    }
    let Some(topic) = topic_of(req.uri().path()) else {
        return error(StatusCode::NOT_FOUND, "NotFound", "Publish to /topics/{topic}/api/events.");
    };
    if req.method() != Method::POST {
        return error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "Events are published with POST.");
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (key, token, content_type) = (header("aeg-sas-key"), header("aeg-sas-token"), header("content-type"));
    let credential = match (&key, &token) {
        (Some(k), _) => PublishCredential::Key(k),
        (None, Some(t)) => PublishCredential::Token(t),
        (None, None) => return error(StatusCode::UNAUTHORIZED, "Unauthorized", "The request has no aeg-sas-key or aeg-sas-token header."),
    };
    // One byte over the limit is enough to know it is too large.
    let body = match Limited::new(req.into_body(), MAX_REQUEST_BYTES + 1).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return from_events(&EventsError::TooLarge { what: "The request", size: MAX_REQUEST_BYTES + 1, limit: MAX_REQUEST_BYTES }),
    };
    let published = match events.publish(&topic, credential, content_type.as_deref(), &body) {
        Ok(p) => p,
        Err(e) => return from_events(&e),
    };
    match published.appended.durable().await {
        Ok(()) => ok(),
        Err(e) => from_events(&EventsError::from(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_publish_path_names_the_topic() {
        assert_eq!(topic_of("/topics/orders/api/events").as_deref(), Some("orders"));
        assert_eq!(topic_of("/topics/orders/api/events/").as_deref(), Some("orders"));
        assert_eq!(topic_of("/topics/orders"), None);
        assert_eq!(topic_of("/topics//api/events"), None);
        assert_eq!(topic_of("/topics/orders/other"), None);
    }
}
