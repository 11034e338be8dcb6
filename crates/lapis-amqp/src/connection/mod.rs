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
mod incoming;
mod outgoing;
mod txn;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use fe2o3_amqp::frames::sasl;
use fe2o3_amqp_types::definitions::{Error, Handle, Role};
use fe2o3_amqp_types::messaging::DeliveryState;
use fe2o3_amqp_types::performatives::{Begin, Close, Detach, Disposition, End, Open, Performative};
use fe2o3_amqp_types::primitives::Symbol;
use fe2o3_amqp_types::sasl::{SaslCode, SaslMechanisms, SaslOutcome};
use futures_util::stream::{FuturesUnordered, StreamExt};
use lapis_core::broker::{ReceiveMode, SubQueue, TransactionId};
use lapis_core::Clock;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, watch};

use crate::cbs::Grants;
use crate::frame::{self, AmqpFrame, FrameError, AMQP_HEADER, SASL_HEADER};
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

/// A session a receiver link holds.
#[derive(Debug, Clone)]
pub(crate) struct HeldSession {
    pub id: String,
    pub token: uuid::Uuid,
}

pub(crate) enum LinkKind {
    /// The client sends put-token requests to `$cbs`.
    CbsRequests,
    /// Lapis sends CBS answers to the client.
    CbsAnswers,
    /// The client sends messages to an entity.
    EntityIn { entity: String },
    /// The client receives messages from an entity's sub-queue (or one session of it).
    EntityOut { entity: String, sub: SubQueue, mode: ReceiveMode, session: Option<HeldSession> },
    /// The client sends `$management` requests about an entity.
    ManagementRequests { entity: String },
    /// Lapis sends `$management` answers.
    ManagementAnswers { entity: String },
    /// The transaction coordinator: declare and discharge.
    Coordinator,
}

pub(crate) struct Link {
    pub name: String,
    /// The client's own terminus address (where answers are addressed with reply-to).
    pub client_address: Option<String>,
    pub kind: LinkKind,
    /// The entity path whose CBS grant authorizes this link, if it needs one.
    pub authorized_by: Option<String>,
    /// Credit left for the peer's transfers (client senders).
    pub credit: u32,
    pub delivery_count: u32,
    /// Credit the peer gave Lapis (client receivers).
    pub peer_credit: u32,
    /// A delivery arriving in several frames: id, settled, format, transaction, bytes.
    pub partial: Option<Partial>,
    /// Answers waiting for credit.
    pub queued: Vec<Vec<u8>>,
    /// Deliveries sent on this link and not yet settled by the client.
    pub unsettled: usize,
}

pub(crate) struct Partial {
    pub delivery_id: u32,
    pub settled: bool,
    pub format: u32,
    pub txn: Option<Vec<u8>>,
    pub bytes: Vec<u8>,
}

/// A peek-locked delivery awaiting the client's disposition.
#[derive(Clone)]
pub(crate) struct Unsettled {
    pub handle: u32,
    pub entity: String,
    pub sub: SubQueue,
    pub token: uuid::Uuid,
}

pub(crate) struct Session {
    pub next_incoming_id: u32,
    pub next_outgoing_id: u32,
    pub links: HashMap<u32, Link>,
    pub unsettled: HashMap<u32, Unsettled>,
    /// Handles Lapis has detached (or refused) and whose detach the peer has not
    /// answered yet: its detach is the answer, and gets none.
    pub detaching: std::collections::HashSet<u32>,
}

/// What to answer a transfer with: now, or once it is durable (a [`Completion`]).
pub(crate) enum Answer {
    Now(DeliveryState),
    Later,
}

/// A disposition to send once a staged change is durable.
pub(crate) struct Completion {
    pub channel: u16,
    pub role: Role,
    pub delivery_id: u32,
    pub state: DeliveryState,
    /// Whether the client waits for it (it did not settle on its side).
    pub reply: bool,
}

pub(crate) type PendingFuture = Pin<Box<dyn Future<Output = Completion> + Send>>;

/// A session receiver's attach waiting for a session to become free.
pub(crate) struct WaitingAttach {
    pub channel: u16,
    pub attach: fe2o3_amqp_types::performatives::Attach,
    pub entity: String,
    pub deadline: tokio::time::Instant,
}

pub(crate) struct Conn<'a> {
    pub service: &'a AmqpService,
    /// Encoded frames not yet written.
    pub out: Vec<u8>,
    pub sessions: HashMap<u16, Session>,
    pub grants: Grants,
    pub peer_max_frame: u32,
    pub next_tag: u64,
    pub pending: FuturesUnordered<PendingFuture>,
    /// Transactions this connection declared and has not discharged.
    pub transactions: Vec<TransactionId>,
    pub waiting: Vec<WaitingAttach>,
    pub activity: watch::Receiver<u64>,
    /// Whether the peer has sent its open.
    pub opened: bool,
}

/// How a peer authenticated in SASL.
enum SaslIdentity {
    /// ANONYMOUS or MSSBCBS: authorization comes later, through CBS tokens.
    Anonymous,
    /// PLAIN with a configured key name and its key: the connection may use every
    /// entity, as with a namespace-wide token.
    KeyHolder,
}

/// The outcome of SASL PLAIN: `authzid\0authcid\0password`, where the name is a
/// configured shared access key name and the password its key.
fn plain_identity(response: Option<&[u8]>, keys: &lapis_core::auth::sas_token::SasKeys) -> bool {
    let Some(response) = response else { return false };
    let mut parts = response.split(|b| *b == 0);
    let (_authz, Some(name), Some(password), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else { return false };
    let (Ok(name), Ok(password)) = (std::str::from_utf8(name), std::str::from_utf8(password)) else { return false };
    keys.get(name).is_some_and(|key| crate::cbs::constant_time_eq(key.as_bytes(), password.as_bytes()))
}

/// Negotiates SASL and the AMQP header. Returns `None` if the peer spoke something
/// else or failed SASL PLAIN.
async fn negotiate<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(r: &mut R, w: &mut W, service: &AmqpService) -> Result<Option<SaslIdentity>> {
    let mut header = frame::read_header(r).await?;
    let mut identity = SaslIdentity::Anonymous;
    if header == SASL_HEADER {
        w.write_all(&SASL_HEADER).await?;
        let mechanisms = ["MSSBCBS", "ANONYMOUS", "PLAIN"].map(Symbol::from).to_vec();
        frame::write_sasl(w, &sasl::Frame::Mechanisms(SaslMechanisms { sasl_server_mechanisms: mechanisms.into() })).await?;
        let init = match frame::read_sasl(r).await? {
            sasl::Frame::Init(init) => init,
            other => return Err(ConnectionError::Protocol(format!("expected sasl-init, got {other:?}"))),
        };
        let code = match init.mechanism.as_str() {
            "PLAIN" if plain_identity(init.initial_response.as_deref().map(|v| &v[..]), &service.sas_keys) => {
                identity = SaslIdentity::KeyHolder;
                SaslCode::Ok
            }
            "PLAIN" => SaslCode::Auth,
            "ANONYMOUS" | "MSSBCBS" => SaslCode::Ok,
            _ => SaslCode::Auth,
        };
        frame::write_sasl(w, &sasl::Frame::Outcome(SaslOutcome { code: code.clone(), additional_data: None })).await?;
        if code != SaslCode::Ok {
            return Ok(None);
        }
        header = frame::read_header(r).await?;
    }
    if header != AMQP_HEADER {
        // Answer with the header we speak, as the specification asks, then hang up.
        w.write_all(&SASL_HEADER).await?;
        return Ok(None);
    }
    w.write_all(&AMQP_HEADER).await?;
    Ok(Some(identity))
}

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
    let identity = match tokio::time::timeout(HANDSHAKE_TIMEOUT, negotiate(&mut r, &mut w, service)).await {
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
        activity: service.broker.activity(),
        opened: false,
    };
    if let SaslIdentity::KeyHolder = identity {
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
            let waiting = self.has_waiting_receivers() || !self.waiting.is_empty();
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
                changed = self.activity.changed(), if waiting => {
                    if changed.is_ok() {
                        self.pump_all().await?;
                    }
                }
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
                let session = self.session(channel)?;
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
