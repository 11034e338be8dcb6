//! Event Grid namespace topics on the HTTP port, data-plane API `2024-06-01`:
//! `POST /topics/{t}:publish` and, for a queue subscription,
//! `POST /topics/{t}/eventsubscriptions/{s}:receive | :acknowledge | :release |
//! :reject | :renewLock`. Clients authenticate with `Authorization: SharedAccessKey
//! <key>` (one of the topic's keys). Answers are JSON, as `EventGridPublisherClient`
//! and `EventGridConsumerClient` read them: `{}` for a publish, `value` for a
//! receive, both token lists for a lock operation.

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use lapis_core::events::delivery::pull::{LockFailure, LockResults, Settle};
use lapis_core::events::{EventGridService, EventsError, MAX_REQUEST_BYTES};
use serde_json::{json, Value};

use super::from_events;
use crate::admin::json::{error, reply};
use crate::server::HttpResponse;

const DEFAULT_MAX_EVENTS: usize = 1;
const DEFAULT_WAIT_SECONDS: u64 = 60;

/// What a namespace path asks for.
#[derive(Debug, PartialEq, Eq)]
enum Call {
    Publish { topic: String },
    Subscription { topic: String, subscription: String, verb: String },
}

fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

/// `/topics/{t}:publish` or `/topics/{t}/eventsubscriptions/{s}:{verb}`; the colon
/// may come percent-encoded.
fn parse(path: &str) -> Option<Call> {
    let rest = decode(path.strip_prefix(super::PREFIX)?);
    match rest.split('/').collect::<Vec<_>>().as_slice() {
        [one] => {
            let (topic, verb) = one.rsplit_once(':')?;
            (verb == "publish" && !topic.is_empty()).then(|| Call::Publish { topic: topic.to_string() })
        }
        [topic, subs, last] if subs.eq_ignore_ascii_case("eventsubscriptions") => {
            let (subscription, verb) = last.rsplit_once(':')?;
            (!topic.is_empty() && !subscription.is_empty()).then(|| Call::Subscription { topic: topic.to_string(), subscription: subscription.to_string(), verb: verb.to_string() })
        }
        _ => None,
    }
}

/// Whether `path` is a namespace call (its last segment carries a `:verb`).
pub fn handles(path: &str) -> bool {
    parse(path).is_some()
}

fn shared_access_key(req: &Request<Incoming>) -> Option<String> {
    let value = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, key) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("SharedAccessKey").then(|| key.trim().to_string())
}

/// The percent-decoded value of query parameter `name` (names compared ignoring case).
pub(super) fn query(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        k.eq_ignore_ascii_case(name).then(|| decode(v))
    })
}

/// A number of seconds as the SDKs send it (`60`, `60.0`): fractions are dropped.
fn seconds(text: &str) -> Option<i64> {
    text.trim().parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0).map(|s| s.trunc() as i64)
}

fn bad_parameter(name: &str, value: &str) -> HttpResponse {
    from_events(&EventsError::Invalid(format!("Invalid {name} parameter: '{value}'.")))
}

async fn body(req: Request<Incoming>) -> Result<Bytes, HttpResponse> {
    match Limited::new(req.into_body(), MAX_REQUEST_BYTES + 1).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(_) => Err(from_events(&EventsError::TooLarge { what: "The request", size: MAX_REQUEST_BYTES + 1, limit: MAX_REQUEST_BYTES })),
    }
}

fn lock_results(results: LockResults) -> HttpResponse {
    let failed: Vec<Value> = results
        .failed
        .into_iter()
        .map(|(token, why)| {
            let (code, message) = match why {
                LockFailure::Lost => ("TokenLost", "Token has expired."),
                LockFailure::Malformed => ("BadToken", "The lock token is not valid."),
            };
            json!({"lockToken": token, "error": {"code": code, "message": message}})
        })
        .collect();
    reply(StatusCode::OK, json!({"succeededLockTokens": results.succeeded, "failedLockTokens": failed}))
}

pub async fn handle(events: &EventGridService, req: Request<Incoming>) -> HttpResponse {
    let Some(call) = parse(req.uri().path()) else {
        return error(StatusCode::NOT_FOUND, "NotFound", "No such namespace operation.");
    };
    if req.method() != Method::POST {
        return error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "Namespace operations are POST requests.");
    }
    let Some(key) = shared_access_key(&req) else {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized", "The request has no 'Authorization: SharedAccessKey <key>' header.");
    };
    match call {
        Call::Publish { topic } => {
            let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
            let body = match body(req).await {
                Ok(b) => b,
                Err(response) => return response,
            };
            let published = match events.publish_namespace(&topic, &key, content_type.as_deref(), &body) {
                Ok(p) => p,
                Err(e) => return from_events(&e),
            };
            match published.appended.durable().await {
                Ok(()) => reply(StatusCode::OK, json!({})),
                Err(e) => from_events(&EventsError::from(e)),
            }
        }
        Call::Subscription { topic, subscription, verb } => {
            if verb == "receive" {
                let max_events = match query(&req, "maxEvents") {
                    None => DEFAULT_MAX_EVENTS,
                    Some(v) => match v.trim().parse::<usize>() {
                        Ok(n) => n,
                        Err(_) => return bad_parameter("maxEvents", &v),
                    },
                };
                let wait = match query(&req, "maxWaitTime") {
                    None => DEFAULT_WAIT_SECONDS,
                    Some(v) => match seconds(&v) {
                        Some(s) => s as u64,
                        None => return bad_parameter("maxWaitTime", &v),
                    },
                };
                return match events.receive(&topic, &subscription, &key, max_events, wait).await {
                    Ok(got) => {
                        let value: Vec<Value> = got.into_iter().map(|r| json!({"brokerProperties": {"lockToken": r.lock_token, "deliveryCount": r.delivery_count}, "event": r.event})).collect();
                        reply(StatusCode::OK, json!({ "value": value }))
                    }
                    Err(e) => from_events(&e),
                };
            }
            let how = match verb.as_str() {
                "acknowledge" => Settle::Acknowledge,
                "reject" => Settle::Reject,
                "renewLock" => Settle::RenewLock,
                "release" => match query(&req, "releaseDelayInSeconds") {
                    None => Settle::Release { delay_ms: 0 },
                    Some(v) => match v.trim().parse::<i64>() {
                        Ok(s) => Settle::Release { delay_ms: s.saturating_mul(1000) },
                        Err(_) => return bad_parameter("releaseDelayInSeconds", &v),
                    },
                },
                other => return error(StatusCode::NOT_FOUND, "NotFound", format!("No operation ':{other}' on an event subscription.")),
            };
            let body = match body(req).await {
                Ok(b) => b,
                Err(response) => return response,
            };
            let tokens: Vec<String> = match serde_json::from_slice::<Value>(&body).ok().and_then(|v| v.get("lockTokens").cloned()).map(serde_json::from_value) {
                Some(Ok(t)) => t,
                _ => return from_events(&EventsError::InvalidInput("The body must be {\"lockTokens\": [\"...\"]}.".into())),
            };
            match events.settle(&topic, &subscription, &key, &tokens, how).await {
                Ok(results) => lock_results(results),
                Err(e) => from_events(&e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_paths_name_their_call() {
        assert_eq!(parse("/topics/orders:publish"), Some(Call::Publish { topic: "orders".into() }));
        assert_eq!(parse("/topics/orders%3Apublish"), Some(Call::Publish { topic: "orders".into() }));
        assert_eq!(
            parse("/topics/orders/eventsubscriptions/work:receive"),
            Some(Call::Subscription { topic: "orders".into(), subscription: "work".into(), verb: "receive".into() })
        );
        assert_eq!(parse("/topics/orders/api/events"), None, "the custom topic endpoint");
        assert_eq!(parse("/topics/orders"), None);
        assert_eq!(parse("/topics/:publish"), None);
        assert_eq!(seconds("60.9"), Some(60));
        assert_eq!(seconds("-1"), None);
    }
}
