//! The Service Bus part of the admin API, authenticated with a shared access
//! signature token (`Authorization: SharedAccessSignature sr=…&sig=…&se=…&skn=…`):
//!
//! - `GET /admin/servicebus/queues`: every queue with its properties and counts
//! - `GET /admin/servicebus/queues/NAME`: one queue
//! - `PUT /admin/servicebus/queues/NAME` + properties JSON (Azure's names, as in the
//!   emulator's `Config.json`): create (201) or update (200); omitted properties take
//!   Azure's defaults on create and keep their value on update. `If-None-Match: *`
//!   makes it create-only (409 if the queue exists), `If-Match: *` update-only (404)
//! - `DELETE /admin/servicebus/queues/NAME`: 204

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use lapis_core::auth::sas_token;
use lapis_core::broker::{BrokerError, Defaults, QueueConfig, QueueProperties};
use lapis_core::Clock;
use serde_json::{json, Value};

use super::{AdminApi, MAX_ADMIN_BODY};
use crate::server::HttpResponse;

pub const PREFIX: &str = "/admin/servicebus/queues";

fn reply(status: StatusCode, body: Value) -> HttpResponse {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> HttpResponse {
    reply(status, json!({"error": {"code": code, "message": message.into()}}))
}

fn from_broker(e: BrokerError) -> HttpResponse {
    let (status, code) = match &e {
        BrokerError::EntityNotFound(_) => (StatusCode::NOT_FOUND, "MessagingEntityNotFound"),
        BrokerError::EntityAlreadyExists(_) => (StatusCode::CONFLICT, "MessagingEntityAlreadyExists"),
        BrokerError::InvalidEntityName(_) => (StatusCode::BAD_REQUEST, "InvalidEntityName"),
        BrokerError::Store(_) => {
            tracing::error!(error = %e, "admin request failed in storage");
            (StatusCode::INTERNAL_SERVER_ERROR, "InternalError")
        }
        _ => (StatusCode::BAD_REQUEST, "BadRequest"),
    };
    error(status, code, e.to_string())
}

fn describe(name: &str, config: &QueueConfig, active: usize, dead_lettered: usize) -> Value {
    json!({
        "Name": name,
        "Properties": QueueProperties::from_config(config),
        "ActiveMessageCount": active,
        "DeadLetterMessageCount": dead_lettered,
    })
}

/// Why the request's token does not authorize it, if it does not.
fn authorize(api: &AdminApi, req: &Request<Incoming>) -> Result<(), String> {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or("an Authorization header with a SharedAccessSignature token is required")?;
    let now = lapis_core::SystemClock.now_ms();
    sas_token::verify(token, &api.sas_keys, now).map(|_| ()).map_err(|e| e.to_string())
}

pub async fn handle(api: &AdminApi, req: Request<Incoming>) -> HttpResponse {
    if let Err(why) = authorize(api, &req) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized", why);
    }
    let path = req.uri().path().trim_end_matches('/').to_string();
    let name = match path.strip_prefix(PREFIX) {
        Some("") => None,
        Some(rest) => match rest.strip_prefix('/') {
            Some(n) => Some(percent_encoding::percent_decode_str(n).decode_utf8_lossy().into_owned()),
            None => return error(StatusCode::NOT_FOUND, "NotFound", "no such admin resource"),
        },
        None => return error(StatusCode::NOT_FOUND, "NotFound", "no such admin resource"),
    };
    let broker = &api.broker;
    match (req.method().clone(), name) {
        (Method::GET, None) => {
            let queues: Vec<Value> = broker.list_queues().iter().map(|(n, c, a, d)| describe(n, c, *a, *d)).collect();
            reply(StatusCode::OK, json!({ "Queues": queues }))
        }
        (Method::GET, Some(name)) => match broker.list_queues().into_iter().find(|(n, ..)| n.eq_ignore_ascii_case(&name)) {
            Some((n, c, a, d)) => reply(StatusCode::OK, describe(&n, &c, a, d)),
            None => from_broker(BrokerError::EntityNotFound(name)),
        },
        (Method::DELETE, Some(name)) => match broker.delete_queue(&name).await {
            Ok(()) => reply(StatusCode::NO_CONTENT, Value::Null),
            Err(e) => from_broker(e),
        },
        (Method::PUT, Some(name)) => put_queue(api, req, &name).await,
        _ => error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "use GET, PUT or DELETE"),
    }
}

/// What a PUT's `If-None-Match: *` / `If-Match: *` require.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Precondition {
    None,
    MustNotExist,
    MustExist,
}

async fn put_queue(api: &AdminApi, req: Request<Incoming>, name: &str) -> HttpResponse {
    let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).map(str::trim) == Some("*");
    let precondition = match (header("if-none-match"), header("if-match")) {
        (true, _) => Precondition::MustNotExist,
        (_, true) => Precondition::MustExist,
        _ => Precondition::None,
    };
    let body = match Limited::new(req.into_body(), MAX_ADMIN_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "BadRequest", format!("the body exceeds {MAX_ADMIN_BODY} bytes")),
    };
    let given: QueueProperties = if body.iter().all(u8::is_ascii_whitespace) {
        QueueProperties::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(p) => p,
            Err(e) => return error(StatusCode::BAD_REQUEST, "BadRequest", format!("invalid queue properties: {e}")),
        }
    };
    let broker = &api.broker;
    let existing = broker.queue_config(name).ok();
    match (&existing, precondition) {
        (Some(_), Precondition::MustNotExist) => return from_broker(BrokerError::EntityAlreadyExists(name.to_string())),
        (None, Precondition::MustExist) => return from_broker(BrokerError::EntityNotFound(name.to_string())),
        _ => {}
    }
    let merged = match &existing {
        Some(config) => given.over(QueueProperties::from_config(config)),
        None => given,
    };
    let config = match merged.to_config(Defaults::Azure) {
        Ok(c) => c,
        Err(message) => return error(StatusCode::BAD_REQUEST, "BadRequest", message),
    };
    let (result, status) = match existing {
        Some(_) => (broker.update_queue(name, config.clone()).await, StatusCode::OK),
        None => (broker.create_queue(name, config.clone()).await, StatusCode::CREATED),
    };
    match result {
        Ok(()) => {
            let (active, dead) = broker.list_queues().into_iter().find(|(n, ..)| n.eq_ignore_ascii_case(name)).map(|(_, _, a, d)| (a, d)).unwrap_or((0, 0));
            reply(status, describe(name, &config, active, dead))
        }
        Err(e) => from_broker(e),
    }
}
