//! Where Event Grid delivery sends things in this server: webhooks through the HTTP
//! client, and this server's own Storage Queues, Service Bus queues and topics, event
//! hubs and Blob containers (dead letters), each in the form Azure's Event Grid uses
//! for that destination.

use std::sync::Arc;

use base64::Engine;
use lapis_core::auth::DEV_ACCOUNT;
use lapis_core::blob::{BlobError, BlobService, ContentSettings, NewBlob};
use lapis_core::broker::{Broker, BrokerError};
use lapis_core::events::delivery::outbound::{message_id, message_properties};
use lapis_core::events::delivery::{BoxFuture, DeliveryTransport, HttpFailure, HttpRequest, HttpResponse, OutEvent, ServiceDelivery, ServiceFailure};
use lapis_core::events::Destination;
use lapis_core::queue::{PutOptions, QueueError, QueueService};
use lapis_core::stream::{SendTarget, StreamError, StreamService};
use lapis_http::webhook::WebhookClient;

pub struct LapisTransport {
    pub webhooks: WebhookClient,
    pub queues: Arc<QueueService>,
    pub broker: Arc<Broker>,
    pub streams: Arc<StreamService>,
    pub blobs: Arc<BlobService>,
}

impl DeliveryTransport for LapisTransport {
    fn http(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, HttpFailure>> {
        Box::pin(self.webhooks.send(request))
    }

    fn to_service<'a>(&'a self, d: ServiceDelivery<'a>) -> BoxFuture<'a, Result<(), ServiceFailure>> {
        Box::pin(async move {
            match d.destination {
                Destination::StorageQueue { queue_name, queue_message_ttl_seconds } => self.to_queue(&d, queue_name, *queue_message_ttl_seconds).await,
                Destination::ServiceBusQueue { queue_name: entity } | Destination::ServiceBusTopic { topic_name: entity } => self.to_broker(&d, entity).await,
                Destination::EventHub { event_hub_name } => self.to_hub(&d, event_hub_name).await,
                Destination::WebHook { .. } | Destination::Queue { .. } => Err(ServiceFailure::Rejected("not a destination in a Lapis service".into())),
            }
        })
    }

    fn dead_letter(&self, container: String, blob: String, body: Vec<u8>) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let settings = ContentSettings { content_type: Some("application/json".into()), ..Default::default() };
            let new = NewBlob { content: body, settings, metadata: Default::default(), transactional_md5: None };
            self.blobs.put_blob(DEV_ACCOUNT, &container, &blob, new, &Default::default()).await.map(drop).map_err(|e| match e {
                BlobError::ContainerNotFound => format!("the container '{container}' does not exist"),
                other => other.to_string(),
            })
        })
    }
}

/// `event` as an AMQP message carrying `body`, with its stable message id and the
/// delivery headers as application properties (what Service Bus and Event Hubs get).
fn amqp_message(d: &ServiceDelivery<'_>, event: &OutEvent, body: Vec<u8>) -> Vec<u8> {
    let props = message_properties(d.subscription, d.schema, event, d.delivery_count);
    lapis_amqp::message::data_message(body, &message_id(d.topic, d.subscription, event.seq), "application/json", &props)
}

impl LapisTransport {
    /// One queue message per event: the event's JSON in base64, as Event Grid writes
    /// it today.
    async fn to_queue(&self, d: &ServiceDelivery<'_>, queue: &str, ttl: Option<i64>) -> Result<(), ServiceFailure> {
        for event in d.events {
            let text = base64::engine::general_purpose::STANDARD.encode(&event.json);
            self.queues.put_message(DEV_ACCOUNT, queue, text, PutOptions { visibility_timeout: None, ttl }).await.map_err(|e| match e {
                QueueError::QueueNotFound => ServiceFailure::NotFound(format!("the storage queue '{queue}' does not exist")),
                QueueError::MessageTooLarge { .. } => ServiceFailure::Rejected(e.to_string()),
                other => ServiceFailure::Busy(other.to_string()),
            })?;
        }
        Ok(())
    }

    /// One message per event, all sent at once: the event's JSON in a data section,
    /// the delivery headers as application properties.
    async fn to_broker(&self, d: &ServiceDelivery<'_>, entity: &str) -> Result<(), ServiceFailure> {
        let mut messages = Vec::with_capacity(d.events.len());
        for event in d.events {
            let bytes = amqp_message(d, event, event.json.clone());
            messages.push(lapis_amqp::message::to_outgoing(bytes).map_err(|e| ServiceFailure::Rejected(e.to_string()))?);
        }
        self.broker.send(entity, messages).await.map(drop).map_err(|e| match &e {
            BrokerError::EntityNotFound(_) => ServiceFailure::NotFound(format!("the Service Bus entity '{entity}' does not exist")),
            BrokerError::MessageSizeExceeded { .. } => ServiceFailure::Rejected(e.to_string()),
            _ => ServiceFailure::Busy(e.to_string()),
        })
    }

    /// One event per event, spread over the hub's partitions; the body is a JSON array
    /// holding the event, which is what the SDKs' `from_json` reads from `EventData`.
    async fn to_hub(&self, d: &ServiceDelivery<'_>, hub: &str) -> Result<(), ServiceFailure> {
        let encoded: Vec<Vec<u8>> = d.events.iter().map(|event| amqp_message(d, event, [b"[".as_slice(), &event.json, b"]"].concat())).collect();
        let mut waits = Vec::with_capacity(encoded.len());
        for bytes in &encoded {
            let sent = self.streams.send(hub, &SendTarget::Any, &[bytes.as_slice()]).map_err(|e| match e {
                StreamError::HubNotFound(_) => ServiceFailure::NotFound(format!("the event hub '{hub}' does not exist")),
                StreamError::EventTooLarge { .. } => ServiceFailure::Rejected(e.to_string()),
                other => ServiceFailure::Busy(other.to_string()),
            })?;
            waits.push(sent.appended);
        }
        for w in waits {
            w.durable().await.map_err(|e| ServiceFailure::Busy(e.to_string()))?;
        }
        Ok(())
    }
}
