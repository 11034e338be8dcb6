//! Event Hubs links on a connection: producer and consumer attaches (with their
//! partition, selector filter and owner level), events sent to a hub (confirmed once
//! durable), events pushed to consumers as they become visible (pre-settled, as the
//! service does), a consumer losing its partition to a higher owner level, and the
//! `$management` node's READ answers.

use fe2o3_amqp_types::definitions::Role;
use fe2o3_amqp_types::messaging::{Accepted, DeliveryState, Rejected};
use fe2o3_amqp_types::performatives::Attach;
use fe2o3_amqp_types::primitives::{Symbol, Value};
use lapis_core::stream::{SendTarget, StreamError};
use lapis_core::Clock;

use super::{Answer, Completion, Conn, LinkKind, Result};
use crate::errors::{self, stream_error};
use crate::eventhubs::{self, address::HubAddress, selector};
use crate::{message, sections};

/// The attach property carrying a consumer's owner level.
const EPOCH: &str = "com.microsoft:epoch";
/// The capability a consumer desires to get the partition's last-enqueued event
/// with every delivery.
const RUNTIME_METRICS: &str = "com.microsoft:enable-receiver-runtime-metric";
/// Events taken from a partition per read.
const READ_BATCH: usize = 300;
const READ_BYTES: usize = 1 << 20;

fn epoch(attach: &Attach) -> Option<i64> {
    match attach.properties.as_ref()?.get(&Symbol::from(EPOCH))? {
        Value::Long(n) => Some(*n),
        Value::Int(n) => Some(*n as i64),
        Value::Uint(n) => Some(*n as i64),
        Value::Ulong(n) => Some(*n as i64),
        _ => None,
    }
}

fn wants_metrics(attach: &Attach) -> bool {
    attach.desired_capabilities.as_ref().is_some_and(|caps| caps.0.iter().any(|c| c.as_str() == RUNTIME_METRICS))
}

/// The partition key a producer's message (or batch envelope) carries.
impl Conn<'_> {
    /// Sets up a link to an event hub, or refuses it with the service's error.
    pub(super) fn attach_hub_link(&mut self, channel: u16, attach: Attach, addr: HubAddress, path: String) -> Result<()> {
        let now = lapis_core::SystemClock.now_ms();
        if !self.grants.allows(&path, now) {
            return self.refuse_link(channel, attach, errors::unauthorized(addr.hub()));
        }
        let streams = &self.service.streams;
        let kind = match &addr {
            HubAddress::Producer { hub, partition } => {
                if let Some(p) = partition {
                    if let Err(e) = streams.partition_info(hub, p) {
                        return self.refuse_link(channel, attach, stream_error(&e));
                    }
                }
                LinkKind::HubIn { hub: hub.clone(), target: addr.target() }
            }
            HubAddress::Consumer { hub, group, partition } => {
                let from = match attach.source.as_ref().and_then(|s| s.filter.as_ref()).and_then(selector::expression) {
                    None => Ok(lapis_core::stream::Seek::End),
                    Some(e) => selector::parse(&e),
                };
                let from = match from {
                    Ok(f) => f,
                    Err(why) => return self.refuse_link(channel, attach, errors::custom(errors::ARGUMENT_ERROR, why)),
                };
                match streams.open_reader(hub, group, partition, epoch(&attach), from) {
                    Ok((_, reader)) => LinkKind::HubOut { reader: Box::new(reader), runtime_metrics: wants_metrics(&attach) },
                    Err(e) => return self.refuse_link(channel, attach, stream_error(&e)),
                }
            }
        };
        self.accept_link(channel, attach, kind, Some(path), None)
    }

    /// Appends a producer's event (or batch) to its hub; it is confirmed once durable.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn deliver_to_hub(&mut self, channel: u16, delivery_id: u32, settled: bool, hub: &str, target: &SendTarget, bytes: &[u8], format: u32) -> Answer {
        if bytes.len() > eventhubs::MAX_MESSAGE_SIZE as usize {
            let e = StreamError::EventTooLarge { size: bytes.len(), limit: eventhubs::MAX_MESSAGE_SIZE as usize };
            return Answer::Now(DeliveryState::Rejected(Rejected { error: Some(stream_error(&e)) }));
        }
        // The events, borrowed from the transfer: the envelope's data sections for a
        // batch, else the message itself.
        let parsed = if format == message::BATCH_FORMAT { sections::batch_events(bytes) } else { sections::check(bytes).map(|()| vec![bytes]) };
        let bodies = match parsed {
            Ok(b) => b,
            Err(e) => return Answer::Now(DeliveryState::Rejected(Rejected { error: Some(errors::amqp(fe2o3_amqp_types::definitions::AmqpError::DecodeError, e.to_string())) })),
        };
        // A key matters only for a send to the hub itself: the envelope's, else the
        // first event's (SDKs stamp both).
        let target = match target {
            SendTarget::Any => {
                let key = sections::message_annotation_text(bytes, eventhubs::PARTITION_KEY)
                    .or_else(|| bodies.first().and_then(|e| sections::message_annotation_text(e, eventhubs::PARTITION_KEY)));
                key.map_or(SendTarget::Any, SendTarget::Key)
            }
            t => t.clone(),
        };
        match self.service.streams.send(hub, &target, &bodies) {
            Err(e) => Answer::Now(DeliveryState::Rejected(Rejected { error: Some(stream_error(&e)) })),
            Ok(sent) => {
                let first = sent.appended.events.first().map_or(-1, |e| e.0);
                tracing::debug!(hub, partition = sent.partition, first_seq = first, events = bodies.len(), delivery_id, "events appended");
                self.pending.push(Box::pin(async move {
                    let state = match sent.appended.durable().await {
                        Ok(()) => DeliveryState::Accepted(Accepted {}),
                        Err(e) => DeliveryState::Rejected(Rejected { error: Some(stream_error(&StreamError::Store(e))) }),
                    };
                    Completion { channel, role: Role::Receiver, delivery_id, state, reply: !settled }
                }));
                Answer::Later
            }
        }
    }

    /// Pushes visible events to a consumer while it has credit; detaches it if a
    /// higher owner level took its partition.
    pub(super) async fn pump_hub(&mut self, channel: u16, handle: u32) -> Result<()> {
        loop {
            let session = self.session(channel)?;
            let window = session.window_left() as usize;
            let Some(link) = session.links.get_mut(&handle) else { return Ok(()) };
            let credit = link.peer_credit as usize;
            let LinkKind::HubOut { reader, runtime_metrics } = &mut link.kind else { return Ok(()) };
            let metrics = *runtime_metrics;
            if let Err(e) = reader.check() {
                return self.detach_with(channel, handle, stream_error(&e));
            }
            let want = credit.min(READ_BATCH).min(window);
            if want == 0 || !reader.has_events() {
                return Ok(());
            }
            reader.mark_seen();
            let events = match reader.read(want, READ_BYTES).await {
                Ok(e) => e,
                Err(e @ StreamError::ReceiverDisconnected { .. }) => return self.detach_with(channel, handle, stream_error(&e)),
                Err(e) => {
                    tracing::warn!(error = %e, "reading a partition failed");
                    return self.detach_with(channel, handle, stream_error(&e));
                }
            };
            if events.is_empty() {
                return Ok(());
            }
            let latest = match self.session(channel)?.links.get(&handle).map(|l| &l.kind) {
                Some(LinkKind::HubOut { reader, .. }) if metrics => Some((reader.last_visible(), lapis_core::SystemClock.now_ms())),
                _ => None,
            };
            for event in &events {
                let bytes = match eventhubs::delivery(event, latest) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(error = %e, seq = event.seq, "a stored event could not be annotated; sent as stored");
                        event.body.clone()
                    }
                };
                self.next_tag += 1;
                let tag = self.next_tag.to_be_bytes().to_vec();
                self.transfer(channel, handle, tag, true, &bytes)?;
            }
        }
    }

    /// Answers a request to the Event Hubs `$management` node.
    pub(super) fn on_hub_management_request(&mut self, channel: u16, bytes: &[u8]) -> Result<()> {
        let request = match message::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "undecodable Event Hubs management request");
                return Ok(());
            }
        };
        let answer = eventhubs::management::handle(&self.service.streams, &request);
        let encoded = crate::management::encode(answer).map_err(crate::frame::FrameError::Encode)?;
        let reply_to = request.properties.as_ref().and_then(|p| p.reply_to.clone());
        self.answer_on(channel, reply_to, |l| matches!(l.kind, LinkKind::HubManagementAnswers), encoded, "an Event Hubs management request without an answer link")
    }
}
