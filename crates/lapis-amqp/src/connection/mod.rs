//! One AMQP connection: SASL and the protocol header, then open, sessions, links and
//! close, in one task that owns all of the connection's state. Frames are read by a
//! reader task (so no frame is ever half-read when the loop turns to something else)
//! and written through a buffer flushed once per turn of the loop. Writes to the
//! broker are staged and their durability awaited off the loop, so one connection can
//! pipeline many messages into one group commit.
//!
//! Links are set up in [`attach`]; what flows from the client (messages, CBS and
//! `$management` requests, transaction control) in [`incoming`]; what flows to it
//! (deliveries, credit, settlement) in [`outgoing`]; transactions in [`txn`].

mod attach;
mod hubs;
mod incoming;
mod outgoing;
mod state;
mod txn;

use std::collections::HashMap;
use std::time::Duration;

use fe2o3_amqp_types::definitions::{Error, Handle};
use fe2o3_amqp_types::performatives::{Begin, Close, Detach, Disposition, End, Open, Performative};
use futures_util::stream::{FuturesUnordered, StreamExt};
use lapis_core::Clock;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, watch};

use crate::cbs::Grants;
use crate::frame::{self, AmqpFrame, FrameError};
use crate::AmqpService;

/// Largest frame Lapis accepts and announces.
pub const MAX_FRAME_SIZE: u32 = 1 << 20;
/// Sessions per connection (the channel-max Lapis announces, plus one).
const CHANNEL_MAX: u16 = 4095;
/// Links per session (the handle-max Lapis announces, plus one).
const HANDLE_MAX: u32 = 4095;
/// Staged writes awaiting durability per connection; past this, Lapis stops reading
/// the connection until some complete.
const MAX_PENDING: usize = 4096;
/// Frames handled per turn of the loop before the output is flushed.
const FRAMES_PER_TURN: usize = 64;
/// Receivers with credit look for messages at least this often (lock expiry and
/// scheduled messages wake nobody).
const RECEIVE_RECHECK: Duration = Duration::from_secs(1);
/// A peer must finish the protocol and SASL handshake, and send its open, within this
/// time.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often expired tokens and waiting session receivers are looked at.
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol violation: {0}")]
    Protocol(String),
}

pub(crate) type Result<T> = std::result::Result<T, ConnectionError>;

pub(crate) use state::*;

/// Aborts the reader task when the connection ends, so a silent peer cannot keep its
/// half of the socket alive.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn spawn_reader<R: AsyncRead + Unpin + Send + 'static>(mut r: R) -> (mpsc::Receiver<std::result::Result<AmqpFrame, FrameError>>, AbortOnDrop) {
    let (tx, rx) = mpsc::channel(FRAMES_PER_TURN * 2);
    let task = tokio::spawn(async move {
        loop {
            let frame = frame::read_amqp(&mut r, MAX_FRAME_SIZE).await;
            let failed = frame.is_err();
            if tx.send(frame).await.is_err() || failed {
                return;
            }
        }
    });
    (rx, AbortOnDrop(task))
}

pub async fn run<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(stream: S, service: &AmqpService, shutdown: watch::Receiver<bool>) -> Result<()> {
    let (read_half, mut w) = tokio::io::split(stream);
    let mut r = BufReader::new(read_half);
    let identity = match tokio::time::timeout(HANDSHAKE_TIMEOUT, crate::sasl::negotiate(&mut r, &mut w, service)).await {
        Ok(Ok(Some(identity))) => identity,
        Ok(Ok(None)) => return Ok(()),
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(ConnectionError::Protocol("no protocol handshake within the timeout".into())),
    };
    let (mut frames, _reader) = spawn_reader(r);
    let mut conn = Conn {
        service,
        out: Vec::with_capacity(64 << 10),
        sessions: HashMap::new(),
        grants: Grants::default(),
        peer_max_frame: frame::MIN_MAX_FRAME_SIZE,
        next_tag: 0,
        pending: FuturesUnordered::new(),
        transactions: Vec::new(),
        waiting: Vec::new(),
        opened: false,
    };
    if let crate::sasl::SaslIdentity::KeyHolder = identity {
        conn.grants.allow_everything();
    }
    let result = conn.serve(&mut frames, &mut w, shutdown).await;
    if let Err(e) = &result {
        // Tell the peer why before hanging up, when it is still listening.
        if let Some(error) = close_error(e) {
            conn.out.clear();
            if conn.send(0, Some(Performative::Close(Close { error: Some(error) })), &[]).is_ok() {
                let _ = tokio::time::timeout(Duration::from_secs(1), w.write_all(&conn.out)).await;
            }
        }
    }
    conn.release_all();
    result
}

/// The error a connection is closed with after `e` (none when the socket is gone).
fn close_error(e: &ConnectionError) -> Option<Error> {
    use fe2o3_amqp_types::definitions::{AmqpError, ConnectionError as Condition, ErrorCondition};
    match e {
        ConnectionError::Frame(FrameError::TooLarge { .. }) => Some(crate::errors::error(ErrorCondition::ConnectionError(Condition::FramingError), e.to_string())),
        ConnectionError::Frame(FrameError::Malformed(_)) => Some(crate::errors::amqp(AmqpError::DecodeError, e.to_string())),
        ConnectionError::Protocol(_) => Some(crate::errors::amqp(AmqpError::NotAllowed, e.to_string())),
        ConnectionError::Frame(FrameError::Encode(_)) => Some(crate::errors::amqp(AmqpError::InternalError, e.to_string())),
        ConnectionError::Frame(FrameError::Io(_)) | ConnectionError::Io(_) => None,
    }
}

impl Conn<'_> {
    async fn serve<W: AsyncWrite + Unpin>(
        &mut self,
        frames: &mut mpsc::Receiver<std::result::Result<AmqpFrame, FrameError>>,
        w: &mut W,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<()> {
        let mut heartbeat: Option<tokio::time::Interval> = None;
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING_EVERY);
        let mut recheck = tokio::time::interval(RECEIVE_RECHECK);
        let open_by = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
        loop {
            if !self.out.is_empty() {
                w.write_all(&self.out).await?;
                self.out.clear();
            }
            let waits = self.waits();
            let waiting = !waits.is_empty();
            tokio::select! {
                Some(done) = self.pending.next(), if !self.pending.is_empty() => self.complete(done),
                frame = frames.recv(), if self.pending.len() < MAX_PENDING => {
                    let mut next = frame;
                    let mut handled = 0;
                    loop {
                        let Some(frame) = next else { return Ok(()) };
                        let AmqpFrame { channel, performative, payload } = frame?;
                        if let Some(performative) = performative {
                            if let Performative::Open(open) = &performative {
                                heartbeat = heartbeat_for(open.idle_time_out);
                            }
                            if !self.handle(channel, performative, payload).await? {
                                w.write_all(&self.out).await?;
                                return Ok(());
                            }
                        }
                        handled += 1;
                        // Only take another frame when it will be handled in this turn.
                        if handled >= FRAMES_PER_TURN || self.pending.len() >= MAX_PENDING {
                            break;
                        }
                        next = match frames.try_recv() {
                            Ok(f) => Some(f),
                            Err(mpsc::error::TryRecvError::Empty) => break,
                            Err(mpsc::error::TryRecvError::Disconnected) => None,
                        };
                    }
                }
                _ = woken(waits), if waiting => self.pump_all().await?,
                _ = recheck.tick(), if waiting => self.pump_all().await?,
                _ = housekeeping.tick() => {
                    if !self.opened && tokio::time::Instant::now() > open_by {
                        return Err(ConnectionError::Protocol("no open frame within the timeout".into()));
                    }
                    self.housekeeping().await?
                }
                _ = tick(&mut heartbeat) => self.send(0, None, &[])?,
                _ = shutdown.changed() => return self.close_for_shutdown(w).await,
            }
        }
    }

    /// Lets staged writes become durable and be confirmed, then closes the connection
    /// with `amqp:connection:forced`.
    async fn close_for_shutdown<W: AsyncWrite + Unpin>(&mut self, w: &mut W) -> Result<()> {
        while let Some(done) = self.pending.next().await {
            self.complete(done);
        }
        let e = crate::errors::error(
            fe2o3_amqp_types::definitions::ErrorCondition::ConnectionError(fe2o3_amqp_types::definitions::ConnectionError::ConnectionForced),
            "The server is shutting down.",
        );
        self.send(0, Some(Performative::Close(Close { error: Some(e) })), &[])?;
        w.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    /// Appends a frame to the output.
    pub(crate) fn send(&mut self, channel: u16, performative: Option<Performative>, payload: &[u8]) -> Result<()> {
        frame::encode_amqp_into(&mut self.out, channel, performative.as_ref(), payload)?;
        Ok(())
    }

    pub(crate) fn session(&mut self, channel: u16) -> Result<&mut Session> {
        self.sessions.get_mut(&channel).ok_or_else(|| ConnectionError::Protocol(format!("no session on channel {channel}")))
    }

    fn complete(&mut self, done: Completion) {
        if done.reply {
            let reply = Disposition { role: done.role, first: done.delivery_id, last: None, settled: true, state: Some(done.state), batchable: false };
            if let Err(e) = self.send(done.channel, Some(Performative::Disposition(reply)), &[]) {
                tracing::warn!(error = %e, "a disposition could not be encoded");
            }
        }
    }

    /// Handles one performative; false once the connection is closed.
    async fn handle(&mut self, channel: u16, performative: Performative, payload: bytes::Bytes) -> Result<bool> {
        if !self.opened && !matches!(performative, Performative::Open(_)) {
            return Err(ConnectionError::Protocol("the first frame must be an open".into()));
        }
        match performative {
            Performative::Open(open) => {
                if self.opened {
                    return self.close_with(crate::errors::amqp(fe2o3_amqp_types::definitions::AmqpError::IllegalState, "the connection is already open"));
                }
                self.opened = true;
                self.peer_max_frame = open.max_frame_size.0.clamp(frame::MIN_MAX_FRAME_SIZE, MAX_FRAME_SIZE);
                let reply = Open {
                    container_id: format!("lapis-{}", uuid::Uuid::new_v4().simple()),
                    hostname: None,
                    max_frame_size: MAX_FRAME_SIZE.into(),
                    channel_max: (CHANNEL_MAX - 1).into(),
                    idle_time_out: None,
                    outgoing_locales: None,
                    incoming_locales: None,
                    offered_capabilities: None,
                    desired_capabilities: None,
                    properties: None,
                };
                self.send(0, Some(Performative::Open(reply)), &[])?;
            }
            Performative::Begin(begin) => {
                if channel >= CHANNEL_MAX || self.sessions.contains_key(&channel) {
                    return self.close_with(crate::errors::amqp(fe2o3_amqp_types::definitions::AmqpError::NotAllowed, format!("channel {channel} is in use or above the channel-max")));
                }
                let session = Session {
                    next_incoming_id: begin.next_outgoing_id,
                    next_outgoing_id: 0,
                    links: HashMap::new(),
                    unsettled: HashMap::new(),
                    detaching: Default::default(),
                    peer_window: begin.incoming_window,
                };
                self.sessions.insert(channel, session);
                let reply = Begin {
                    remote_channel: Some(channel),
                    next_outgoing_id: 0,
                    incoming_window: u32::MAX / 2,
                    outgoing_window: u32::MAX / 2,
                    handle_max: Handle(HANDLE_MAX - 1),
                    offered_capabilities: None,
                    desired_capabilities: None,
                    properties: None,
                };
                self.send(channel, Some(Performative::Begin(reply)), &[])?;
            }
            Performative::Attach(attach) => self.on_attach(channel, attach).await?,
            Performative::Flow(flow) => self.on_flow(channel, flow).await?,
            Performative::Transfer(transfer) => self.on_transfer(channel, transfer, payload).await?,
            Performative::Disposition(d) => self.on_disposition(channel, d)?,
            Performative::Detach(detach) => {
                self.waiting.retain(|w| !(w.channel == channel && w.attach.handle == detach.handle));
                // The Python SDKs end a session and then detach its last links: those
                // links went with the session, so there is nothing left to answer.
                let Some(session) = self.sessions.get_mut(&channel) else {
                    tracing::debug!(channel, handle = detach.handle.0, "a detach after its session ended; ignored");
                    return Ok(true);
                };
                let link = session.links.remove(&detach.handle.0);
                // Its deliveries can no longer be settled on it; their locks run out.
                session.unsettled.retain(|_, u| u.handle != detach.handle.0);
                let answers_ours = session.detaching.remove(&detach.handle.0);
                if let Some(link) = link {
                    self.release_link(&link);
                }
                if !answers_ours {
                    let reply = Detach { handle: detach.handle, closed: detach.closed, error: None };
                    self.send(channel, Some(Performative::Detach(reply)), &[])?;
                }
            }
            Performative::End(_) => {
                if let Some(session) = self.sessions.remove(&channel) {
                    for link in session.links.values() {
                        self.release_link(link);
                    }
                }
                self.waiting.retain(|w| w.channel != channel);
                self.send(channel, Some(Performative::End(End { error: None })), &[])?;
            }
            Performative::Close(_) => {
                self.send(0, Some(Performative::Close(Close { error: None })), &[])?;
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Closes the connection with an error (the peer broke a rule that ends it).
    fn close_with(&mut self, e: Error) -> Result<bool> {
        self.send(0, Some(Performative::Close(Close { error: Some(e) })), &[])?;
        Ok(false)
    }

    /// The sessions this connection's links hold.
    pub(crate) fn held_sessions(&self) -> crate::management::HeldSessions {
        let held = self.sessions.values().flat_map(|s| s.links.values()).filter_map(|l| match &l.kind {
            LinkKind::EntityOut { entity, session: Some(h), .. } => Some((entity.to_ascii_lowercase(), h.id.clone(), h.token)),
            _ => None,
        });
        crate::management::HeldSessions(held.collect())
    }

    /// Gives up what a link held: its session lock.
    fn release_link(&self, link: &Link) {
        if let LinkKind::EntityOut { entity, session: Some(held), .. } = &link.kind {
            let _ = self.service.broker.release_session(entity, held.token);
        }
    }

    /// Everything the connection held, when it ends: session locks, open transactions.
    fn release_all(&mut self) {
        for session in self.sessions.values() {
            for link in session.links.values() {
                self.release_link(link);
            }
        }
        for txn in self.transactions.drain(..) {
            let _ = self.service.broker.discharge(txn, false);
        }
    }

    /// Detaches links whose token expired, and answers session receivers whose wait
    /// is over.
    async fn housekeeping(&mut self) -> Result<()> {
        let now = lapis_core::SystemClock.now_ms();
        let expired: Vec<(u16, u32, String)> = self
            .sessions
            .iter()
            .flat_map(|(c, s)| s.links.iter().map(move |(h, l)| (*c, *h, l)))
            .filter_map(|(c, h, l)| l.authorized_by.as_ref().filter(|p| !self.grants.allows(p, now)).map(|p| (c, h, p.clone())))
            .collect();
        for (channel, handle, path) in expired {
            self.detach_with(channel, handle, crate::errors::unauthorized(&path))?;
        }
        self.retry_waiting_attaches(true).await
    }

    /// Detaches a link on Lapis's initiative, with an error.
    pub(crate) fn detach_with(&mut self, channel: u16, handle: u32, e: Error) -> Result<()> {
        let session = self.session(channel)?;
        session.detaching.insert(handle);
        session.unsettled.retain(|_, u| u.handle != handle);
        let link = session.links.remove(&handle);
        if let Some(link) = link {
            self.release_link(&link);
        }
        let detach = Detach { handle: Handle(handle), closed: true, error: Some(e) };
        self.send(channel, Some(Performative::Detach(detach)), &[])
    }
}

/// Resolves when any of `waits` does.
async fn woken(waits: Vec<WaitFuture>) {
    if waits.is_empty() {
        return std::future::pending().await;
    }
    futures_util::future::select_all(waits).await;
}

fn heartbeat_for(idle_time_out: Option<u32>) -> Option<tokio::time::Interval> {
    let ms = idle_time_out.filter(|ms| *ms > 0)?;
    let period = Duration::from_millis((ms / 2).max(1000) as u64);
    Some(tokio::time::interval_at(tokio::time::Instant::now() + period, period))
}

async fn tick(heartbeat: &mut Option<tokio::time::Interval>) {
    match heartbeat {
        Some(h) => {
            h.tick().await;
        }
        None => std::future::pending::<()>().await,
    }
}
