//! What the tests in tests/ share: a real Lapis server ([`server`]) and the official
//! SDK's clients pointed at it the way a Rust user reaches a local emulator.
//!
//! `azure_messaging_eventhubs` 0.16.0 does not read `UseDevelopmentEmulator` from a
//! connection string (unknown keys are skipped, `common/connection_string.rs`) and
//! always builds `amqps://<namespace>/<hub>` link addresses, so on its own it would
//! dial TLS on port 5671. `with_custom_endpoint("amqp://127.0.0.1:<port>")` on the
//! producer and consumer builders redirects the socket (the AMQP `hostname` stays
//! the connection string's host: `azure_core_amqp` `fe2o3/connection.rs` `open`), and
//! fe2o3-amqp speaks plain TCP for the `amqp` scheme (`connection/builder.rs`).

pub mod server;

use std::time::Duration;

use azure_messaging_eventhubs::models::ReceivedEventData;
use azure_messaging_eventhubs::{
    ConsumerClient, EventReceiver, OpenReceiverOptions, ProducerClient, RetryOptions, StartPosition,
};
use futures::StreamExt as _;

pub use server::{bounded, config, Server};

/// The emulator's key name and key (Lapis accepts them on loopback).
pub const KEY_NAME: &str = "RootManageSharedAccessKey";
pub const KEY: &str = "SAS_KEY_VALUE";

/// No retries: a server error shows up at once, as it is (like `retry_total=0`
/// in the Python tests).
pub fn no_retries() -> RetryOptions {
    RetryOptions { max_retries: 0, ..Default::default() }
}

/// Sends the SDK's own tracing to stderr when `RUST_LOG` is set (for diagnosis).
pub fn trace_sdk() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).with_test_writer().try_init();
    }
}

/// A producer for `hub`, from the emulator connection string signed with `key`.
pub async fn producer_with_key(server: &Server, hub: &str, key: &str) -> azure_messaging_eventhubs::Result<ProducerClient> {
    trace_sdk();
    ProducerClient::builder()
        .with_custom_endpoint(server.amqp_url())
        .with_retry_options(no_retries())
        .open_with_connection_string(&server.connection_string(hub, key), None)
        .await
}

/// A producer for `hub` with the right key; panics if it cannot connect.
pub async fn producer(server: &Server, hub: &str) -> ProducerClient {
    producer_with_key(server, hub, KEY).await.unwrap_or_else(|e| panic!("open a producer for {hub}: {e:?}"))
}

/// A consumer of `hub` in consumer group `group`; panics if it cannot connect.
pub async fn consumer(server: &Server, hub: &str, group: &str) -> ConsumerClient {
    consumer_with_key(server, hub, group, KEY).await.unwrap_or_else(|e| panic!("open a consumer for {hub}/{group}: {e:?}"))
}

/// A receiver on `partition` starting at `start`.
pub async fn receiver(consumer: &ConsumerClient, partition: &str, start: StartPosition) -> EventReceiver {
    let options = OpenReceiverOptions { start_position: Some(start), ..Default::default() };
    consumer
        .open_receiver_on_partition(partition.to_string(), Some(options))
        .await
        .unwrap_or_else(|e| panic!("open a receiver on partition {partition}: {e:?}"))
}

/// The next `n` events from `receiver`, failing on a receive error or if they do not
/// all arrive within `secs`.
pub async fn take(receiver: &EventReceiver, n: usize, secs: u64) -> Vec<ReceivedEventData> {
    let mut got = Vec::new();
    let stream = receiver.stream_events();
    futures::pin_mut!(stream);
    let all = async {
        while got.len() < n {
            match stream.next().await {
                Some(Ok(event)) => got.push(event),
                Some(Err(e)) => panic!("receive on partition {} failed after {} events: {e:?}", receiver.partition_id(), got.len()),
                None => panic!("the event stream of partition {} ended after {} events", receiver.partition_id(), got.len()),
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(secs), all).await.is_err() {
        panic!("partition {}: {} of {n} events within {secs} s", receiver.partition_id(), got.len());
    }
    got
}

/// Whether `receiver` yields anything within `ms` (it should not, past the end).
pub async fn nothing_more(receiver: &EventReceiver, ms: u64) -> Option<String> {
    let stream = receiver.stream_events();
    futures::pin_mut!(stream);
    match tokio::time::timeout(Duration::from_millis(ms), stream.next()).await {
        Err(_) => None,
        Ok(Some(Ok(event))) => Some(format!("an unexpected event: seq {:?} body {:?}", event.sequence_number(), event.event_data().body().map(String::from_utf8_lossy))),
        Ok(Some(Err(e))) => Some(format!("a receive error: {}", error_chain(&e))),
        Ok(None) => Some("the end of the stream".into()),
    }
}

/// An event's body as text.
pub fn body(event: &ReceivedEventData) -> String {
    String::from_utf8_lossy(event.event_data().body().unwrap_or_default()).into_owned()
}

/// An error and every error under it (`source()`), joined with ` <- `: what the SDK
/// says, down to the status code or AMQP condition the server sent.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        text.push_str(" <- ");
        text.push_str(&inner.to_string());
        cur = inner.source();
    }
    text
}

/// A consumer of `hub` signed with `key` (which may be wrong); errors are returned.
pub async fn consumer_with_key(server: &Server, hub: &str, group: &str, key: &str) -> azure_messaging_eventhubs::Result<ConsumerClient> {
    trace_sdk();
    ConsumerClient::builder()
        .with_custom_endpoint(server.amqp_url())
        .with_retry_options(no_retries())
        .with_consumer_group(group.to_string())
        .open_with_connection_string(&server.connection_string(hub, key), None)
        .await
}
