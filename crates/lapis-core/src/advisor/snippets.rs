//! What `lapis choose` prints after its advice: the connection string for the chosen
//! service on this Lapis, and the least code that uses it with the official Python SDK.

use super::Service;

/// Where this Lapis serves each service.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// `DefaultEndpointsProtocol=…;QueueEndpoint=…;BlobEndpoint=…` for the development account.
    pub storage: String,
    /// `Endpoint=sb://localhost:5672;…;UseDevelopmentEmulator=true;`
    pub service_bus: String,
    /// `http://127.0.0.1:5300`
    pub http: String,
}

pub fn connection(service: Service, e: &Endpoints) -> String {
    match service {
        Service::StorageQueue | Service::Blob => e.storage.clone(),
        Service::ServiceBus => e.service_bus.clone(),
        Service::EventHubs => format!("{}EntityPath=<hub>", e.service_bus),
        Service::EventGrid => format!("{}/topics/<topic>/api/events (key: lapis eg topic create <topic>)", e.http),
    }
}

pub fn snippet(service: Service, e: &Endpoints) -> String {
    match service {
        Service::StorageQueue | Service::Blob => format!(
            "from azure.storage.queue import QueueClient\n\
             queue = QueueClient.from_connection_string(\"{}\", \"jobs\")\n\
             queue.create_queue()\n\
             queue.send_message(\"upload 42 is in blob uploads/42.mp3\")\n\
             for m in queue.receive_messages():\n    \
                 handle(m.content)\n    \
                 queue.delete_message(m)  # only once the work is done",
            e.storage
        ),
        Service::ServiceBus => format!(
            "from azure.servicebus import ServiceBusClient, ServiceBusMessage\n\
             with ServiceBusClient.from_connection_string(\"{}\") as sb:\n    \
                 sb.get_queue_sender(\"comments\").send_messages(ServiceBusMessage(\"hi\", message_id=\"c-1\", session_id=\"track-42\"))\n    \
                 with sb.get_queue_receiver(\"comments\", session_id=\"track-42\") as r:\n        \
                     for m in r.receive_messages(max_wait_time=5):\n            \
                         handle(m)\n            \
                         r.complete_message(m)",
            e.service_bus
        ),
        Service::EventHubs => format!(
            "from azure.eventhub import EventHubProducerClient, EventHubConsumerClient, EventData\n\
             producer = EventHubProducerClient.from_connection_string(\"{0}EntityPath=plays\")\n\
             batch = producer.create_batch(partition_key=\"track-42\"); batch.add(EventData('{{\"track\": 42}}')); producer.send_batch(batch)\n\
             consumer = EventHubConsumerClient.from_connection_string(\"{0}EntityPath=plays\", consumer_group=\"$Default\")\n\
             consumer.receive(on_event=lambda ctx, ev: handle(ev), starting_position=\"-1\")",
            e.service_bus
        ),
        Service::EventGrid => format!(
            "from azure.core.credentials import AzureKeyCredential\n\
             from azure.eventgrid import EventGridEvent, EventGridPublisherClient\n\
             client = EventGridPublisherClient(\"{}/topics/tracks/api/events\", AzureKeyCredential(\"<Key1>\"))\n\
             client.send(EventGridEvent(subject=\"tracks/42\", event_type=\"MusicShare.TrackPublished\", data={{\"track\": 42}}, data_version=\"1\"))\n\
             # handlers: lapis eg subscription tracks create notify --webhook http://127.0.0.1:8080/api/updates",
            e.http
        ),
    }
}
