//! The Service Bus part of the admin API, authenticated with a shared access
//! signature token (`Authorization: SharedAccessSignature sr=…&sig=…&se=…&skn=…`).
//! Bodies and answers are JSON with Azure's property names (as in the emulator's
//! `Config.json`).
//!
//! - `/admin/servicebus/queues[/Q]`
//! - `/admin/servicebus/topics[/T]`
//! - `/admin/servicebus/topics/T/subscriptions[/S]`
//! - `/admin/servicebus/topics/T/subscriptions/S/rules[/R]`
//!
//! `GET` on a collection lists it; on an item shows it. `PUT` on an entity creates it
//! (201; omitted properties take Azure's defaults) or updates it (200; omitted
//! properties keep their value); `If-None-Match: *` makes it create-only (409 if it
//! exists), `If-Match: *` update-only (404). `PUT` on a rule adds it (201; 409 if the
//! name is taken). `DELETE` removes (204).

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use lapis_core::broker::{subscription_path, Broker, BrokerError, Defaults, QueueConfig, QueueProperties, RuleProperties};
use serde_json::{json, Value};

use super::json::{authorize, error, path_segments, read_json, reply};
use super::AdminApi;
use crate::server::HttpResponse;

pub const PREFIX: &str = "/admin/servicebus/";

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

/// What a path names.
enum Resource {
    Queues(Option<String>),
    Topics(Option<String>),
    Subscriptions { topic: String, name: Option<String> },
    Rules { topic: String, subscription: String, name: Option<String> },
}

fn parse_path(path: &str) -> Option<Resource> {
    let parts = path_segments(path, PREFIX)?;
    let p: Vec<&str> = parts.iter().map(String::as_str).collect();
    Some(match p.as_slice() {
        ["queues"] => Resource::Queues(None),
        ["queues", q] => Resource::Queues(Some(q.to_string())),
        ["topics"] => Resource::Topics(None),
        ["topics", t] => Resource::Topics(Some(t.to_string())),
        ["topics", t, "subscriptions"] => Resource::Subscriptions { topic: t.to_string(), name: None },
        ["topics", t, "subscriptions", s] => Resource::Subscriptions { topic: t.to_string(), name: Some(s.to_string()) },
        ["topics", t, "subscriptions", s, "rules"] => Resource::Rules { topic: t.to_string(), subscription: s.to_string(), name: None },
        ["topics", t, "subscriptions", s, "rules", r] => {
            Resource::Rules { topic: t.to_string(), subscription: s.to_string(), name: Some(r.to_string()) }
        }
        _ => return None,
    })
}

pub async fn handle(api: &AdminApi, req: Request<Incoming>) -> HttpResponse {
    if let Err(why) = authorize(api, &req) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized", why);
    }
    let Some(resource) = parse_path(req.uri().path()) else {
        return error(StatusCode::NOT_FOUND, "NotFound", "no such admin resource");
    };
    let broker = &api.broker;
    let method = req.method().clone();
    match (method, resource) {
        (Method::GET, Resource::Queues(None)) => list("Queues", broker.list_queues()),
        (Method::GET, Resource::Topics(None)) => list("Topics", broker.list_topics()),
        (Method::GET, Resource::Subscriptions { topic, name: None }) => match broker.list_subscriptions(&topic) {
            Ok(subs) => list("Subscriptions", subs),
            Err(e) => from_broker(e),
        },
        (Method::GET, Resource::Rules { topic, subscription, name: None }) => match broker.rules(&topic, &subscription) {
            Ok(rules) => {
                let rules: Vec<Value> = rules.iter().map(|r| json!({"Name": r.name, "Properties": RuleProperties::from_rule(r)})).collect();
                reply(StatusCode::OK, json!({ "Rules": rules }))
            }
            Err(e) => from_broker(e),
        },
        (Method::GET, Resource::Queues(Some(q))) => show(broker, &q),
        (Method::GET, Resource::Topics(Some(t))) => show(broker, &t),
        (Method::GET, Resource::Subscriptions { topic, name: Some(s) }) => show(broker, &subscription_path(&topic, &s)),
        (Method::PUT, Resource::Queues(Some(q))) => put_entity(api, req, Kind::Queue, &q).await,
        (Method::PUT, Resource::Topics(Some(t))) => put_entity(api, req, Kind::Topic, &t).await,
        (Method::PUT, Resource::Subscriptions { topic, name: Some(s) }) => put_entity(api, req, Kind::Subscription { topic: &topic, name: &s }, &subscription_path(&topic, &s)).await,
        (Method::PUT, Resource::Rules { topic, subscription, name: Some(r) }) => put_rule(api, req, &topic, &subscription, &r).await,
        (Method::DELETE, Resource::Queues(Some(q))) => deleted(broker.delete_queue(&q).await),
        (Method::DELETE, Resource::Topics(Some(t))) => deleted(broker.delete_topic(&t).await),
        (Method::DELETE, Resource::Subscriptions { topic, name: Some(s) }) => deleted(broker.delete_subscription(&topic, &s).await),
        (Method::DELETE, Resource::Rules { topic, subscription, name: Some(r) }) => deleted(broker.remove_rule(&topic, &subscription, &r).await),
        _ => error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "GET a collection or an item; PUT or DELETE an item"),
    }
}

fn list(what: &str, entities: Vec<(String, QueueConfig, usize, usize)>) -> HttpResponse {
    let items: Vec<Value> = entities.iter().map(|(n, c, a, d)| describe(n, c, *a, *d)).collect();
    reply(StatusCode::OK, json!({ what: items }))
}

/// The entity at `path` with its counts.
fn find(broker: &Broker, path: &str) -> Option<(String, QueueConfig, usize, usize)> {
    broker
        .list_queues()
        .into_iter()
        .chain(broker.list_topics())
        .chain(broker.list_topics().iter().flat_map(|(t, ..)| broker.list_subscriptions(t).unwrap_or_default()))
        .find(|(n, ..)| n.eq_ignore_ascii_case(path))
}

fn show(broker: &Broker, path: &str) -> HttpResponse {
    match find(broker, path) {
        Some((n, c, a, d)) => reply(StatusCode::OK, describe(&n, &c, a, d)),
        None => from_broker(BrokerError::EntityNotFound(path.to_string())),
    }
}

fn deleted(result: Result<(), BrokerError>) -> HttpResponse {
    match result {
        Ok(()) => reply(StatusCode::NO_CONTENT, Value::Null),
        Err(e) => from_broker(e),
    }
}

/// The kind of entity a PUT makes.
#[derive(Clone, Copy)]
enum Kind<'a> {
    Queue,
    Topic,
    Subscription { topic: &'a str, name: &'a str },
}

async fn put_entity(api: &AdminApi, req: Request<Incoming>, kind: Kind<'_>, path: &str) -> HttpResponse {
    let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).map(str::trim) == Some("*");
    let (create_only, update_only) = (header("if-none-match"), header("if-match"));
    let given: QueueProperties = match read_json(req).await {
        Ok(p) => p,
        Err(response) => return response,
    };
    let broker = &api.broker;
    let existing = find(broker, path).map(|(_, c, ..)| c);
    match (&existing, create_only, update_only) {
        (Some(_), true, _) => return from_broker(BrokerError::EntityAlreadyExists(path.to_string())),
        (None, _, true) => return from_broker(BrokerError::EntityNotFound(path.to_string())),
        (None, _, _) if !matches!(kind, Kind::Subscription { .. }) => {
            if let Some(conflict) = api.name_in_use_elsewhere(path, false) {
                return conflict;
            }
        }
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
    let (result, status) = match (existing, kind) {
        (Some(_), _) => (broker.update_config(path, config).await, StatusCode::OK),
        (None, Kind::Queue) => (broker.create_queue(path, config).await, StatusCode::CREATED),
        (None, Kind::Topic) => (broker.create_topic(path, config).await, StatusCode::CREATED),
        (None, Kind::Subscription { topic, name }) => (broker.create_subscription(topic, name, config).await, StatusCode::CREATED),
    };
    match result.map(|()| find(broker, path)) {
        Ok(Some((n, c, a, d))) => reply(status, describe(&n, &c, a, d)),
        Ok(None) => from_broker(BrokerError::EntityNotFound(path.to_string())),
        Err(e) => from_broker(e),
    }
}

async fn put_rule(api: &AdminApi, req: Request<Incoming>, topic: &str, subscription: &str, name: &str) -> HttpResponse {
    let given: RuleProperties = match read_json(req).await {
        Ok(p) => p,
        Err(response) => return response,
    };
    let rule = match given.to_rule(name) {
        Ok(r) => r,
        Err(message) => return error(StatusCode::BAD_REQUEST, "BadRequest", message),
    };
    let answer = json!({"Name": name, "Properties": RuleProperties::from_rule(&rule)});
    match api.broker.add_rule(topic, subscription, rule).await {
        Ok(()) => reply(StatusCode::CREATED, answer),
        Err(e) => from_broker(e),
    }
}
