//! One AMQP connection: SASL, open, sessions, links, transfers, dispositions, heartbeats,
//! all in one task with no shared state but the broker. Channels and handles echo the
//! peer's numbers, which keeps the bookkeeping to one map each.
//!
//! Serves CBS, links on which clients send to Service Bus entities, and links on which
//! they receive (peek-lock and receive-and-delete) and settle by disposition. Session
//! receivers are still to come and are refused with `amqp:not-implemented`; the
//! `$management` node of each entity is served by [`crate::management`].

use std::collections::HashMap;
use std::time::Duration;

use fe2o3_amqp::frames::sasl;
use fe2o3_amqp_types::definitions::{AmqpError, Error, ErrorCondition, Handle, LinkError, ReceiverSettleMode, Role, SenderSettleMode};
use fe2o3_amqp_types::messaging::message::__private::Serializable;
use fe2o3_amqp_types::messaging::{Accepted, DeliveryState, Rejected, Released, TargetArchetype};
use fe2o3_amqp_types::performatives::{Attach, Begin, Close, Detach, Disposition, End, Flow, Open, Performative, Transfer};
use fe2o3_amqp_types::primitives::Symbol;
use fe2o3_amqp_types::sasl::{SaslCode, SaslMechanisms, SaslOutcome};
use lapis_core::broker::{parse_address, BrokerError, PropertyValue, ReceiveMode, Settlement, SubQueue};
use lapis_core::Clock;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use crate::cbs::{self, Grants};
use crate::frame::{self, AmqpFrame, FrameError, AMQP_HEADER, SASL_HEADER};
use crate::message;
use crate::AmqpService;

/// Largest frame Lapis accepts and announces.
pub const MAX_FRAME_SIZE: u32 = 1 << 20;
/// Link credit granted to a sender; refilled when half is used.
const CREDIT: u32 = 200;
/// Largest message Lapis reassembles from transfer frames (Premium's 100 MB).
const MAX_MESSAGE: usize = 100 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol violation: {0}")]
    Protocol(String),
}

type Result<T> = std::result::Result<T, ConnectionError>;

enum LinkKind {
    /// The client sends put-token requests to `$cbs`.
    CbsRequests,
    /// Lapis sends CBS answers to the client.
    CbsAnswers,
    /// The client sends messages to an entity.
    EntityIn { entity: String },
    /// The client receives messages from an entity's sub-queue.
    EntityOut { entity: String, sub: SubQueue, mode: ReceiveMode },
    /// The client sends `$management` requests about an entity.
    ManagementRequests { entity: String },
    /// Lapis sends `$management` answers.
    ManagementAnswers { entity: String },
}

struct Link {
    name: String,
    /// The client's own terminus address (where answers are addressed with reply-to).
    client_address: Option<String>,
    kind: LinkKind,
    /// Credit left for the peer's transfers (client senders).
    credit: u32,
    delivery_count: u32,
    /// Credit the peer gave Lapis (client receivers).
    peer_credit: u32,
    /// A delivery arriving in several frames.
    partial: Option<(u32, bool, u32, Vec<u8>)>,
    /// Answers waiting for credit.
    queued: Vec<Vec<u8>>,
}

struct Session {
    next_incoming_id: u32,
    next_outgoing_id: u32,
    links: HashMap<u32, Link>,
    /// Peek-locked deliveries awaiting the client's disposition, by delivery id.
    unsettled: HashMap<u32, (String, SubQueue, uuid::Uuid)>,
}

/// At most this many messages are taken from the broker per pump.
const MAX_BATCH: usize = 32;
/// Receivers with credit look for messages at least this often (lock expiry and
/// scheduled messages wake nobody).
const RECEIVE_RECHECK: Duration = Duration::from_secs(1);
/// A disposition may settle at most this many deliveries at once.
const MAX_DISPOSITION_RANGE: u32 = 10_000;

struct Conn<'a, W> {
    service: &'a AmqpService,
    out: W,
    sessions: HashMap<u16, Session>,
    grants: Grants,
    peer_max_frame: u32,
    next_tag: u64,
}

/// An AMQP error. `info` is always present (empty): pyamqp reads it by position and
/// fails on the shorter list the encoder writes when it is null.
fn error(condition: ErrorCondition, description: impl Into<String>) -> Error {
    Error { condition, description: Some(description.into()), info: Some(Box::default()) }
}

fn custom(symbol: &str, description: impl Into<String>) -> Error {
    error(ErrorCondition::Custom(Symbol::from(symbol)), description)
}

/// The AMQP error a broker refusal maps to.
pub fn broker_error(e: &BrokerError) -> Error {
    let text = e.to_string();
    match e {
        BrokerError::EntityNotFound(_) => error(ErrorCondition::AmqpError(AmqpError::NotFound), text),
        BrokerError::MessageSizeExceeded { .. } => error(ErrorCondition::LinkError(LinkError::MessageSizeExceeded), text),
        BrokerError::QuotaExceeded(_) => error(ErrorCondition::AmqpError(AmqpError::ResourceLimitExceeded), text),
        BrokerError::MessageLockLost => custom("com.microsoft:message-lock-lost", text),
        BrokerError::SessionLockLost => custom("com.microsoft:session-lock-lost", text),
        BrokerError::SessionCannotBeLocked(_) => custom("com.microsoft:session-cannot-be-locked", text),
        BrokerError::MessageNotFound(_) => custom("com.microsoft:message-not-found", text),
        BrokerError::EntityAlreadyExists(_) => custom("com.microsoft:entity-already-exists", text),
        BrokerError::InvalidEntityName(_) | BrokerError::InvalidOperation(_) => error(ErrorCondition::AmqpError(AmqpError::NotAllowed), text),
        BrokerError::Store(_) => error(ErrorCondition::AmqpError(AmqpError::InternalError), "The server could not store the message. Please retry."),
    }
}

/// Negotiates SASL (any mechanism is accepted: authorization happens through CBS) and
/// the AMQP header. Returns false if the peer spoke something else.
async fn negotiate<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(r: &mut R, w: &mut W) -> Result<bool> {
    let mut header = frame::read_header(r).await?;
    if header == SASL_HEADER {
        w.write_all(&SASL_HEADER).await?;
        let mechanisms = ["MSSBCBS", "ANONYMOUS", "PLAIN"].map(Symbol::from).to_vec();
        frame::write_sasl(w, &sasl::Frame::Mechanisms(SaslMechanisms { sasl_server_mechanisms: mechanisms.into() })).await?;
        match frame::read_sasl(r).await? {
            sasl::Frame::Init(_) => {}
            other => return Err(ConnectionError::Protocol(format!("expected sasl-init, got {other:?}"))),
        }
        frame::write_sasl(w, &sasl::Frame::Outcome(SaslOutcome { code: SaslCode::Ok, additional_data: None })).await?;
        header = frame::read_header(r).await?;
    }
    if header != AMQP_HEADER {
        // Answer with the header we speak, as the specification asks, then hang up.
        w.write_all(&SASL_HEADER).await?;
        return Ok(false);
    }
    w.write_all(&AMQP_HEADER).await?;
    Ok(true)
}

pub async fn run<S: AsyncRead + AsyncWrite + Unpin>(stream: S, service: &AmqpService) -> Result<()> {
    let (read_half, write_half) = tokio::io::split(stream);
    let mut r = BufReader::new(read_half);
    let mut w = write_half;
    if !negotiate(&mut r, &mut w).await? {
        return Ok(());
    }
    let mut conn = Conn { service, out: w, sessions: HashMap::new(), grants: Grants::default(), peer_max_frame: frame::MIN_MAX_FRAME_SIZE, next_tag: 0 };
    let mut heartbeat: Option<tokio::time::Interval> = None;
    loop {
        let next = async {
            match &mut heartbeat {
                Some(h) => {
                    h.tick().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let waiting = conn.has_waiting_receivers();
        let broker = service.broker.clone();
        let wake = async move {
            if waiting {
                tokio::select! {
                    _ = broker.activity() => {}
                    _ = tokio::time::sleep(RECEIVE_RECHECK) => {}
                }
            } else {
                std::future::pending::<()>().await
            }
        };
        tokio::select! {
            _ = wake => conn.pump_all().await?,
            frame = frame::read_amqp(&mut r, MAX_FRAME_SIZE) => {
                let AmqpFrame { channel, performative, payload } = frame?;
                let Some(performative) = performative else { continue };
                if let Performative::Open(open) = &performative {
                    if let Some(ms) = open.idle_time_out.filter(|ms| *ms > 0) {
                        let mut h = tokio::time::interval(Duration::from_millis((ms / 2).max(1000) as u64));
                        h.tick().await;
                        heartbeat = Some(h);
                    }
                }
                if !conn.handle(channel, performative, payload).await? {
                    return Ok(());
                }
            }
            _ = next => conn.send(0, None, &[]).await?,
        }
    }
}

impl<W: AsyncWrite + Unpin> Conn<'_, W> {
    async fn send(&mut self, channel: u16, performative: Option<Performative>, payload: &[u8]) -> Result<()> {
        let bytes = frame::encode_amqp(channel, performative.as_ref(), payload)?;
        self.out.write_all(&bytes).await.map_err(FrameError::from)?;
        Ok(())
    }

    fn session(&mut self, channel: u16) -> Result<&mut Session> {
        self.sessions.get_mut(&channel).ok_or_else(|| ConnectionError::Protocol(format!("no session on channel {channel}")))
    }

    /// Handles one performative; false once the connection is closed.
    async fn handle(&mut self, channel: u16, performative: Performative, payload: bytes::Bytes) -> Result<bool> {
        match performative {
            Performative::Open(open) => {
                self.peer_max_frame = open.max_frame_size.0.clamp(frame::MIN_MAX_FRAME_SIZE, MAX_FRAME_SIZE);
                let reply = Open {
                    container_id: format!("lapis-{}", uuid::Uuid::new_v4().simple()),
                    hostname: None,
                    max_frame_size: MAX_FRAME_SIZE.into(),
                    channel_max: 65535.into(),
                    idle_time_out: None,
                    outgoing_locales: None,
                    incoming_locales: None,
                    offered_capabilities: None,
                    desired_capabilities: None,
                    properties: None,
                };
                self.send(0, Some(Performative::Open(reply)), &[]).await?;
            }
            Performative::Begin(begin) => {
                let session = Session { next_incoming_id: begin.next_outgoing_id, next_outgoing_id: 0, links: HashMap::new(), unsettled: HashMap::new() };
                self.sessions.insert(channel, session);
                let reply = Begin {
                    remote_channel: Some(channel),
                    next_outgoing_id: 0,
                    incoming_window: u32::MAX / 2,
                    outgoing_window: u32::MAX / 2,
                    handle_max: Handle::default(),
                    offered_capabilities: None,
                    desired_capabilities: None,
                    properties: None,
                };
                self.send(channel, Some(Performative::Begin(reply)), &[]).await?;
            }
            Performative::Attach(attach) => self.on_attach(channel, attach).await?,
            Performative::Flow(flow) => self.on_flow(channel, flow).await?,
            Performative::Transfer(transfer) => self.on_transfer(channel, transfer, payload).await?,
            Performative::Disposition(d) => self.on_disposition(channel, d).await?,
            Performative::Detach(detach) => {
                self.session(channel)?.links.remove(&detach.handle.0);
                let reply = Detach { handle: detach.handle, closed: detach.closed, error: None };
                self.send(channel, Some(Performative::Detach(reply)), &[]).await?;
            }
            Performative::End(_) => {
                self.sessions.remove(&channel);
                self.send(channel, Some(Performative::End(End { error: None })), &[]).await?;
            }
            Performative::Close(_) => {
                self.send(0, Some(Performative::Close(Close { error: None })), &[]).await?;
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn refuse_link(&mut self, channel: u16, mut attach: Attach, e: Error) -> Result<()> {
        // The refusal pattern of the specification: a reply with a null terminus,
        // then a detach carrying the error.
        let handle = attach.handle.clone();
        attach.role = match attach.role {
            Role::Sender => Role::Receiver,
            Role::Receiver => Role::Sender,
        };
        match attach.role {
            Role::Receiver => attach.target = None,
            Role::Sender => attach.source = None,
        }
        attach.initial_delivery_count = Some(0).filter(|_| attach.role == Role::Sender);
        self.send(channel, Some(Performative::Attach(attach)), &[]).await?;
        let detach = Detach { handle, closed: true, error: Some(e) };
        self.send(channel, Some(Performative::Detach(detach)), &[]).await
    }

    async fn on_attach(&mut self, channel: u16, attach: Attach) -> Result<()> {
        let target = attach.target.as_deref().and_then(|t| match t {
            TargetArchetype::Target(t) => t.address.clone(),
            #[allow(unreachable_patterns)]
            _ => None,
        });
        let source = attach.source.as_ref().and_then(|s| s.address.clone());
        let (source_address, target_address) = (source.clone(), target.clone());
        let (address, client_sends) = match attach.role {
            Role::Sender => (target.unwrap_or_default(), true),
            Role::Receiver => (source.unwrap_or_default(), false),
        };
        let path = cbs::normalize(&address);
        let kind = if path == "$cbs" {
            if client_sends { LinkKind::CbsRequests } else { LinkKind::CbsAnswers }
        } else if let Some(entity_path) = path.strip_suffix(crate::management::SUFFIX) {
            let (entity, _) = parse_address(entity_path);
            if let Err(e) = self.service.broker.queue_config(entity) {
                return self.refuse_link(channel, attach, broker_error(&e)).await;
            }
            if !self.grants.allows(entity_path, lapis_core::SystemClock.now_ms()) {
                let e = error(ErrorCondition::AmqpError(AmqpError::UnauthorizedAccess), format!("Unauthorized access to '{entity}': put a valid token on $cbs first."));
                return self.refuse_link(channel, attach, e).await;
            }
            let entity = entity_path.to_string();
            if client_sends { LinkKind::ManagementRequests { entity } } else { LinkKind::ManagementAnswers { entity } }
        } else {
            let (entity, sub) = parse_address(&path);
            let config = match self.service.broker.queue_config(entity) {
                Ok(c) => c,
                Err(e) => return self.refuse_link(channel, attach, broker_error(&e)).await,
            };
            if !self.grants.allows(&path, lapis_core::SystemClock.now_ms()) {
                let e = error(ErrorCondition::AmqpError(AmqpError::UnauthorizedAccess), format!("Unauthorized access to '{entity}': put a valid token on $cbs first."));
                return self.refuse_link(channel, attach, e).await;
            }
            if client_sends {
                if sub != SubQueue::Main {
                    let e = error(ErrorCondition::AmqpError(AmqpError::NotAllowed), "Messages cannot be sent to a dead-letter queue.");
                    return self.refuse_link(channel, attach, e).await;
                }
                LinkKind::EntityIn { entity: entity.to_string() }
            } else {
                if config.requires_session && sub == SubQueue::Main {
                    let e = error(ErrorCondition::AmqpError(AmqpError::NotImplemented), "Session receivers over AMQP are not available in Lapis yet.");
                    return self.refuse_link(channel, attach, e).await;
                }
                let mode = match attach.snd_settle_mode {
                    SenderSettleMode::Settled => ReceiveMode::ReceiveAndDelete,
                    _ => ReceiveMode::PeekLock,
                };
                LinkKind::EntityOut { entity: entity.to_string(), sub, mode }
            }
        };
        let handle = attach.handle.0;
        let max_message = match &kind {
            LinkKind::EntityIn { entity } => self.service.broker.queue_config(entity).map(|c| c.max_message_bytes).unwrap_or(256 << 10),
            _ => 1 << 20,
        };
        let mut reply = attach.clone();
        reply.role = if client_sends { Role::Receiver } else { Role::Sender };
        // Senders that ask for rcv-settle-mode second ignore unsettled answers, so
        // Lapis settles on first; receivers keep the mode they asked for (Lapis always
        // answers their dispositions settled).
        if client_sends {
            reply.rcv_settle_mode = ReceiverSettleMode::First;
        }
        reply.initial_delivery_count = if client_sends { None } else { Some(0) };
        reply.max_message_size = Some(max_message);
        reply.unsettled = None;
        self.send(channel, Some(Performative::Attach(reply)), &[]).await?;
        let delivery_count = attach.initial_delivery_count.unwrap_or(0);
        let client_address = if client_sends { source_address } else { target_address };
        let link = Link { name: attach.name.clone(), client_address, kind, credit: 0, delivery_count, peer_credit: 0, partial: None, queued: Vec::new() };
        self.session(channel)?.links.insert(handle, link);
        if client_sends {
            self.grant_credit(channel, handle).await?;
        }
        Ok(())
    }

    async fn grant_credit(&mut self, channel: u16, handle: u32) -> Result<()> {
        let session = self.session(channel)?;
        let (next_incoming_id, next_outgoing_id) = (session.next_incoming_id, session.next_outgoing_id);
        let link = session.links.get_mut(&handle).ok_or_else(|| ConnectionError::Protocol("no such link".into()))?;
        link.credit = CREDIT;
        let flow = Flow {
            next_incoming_id: Some(next_incoming_id),
            incoming_window: u32::MAX / 2,
            next_outgoing_id,
            outgoing_window: u32::MAX / 2,
            handle: Some(Handle(handle)),
            delivery_count: Some(link.delivery_count),
            link_credit: Some(CREDIT),
            available: None,
            drain: false,
            echo: false,
            properties: None,
        };
        self.send(channel, Some(Performative::Flow(flow)), &[]).await
    }

    async fn on_flow(&mut self, channel: u16, flow: Flow) -> Result<()> {
        let Some(handle) = flow.handle else { return Ok(()) };
        let session = self.session(channel)?;
        let Some(link) = session.links.get_mut(&handle.0) else { return Ok(()) };
        let credit = flow.link_credit.unwrap_or(0);
        // The peer's view: credit counts from its delivery-count.
        let sent_since = link.delivery_count.wrapping_sub(flow.delivery_count.unwrap_or(link.delivery_count));
        link.peer_credit = credit.saturating_sub(sent_since);
        link.delivery_count = flow.delivery_count.unwrap_or(link.delivery_count).wrapping_add(sent_since);
        let queued = std::mem::take(&mut link.queued);
        for m in queued {
            self.send_message(channel, handle.0, m).await?;
        }
        self.pump(channel, handle.0).await?;
        if flow.drain {
            self.drain(channel, handle.0).await?;
        }
        Ok(())
    }

    fn has_waiting_receivers(&self) -> bool {
        self.sessions.values().any(|s| s.links.values().any(|l| matches!(l.kind, LinkKind::EntityOut { .. }) && l.peer_credit > 0))
    }

    /// Gives every waiting receiver what the broker has for it now.
    async fn pump_all(&mut self) -> Result<()> {
        let waiting: Vec<(u16, u32)> = self
            .sessions
            .iter()
            .flat_map(|(c, s)| s.links.iter().filter(|(_, l)| matches!(l.kind, LinkKind::EntityOut { .. }) && l.peer_credit > 0).map(|(h, _)| (*c, *h)))
            .collect();
        for (channel, handle) in waiting {
            self.pump(channel, handle).await?;
        }
        Ok(())
    }

    /// Sends messages on a receiver link while it has credit and the broker has messages.
    async fn pump(&mut self, channel: u16, handle: u32) -> Result<()> {
        loop {
            let session = self.session(channel)?;
            let Some(link) = session.links.get(&handle) else { return Ok(()) };
            let LinkKind::EntityOut { entity, sub, mode } = &link.kind else { return Ok(()) };
            let (entity, sub, mode) = (entity.clone(), *sub, *mode);
            let want = (link.peer_credit as usize).min(MAX_BATCH);
            if want == 0 {
                return Ok(());
            }
            let deliveries = match self.service.broker.receive(&entity, sub, mode, want).await {
                Ok(d) => d,
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
                let delivery_id = self.transfer(channel, handle, crate::delivery::lock_token_tag(token), settled, &bytes).await?;
                if !settled {
                    self.session(channel)?.unsettled.insert(delivery_id, (entity.clone(), sub, token));
                }
            }
        }
    }

    /// Answers a drain request: the credit left is used up and reported back.
    async fn drain(&mut self, channel: u16, handle: u32) -> Result<()> {
        let session = self.session(channel)?;
        let (next_incoming_id, next_outgoing_id) = (session.next_incoming_id, session.next_outgoing_id);
        let Some(link) = session.links.get_mut(&handle) else { return Ok(()) };
        link.delivery_count = link.delivery_count.wrapping_add(link.peer_credit);
        link.peer_credit = 0;
        let flow = Flow {
            next_incoming_id: Some(next_incoming_id),
            incoming_window: u32::MAX / 2,
            next_outgoing_id,
            outgoing_window: u32::MAX / 2,
            handle: Some(Handle(handle)),
            delivery_count: Some(link.delivery_count),
            link_credit: Some(0),
            available: Some(0),
            drain: true,
            echo: false,
            properties: None,
        };
        self.send(channel, Some(Performative::Flow(flow)), &[]).await
    }

    /// Sends one message, split into frames that fit the peer's max frame size.
    /// Returns its delivery id.
    async fn transfer(&mut self, channel: u16, handle: u32, tag: Vec<u8>, settled: bool, bytes: &[u8]) -> Result<u32> {
        let chunk = (self.peer_max_frame as usize).saturating_sub(512).max(256);
        let session = self.session(channel)?;
        let delivery_id = session.next_outgoing_id;
        let chunks: Vec<&[u8]> = if bytes.is_empty() { vec![bytes] } else { bytes.chunks(chunk).collect() };
        session.next_outgoing_id = session.next_outgoing_id.wrapping_add(chunks.len() as u32);
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
            self.send(channel, Some(Performative::Transfer(transfer)), part).await?;
        }
        Ok(delivery_id)
    }

    /// Settles peek-locked deliveries as the client's disposition says, and confirms
    /// each with a settled disposition carrying the outcome (a bare `rejected` for a
    /// dead-letter, `message-lock-lost` when the lock is gone).
    async fn on_disposition(&mut self, channel: u16, d: Disposition) -> Result<()> {
        if d.role != Role::Receiver {
            return Ok(());
        }
        let last = d.last.unwrap_or(d.first);
        if last.wrapping_sub(d.first) > MAX_DISPOSITION_RANGE {
            return Err(ConnectionError::Protocol("a disposition over too many deliveries".into()));
        }
        let mut id = d.first;
        loop {
            let entry = self.session(channel)?.unsettled.remove(&id);
            if let Some((entity, sub, token)) = entry {
                let (settlement, echo) = settlement_of(d.state.as_ref());
                let state = match self.service.broker.settle(&entity, sub, token, settlement).await {
                    Ok(()) => echo,
                    Err(e) => DeliveryState::Rejected(Rejected { error: Some(broker_error(&e)) }),
                };
                if !d.settled {
                    let reply = Disposition { role: Role::Sender, first: id, last: None, settled: true, state: Some(state), batchable: false };
                    self.send(channel, Some(Performative::Disposition(reply)), &[]).await?;
                }
            }
            if id == last {
                break;
            }
            id = id.wrapping_add(1);
        }
        Ok(())
    }

    /// Sends an encoded message settled on a link where Lapis is the sender; queues it
    /// while the peer has given no credit.
    async fn send_message(&mut self, channel: u16, handle: u32, encoded: Vec<u8>) -> Result<()> {
        self.next_tag += 1;
        let tag = self.next_tag.to_be_bytes().to_vec();
        let session = self.session(channel)?;
        let link = session.links.get_mut(&handle).ok_or_else(|| ConnectionError::Protocol("no such link".into()))?;
        if link.peer_credit == 0 {
            link.queued.push(encoded);
            return Ok(());
        }
        link.peer_credit -= 1;
        link.delivery_count = link.delivery_count.wrapping_add(1);
        let delivery_id = session.next_outgoing_id;
        session.next_outgoing_id = session.next_outgoing_id.wrapping_add(1);
        let transfer = Transfer {
            handle: Handle(handle),
            delivery_id: Some(delivery_id),
            delivery_tag: Some(tag.into()),
            message_format: Some(0),
            settled: Some(true),
            more: false,
            rcv_settle_mode: None,
            state: None,
            resume: false,
            aborted: false,
            batchable: false,
        };
        self.send(channel, Some(Performative::Transfer(transfer)), &encoded).await
    }

    async fn on_transfer(&mut self, channel: u16, transfer: Transfer, payload: bytes::Bytes) -> Result<()> {
        let session = self.session(channel)?;
        session.next_incoming_id = session.next_incoming_id.wrapping_add(1);
        let handle = transfer.handle.0;
        let link = session.links.get_mut(&handle).ok_or_else(|| ConnectionError::Protocol(format!("transfer on unknown handle {handle}")))?;
        let (delivery_id, settled, format, mut bytes) = match link.partial.take() {
            Some(p) => p,
            None => {
                let id = transfer.delivery_id.ok_or_else(|| ConnectionError::Protocol("first transfer frame without delivery-id".into()))?;
                (id, transfer.settled.unwrap_or(false), transfer.message_format.unwrap_or(0), Vec::new())
            }
        };
        if bytes.len() + payload.len() > MAX_MESSAGE {
            return Err(ConnectionError::Protocol(format!("a message larger than {MAX_MESSAGE} bytes")));
        }
        bytes.extend_from_slice(&payload);
        if transfer.more {
            link.partial = Some((delivery_id, settled, format, bytes));
            return Ok(());
        }
        if transfer.aborted {
            return Ok(());
        }
        let link = self.session(channel)?.links.get_mut(&handle).ok_or_else(|| ConnectionError::Protocol("link vanished".into()))?;
        link.credit = link.credit.saturating_sub(1);
        link.delivery_count = link.delivery_count.wrapping_add(1);
        let refill = link.credit < CREDIT / 2;
        let outcome = match &link.kind {
            LinkKind::CbsRequests => {
                self.on_cbs_request(channel, &bytes).await?;
                Ok(())
            }
            LinkKind::EntityIn { entity } => {
                let entity = entity.clone();
                self.deliver_to_broker(&entity, bytes, format).await
            }
            LinkKind::ManagementRequests { entity } => {
                let entity = entity.clone();
                self.on_management_request(channel, &entity, &bytes).await?;
                Ok(())
            }
            LinkKind::CbsAnswers | LinkKind::EntityOut { .. } | LinkKind::ManagementAnswers { .. } => {
                Err(error(ErrorCondition::AmqpError(AmqpError::NotAllowed), "transfers go the other way on this link"))
            }
        };
        if !settled {
            let state = match outcome {
                Ok(()) => DeliveryState::Accepted(Accepted {}),
                Err(e) => DeliveryState::Rejected(Rejected { error: Some(e) }),
            };
            let disposition = Disposition { role: Role::Receiver, first: delivery_id, last: None, settled: true, state: Some(state), batchable: false };
            self.send(channel, Some(Performative::Disposition(disposition)), &[]).await?;
        }
        if refill {
            self.grant_credit(channel, handle).await?;
        }
        Ok(())
    }

    async fn deliver_to_broker(&mut self, entity: &str, bytes: Vec<u8>, format: u32) -> std::result::Result<(), Error> {
        let decode_error = |e: message::DecodeError| error(ErrorCondition::AmqpError(AmqpError::DecodeError), e.to_string());
        let parts = message::split(bytes, format).map_err(decode_error)?;
        let messages = parts.into_iter().map(message::to_outgoing).collect::<std::result::Result<Vec<_>, _>>().map_err(decode_error)?;
        self.service.broker.send(entity, messages).await.map(|_| ()).map_err(|e| broker_error(&e))
    }

    async fn on_management_request(&mut self, channel: u16, entity: &str, bytes: &[u8]) -> Result<()> {
        let request = match message::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "undecodable management request");
                return Ok(());
            }
        };
        let answer = crate::management::handle(&self.service.broker, entity, &request).await;
        let encoded = crate::management::encode(answer).map_err(FrameError::Encode)?;
        let reply_to = request.properties.as_ref().and_then(|p| p.reply_to.clone());
        let session = self.session(channel)?;
        let answers = |l: &Link| matches!(&l.kind, LinkKind::ManagementAnswers { entity: e } if e == entity);
        let target = session
            .links
            .iter()
            .filter(|(_, l)| answers(l))
            .find(|(_, l)| reply_to.as_deref().is_some_and(|r| r == l.name || Some(r) == l.client_address.as_deref()))
            .or_else(|| session.links.iter().find(|(_, l)| answers(l)))
            .map(|(h, _)| *h);
        match target {
            Some(handle) => self.send_message(channel, handle, encoded).await,
            None => Err(ConnectionError::Protocol("a management request without an answer link".into())),
        }
    }

    async fn on_cbs_request(&mut self, channel: u16, bytes: &[u8]) -> Result<()> {
        let request = match message::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "undecodable CBS request");
                return Ok(());
            }
        };
        let now = lapis_core::SystemClock.now_ms();
        let (status, description) = cbs::put_token(&request, &self.service.sas_keys, &mut self.grants, now);
        let answer = cbs::response(&request, status, &description);
        let encoded = serde_amqp::to_vec(&Serializable(answer)).map_err(|e| FrameError::Encode(e.to_string()))?;
        // Answer on the link the request names in reply-to, else the session's $cbs receiver link.
        let reply_to = request.properties.as_ref().and_then(|p| p.reply_to.clone());
        let session = self.session(channel)?;
        let target = session
            .links
            .iter()
            .filter(|(_, l)| matches!(l.kind, LinkKind::CbsAnswers))
            .find(|(_, l)| reply_to.as_deref().is_none_or(|r| r == l.name))
            .or_else(|| session.links.iter().find(|(_, l)| matches!(l.kind, LinkKind::CbsAnswers)))
            .map(|(h, _)| *h);
        match target {
            Some(handle) => self.send_message(channel, handle, encoded).await,
            None => Err(ConnectionError::Protocol("a CBS request without a $cbs receiver link".into())),
        }
    }
}

/// What a receiver's outcome asks of the broker, and the outcome to confirm it with.
fn settlement_of(state: Option<&DeliveryState>) -> (Settlement, DeliveryState) {
    match state {
        Some(DeliveryState::Modified(m)) => {
            let properties = m
                .message_annotations
                .as_ref()
                .map(|a| {
                    a.iter()
                        .filter_map(|(k, v)| {
                            let key = k.0.clone();
                            let value = match v {
                                fe2o3_amqp_types::primitives::Value::String(s) => PropertyValue::String(s.clone()),
                                fe2o3_amqp_types::primitives::Value::Long(n) => PropertyValue::Long(*n),
                                fe2o3_amqp_types::primitives::Value::Int(n) => PropertyValue::Long(*n as i64),
                                fe2o3_amqp_types::primitives::Value::Bool(b) => PropertyValue::Bool(*b),
                                fe2o3_amqp_types::primitives::Value::Double(d) => PropertyValue::Double(d.into_inner()),
                                _ => return None,
                            };
                            Some((key, value))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let settlement = if m.undeliverable_here == Some(true) { Settlement::Defer { properties } } else { Settlement::Abandon { properties } };
            (settlement, DeliveryState::Modified(m.clone()))
        }
        Some(DeliveryState::Rejected(r)) => {
            let info = |key: &str| -> Option<String> {
                let info = r.error.as_ref()?.info.as_ref()?;
                info.iter().find_map(|(k, v)| match v {
                    fe2o3_amqp_types::primitives::Value::String(s) if k.0 == key => Some(s.clone()),
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
