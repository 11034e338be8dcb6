//! What the tests in tests/ share: a real Lapis server ([`server`]), Service Bus SAS
//! tokens ([`sas`]), helpers on fe2o3-amqp's connection/session/link API ([`client`]),
//! and a frame-level client on fe2o3-amqp's transport for what that API hides
//! ([`wire`]).

pub mod client;
pub mod messages;
pub mod sas;
pub mod server;
pub mod wire;

pub use server::{bounded, config, Server};

