//! What flows to the client: messages on receiver links while they have credit (and
//! the broker has messages), drain, answers on `$cbs` and `$management` reply links,
//! and the confirmation of each settlement the client makes — a bare `rejected` for a
//! dead-letter, `message-lock-lost` when the lock is gone, the outcome inside a
//! transactional state when the settlement is part of a transaction.

use fe2o3_amqp_types::definitions::{Handle, Role};
use fe2o3_amqp_types::messaging::{Accepted, DeliveryState, Modified, Outcome, Rejected, Released};
use fe2o3_amqp_types::performatives::{Disposition, Flow, Performative, Transfer};
use fe2o3_amqp_types::primitives::Value;
use lapis_core::broker::{BrokerError, PropertyValue, ReceiveMode, Settlement};

use super::{txn, Completion, Conn, ConnectionError, LinkKind, Result, Unsettled, WaitFuture};
use crate::errors::broker_error;

/// At most this many messages are taken from the broker per pump.
const MAX_BATCH: usize = 32;
/// A disposition may settle at most this many deliveries at once.
const MAX_DISPOSITION_RANGE: u32 = 10_000;
/// Deliveries a link may hold unsettled; past this Lapis sends no more until some are
/// settled, whatever credit the client gives.
const MAX_UNSETTLED_PER_LINK: usize = 5_000;

impl Conn<'_> {
    pub(super) async fn on_flow(&mut self, channel: u16, flow: Flow) -> Result<()> {
        let session = self.session(channel)?;
        session.peer_flow(flow.next_incoming_id, flow.incoming_window);
        if let Some(handle) = &flow.handle {
            if let Some(link) = session.links.get_mut(&handle.0) {
                let credit = flow.link_credit.unwrap_or(0);
                // The peer's view: credit counts from its delivery-count.
                let sent_since = link.delivery_count.wrapping_sub(flow.delivery_count.unwrap_or(link.delivery_count));
                link.peer_credit = credit.saturating_sub(sent_since);
                link.delivery_count = flow.delivery_count.unwrap_or(link.delivery_count).wrapping_add(sent_since);
            }
        }
        self.flush_queued(channel)?;
        match flow.handle {
            Some(handle) => {
                self.pump(channel, handle.0).await?;
                if flow.drain {
                    self.drain(channel, handle.0)?;
                }
                Ok(())
            }
            // A session-level flow may open the window for every waiting receiver.
            None => self.pump_all().await,
        }
    }

    /// Sends answers that waited for credit or window, as far as both now allow.
    fn flush_queued(&mut self, channel: u16) -> Result<()> {
        let handles: Vec<u32> = self.session(channel)?.links.iter().filter(|(_, l)| !l.queued.is_empty()).map(|(h, _)| *h).collect();
        for handle in handles {
            let queued = match self.session(channel)?.links.get_mut(&handle) {
                Some(link) => std::mem::take(&mut link.queued),
                None => continue,
            };
            for m in queued {
                self.send_message(channel, handle, m)?;
            }
        }
        Ok(())
    }

    /// What the connection's waiting receivers wait on: the wakers of the entities
    /// that links with credit read from, those session receivers wait for, new events
    /// for hub consumers with credit, and any hub consumer losing its partition.
    pub(super) fn waits(&self) -> Vec<WaitFuture> {
        let mut notifies: Vec<std::sync::Arc<tokio::sync::Notify>> = Vec::new();
        let mut out: Vec<WaitFuture> = Vec::new();
        for s in self.sessions.values() {
            // Only links that could send now: credit, room for unsettled deliveries,
            // and room in the session window (else a wake-up would find nothing to do).
            let room = s.window_left() > 0;
            for l in s.links.values() {
                let ready = room && l.peer_credit > 0 && l.unsettled < MAX_UNSETTLED_PER_LINK;
                match &l.kind {
                    LinkKind::EntityOut { waker, .. } if ready && !notifies.iter().any(|o| std::sync::Arc::ptr_eq(o, waker)) => {
                        notifies.push(waker.clone());
                    }
                    LinkKind::HubOut { reader, .. } => {
                        let (mut visible, mut kicked) = reader.watches();
                        if ready {
                            out.push(Box::pin(async move {
                                let _ = visible.changed().await;
                            }));
                        }
                        out.push(Box::pin(async move {
                            if kicked.changed().await.is_err() {
                                std::future::pending::<()>().await;
                            }
                        }));
                    }
                    _ => {}
                }
            }
        }
        for w in self.waiting.iter().map(|w| self.service.broker.waker(&w.entity)) {
            if !notifies.iter().any(|o| std::sync::Arc::ptr_eq(o, &w)) {
                notifies.push(w);
            }
        }
        out.extend(notifies.into_iter().map(|n| -> WaitFuture { Box::pin(async move { n.notified().await }) }));
        out
    }

    /// Gives every waiting receiver what the broker has for it now.
    pub(super) async fn pump_all(&mut self) -> Result<()> {
        let waiting: Vec<(u16, u32)> = self
            .sessions
            .iter()
            .flat_map(|(c, s)| s.links.iter().filter(|(_, l)| matches!(l.kind, LinkKind::EntityOut { .. } | LinkKind::HubOut { .. })).map(|(h, _)| (*c, *h)))
            .collect();
        for (channel, handle) in waiting {
            self.pump(channel, handle).await?;
        }
        self.retry_waiting_attaches(false).await
    }

    /// Sends messages on a receiver link while it has credit and the broker has messages.
    async fn pump(&mut self, channel: u16, handle: u32) -> Result<()> {
        if matches!(self.session(channel)?.links.get(&handle).map(|l| &l.kind), Some(LinkKind::HubOut { .. })) {
            return self.pump_hub(channel, handle).await;
        }
        loop {
            let session = self.session(channel)?;
            let Some(link) = session.links.get(&handle) else { return Ok(()) };
            let LinkKind::EntityOut { entity, sub, mode, session: held, .. } = &link.kind else { return Ok(()) };
            let (entity, sub, mode, held) = (entity.clone(), *sub, *mode, held.clone());
            let room = MAX_UNSETTLED_PER_LINK.saturating_sub(link.unsettled);
            let window = session.window_left() as usize;
            let want = (link.peer_credit as usize).min(MAX_BATCH).min(room).min(window);
            if want == 0 {
                // Out of credit: another receiver may take what is left. (Not when the
                // window or unsettled room is what stops it: it is still waiting.)
                if held.is_none() && link.peer_credit == 0 {
                    self.service.broker.pass_on(&entity, sub);
                }
                return Ok(());
            }
            let broker = &self.service.broker;
            let received = match &held {
                Some(s) => broker.receive_from_session(&entity, s.token, mode, want).await,
                None => broker.receive(&entity, sub, mode, want).await,
            };
            let deliveries = match received {
                Ok(d) => d,
                Err(e @ (BrokerError::SessionLockLost | BrokerError::EntityNotFound(_))) => return self.detach_with(channel, handle, broker_error(&e)),
                Err(e) => {
                    tracing::debug!(error = %e, "receive failed");
                    return Ok(());
                }
            };
            if deliveries.is_empty() {
                return Ok(());
            }
            for d in deliveries {
                let bytes = match crate::delivery::encode(&d) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(error = %e, sequence = d.sequence_number, "a stored message could not be re-encoded");
                        continue;
                    }
                };
                let token = d.lock_token.unwrap_or_else(uuid::Uuid::new_v4);
                let settled = mode == ReceiveMode::ReceiveAndDelete;
                if self.frames_for(bytes.len()) > self.session(channel)?.window_left() {
                    // No room in the peer's window for all of its frames: give a locked
                    // message back; it goes out when the window opens.
                    if let Some(token) = d.lock_token {
                        let _ = self.service.broker.stage_settle(&entity, sub, token, lapis_core::broker::Settlement::Release);
                        continue;
                    }
                }
                let delivery_id = self.transfer(channel, handle, crate::delivery::lock_token_tag(token), settled, &bytes)?;
                if !settled {
                    let session = self.session(channel)?;
                    session.unsettled.insert(delivery_id, Unsettled { handle, entity: entity.clone(), sub, token });
                    if let Some(link) = session.links.get_mut(&handle) {
                        link.unsettled += 1;
                    }
                }
            }
        }
    }

    /// Answers a drain request: the credit left is used up and reported back.
    fn drain(&mut self, channel: u16, handle: u32) -> Result<()> {
        let Some(link) = self.session(channel)?.links.get_mut(&handle) else { return Ok(()) };
        link.delivery_count = link.delivery_count.wrapping_add(link.peer_credit);
        link.peer_credit = 0;
        let delivery_count = link.delivery_count;
        self.link_flow(channel, handle, delivery_count, 0, true)
    }

    /// Payload bytes per transfer frame, within the peer's max frame size.
    fn chunk_size(&self) -> usize {
        (self.peer_max_frame as usize).saturating_sub(512).max(256)
    }

    /// Transfer frames a message of `len` bytes takes.
    fn frames_for(&self, len: usize) -> u32 {
        len.div_ceil(self.chunk_size()).max(1) as u32
    }

    /// Sends one message, split into frames that fit the peer's max frame size.
    /// Returns its delivery id.
    pub(super) fn transfer(&mut self, channel: u16, handle: u32, tag: Vec<u8>, settled: bool, bytes: &[u8]) -> Result<u32> {
        let chunk = self.chunk_size();
        let session = self.session(channel)?;
        let chunks: Vec<&[u8]> = if bytes.is_empty() { vec![bytes] } else { bytes.chunks(chunk).collect() };
        // Delivery ids share the transfer-id counter: one number per frame.
        let delivery_id = session.sent_frames(chunks.len() as u32);
        if let Some(link) = session.links.get_mut(&handle) {
            link.peer_credit = link.peer_credit.saturating_sub(1);
            link.delivery_count = link.delivery_count.wrapping_add(1);
        }
        let last = chunks.len() - 1;
        for (i, part) in chunks.into_iter().enumerate() {
            let transfer = Transfer {
                handle: Handle(handle),
                delivery_id: (i == 0).then_some(delivery_id),
                delivery_tag: (i == 0).then(|| tag.clone().into()),
                message_format: (i == 0).then_some(0),
                settled: (i == 0).then_some(settled),
                more: i != last,
                rcv_settle_mode: None,
                state: None,
                resume: false,
                aborted: false,
                batchable: false,
            };
            self.send(channel, Some(Performative::Transfer(transfer)), part)?;
        }
        Ok(delivery_id)
    }

    /// Settles peek-locked deliveries as the client's disposition says. Each
    /// settlement is confirmed (when the client waits for it) once durable.
    pub(super) fn on_disposition(&mut self, channel: u16, d: Disposition) -> Result<()> {
        if d.role != Role::Receiver {
            return Ok(());
        }
        let last = d.last.unwrap_or(d.first);
        if last.wrapping_sub(d.first) > MAX_DISPOSITION_RANGE {
            return Err(ConnectionError::Protocol("a disposition over too many deliveries".into()));
        }
        let mut id = d.first;
        loop {
            let session = self.session(channel)?;
            // A settlement inside a transaction leaves the delivery open: a rollback
            // gives it back to the client, which may settle it again.
            let transactional = matches!(d.state, Some(DeliveryState::TransactionalState(_)));
            let entry = if transactional { session.unsettled.get(&id).cloned() } else { session.unsettled.remove(&id) };
            match entry {
                Some(u) => {
                    if !transactional {
                        if let Some(link) = session.links.get_mut(&u.handle) {
                            link.unsettled = link.unsettled.saturating_sub(1);
                        }
                    }
                    self.settle_one(channel, id, !d.settled, u, d.state.as_ref())?;
                }
                // Settled already, or never sent: the lock it names is gone. (Only for a
                // single delivery: a range may span ids no delivery took.)
                None if d.first == last => self.reply_now(channel, id, !d.settled, DeliveryState::Rejected(Rejected { error: Some(broker_error(&BrokerError::MessageLockLost)) }))?,
                None => {}
            }
            if id == last {
                break;
            }
            id = id.wrapping_add(1);
        }
        Ok(())
    }

    fn settle_one(&mut self, channel: u16, delivery_id: u32, reply: bool, u: Unsettled, state: Option<&DeliveryState>) -> Result<()> {
        let broker = self.service.broker.clone();
        if let Some(DeliveryState::TransactionalState(t)) = state {
            let (settlement, echo) = settlement_of(t.outcome.clone().map(outcome_state).as_ref());
            let result = match txn::id_of(&t.txn_id) {
                Some(id) => broker.enlist_settle(id, &u.entity, u.sub, u.token, settlement).map_err(|e| broker_error(&e)),
                None => Err(txn::unknown(&t.txn_id)),
            };
            let outcome = result.map(|()| match echo {
                DeliveryState::Accepted(a) => Outcome::Accepted(a),
                DeliveryState::Rejected(r) => Outcome::Rejected(r),
                DeliveryState::Released(r) => Outcome::Released(r),
                DeliveryState::Modified(m) => Outcome::Modified(m),
                _ => Outcome::Accepted(Accepted {}),
            });
            return self.reply_now(channel, delivery_id, reply, txn::state(t.txn_id.to_vec(), outcome));
        }
        let (settlement, echo) = settlement_of(state);
        match broker.stage_settle(&u.entity, u.sub, u.token, settlement) {
            Err(e) => self.reply_now(channel, delivery_id, reply, DeliveryState::Rejected(Rejected { error: Some(broker_error(&e)) })),
            Ok(staged) => {
                self.pending.push(Box::pin(async move {
                    let state = match broker.finish(staged).await {
                        Ok(()) => echo,
                        Err(e) => DeliveryState::Rejected(Rejected { error: Some(broker_error(&e)) }),
                    };
                    Completion { channel, role: Role::Sender, delivery_id, state, reply }
                }));
                Ok(())
            }
        }
    }

    fn reply_now(&mut self, channel: u16, delivery_id: u32, reply: bool, state: DeliveryState) -> Result<()> {
        if !reply {
            return Ok(());
        }
        let d = Disposition { role: Role::Sender, first: delivery_id, last: None, settled: true, state: Some(state), batchable: false };
        self.send(channel, Some(Performative::Disposition(d)), &[])
    }

    /// Sends an encoded message settled on a link where Lapis is the sender; queues it
    /// while the peer has given no credit.
    pub(super) fn send_message(&mut self, channel: u16, handle: u32, encoded: Vec<u8>) -> Result<()> {
        self.next_tag += 1;
        let tag = self.next_tag.to_be_bytes().to_vec();
        let session = self.session(channel)?;
        let window = session.window_left();
        let link = session.links.get_mut(&handle).ok_or_else(|| ConnectionError::Protocol("no such link".into()))?;
        if link.peer_credit == 0 || window == 0 || !link.queued.is_empty() {
            if link.queued.len() >= MAX_BATCH * 32 {
                return Err(ConnectionError::Protocol("the peer grants no credit for answers".into()));
            }
            link.queued.push(encoded);
            return Ok(());
        }
        self.transfer(channel, handle, tag, true, &encoded).map(|_| ())
    }
}

fn outcome_state(o: Outcome) -> DeliveryState {
    match o {
        Outcome::Accepted(a) => DeliveryState::Accepted(a),
        Outcome::Rejected(r) => DeliveryState::Rejected(r),
        Outcome::Released(r) => DeliveryState::Released(r),
        Outcome::Modified(m) => DeliveryState::Modified(m),
        #[allow(unreachable_patterns)]
        _ => DeliveryState::Accepted(Accepted {}),
    }
}

fn property_value(v: &Value) -> Option<PropertyValue> {
    Some(match v {
        Value::String(s) => PropertyValue::String(s.clone()),
        Value::Long(n) => PropertyValue::Long(*n),
        Value::Int(n) => PropertyValue::Long(*n as i64),
        Value::Bool(b) => PropertyValue::Bool(*b),
        Value::Double(d) => PropertyValue::Double(d.into_inner()),
        Value::Timestamp(t) => PropertyValue::Timestamp(t.milliseconds()),
        _ => return None,
    })
}

/// What a receiver's outcome asks of the broker, and the outcome to confirm it with.
fn settlement_of(state: Option<&DeliveryState>) -> (Settlement, DeliveryState) {
    match state {
        Some(DeliveryState::Modified(m)) => {
            let properties = m
                .message_annotations
                .as_ref()
                .map(|a| a.iter().filter_map(|(k, v)| Some((k.0.clone(), property_value(v)?))).collect())
                .unwrap_or_default();
            let settlement = if m.undeliverable_here == Some(true) { Settlement::Defer { properties } } else { Settlement::Abandon { properties } };
            (settlement, DeliveryState::Modified(Modified { ..m.clone() }))
        }
        Some(DeliveryState::Rejected(r)) => {
            let info = |key: &str| -> Option<String> {
                let info = r.error.as_ref()?.info.as_ref()?;
                info.iter().find_map(|(k, v)| match v {
                    Value::String(s) if k.0 == key => Some(s.clone()),
                    _ => None,
                })
            };
            let reason = info("DeadLetterReason");
            let description = info("DeadLetterErrorDescription").or_else(|| r.error.as_ref().and_then(|e| e.description.clone()));
            let settlement = Settlement::DeadLetter { reason, description, properties: Default::default() };
            (settlement, DeliveryState::Rejected(Rejected { error: None }))
        }
        Some(DeliveryState::Released(_)) => (Settlement::Release, DeliveryState::Released(Released {})),
        _ => (Settlement::Complete, DeliveryState::Accepted(Accepted {})),
    }
}
