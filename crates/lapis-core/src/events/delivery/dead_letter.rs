//! What push and pull delivery share: turning a stored event into the delivery
//! schema (through the subscription's filter), reading events back from the topic's
//! log by sequence number, and writing them to the subscription's dead-letter
//! container.

use std::collections::BTreeSet;
use std::sync::Arc;

use lapis_store::partition::{EventLog, Seek, StoredEvent};
use serde_json::Value;

use super::super::filter::SubscriptionFilter;
use super::super::model::InputSchema;
use super::super::publish::PublishedEvent;
use super::super::service::SubscriptionRecord;
use super::outbound;
use super::transport::{DeliveryTransport, OutEvent};

const MAX_READ_EVENTS: usize = 4096;
const MAX_READ_BYTES: usize = 4 << 20;

/// `stored` turned from `input` into `output`, if `filter` (when given) passes it.
/// What passes every filter and goes out as stored is not parsed: its id and data
/// version are read only if a header or property asks for them.
pub(crate) fn out_event(stored: StoredEvent, input: InputSchema, output: InputSchema, filter: Option<&SubscriptionFilter>) -> Option<OutEvent> {
    if input == output && filter.is_none_or(SubscriptionFilter::passes_everything) {
        return Some(OutEvent { seq: stored.seq, id: None, json: stored.body, data_version: None, published_at: stored.enqueued_at });
    }
    let value: Value = match serde_json::from_slice(&stored.body) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(seq = stored.seq, error = %e, "event grid: an unreadable event in a topic's log; skipped");
            return None;
        }
    };
    let event = PublishedEvent::from_stored(input, value);
    if filter.is_some_and(|f| !f.matches(&event)) {
        return None;
    }
    let data_version = outbound::data_version(&event.event, output);
    let json = if input == output { stored.body } else { serde_json::to_vec(&outbound::convert(event.event, input, output)).expect("JSON values serialize") };
    Some(OutEvent { seq: stored.seq, id: Some(event.id), json, data_version, published_at: stored.enqueued_at })
}

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
        found.extend(events.into_iter().filter(|e| wanted.contains(&e.seq) && e.seq <= last).filter_map(|e| out_event(e, input, output, None)));
    }
    found
}

/// [`read_events`] as JSON values: (sequence number, event, when it was published).
pub(crate) async fn read_values(log: &Arc<dyn EventLog>, input: InputSchema, output: InputSchema, seqs: &[i64]) -> Vec<(i64, Value, crate::clock::Millis)> {
    read_events(log, input, output, seqs).await.into_iter().filter_map(|e| Some((e.seq, serde_json::from_slice(&e.json).ok()?, e.published_at))).collect()
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
