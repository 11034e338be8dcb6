//! What flows from the client: messages sent to entities (staged into the broker and
//! confirmed once durable), put-token requests to `$cbs`, requests to `$management`
//! nodes, and declare/discharge to the transaction coordinator — and the link credit
//! Lapis grants for them.

use fe2o3_amqp_types::definitions::{AmqpError, Error, Handle, Role};
use fe2o3_amqp_types::messaging::message::__private::Serializable;
use fe2o3_amqp_types::messaging::{Accepted, DeliveryState, Outcome, Rejected};
use fe2o3_amqp_types::performatives::{Disposition, Flow, Performative, Transfer};
use lapis_core::Clock;

use super::{txn, Answer, Completion, Conn, ConnectionError, Link, LinkKind, Partial, Result};
use crate::cbs;
use crate::errors::{amqp, broker_error};
use crate::frame::FrameError;
use crate::message;

/// Link credit granted to a sender; refilled when half is used.
const CREDIT: u32 = 200;
/// Largest message Lapis reassembles from transfer frames (Premium's 100 MB).
const MAX_MESSAGE: usize = 100 << 20;

fn rejected(e: Error) -> DeliveryState {
    DeliveryState::Rejected(Rejected { error: Some(e) })
}

impl Conn<'_> {
    pub(super) fn grant_credit(&mut self, channel: u16, handle: u32) -> Result<()> {
        let link = self.session(channel)?.links.get_mut(&handle).ok_or_else(|| ConnectionError::Protocol("no such link".into()))?;
        link.credit = CREDIT;
        let delivery_count = link.delivery_count;
        self.link_flow(channel, handle, delivery_count, CREDIT, false)
    }

    /// Sends a link's flow: its delivery-count and credit, with the session's state.
    pub(super) fn link_flow(&mut self, channel: u16, handle: u32, delivery_count: u32, credit: u32, drain: bool) -> Result<()> {
        let session = self.session(channel)?;
        let flow = Flow {
            next_incoming_id: Some(session.next_incoming_id),
            incoming_window: u32::MAX / 2,
            next_outgoing_id: session.next_outgoing_id,
            outgoing_window: u32::MAX / 2,
            handle: Some(Handle(handle)),
            delivery_count: Some(delivery_count),
            link_credit: Some(credit),
            available: drain.then_some(0),
            drain,
            echo: false,
            properties: None,
        };
        self.send(channel, Some(Performative::Flow(flow)), &[])
    }

    pub(super) async fn on_transfer(&mut self, channel: u16, transfer: Transfer, payload: bytes::Bytes) -> Result<()> {
        let session = self.session(channel)?;
        session.next_incoming_id = session.next_incoming_id.wrapping_add(1);
        let handle = transfer.handle.0;
        let link = session.links.get_mut(&handle).ok_or_else(|| ConnectionError::Protocol(format!("transfer on unknown handle {handle}")))?;
        let mut partial = match link.partial.take() {
            Some(p) => p,
            None => {
                let delivery_id = transfer.delivery_id.ok_or_else(|| ConnectionError::Protocol("first transfer frame without delivery-id".into()))?;
                let txn = match &transfer.state {
                    Some(DeliveryState::TransactionalState(t)) => Some(t.txn_id.to_vec()),
                    _ => None,
                };
                Partial { delivery_id, settled: transfer.settled.unwrap_or(false), format: transfer.message_format.unwrap_or(0), txn, bytes: Vec::new() }
            }
        };
        if partial.bytes.len() + payload.len() > MAX_MESSAGE {
            return Err(ConnectionError::Protocol(format!("a message larger than {MAX_MESSAGE} bytes")));
        }
        let continues = transfer.more && !transfer.aborted;
        // A message in one frame is used where it was read; only split ones are copied
        // together.
        let whole = if partial.bytes.is_empty() && !continues {
            payload
        } else {
            partial.bytes.extend_from_slice(&payload);
            if continues {
                link.partial = Some(partial);
                return Ok(());
            }
            bytes::Bytes::from(std::mem::take(&mut partial.bytes))
        };
        link.credit = link.credit.saturating_sub(1);
        link.delivery_count = link.delivery_count.wrapping_add(1);
        let refill = link.credit < CREDIT / 2;
        if transfer.aborted {
            return if refill { self.grant_credit(channel, handle) } else { Ok(()) };
        }
        let Partial { delivery_id, settled, format, txn, .. } = partial;
        let bytes = whole;
        let answer = match &link.kind {
            LinkKind::CbsRequests => {
                self.on_cbs_request(channel, &bytes)?;
                Answer::Now(DeliveryState::Accepted(Accepted {}))
            }
            LinkKind::EntityIn { entity } => {
                let entity = entity.clone();
                self.deliver_to_broker(channel, delivery_id, settled, &entity, bytes.into(), format, txn)
            }
            LinkKind::ManagementRequests { entity } => {
                let entity = entity.clone();
                self.on_management_request(channel, &entity, &bytes).await?;
                Answer::Now(DeliveryState::Accepted(Accepted {}))
            }
            LinkKind::Coordinator => self.on_coordinator_request(channel, delivery_id, settled, &bytes),
            LinkKind::HubIn { hub, target } => {
                let (hub, target) = (hub.clone(), target.clone());
                self.deliver_to_hub(channel, delivery_id, settled, &hub, &target, &bytes, format)
            }
            LinkKind::HubManagementRequests => {
                self.on_hub_management_request(channel, &bytes)?;
                Answer::Now(DeliveryState::Accepted(Accepted {}))
            }
            LinkKind::CbsAnswers | LinkKind::EntityOut { .. } | LinkKind::ManagementAnswers { .. } | LinkKind::HubOut { .. } | LinkKind::HubManagementAnswers => {
                Answer::Now(rejected(amqp(AmqpError::NotAllowed, "transfers go the other way on this link")))
            }
        };
        if let (Answer::Now(state), false) = (answer, settled) {
            let disposition = Disposition { role: Role::Receiver, first: delivery_id, last: None, settled: true, state: Some(state), batchable: false };
            self.send(channel, Some(Performative::Disposition(disposition)), &[])?;
        }
        if refill {
            self.grant_credit(channel, handle)?;
        }
        Ok(())
    }

    /// Stages a send (or enlists it in its transaction); a staged send is confirmed
    /// once durable.
    #[allow(clippy::too_many_arguments)]
    fn deliver_to_broker(&mut self, channel: u16, delivery_id: u32, settled: bool, entity: &str, bytes: Vec<u8>, format: u32, txn_id: Option<Vec<u8>>) -> Answer {
        let decode_error = |e: message::DecodeError| amqp(AmqpError::DecodeError, e.to_string());
        let messages = match message::split(bytes, format).map_err(decode_error).and_then(|parts| {
            parts.into_iter().map(message::to_outgoing).collect::<std::result::Result<Vec<_>, _>>().map_err(decode_error)
        }) {
            Ok(m) => m,
            Err(e) => return Answer::Now(rejected(e)),
        };
        let broker = self.service.broker.clone();
        if let Some(raw) = txn_id {
            let result = match txn::id_of(&raw) {
                Some(id) => broker.enlist_send(id, entity, messages).map_err(|e| broker_error(&e)),
                None => Err(txn::unknown(&raw)),
            };
            return Answer::Now(txn::state(raw, result.map(|()| Outcome::Accepted(Accepted {}))));
        }
        match broker.stage_send(entity, messages) {
            Err(e) => Answer::Now(rejected(broker_error(&e))),
            Ok(staged) => {
                self.pending.push(Box::pin(async move {
                    let state = match broker.finish(staged).await {
                        Ok(_) => DeliveryState::Accepted(Accepted {}),
                        Err(e) => rejected(broker_error(&e)),
                    };
                    Completion { channel, role: Role::Receiver, delivery_id, state, reply: !settled }
                }));
                Answer::Later
            }
        }
    }

    async fn on_management_request(&mut self, channel: u16, entity: &str, bytes: &[u8]) -> Result<()> {
        let request = match message::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "undecodable management request");
                return Ok(());
            }
        };
        let held = self.held_sessions();
        let answer = crate::management::handle(&self.service.broker, entity, &held, &request).await;
        let encoded = crate::management::encode(answer).map_err(FrameError::Encode)?;
        let reply_to = request.properties.as_ref().and_then(|p| p.reply_to.clone());
        let answers = |l: &Link| matches!(&l.kind, LinkKind::ManagementAnswers { entity: e } if e == entity);
        self.answer_on(channel, reply_to, answers, encoded, "a management request without an answer link")
    }

    fn on_cbs_request(&mut self, channel: u16, bytes: &[u8]) -> Result<()> {
        let request = match message::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "undecodable CBS request");
                return Ok(());
            }
        };
        let now = lapis_core::SystemClock.now_ms();
        let service = self.service;
        let (status, description) = cbs::put_token(&request, &service.sas_keys, &mut self.grants, now, |path| service.audience_exists(path));
        let answer = cbs::response(&request, status, &description);
        let encoded = serde_amqp::to_vec(&Serializable(answer)).map_err(|e| FrameError::Encode(e.to_string()))?;
        let reply_to = request.properties.as_ref().and_then(|p| p.reply_to.clone());
        self.answer_on(channel, reply_to, |l: &Link| matches!(l.kind, LinkKind::CbsAnswers), encoded, "a CBS request without a $cbs receiver link")
    }

    /// Sends an answer on the link the request names in reply-to (by link name or
    /// terminus address), else on any answer link of its kind in the session.
    pub(super) fn answer_on(&mut self, channel: u16, reply_to: Option<String>, answers: impl Fn(&Link) -> bool, encoded: Vec<u8>, missing: &str) -> Result<()> {
        let session = self.session(channel)?;
        let named = |l: &Link| reply_to.as_deref().is_some_and(|r| r == l.name || Some(r) == l.client_address.as_deref());
        let target = session
            .links
            .iter()
            .filter(|(_, l)| answers(l))
            .find(|(_, l)| named(l))
            .or_else(|| session.links.iter().find(|(_, l)| answers(l)))
            .map(|(h, _)| *h);
        match target {
            Some(handle) => self.send_message(channel, handle, encoded),
            None => Err(ConnectionError::Protocol(missing.into())),
        }
    }
}
