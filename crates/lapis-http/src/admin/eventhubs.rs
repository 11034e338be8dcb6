//! The Event Hubs part of the admin API, authenticated like the Service Bus part.
//! Bodies and answers are JSON with the Event Hubs emulator's property names
//! (`PartitionCount`, `RetentionTimeInHours`, `ConsumerGroups`).
//!
//! - `/admin/eventhubs/hubs[/H]`: `GET` lists or shows (with each partition's
//!   sequence numbers), `PUT` creates (201) or updates (200; partitions can only be
//!   added), `DELETE` removes the hub and its events (204). `If-None-Match: *` makes a
//!   `PUT` create-only (409 if it exists), `If-Match: *` update-only (404).
//! - `/admin/eventhubs/hubs/H/consumergroups[/G]`: `GET` lists, `PUT` adds (201),
//!   `DELETE` removes (204).

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use lapis_core::stream::{HubConfig, HubProperties, HubView, StreamError, StreamService, DEFAULT_CONSUMER_GROUP};
use serde_json::{json, Value};

use super::json::{authorize, error, path_segments, read_json, reply};
use super::AdminApi;
use crate::server::HttpResponse;

pub const PREFIX: &str = "/admin/eventhubs/";

fn from_stream(e: StreamError) -> HttpResponse {
    let (status, code) = match &e {
        StreamError::HubNotFound(_) | StreamError::ConsumerGroupNotFound { .. } | StreamError::PartitionNotFound { .. } => (StatusCode::NOT_FOUND, "MessagingEntityNotFound"),
        StreamError::HubAlreadyExists(_) | StreamError::ConsumerGroupAlreadyExists(_) => (StatusCode::CONFLICT, "MessagingEntityAlreadyExists"),
        StreamError::Store(_) => {
            tracing::error!(error = %e, "admin request failed in storage");
            (StatusCode::INTERNAL_SERVER_ERROR, "InternalError")
        }
        _ => (StatusCode::BAD_REQUEST, "BadRequest"),
    };
    error(status, code, e.to_string())
}

fn describe(streams: &StreamService, hub: &HubView) -> Value {
    let partitions: Vec<Value> = (0..hub.config.partitions)
        .filter_map(|p| {
            let info = streams.partition_info(&hub.name, &p.to_string()).ok()?;
            Some(json!({
                "PartitionId": p.to_string(),
                "BeginSequenceNumber": info.begin_seq,
                "LastEnqueuedSequenceNumber": info.last_seq,
                "LastEnqueuedOffset": info.last_offset.to_string(),
                "IsEmpty": info.is_empty,
                "SizeInBytes": info.bytes,
            }))
        })
        .collect();
    json!({ "Name": hub.name, "CreatedAt": hub.created_at, "Properties": HubProperties::from_config(&hub.config), "Partitions": partitions })
}

enum Resource {
    Hubs(Option<String>),
    Groups { hub: String, name: Option<String> },
}

fn parse_path(path: &str) -> Option<Resource> {
    let parts = path_segments(path, PREFIX)?;
    let p: Vec<&str> = parts.iter().map(String::as_str).collect();
    Some(match p.as_slice() {
        ["hubs"] => Resource::Hubs(None),
        ["hubs", h] => Resource::Hubs(Some(h.to_string())),
        ["hubs", h, "consumergroups"] => Resource::Groups { hub: h.to_string(), name: None },
        ["hubs", h, "consumergroups", g] => Resource::Groups { hub: h.to_string(), name: Some(g.to_string()) },
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
    let streams = &api.streams;
    let method = req.method().clone();
    match (method, resource) {
        (Method::GET, Resource::Hubs(None)) => {
            let hubs: Vec<Value> = streams.list_hubs().iter().map(|h| describe(streams, h)).collect();
            reply(StatusCode::OK, json!({ "Hubs": hubs }))
        }
        (Method::GET, Resource::Hubs(Some(h))) => match streams.hub_view(&h) {
            Ok(view) => reply(StatusCode::OK, describe(streams, &view)),
            Err(e) => from_stream(e),
        },
        (Method::PUT, Resource::Hubs(Some(h))) => put_hub(api, req, &h).await,
        (Method::DELETE, Resource::Hubs(Some(h))) => done(streams.delete_hub(&h).await, StatusCode::NO_CONTENT),
        (Method::GET, Resource::Groups { hub, name: None }) => match streams.hub_view(&hub) {
            Ok(view) => {
                let groups: Vec<Value> = std::iter::once(DEFAULT_CONSUMER_GROUP.to_string()).chain(view.config.consumer_groups).map(|g| json!({ "Name": g })).collect();
                reply(StatusCode::OK, json!({ "ConsumerGroups": groups }))
            }
            Err(e) => from_stream(e),
        },
        (Method::PUT, Resource::Groups { hub, name: Some(g) }) => done(streams.add_consumer_group(&hub, &g).await.map(|()| json!({ "Name": g })), StatusCode::CREATED),
        (Method::DELETE, Resource::Groups { hub, name: Some(g) }) => done(streams.delete_consumer_group(&hub, &g).await, StatusCode::NO_CONTENT),
        _ => error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "GET a collection or an item; PUT or DELETE an item"),
    }
}

/// The answer to a change: `status` with its body (none for `()`), or the error.
fn done<T: serde::Serialize>(result: Result<T, StreamError>, status: StatusCode) -> HttpResponse {
    match result {
        Ok(body) => {
            let body = serde_json::to_value(body).unwrap_or(Value::Null);
            reply(status, body)
        }
        Err(e) => from_stream(e),
    }
}

async fn put_hub(api: &AdminApi, req: Request<Incoming>, name: &str) -> HttpResponse {
    let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).map(str::trim) == Some("*");
    let (create_only, update_only) = (header("if-none-match"), header("if-match"));
    let given: HubProperties = match read_json(req).await {
        Ok(p) => p,
        Err(response) => return response,
    };
    let streams = &api.streams;
    let existing = streams.hub_view(name).ok();
    if existing.is_none() {
        if let Some(conflict) = api.name_in_use_elsewhere(name, true) {
            return conflict;
        }
    }
    let result = match (&existing, create_only, update_only) {
        (Some(_), true, _) => Err(StreamError::HubAlreadyExists(name.to_string())),
        (None, _, true) => Err(StreamError::HubNotFound(name.to_string())),
        (Some(view), _, _) => streams.update_hub(name, given.to_config(&view.config)).await.map(|()| StatusCode::OK),
        (None, _, _) => streams.create_hub(name, given.to_config(&HubConfig::default())).await.map(|()| StatusCode::CREATED),
    };
    match result.and_then(|status| Ok((status, streams.hub_view(name)?))) {
        Ok((status, view)) => reply(status, describe(streams, &view)),
        Err(e) => from_stream(e),
    }
}
