//! Event Grid delivery: each subscription's loop over its topic's log ([`worker`]),
//! what goes out on the wire ([`outbound`]), when failures are retried
//! ([`schedule`]), what survives a restart ([`state`]), the counters the admin API
//! shows ([`metrics`]), and the seam to the wires themselves ([`transport`]).

pub(crate) mod dead_letter;
pub mod metrics;
pub mod outbound;
pub mod pull;
mod retries;
pub mod schedule;
pub(crate) mod state;
pub mod transport;
pub(crate) mod worker;

pub use metrics::{DeliveryMetrics, MetricsView};
pub use state::RetryRecord;
pub use transport::{BoxFuture, DeliveryTransport, HttpFailure, HttpMethod, HttpRequest, HttpResponse, OutEvent, ServiceDelivery, ServiceFailure};
