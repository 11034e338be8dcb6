//! Event Hubs through Microsoft's `azure_messaging_eventhubs` crate: phones send
//! plays (partitioned by track), the trending aggregator reads them in its own
//! consumer group.
//!
//! This crate version signs in only with a `TokenCredential`; [`SasCredential`] is
//! the few lines that make it hand Lapis a shared access signature instead of an
//! Entra ID token (the claims-based security exchange carries either), and
//! `with_custom_endpoint` points it at Lapis's plain `amqp://` port.

use std::sync::Arc;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_messaging_eventhubs::models::{EventData, ReceivedEventData};
use azure_messaging_eventhubs::{ConsumerClient, EventDataBatchOptions, EventReceiver, OpenReceiverOptions, ProducerClient, StartLocation, StartPosition};

use super::lapis::{sas_token, Lapis};

/// The hub of plays and the aggregator's consumer group.
pub const PLAYS: &str = "plays";
pub const TRENDING_GROUP: &str = "trending";
/// The namespace name the clients put in link addresses; Lapis answers to any.
const NAMESPACE: &str = "localhost";

/// Hands out SAS tokens for the whole namespace, renewed as they near expiry.
#[derive(Debug)]
pub struct SasCredential;

#[async_trait::async_trait]
impl TokenCredential for SasCredential {
    async fn get_token(&self, _scopes: &[&str], _options: Option<TokenRequestOptions<'_>>) -> azure_core::Result<AccessToken> {
        let (token, expiry) = sas_token(&format!("sb://{NAMESPACE}/"), 3600);
        let expires_on = time::OffsetDateTime::from_unix_timestamp(expiry as i64).map_err(|e| azure_core::Error::with_message(azure_core::error::ErrorKind::Other, e.to_string()))?;
        Ok(AccessToken::new(token, expires_on))
    }
}

pub async fn producer(lapis: &Lapis) -> azure_messaging_eventhubs::Result<ProducerClient> {
    ProducerClient::builder().with_custom_endpoint(lapis.amqp_url()).open(NAMESPACE, PLAYS, Arc::new(SasCredential)).await
}

pub async fn consumer(lapis: &Lapis) -> azure_messaging_eventhubs::Result<ConsumerClient> {
    ConsumerClient::builder().with_custom_endpoint(lapis.amqp_url()).with_consumer_group(TRENDING_GROUP.to_string()).open(NAMESPACE, PLAYS.to_string(), Arc::new(SasCredential)).await
}

/// A play as the phones send it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Play {
    pub play_id: String,
    pub track_id: String,
}

/// Sends one play, keyed by its track so a track's plays share a partition.
pub async fn send_play(producer: &ProducerClient, play: &Play) -> azure_messaging_eventhubs::Result<()> {
    let batch = producer.create_batch(Some(EventDataBatchOptions { partition_key: Some(play.track_id.clone()), ..Default::default() })).await?;
    let body = serde_json::to_vec(play).expect("a play serializes");
    batch.try_add_event_data(EventData::builder().with_body(body).with_content_type("application/json".into()).build(), None)?;
    producer.send_batch(batch, None).await
}

/// A receiver of `partition` after sequence number `after` (from the start when `None`).
pub async fn receiver(consumer: &ConsumerClient, partition: &str, after: Option<i64>) -> azure_messaging_eventhubs::Result<EventReceiver> {
    let start = match after {
        Some(seq) => StartPosition { location: StartLocation::SequenceNumber(seq), inclusive: false },
        None => StartPosition { location: StartLocation::Earliest, inclusive: false },
    };
    let options = OpenReceiverOptions { start_position: Some(start), prefetch: Some(300), ..Default::default() };
    consumer.open_receiver_on_partition(partition.to_string(), Some(options)).await
}

/// The play an event carries (`None` for an event that is not a play: it is
/// skipped, and counted past), with its sequence number.
pub fn play_of(event: &ReceivedEventData) -> (Option<Play>, Option<i64>) {
    let play = event.event_data().body().and_then(|b| serde_json::from_slice(b).ok());
    (play, event.sequence_number())
}
