//! The HTTP port's own endpoints: `GET /health` for readiness; the admin API
//! (`/admin/servicebus/…`: queues, topics, subscriptions, rules, see [`servicebus`];
//! `/admin/eventhubs/…`: hubs and consumer groups, see [`eventhubs`]; `/admin/eventgrid/…`:
//! topics, see [`eventgrid`]); Event Grid publishing (`/topics/…`, see
//! [`crate::eventgrid`]); the advisor's page (`GET /choose`, see [`crate::choose`]); and, when the server runs
//! with `--enable-test-clock`, `POST /_lapis/clock/advance?seconds=N`, which moves the
//! services' clock forward so tests need not sleep.

mod eventgrid;
mod eventhubs;
pub(crate) mod json;
mod servicebus;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use lapis_core::auth::sas_token::SasKeys;
use lapis_core::broker::Broker;
use lapis_core::ShiftableClock;

use crate::server::HttpResponse;

pub struct AdminApi {
    /// Present only when the test clock is enabled.
    pub test_clock: Option<Arc<ShiftableClock>>,
    pub broker: Arc<Broker>,
    pub streams: Arc<lapis_core::stream::StreamService>,
    pub events: Arc<lapis_core::events::EventGridService>,
    /// Keys that sign admin requests' tokens.
    pub sas_keys: SasKeys,
    /// What the advisor's page prints as this server's connection strings.
    pub endpoints: lapis_core::advisor::snippets::Endpoints,
}

impl AdminApi {
    /// Service Bus queues and topics and event hubs share the AMQP port's addresses:
    /// a new one may not take a name the other service uses (it would be
    /// unreachable). The answer to such a create: 409.
    fn name_in_use_elsewhere(&self, name: &str, creating_hub: bool) -> Option<HttpResponse> {
        let other = if creating_hub {
            self.broker.queue_config(name).is_ok().then_some("a Service Bus queue or topic")
        } else {
            self.streams.hub(name).is_ok().then_some("an event hub")
        }?;
        let message = format!("The name '{name}' is taken by {other} on this server; Service Bus entities and event hubs share its AMQP addresses.");
        Some(json::error(StatusCode::CONFLICT, "Conflict", message))
    }
}

/// Largest admin request body.
const MAX_ADMIN_BODY: usize = 64 * 1024;

fn text(status: StatusCode, body: impl Into<String>) -> HttpResponse {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body.into())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

impl AdminApi {
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> HttpResponse {
        match (req.method(), req.uri().path()) {
            (&Method::GET | &Method::HEAD, "/health") => text(StatusCode::OK, "ok\n"),
            (&Method::GET, crate::choose::PATH) => crate::choose::page(req.uri().query(), &self.endpoints),
            (&Method::POST, "/_lapis/clock/advance") => {
                let Some(clock) = &self.test_clock else {
                    return text(StatusCode::NOT_FOUND, "the test clock is off; start with --enable-test-clock\n");
                };
                let seconds = req
                    .uri()
                    .query()
                    .unwrap_or("")
                    .split('&')
                    .find_map(|p| p.strip_prefix("seconds="))
                    .and_then(|s| s.parse::<f64>().ok())
                    .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 1e9);
                match seconds {
                    Some(s) => {
                        clock.advance((s * 1000.0) as i64);
                        text(StatusCode::OK, format!("advanced {s} s\n"))
                    }
                    None => text(StatusCode::BAD_REQUEST, "seconds must be a non-negative number\n"),
                }
            }
            (_, path) if path.starts_with(servicebus::PREFIX) => servicebus::handle(&self, req).await,
            (_, path) if path.starts_with(eventhubs::PREFIX) => eventhubs::handle(&self, req).await,
            (_, path) if path.starts_with(eventgrid::PREFIX) => eventgrid::handle(&self, req).await,
            (_, path) if crate::eventgrid::handles(path) => crate::eventgrid::handle(&self.events, req).await,
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }
}
