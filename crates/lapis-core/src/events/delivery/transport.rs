//! The seam between delivery semantics and the wires they go out on: a plain HTTP
//! requester for webhooks (the core decides every header, body and status rule),
//! this server's own services as destinations, and the Blob service for dead letters.
//! The binary provides the implementation; tests provide fakes.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::super::model::InputSchema;
use super::super::subscription::Destination;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Post,
    Options,
}

/// One outbound request, exactly as it goes on the wire.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: HttpMethod,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Default)]
pub struct HttpResponse {
    pub status: u16,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpFailure {
    TimedOut,
    /// Refused, reset, unresolvable: the socket never carried an answer.
    Unreachable(String),
    /// A URL the client cannot use (a scheme it does not speak, say).
    BadUrl(String),
}

/// One event on its way out, in the subscription's delivery schema.
#[derive(Debug, Clone)]
pub struct OutEvent {
    /// Its place in the topic's log.
    pub seq: i64,
    /// The event's id, when it was read out already (events no filter looked at
    /// travel unread: see [`OutEvent::described`]).
    pub id: Option<String>,
    /// The event's JSON object.
    pub json: Vec<u8>,
    /// `dataVersion` of an Event Grid schema event (meaningful when `id` is known).
    pub data_version: Option<String>,
    /// When the topic accepted it (ms since the epoch).
    pub published_at: i64,
}

impl OutEvent {
    /// The event's id and (Event Grid schema) `dataVersion`, read from its JSON when
    /// they were not kept.
    pub fn described(&self, schema: InputSchema) -> (String, Option<String>) {
        if let Some(id) = &self.id {
            return (id.clone(), self.data_version.clone());
        }
        let value: serde_json::Value = serde_json::from_slice(&self.json).unwrap_or_default();
        let id = value.get("id").and_then(serde_json::Value::as_str).unwrap_or("").to_string();
        (id, super::outbound::data_version(&value, schema))
    }
}

/// What travels with events delivered to this server's own services: the values
/// Azure puts in the webhook headers, as message properties.
#[derive(Debug, Clone)]
pub struct ServiceDelivery<'a> {
    pub topic: &'a str,
    pub subscription: &'a str,
    pub destination: &'a Destination,
    pub schema: InputSchema,
    /// Attempts made before this one.
    pub delivery_count: u32,
    pub events: &'a [OutEvent],
}

/// Why a delivery to one of this server's services failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceFailure {
    /// The queue, topic or event hub does not exist.
    NotFound(String),
    /// The destination refused the message as it is (too large, say): retrying
    /// cannot help.
    Rejected(String),
    /// Anything that may pass on a later attempt (a full queue, a storage error).
    Busy(String),
}

/// Where delivery sends things.
pub trait DeliveryTransport: Send + Sync + 'static {
    /// Sends one HTTP request to a webhook.
    fn http(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, HttpFailure>>;
    /// Puts events into a Storage Queue, Service Bus queue or topic, or event hub of
    /// this server, one message per event.
    fn to_service<'a>(&'a self, delivery: ServiceDelivery<'a>) -> BoxFuture<'a, Result<(), ServiceFailure>>;
    /// Writes a dead-letter blob into `container` of this server's Blob service.
    fn dead_letter(&self, container: String, blob: String, body: Vec<u8>) -> BoxFuture<'_, Result<(), String>>;
}
