//! Lapis's HTTP adapters. They decode requests, authenticate them, call the core, and
//! encode the core's answers in each service's wire format. No service rule lives
//! here.
//!
//! - [`server`]: the connection loop shared by every HTTP endpoint (limits, timeouts,
//!   graceful shutdown).
//! - [`storage`]: what Azure Storage services share: request parsing, Shared Key and
//!   SAS authentication, the XML error shape, common headers.
//! - [`queue`]: the Storage Queue REST API.
//! - [`blob`]: the Blob REST subset Event Hubs checkpoint stores use.
//! - [`eventgrid`]: Event Grid publishing to custom topics.
//! - [`webhook`]: the HTTP client Event Grid push delivery sends with.
//! - [`choose`]: the advisor's page (`GET /choose`).
//! - [`admin`]: `/health`, the admin API and the test clock on the HTTP port.

pub mod admin;
pub mod blob;
pub mod choose;
pub mod eventgrid;
pub mod header_case;
pub mod queue;
pub mod server;
pub mod storage;
pub mod webhook;
mod xml;
