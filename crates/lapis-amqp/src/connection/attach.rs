//! Setting links up: what an attach's address names (`$cbs`, an entity, its
//! dead-letter sub-queue, its `$management` node, the transaction coordinator), whether
//! the connection's CBS grants allow it, and — for session receivers — which session
//! the link holds. Session receivers that ask for the next free session wait here
//! until one frees up or their timeout passes.

use fe2o3_amqp_types::definitions::{AmqpError, Error, ReceiverSettleMode, Role, SenderSettleMode};
use fe2o3_amqp_types::messaging::TargetArchetype;
use fe2o3_amqp_types::performatives::{Attach, Detach, Performative};
use fe2o3_amqp_types::primitives::{Symbol, Value};
use lapis_core::broker::{parse_address, ReceiveMode, SessionLock, SubQueue};
use lapis_core::Clock;

use super::{Conn, HeldSession, Link, LinkKind, Result, WaitingAttach, HANDLE_MAX};
use crate::cbs;
use crate::errors::{self, amqp, broker_error, custom};

/// The source filter that names a session (a string) or asks for the next free one
/// (null).
pub const SESSION_FILTER: &str = "com.microsoft:session-filter";
/// The attach property carrying a session's lock expiry, in .NET ticks.
pub const LOCKED_UNTIL: &str = "com.microsoft:locked-until-utc";
/// The attach property with the client's operation timeout, in milliseconds.
pub const TIMEOUT_PROPERTY: &str = "com.microsoft:timeout";
/// How long a next-available session receiver waits when it names no timeout (the
/// service's default operation timeout).
const DEFAULT_SESSION_WAIT_MS: u64 = 60_000;
/// At most this many session receivers wait per connection.
const MAX_WAITING: usize = 256;

/// .NET ticks (100 ns since 0001-01-01) of a Unix time in milliseconds.
pub fn dotnet_ticks(unix_ms: i64) -> i64 {
    const UNIX_EPOCH_TICKS: i64 = 621_355_968_000_000_000;
    UNIX_EPOCH_TICKS + unix_ms * 10_000
}

/// What an attach asks for a session: none, a named one, or the next free one.
enum SessionRequest {
    None,
    Named(String),
    NextAvailable,
}

fn session_request(attach: &Attach) -> SessionRequest {
    let filter = attach.source.as_ref().and_then(|s| s.filter.as_ref());
    match filter.and_then(|f| f.get(&Symbol::from(SESSION_FILTER))) {
        None => SessionRequest::None,
        Some(Value::String(id)) => SessionRequest::Named(id.clone()),
        Some(Value::Symbol(id)) => SessionRequest::Named(id.0.clone()),
        Some(_) => SessionRequest::NextAvailable,
    }
}

fn timeout_ms(attach: &Attach) -> u64 {
    let value = attach.properties.as_ref().and_then(|p| p.get(&Symbol::from(TIMEOUT_PROPERTY)));
    match value {
        Some(Value::Uint(ms)) => *ms as u64,
        Some(Value::Ulong(ms)) => *ms,
        Some(Value::Int(ms)) if *ms >= 0 => *ms as u64,
        Some(Value::Long(ms)) if *ms >= 0 => *ms as u64,
        _ => DEFAULT_SESSION_WAIT_MS,
    }
    .min(DEFAULT_SESSION_WAIT_MS * 5)
}

fn target_address(attach: &Attach) -> Option<String> {
    attach.target.as_deref().and_then(|t| match t {
        TargetArchetype::Target(t) => t.address.clone(),
        TargetArchetype::Coordinator(_) => None,
    })
}

impl Conn<'_> {
    /// The refusal pattern of the specification: a reply with a null terminus, then a
    /// detach carrying the error.
    pub(super) fn refuse_link(&mut self, channel: u16, mut attach: Attach, e: Error) -> Result<()> {
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
        attach.unsettled = None;
        self.send(channel, Some(Performative::Attach(attach)), &[])?;
        self.session(channel)?.detaching.insert(handle.0);
        let detach = Detach { handle, closed: true, error: Some(e) };
        self.send(channel, Some(Performative::Detach(detach)), &[])
    }

    pub(super) async fn on_attach(&mut self, channel: u16, attach: Attach) -> Result<()> {
        let handle = attach.handle.0;
        if handle >= HANDLE_MAX || self.session(channel)?.links.contains_key(&handle) {
            let e = amqp(AmqpError::NotAllowed, format!("handle {handle} is in use or above the handle-max"));
            return self.refuse_link(channel, attach, e);
        }
        let client_sends = attach.role == Role::Sender;
        if client_sends && matches!(attach.target.as_deref(), Some(TargetArchetype::Coordinator(_))) {
            return self.accept_link(channel, attach, LinkKind::Coordinator, None, None);
        }
        let address = if client_sends { target_address(&attach) } else { attach.source.as_ref().and_then(|s| s.address.clone()) };
        let path = cbs::normalize(&address.unwrap_or_default());
        let now = lapis_core::SystemClock.now_ms();
        if path == "$cbs" {
            let kind = if client_sends { LinkKind::CbsRequests } else { LinkKind::CbsAnswers };
            return self.accept_link(channel, attach, kind, None, None);
        }
        if path == crate::eventhubs::management::NODE {
            // Event Hubs' node; each request names its hub (and carries its own token).
            let kind = if client_sends { LinkKind::HubManagementRequests } else { LinkKind::HubManagementAnswers };
            return self.accept_link(channel, attach, kind, None, None);
        }
        if let Some(addr) = crate::eventhubs::address::parse(&path).filter(|a| self.service.streams.hub(a.hub()).is_ok()) {
            return self.attach_hub_link(channel, attach, addr, path);
        }
        let (node, management) = match path.strip_suffix(crate::management::SUFFIX) {
            Some(entity_path) => (entity_path.to_string(), true),
            None => (path.clone(), false),
        };
        let (entity, sub) = parse_address(&node);
        let config = match self.service.broker.queue_config(entity) {
            Ok(c) => c,
            Err(e) => return self.refuse_link(channel, attach, broker_error(&e)),
        };
        // A token for the entity covers its management node; the SDKs also put tokens
        // for `<entity>/$management` itself.
        let authorized_by = if self.grants.allows(&node, now) {
            node.clone()
        } else if management && self.grants.allows(&path, now) {
            path.clone()
        } else {
            return self.refuse_link(channel, attach, errors::unauthorized(entity));
        };
        let (entity, authorized_by) = (entity.to_string(), Some(authorized_by));
        if management {
            let kind = if client_sends { LinkKind::ManagementRequests { entity: node } } else { LinkKind::ManagementAnswers { entity: node } };
            return self.accept_link(channel, attach, kind, authorized_by, None);
        }
        if client_sends {
            if sub != SubQueue::Main {
                return self.refuse_link(channel, attach, amqp(AmqpError::NotAllowed, "Messages cannot be sent to a dead-letter queue."));
            }
            return self.accept_link(channel, attach, LinkKind::EntityIn { entity }, authorized_by, None);
        }
        let mode = match attach.snd_settle_mode {
            SenderSettleMode::Settled => ReceiveMode::ReceiveAndDelete,
            _ => ReceiveMode::PeekLock,
        };
        let request = session_request(&attach);
        let sessionful = sub == SubQueue::Main && config.requires_session;
        match (request, sessionful) {
            (SessionRequest::None, false) => {
                let waker = self.service.broker.waker(&entity);
                let kind = LinkKind::EntityOut { entity, sub, mode, session: None, waker };
                self.accept_link(channel, attach, kind, authorized_by, None)
            }
            (SessionRequest::None, true) => {
                let e = amqp(AmqpError::NotAllowed, format!("It is not possible for an entity that requires sessions to create a non-sessionful message receiver: '{entity}'."));
                self.refuse_link(channel, attach, e)
            }
            (_, false) => {
                let e = amqp(AmqpError::NotAllowed, format!("It is not possible for an entity that does not require sessions to create a sessionful message receiver: '{entity}'."));
                self.refuse_link(channel, attach, e)
            }
            (SessionRequest::Named(id), true) => match self.service.broker.accept_session(&entity, Some(&id)) {
                Ok(Some(lock)) => self.accept_session_link(channel, attach, entity, mode, lock),
                Ok(None) => unreachable!("a named session is locked or refused, never absent"),
                Err(e) => self.refuse_link(channel, attach, broker_error(&e)),
            },
            (SessionRequest::NextAvailable, true) => match self.service.broker.accept_session(&entity, None) {
                Ok(Some(lock)) => self.accept_session_link(channel, attach, entity, mode, lock),
                Ok(None) if self.waiting.len() < MAX_WAITING => {
                    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(timeout_ms(&attach));
                    self.waiting.push(WaitingAttach { channel, attach, entity, deadline });
                    Ok(())
                }
                Ok(None) => {
                    let e = amqp(AmqpError::ResourceLimitExceeded, "Too many session receivers are waiting on this connection.");
                    self.refuse_link(channel, attach, e)
                }
                Err(e) => self.refuse_link(channel, attach, broker_error(&e)),
            },
        }
    }

    fn accept_session_link(&mut self, channel: u16, mut attach: Attach, entity: String, mode: ReceiveMode, lock: SessionLock) -> Result<()> {
        if let Some(source) = attach.source.as_mut() {
            let mut filter = source.filter.take().unwrap_or_default();
            filter.insert(Symbol::from(SESSION_FILTER), Value::String(lock.session_id.clone()));
            source.filter = Some(filter);
        }
        let extra = (Symbol::from(LOCKED_UNTIL), Value::Long(dotnet_ticks(lock.locked_until)));
        let authorized_by = Some(entity.clone());
        let held = HeldSession { id: lock.session_id, token: lock.token };
        let waker = self.service.broker.waker(&entity);
        let kind = LinkKind::EntityOut { entity, sub: SubQueue::Main, mode, session: Some(held), waker };
        self.accept_link(channel, attach, kind, authorized_by, Some(extra))
    }

    /// Gives waiting session receivers a session that has become free; refuses those
    /// whose wait is over (when `expire`) with `com.microsoft:timeout`.
    pub(super) async fn retry_waiting_attaches(&mut self, expire: bool) -> Result<()> {
        if self.waiting.is_empty() {
            return Ok(());
        }
        let now = tokio::time::Instant::now();
        for w in std::mem::take(&mut self.waiting) {
            match self.service.broker.accept_session(&w.entity, None) {
                Ok(Some(lock)) => {
                    let mode = if w.attach.snd_settle_mode == SenderSettleMode::Settled { ReceiveMode::ReceiveAndDelete } else { ReceiveMode::PeekLock };
                    self.accept_session_link(w.channel, w.attach, w.entity, mode, lock)?;
                }
                Ok(None) if !expire || w.deadline > now => self.waiting.push(w),
                Ok(None) => {
                    let e = custom(errors::TIMEOUT, format!("No session of '{}' became available within the timeout.", w.entity));
                    self.refuse_link(w.channel, w.attach, e)?;
                }
                Err(e) => self.refuse_link(w.channel, w.attach, broker_error(&e))?,
            }
        }
        Ok(())
    }

    /// Replies to an attach and records the link.
    pub(super) fn accept_link(&mut self, channel: u16, attach: Attach, kind: LinkKind, authorized_by: Option<String>, property: Option<(Symbol, Value)>) -> Result<()> {
        let client_sends = attach.role == Role::Sender;
        let max_message = match &kind {
            LinkKind::EntityIn { entity } => self.service.broker.queue_config(entity).map(|c| c.max_message_bytes).unwrap_or(256 << 10),
            _ => 1 << 20,
        };
        let mut reply = attach.clone();
        reply.role = if client_sends { Role::Receiver } else { Role::Sender };
        // Senders that ask for rcv-settle-mode second ignore unsettled answers, so
        // Lapis settles on first; receivers keep the mode they asked for (Lapis always
        // answers their dispositions settled).
        // Event Hubs clients (the Rust one strictly) want rcv-settle-mode first echoed,
        // and their own snd-settle-mode.
        if client_sends || matches!(kind, LinkKind::HubOut { .. }) {
            reply.rcv_settle_mode = ReceiverSettleMode::First;
        }
        reply.initial_delivery_count = if client_sends { None } else { Some(0) };
        reply.max_message_size = Some(max_message);
        reply.unsettled = None;
        if let Some((k, v)) = property {
            reply.properties.get_or_insert_with(Default::default).insert(k, v);
        }
        self.send(channel, Some(Performative::Attach(reply)), &[])?;
        let client_address = if client_sends { attach.source.as_ref().and_then(|s| s.address.clone()) } else { target_address(&attach) };
        let link = Link {
            name: attach.name.clone(),
            client_address,
            kind,
            authorized_by,
            credit: 0,
            delivery_count: attach.initial_delivery_count.unwrap_or(0),
            peer_credit: 0,
            partial: None,
            queued: Vec::new(),
            unsettled: 0,
        };
        let handle = attach.handle.0;
        self.session(channel)?.links.insert(handle, link);
        if client_sends {
            self.grant_credit(channel, handle)?;
        }
        Ok(())
    }
}
