//! A frame-level AMQP 1.0 client on fe2o3-amqp's own transport
//! (`fe2o3_amqp::transport::Transport`) and performative types, for what the
//! connection/session/link API hides from its user: the outcome inside the server's
//! settled disposition (`message-lock-lost`, `transactional-state`), the flow the server
//! answers a drain with, the exact detach a server sends.
//!
//! Every frame sent and received is kept in a trace; it is printed when a test fails
//! (see [`Wire`]'s `Drop`), so a failure shows the frames that led to it.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use fe2o3_amqp::frames::amqp::{Frame, FrameBody};
use fe2o3_amqp::transport::Transport;
use fe2o3_amqp_types::definitions::{Handle, ReceiverSettleMode, Role, SenderSettleMode};
use fe2o3_amqp_types::messaging::{AmqpValue, ApplicationProperties, Body, DeliveryState, Message, Properties, Source, Target, TargetArchetype};
use fe2o3_amqp_types::performatives::{Attach, Begin, Close, Detach, Disposition, End, Flow, Open, Transfer};
use fe2o3_amqp_types::primitives::{Binary, SimpleValue, Value};
use fe2o3_amqp_types::sasl::{SaslCode, SaslInit, SaslMechanisms, SaslOutcome};
use fe2o3_amqp_types::transaction::{Coordinator, Declare, Discharge, TxnCapability};
use futures_util::{SinkExt, StreamExt};
use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use crate::messages::{decode, delivery_count, encode, text_message, text_of};

/// How long a single expected frame may take before the test fails.
pub const FRAME_WAIT: Duration = Duration::from_secs(10);

/// Window sizes the client announces for its sessions.
const WINDOW: u32 = 1 << 20;

/// Handles [`Wire::put_token`] uses for its `$cbs` link pair on a session.
pub const CBS_SEND_HANDLE: u32 = 900;
pub const CBS_RECV_HANDLE: u32 = 901;

pub type AnyMessage = Message<Body<Value>>;

/// One whole delivery received on a link (its transfer frames put together).
#[derive(Debug, Clone)]
pub struct RawDelivery {
    pub handle: u32,
    pub delivery_id: u32,
    pub tag: Vec<u8>,
    pub settled: bool,
    pub frames: usize,
    pub bytes: Vec<u8>,
}

impl RawDelivery {
    pub fn message(&self) -> AnyMessage {
        decode(&self.bytes)
    }
}

#[derive(Default)]
struct SessionState {
    next_outgoing_id: u32,
    next_incoming_id: u32,
    next_delivery_id: u32,
    /// Per link: the receiver's delivery-count (transfers received), for flow frames.
    delivery_counts: HashMap<u32, u32>,
}

pub struct Wire {
    io: Transport<TcpStream, Frame>,
    /// Frames read while waiting for another one, not yet looked at.
    backlog: VecDeque<Frame>,
    trace: Vec<String>,
    sessions: HashMap<u16, SessionState>,
    /// The server's max-frame-size.
    pub remote_max_frame: u32,
    /// Whether the connection has ended (EOF, error or close).
    pub closed: bool,
    /// Payload bytes per transfer frame the client sends (default: what the server's
    /// max-frame-size allows).
    pub send_chunk: Option<usize>,
    /// While set, frames are written to the socket only by [`Wire::flush`] (so many
    /// frames reach the server at once).
    pub batching: bool,
    /// The session incoming window announced in begin and flow frames.
    pub incoming_window: u32,
    /// Empty frames (heartbeats) received.
    pub heartbeats: usize,
}

impl Drop for Wire {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- AMQP frames of this connection (> sent, < received) ---");
            for line in &self.trace {
                eprintln!("{line}");
            }
        }
    }
}

fn describe(channel: u16, body: &FrameBody) -> String {
    match body {
        FrameBody::Transfer { performative, payload } => format!("[{channel}] {performative:?} payload={}B", payload.len()),
        other => format!("[{channel}] {other:?}"),
    }
}

async fn write_sasl<T: Serialize>(s: &mut TcpStream, body: &T) {
    let body = serde_amqp::to_vec(body).expect("encode sasl frame");
    let mut frame = Vec::with_capacity(8 + body.len());
    frame.extend_from_slice(&((8 + body.len()) as u32).to_be_bytes());
    frame.extend_from_slice(&[2, 1, 0, 0]);
    frame.extend_from_slice(&body);
    s.write_all(&frame).await.expect("write sasl frame");
}

async fn read_sasl<T: DeserializeOwned>(s: &mut TcpStream) -> T {
    let size = s.read_u32().await.expect("read sasl frame size");
    assert!((8..=512).contains(&size), "sasl frame of {size} bytes");
    let mut rest = vec![0u8; size as usize - 4];
    s.read_exact(&mut rest).await.expect("read sasl frame");
    assert_eq!(rest[1], 1, "frame type of a sasl frame");
    let doff = rest[0] as usize * 4;
    serde_amqp::from_slice(&rest[doff - 4..]).unwrap_or_else(|e| panic!("decode sasl frame: {e}"))
}

impl Wire {
    /// Connects with SASL ANONYMOUS and opens the connection, announcing `max_frame`.
    pub async fn connect(port: u16, max_frame: u32) -> Wire {
        Self::connect_idle(port, max_frame, None).await
    }

    /// [`Wire::connect`], announcing an idle time-out (so the server must send
    /// heartbeats).
    pub async fn connect_idle(port: u16, max_frame: u32, idle_time_out: Option<u32>) -> Wire {
        tokio::time::timeout(FRAME_WAIT, Self::connect_inner(port, max_frame, idle_time_out)).await.expect("connect and open within 10 s")
    }

    async fn connect_inner(port: u16, max_frame: u32, idle_time_out: Option<u32>) -> Wire {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        s.set_nodelay(true).unwrap();
        s.write_all(b"AMQP\x03\x01\x00\x00").await.unwrap();
        let mut header = [0u8; 8];
        s.read_exact(&mut header).await.expect("sasl header");
        assert_eq!(&header, b"AMQP\x03\x01\x00\x00", "server's SASL protocol header");
        let mechanisms: SaslMechanisms = read_sasl(&mut s).await;
        assert!(mechanisms.sasl_server_mechanisms.0.iter().any(|m| m.as_str() == "ANONYMOUS"), "ANONYMOUS offered: {mechanisms:?}");
        write_sasl(&mut s, &SaslInit { mechanism: "ANONYMOUS".into(), initial_response: None, hostname: Some("localhost".into()) }).await;
        let outcome: SaslOutcome = read_sasl(&mut s).await;
        assert!(matches!(outcome.code, SaslCode::Ok), "sasl outcome {outcome:?}");
        s.write_all(b"AMQP\x00\x01\x00\x00").await.unwrap();
        s.read_exact(&mut header).await.expect("amqp header");
        assert_eq!(&header, b"AMQP\x00\x01\x00\x00", "server's AMQP protocol header");
        let io = Transport::bind(s, max_frame as usize, None);
        let mut wire = Wire { io, backlog: VecDeque::new(), trace: Vec::new(), sessions: HashMap::new(), remote_max_frame: 512, closed: false, send_chunk: None, batching: false, incoming_window: WINDOW, heartbeats: 0 };
        let open = Open {
            container_id: format!("rust-amqp-{}", uuid::Uuid::new_v4().simple()),
            hostname: Some("localhost".into()),
            max_frame_size: max_frame.into(),
            channel_max: 4095u16.into(),
            idle_time_out,
            outgoing_locales: None,
            incoming_locales: None,
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        };
        wire.send(0, FrameBody::Open(open)).await;
        let reply = wire.expect("the server's open", |f| matches!(f.body, FrameBody::Open(_))).await;
        if let FrameBody::Open(open) = reply.body {
            wire.remote_max_frame = open.max_frame_size.0;
        }
        wire
    }

    pub async fn send(&mut self, channel: u16, body: FrameBody) {
        self.trace.push(format!("> {}", describe(channel, &body)));
        if self.batching {
            self.io.feed(Frame::new(channel, body)).await.expect("write frame");
        } else {
            self.io.send(Frame::new(channel, body)).await.expect("write frame");
        }
    }

    /// Writes out the frames buffered while [`Wire::batching`], and stops batching.
    pub async fn flush(&mut self) {
        self.batching = false;
        self.io.flush().await.expect("flush frames");
    }

    /// Reads one frame from the socket (none when the connection ended or nothing came
    /// within `wait`), and keeps the session's counters.
    async fn read(&mut self, wait: Duration) -> Option<Frame> {
        if self.closed {
            return None;
        }
        // One deadline for the whole read: heartbeats are skipped, not waited anew.
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let next = match tokio::time::timeout_at(deadline, self.io.next()).await {
                Err(_) => return None,
                Ok(n) => n,
            };
            let frame = match next {
                None => {
                    self.trace.push("< EOF".into());
                    self.closed = true;
                    return None;
                }
                Some(Err(e)) => {
                    self.trace.push(format!("< read error: {e}"));
                    self.closed = true;
                    return None;
                }
                Some(Ok(f)) => f,
            };
            if matches!(frame.body, FrameBody::Empty) {
                self.heartbeats += 1;
                continue;
            }
            self.trace.push(format!("< {}", describe(frame.channel, &frame.body)));
            match &frame.body {
                FrameBody::Transfer { performative, .. } => {
                    let s = self.sessions.entry(frame.channel).or_default();
                    s.next_incoming_id = s.next_incoming_id.wrapping_add(1);
                    if performative.delivery_id.is_some() {
                        let count = s.delivery_counts.entry(performative.handle.0).or_default();
                        *count = count.wrapping_add(1);
                    }
                }
                FrameBody::Close(_) => self.closed = true,
                _ => {}
            }
            return Some(frame);
        }
    }

    /// The next frame that `matches`, within `wait`; frames that don't match are kept
    /// for later calls.
    pub async fn wait_for(&mut self, wait: Duration, mut matches: impl FnMut(&Frame) -> bool) -> Option<Frame> {
        if let Some(i) = self.backlog.iter().position(&mut matches) {
            return self.backlog.remove(i);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            let frame = self.read(left).await?;
            if matches(&frame) {
                return Some(frame);
            }
            self.backlog.push_back(frame);
        }
    }

    /// Like [`Wire::wait_for`] within [`FRAME_WAIT`], failing the test when nothing matches.
    pub async fn expect(&mut self, what: &str, matches: impl FnMut(&Frame) -> bool) -> Frame {
        match self.wait_for(FRAME_WAIT, matches).await {
            Some(f) => f,
            None => panic!("no {what} within {FRAME_WAIT:?} (connection closed: {})", self.closed),
        }
    }

    /// Frames received and not yet looked at (after waiting `wait` for more).
    pub async fn drain_backlog(&mut self, wait: Duration) -> Vec<Frame> {
        while let Some(f) = self.read(wait).await {
            self.backlog.push_back(f);
        }
        self.backlog.drain(..).collect()
    }

    pub fn note(&mut self, text: impl Into<String>) {
        self.trace.push(format!("# {}", text.into()));
    }

    pub async fn begin(&mut self, channel: u16) {
        self.sessions.insert(channel, SessionState::default());
        let begin = Begin {
            remote_channel: None,
            next_outgoing_id: 0,
            incoming_window: self.incoming_window,
            outgoing_window: WINDOW,
            handle_max: Handle(u32::MAX),
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        };
        self.send(channel, FrameBody::Begin(begin)).await;
        self.expect("begin reply", |f| f.channel == channel && matches!(f.body, FrameBody::Begin(_))).await;
    }

    pub async fn end(&mut self, channel: u16) {
        self.send(channel, FrameBody::End(End { error: None })).await;
        self.expect("end reply", |f| f.channel == channel && matches!(f.body, FrameBody::End(_))).await;
        self.sessions.remove(&channel);
    }

    pub async fn close(&mut self) {
        self.send(0, FrameBody::Close(Close { error: None })).await;
        self.expect("close reply", |f| matches!(f.body, FrameBody::Close(_))).await;
    }

    fn attach_frame(name: &str, handle: u32, role: Role, source: Option<Source>, target: Option<TargetArchetype>, snd: SenderSettleMode, rcv: ReceiverSettleMode) -> Attach {
        Attach {
            name: name.to_string(),
            handle: Handle(handle),
            role: role.clone(),
            snd_settle_mode: snd,
            rcv_settle_mode: rcv,
            source: source.map(Box::new),
            target: target.map(Box::new),
            unsettled: None,
            incomplete_unsettled: false,
            initial_delivery_count: (role == Role::Sender).then_some(0),
            max_message_size: None,
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        }
    }

    /// Sends an attach and returns the server's reply attach (which, for a refused
    /// link, has a null terminus and is followed by a detach).
    async fn attach(&mut self, channel: u16, attach: Attach) -> Attach {
        let name = attach.name.clone();
        self.send(channel, FrameBody::Attach(attach)).await;
        let reply = self.expect(&format!("attach reply for {name}"), |f| f.channel == channel && matches!(&f.body, FrameBody::Attach(a) if a.name == name)).await;
        match reply.body {
            FrameBody::Attach(a) => a,
            _ => unreachable!(),
        }
    }

    /// A receiver link from `address`; peek-lock (`unsettled`, `second`) unless told
    /// otherwise.
    pub async fn attach_receiver(&mut self, channel: u16, handle: u32, address: &str, snd: SenderSettleMode, rcv: ReceiverSettleMode) -> Attach {
        let name = format!("receiver-{channel}-{handle}-{}", uuid::Uuid::new_v4().simple());
        let source = Source::builder().address(address.to_string()).build();
        let target = TargetArchetype::Target(Target::builder().address(name.clone()).build());
        self.sessions.entry(channel).or_default().delivery_counts.insert(handle, 0);
        let attach = Self::attach_frame(&name, handle, Role::Receiver, Some(source), Some(target), snd, rcv);
        self.attach(channel, attach).await
    }

    /// A peek-lock receiver of one session (`Some(id)`) or the next free one (`None`),
    /// as the SDKs ask with the `com.microsoft:session-filter` source filter.
    pub async fn attach_session_receiver(&mut self, channel: u16, handle: u32, address: &str, session: Option<&str>) -> Attach {
        let name = format!("session-receiver-{channel}-{handle}-{}", uuid::Uuid::new_v4().simple());
        let mut filter = fe2o3_amqp::types::messaging::FilterSet::new();
        let value = session.map(|s| fe2o3_amqp::types::primitives::Value::String(s.to_string())).unwrap_or(fe2o3_amqp::types::primitives::Value::Null);
        filter.insert("com.microsoft:session-filter".into(), value);
        let source = Source::builder().address(address.to_string()).filter(filter).build();
        let target = TargetArchetype::Target(Target::builder().address(name.clone()).build());
        self.sessions.entry(channel).or_default().delivery_counts.insert(handle, 0);
        let attach = Self::attach_frame(&name, handle, Role::Receiver, Some(source), Some(target), SenderSettleMode::Unsettled, ReceiverSettleMode::Second);
        self.attach(channel, attach).await
    }

    pub async fn attach_sender(&mut self, channel: u16, handle: u32, address: &str) -> Attach {
        let name = format!("sender-{channel}-{handle}-{}", uuid::Uuid::new_v4().simple());
        let source = Source::builder().address(name.clone()).build();
        let target = TargetArchetype::Target(Target::builder().address(address.to_string()).build());
        let attach = Self::attach_frame(&name, handle, Role::Sender, Some(source), Some(target), SenderSettleMode::Unsettled, ReceiverSettleMode::First);
        self.attach(channel, attach).await
    }

    pub async fn attach_coordinator(&mut self, channel: u16, handle: u32) -> Attach {
        let name = format!("coordinator-{channel}-{handle}");
        let source = Source::builder().address(name.clone()).build();
        let coordinator = Coordinator::new(Some(vec![TxnCapability::LocalTransactions].into()));
        let attach = Self::attach_frame(&name, handle, Role::Sender, Some(source), Some(TargetArchetype::Coordinator(coordinator)), SenderSettleMode::Unsettled, ReceiverSettleMode::First);
        self.attach(channel, attach).await
    }

    /// Waits for the server's credit on a link where the client sends.
    pub async fn expect_credit(&mut self, channel: u16, handle: u32) -> Flow {
        let f = self.expect(&format!("credit on handle {handle}"), |f| f.channel == channel && matches!(&f.body, FrameBody::Flow(fl) if fl.handle == Some(Handle(handle)) && fl.link_credit.unwrap_or(0) > 0)).await;
        match f.body {
            FrameBody::Flow(fl) => fl,
            _ => unreachable!(),
        }
    }

    /// Sends a link flow granting `credit` from the receiver's current delivery-count.
    pub async fn flow(&mut self, channel: u16, handle: u32, credit: u32, drain: bool) {
        let incoming_window = self.incoming_window;
        let s = self.sessions.entry(channel).or_default();
        let delivery_count = *s.delivery_counts.get(&handle).unwrap_or(&0);
        let flow = Flow {
            next_incoming_id: Some(s.next_incoming_id),
            incoming_window,
            next_outgoing_id: s.next_outgoing_id,
            outgoing_window: WINDOW,
            handle: Some(Handle(handle)),
            delivery_count: Some(delivery_count),
            link_credit: Some(credit),
            available: None,
            drain,
            echo: false,
            properties: None,
        };
        self.send(channel, FrameBody::Flow(flow)).await;
    }

    /// Sets the receiver's delivery-count (to the server's, after a drain).
    pub fn set_delivery_count(&mut self, channel: u16, handle: u32, count: u32) {
        self.sessions.entry(channel).or_default().delivery_counts.insert(handle, count);
    }

    /// The receiver's delivery-count as the client counts it.
    pub fn delivery_count(&self, channel: u16, handle: u32) -> u32 {
        self.sessions.get(&channel).and_then(|s| s.delivery_counts.get(&handle).copied()).unwrap_or(0)
    }

    /// Sends one message on a sender link, in frames that fit the server's
    /// max-frame-size. Returns its delivery id.
    pub async fn transfer(&mut self, channel: u16, handle: u32, bytes: &[u8], settled: bool, state: Option<DeliveryState>) -> u32 {
        let chunk = self.send_chunk.unwrap_or_else(|| (self.remote_max_frame as usize).saturating_sub(256).max(256));
        let s = self.sessions.entry(channel).or_default();
        let delivery_id = s.next_delivery_id;
        s.next_delivery_id = s.next_delivery_id.wrapping_add(1);
        let parts: Vec<&[u8]> = if bytes.is_empty() { vec![bytes] } else { bytes.chunks(chunk).collect() };
        let last = parts.len() - 1;
        for (i, part) in parts.into_iter().enumerate() {
            let transfer = Transfer {
                handle: Handle(handle),
                delivery_id: (i == 0).then_some(delivery_id),
                delivery_tag: (i == 0).then(|| Binary::from(delivery_id.to_be_bytes().to_vec())),
                message_format: (i == 0).then_some(0),
                settled: (i == 0).then_some(settled),
                more: i != last,
                rcv_settle_mode: None,
                // Every frame of a transactional delivery names the transaction.
                state: state.clone(),
                resume: false,
                aborted: false,
                batchable: false,
            };
            let s = self.sessions.entry(channel).or_default();
            s.next_outgoing_id = s.next_outgoing_id.wrapping_add(1);
            self.send(channel, FrameBody::Transfer { performative: transfer, payload: bytes::Bytes::copy_from_slice(part) }).await;
        }
        delivery_id
    }

    /// The next whole delivery on a receiver link, within `wait`.
    pub async fn recv_delivery(&mut self, channel: u16, handle: u32, wait: Duration) -> Option<RawDelivery> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut delivery: Option<RawDelivery> = None;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self
                .wait_for(left, |f| f.channel == channel && matches!(&f.body, FrameBody::Transfer { performative, .. } if performative.handle == Handle(handle)))
                .await;
            let Some(frame) = frame else {
                if let Some(d) = delivery {
                    panic!("delivery {} on handle {handle} stopped after {} frames ({} bytes)", d.delivery_id, d.frames, d.bytes.len());
                }
                return None;
            };
            let FrameBody::Transfer { performative: t, payload } = frame.body else { unreachable!() };
            let d = delivery.get_or_insert_with(|| RawDelivery {
                handle,
                delivery_id: t.delivery_id.expect("first transfer frame has a delivery-id"),
                tag: t.delivery_tag.clone().map(|b| b.to_vec()).unwrap_or_default(),
                settled: t.settled.unwrap_or(false),
                frames: 0,
                bytes: Vec::new(),
            });
            d.frames += 1;
            d.bytes.extend_from_slice(&payload);
            assert!(!t.aborted, "delivery {} aborted by the server", d.delivery_id);
            if !t.more {
                return delivery;
            }
        }
    }

    /// Settles (or, with `settled` false, states the outcome of) a delivery the client
    /// received.
    pub async fn disposition(&mut self, channel: u16, delivery_id: u32, settled: bool, state: DeliveryState) {
        let d = Disposition { role: Role::Receiver, first: delivery_id, last: None, settled, state: Some(state), batchable: false };
        self.send(channel, FrameBody::Disposition(d)).await;
    }

    /// The server's disposition covering `delivery_id`, sent in `role`.
    pub async fn wait_disposition(&mut self, channel: u16, role: Role, delivery_id: u32, wait: Duration) -> Option<Disposition> {
        let covers = |d: &Disposition| d.role == role && d.first <= delivery_id && delivery_id <= d.last.unwrap_or(d.first);
        let f = self.wait_for(wait, |f| f.channel == channel && matches!(&f.body, FrameBody::Disposition(d) if covers(d))).await?;
        match f.body {
            FrameBody::Disposition(d) => Some(d),
            _ => unreachable!(),
        }
    }

    /// The server's answer to a transfer the client sent.
    pub async fn expect_outcome(&mut self, channel: u16, delivery_id: u32) -> Disposition {
        match self.wait_disposition(channel, Role::Receiver, delivery_id, FRAME_WAIT).await {
            Some(d) => d,
            None => panic!("no disposition for sent delivery {delivery_id} within {FRAME_WAIT:?}"),
        }
    }

    /// The server's confirmation of a settlement the client made.
    pub async fn expect_settlement(&mut self, channel: u16, delivery_id: u32) -> Disposition {
        match self.wait_disposition(channel, Role::Sender, delivery_id, FRAME_WAIT).await {
            Some(d) => d,
            None => panic!("no disposition confirming the settlement of delivery {delivery_id} within {FRAME_WAIT:?}"),
        }
    }

    pub async fn wait_detach(&mut self, channel: u16, handle: u32, wait: Duration) -> Option<Detach> {
        let f = self.wait_for(wait, |f| f.channel == channel && matches!(&f.body, FrameBody::Detach(d) if d.handle == Handle(handle))).await?;
        match f.body {
            FrameBody::Detach(d) => Some(d),
            _ => unreachable!(),
        }
    }

    pub async fn detach(&mut self, channel: u16, handle: u32) {
        self.send(channel, FrameBody::Detach(Detach { handle: Handle(handle), closed: true, error: None })).await;
        self.wait_detach(channel, handle, FRAME_WAIT).await.expect("detach reply");
    }

    /// Puts a token on `$cbs` for `entity` (audience `sb://localhost/<entity>`), on a
    /// `$cbs` link pair attached on first use. Returns status-code and
    /// status-description.
    pub async fn put_token(&mut self, channel: u16, entity: &str, token: &str) -> (i32, String) {
        let s = self.sessions.entry(channel).or_default();
        if !s.delivery_counts.contains_key(&CBS_RECV_HANDLE) {
            let a = self.attach_sender(channel, CBS_SEND_HANDLE, "$cbs").await;
            assert!(a.target.is_some(), "$cbs sender refused: {a:?}");
            self.expect_credit(channel, CBS_SEND_HANDLE).await;
            let a = self.attach_receiver(channel, CBS_RECV_HANDLE, "$cbs", SenderSettleMode::Settled, ReceiverSettleMode::First).await;
            assert!(a.source.is_some(), "$cbs receiver refused: {a:?}");
            self.flow(channel, CBS_RECV_HANDLE, 100, false).await;
        }
        let message_id = uuid::Uuid::new_v4().to_string();
        let app = ApplicationProperties::builder()
            .insert("operation", SimpleValue::String("put-token".into()))
            .insert("type", SimpleValue::String("servicebus.windows.net:sastoken".into()))
            .insert("name", SimpleValue::String(crate::sas::audience(entity)))
            .build();
        let message = Message::builder()
            .properties(Properties::builder().message_id(message_id.clone()).reply_to("cbs-client").build())
            .application_properties(app)
            .body(Body::<Value>::Value(AmqpValue(Value::String(token.to_string()))))
            .build();
        let id = self.transfer(channel, CBS_SEND_HANDLE, &encode(&message), false, None).await;
        let d = self.expect_outcome(channel, id).await;
        assert!(matches!(d.state, Some(DeliveryState::Accepted(_))), "put-token transfer: {d:?}");
        let answer = self.recv_delivery(channel, CBS_RECV_HANDLE, FRAME_WAIT).await.expect("put-token answer on $cbs");
        let answer = answer.message();
        cbs_status(&answer)
    }

    /// Declares a transaction on a coordinator link; its txn-id.
    pub async fn declare(&mut self, channel: u16, coordinator: u32) -> Vec<u8> {
        let message = Message::builder().value(Declare { global_id: None }).build();
        let id = self.transfer(channel, coordinator, &encode(&message), false, None).await;
        let d = self.expect_outcome(channel, id).await;
        match d.state {
            Some(DeliveryState::Declared(declared)) => declared.txn_id.to_vec(),
            other => panic!("declare answered with {other:?}, not declared"),
        }
    }

    /// Discharges a transaction; the server's answer (accepted, or rejected with a
    /// transaction error).
    pub async fn discharge(&mut self, channel: u16, coordinator: u32, txn_id: &[u8], fail: bool) -> Disposition {
        let message = Message::builder().value(Discharge { txn_id: Binary::from(txn_id.to_vec()), fail: Some(fail) }).build();
        let id = self.transfer(channel, coordinator, &encode(&message), false, None).await;
        self.expect_outcome(channel, id).await
    }
}

/// status-code and status-description of a CBS answer.
pub fn cbs_status(answer: &AnyMessage) -> (i32, String) {
    let props = answer.application_properties.as_ref().expect("CBS answer has application properties");
    let code = match props.0.get("status-code") {
        Some(SimpleValue::Int(c)) => *c,
        Some(SimpleValue::Long(c)) => *c as i32,
        Some(SimpleValue::Uint(c)) => *c as i32,
        other => panic!("CBS status-code {other:?}"),
    };
    let description = match props.0.get("status-description") {
        Some(SimpleValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    (code, description)
}
