//! What the tests in tests/ share: a real Lapis server ([`server`]), Service Bus SAS
//! tokens ([`sas`]), helpers on fe2o3-amqp's connection/session/link API ([`client`]),
//! and a frame-level client on fe2o3-amqp's transport for what that API hides
//! ([`wire`]).

pub mod client;
pub mod messages;
pub mod sas;
pub mod server;
pub mod wire;

pub use server::{config, Server};

/// Runs `f`, failing the test if it takes longer than `secs` (a server that stops
/// answering fails the test instead of hanging it).
pub async fn bounded<F: std::future::Future>(secs: u64, what: &str, f: F) -> F::Output {
    match tokio::time::timeout(std::time::Duration::from_secs(secs), f).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: not done within {secs} s"),
    }
}
