//! What push and pull delivery share once they give up on events or come back to
//! them: reading events back from the topic's log by sequence number, in the
//! delivery schema, and writing them to the subscription's dead-letter container.

use std::collections::BTreeSet;
use std::sync::Arc;

use lapis_store::partition::{EventLog, Seek};
use serde_json::Value;

use super::super::model::InputSchema;
use super::super::publish::PublishedEvent;
use super::super::service::SubscriptionRecord;
use super::outbound;
use super::transport::{DeliveryTransport, OutEvent};

const MAX_READ_EVENTS: usize = 4096;
const MAX_READ_BYTES: usize = 4 << 20;

/// The events at `seqs` (ascending) that the log still holds, turned from `input`
/// into `output`.
pub(crate) async fn read_events(log: &Arc<dyn EventLog>, input: InputSchema, output: InputSchema, seqs: &[i64]) -> Vec<OutEvent> {
    let (Some(&first), Some(&last)) = (seqs.first(), seqs.last()) else { return Vec::new() };
    let wanted: BTreeSet<i64> = seqs.iter().copied().collect();
    let mut cursor = log.seek(Seek::Seq { seq: first, inclusive: true });
    let mut found = Vec::with_capacity(seqs.len());
    while cursor.next_seq <= last {
        let before = cursor.next_seq;
        let span = (last - before + 1).clamp(1, MAX_READ_EVENTS as i64) as usize;
        let events = match log.read(&mut cursor, span, MAX_READ_BYTES).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "event grid: reading events back from a topic's log failed");
                break;
            }
        };
        if events.is_empty() && cursor.next_seq == before {
            break;
        }
        for stored in events.into_iter().filter(|e| wanted.contains(&e.seq) && e.seq <= last) {
            let Ok(value) = serde_json::from_slice::<Value>(&stored.body) else { continue };
            let event = PublishedEvent::from_stored(input, value);
            let data_version = outbound::data_version(&event.event, output);
            let json = serde_json::to_vec(&outbound::convert(event.event, input, output)).expect("JSON values serialize");
            found.push(OutEvent { seq: stored.seq, id: Some(event.id), json, data_version, published_at: stored.enqueued_at });
        }
    }
    found
}

/// Writes a dead-letter blob of `events` events, named and made by `blob`, to the
/// subscription's dead-letter container; without one (or without a transport) they
/// are dropped, as the service drops them. Returns whether they were written.
pub(crate) async fn write_dead_letter(transport: Option<&dyn DeliveryTransport>, subscription: &SubscriptionRecord, events: usize, blob: impl FnOnce() -> (String, Vec<u8>)) -> bool {
    let (Some(container), Some(transport)) = (subscription.spec.dead_letter_container.clone(), transport) else {
        tracing::info!(topic = %subscription.topic, subscription = %subscription.name, events, "event grid: undeliverable events dropped (no dead-letter container)");
        return false;
    };
    let (name, body) = blob();
    match transport.dead_letter(container.clone(), name, body).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(topic = %subscription.topic, subscription = %subscription.name, container = %container, error = %e, "event grid: the dead-letter write failed; the events are dropped");
            false
        }
    }
}
