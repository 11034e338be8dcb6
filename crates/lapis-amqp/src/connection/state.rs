//! What a connection keeps about its sessions and links: the kinds of link Lapis
//! serves, their credit and unsettled deliveries, the peer's session window, and the
//! dispositions waiting for a staged change to become durable.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use fe2o3_amqp_types::definitions::Role;
use fe2o3_amqp_types::messaging::DeliveryState;
use futures_util::stream::FuturesUnordered;
use lapis_core::broker::{ReceiveMode, SubQueue, TransactionId};

use crate::cbs::Grants;
use crate::AmqpService;

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
    /// The client receives messages from an entity's sub-queue (or one session of it);
    /// `waker` is what it waits on for new messages.
    EntityOut { entity: String, sub: SubQueue, mode: ReceiveMode, session: Option<HeldSession>, waker: std::sync::Arc<tokio::sync::Notify> },
    /// The client sends `$management` requests about an entity.
    ManagementRequests { entity: String },
    /// Lapis sends `$management` answers.
    ManagementAnswers { entity: String },
    /// The transaction coordinator: declare and discharge.
    Coordinator,
    /// A producer sends events to an event hub (one partition, by key, or any).
    HubIn { hub: String, target: lapis_core::stream::SendTarget },
    /// A consumer reads one partition of a hub for a consumer group.
    HubOut { reader: Box<lapis_core::stream::Reader>, runtime_metrics: bool },
    /// Requests to the Event Hubs `$management` node, and its answers.
    HubManagementRequests,
    HubManagementAnswers,
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
    /// Transfer frames the peer's incoming window still has room for (its
    /// remote-incoming-window): Lapis sends none past it until the peer's flow
    /// makes room. A count, not an id: any uint is a valid window.
    pub peer_window: u32,
}

impl Session {
    pub fn window_left(&self) -> u32 {
        self.peer_window
    }

    /// The peer's flow: room is its window less the frames sent that it had not
    /// yet seen when it wrote the flow.
    pub fn peer_flow(&mut self, next_incoming_id: Option<u32>, incoming_window: u32) {
        let in_flight = self.next_outgoing_id.wrapping_sub(next_incoming_id.unwrap_or(0));
        self.peer_window = incoming_window.saturating_sub(in_flight);
    }

    /// Counts `frames` transfer frames sent; returns the id of the first.
    pub fn sent_frames(&mut self, frames: u32) -> u32 {
        let first = self.next_outgoing_id;
        self.next_outgoing_id = first.wrapping_add(frames);
        self.peer_window = self.peer_window.saturating_sub(frames);
        first
    }
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

/// Something a waiting receiver waits for.
pub(crate) type WaitFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

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
    /// Whether the peer has sent its open.
    pub opened: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(next_outgoing_id: u32, peer_window: u32) -> Session {
        Session { next_incoming_id: 0, next_outgoing_id, links: HashMap::new(), unsettled: HashMap::new(), detaching: Default::default(), peer_window }
    }

    #[test]
    fn an_unbounded_window_leaves_room() {
        // The Rust SDK begins and flows with incoming-window u32::MAX.
        let mut s = session(0, u32::MAX);
        assert_eq!(s.window_left(), u32::MAX);
        s.peer_flow(Some(0), u32::MAX);
        assert_eq!(s.sent_frames(3), 0);
        assert_eq!(s.window_left(), u32::MAX - 3);
    }

    #[test]
    fn room_counts_frames_the_peer_had_not_seen() {
        let mut s = session(u32::MAX - 1, 0);
        // Ids wrap: the peer saw up to u32::MAX - 3, so two frames are in flight.
        s.peer_flow(Some(u32::MAX - 3), 10);
        assert_eq!(s.window_left(), 8);
        assert_eq!(s.sent_frames(8), u32::MAX - 1);
        assert_eq!((s.window_left(), s.next_outgoing_id), (0, 6));
        // A peer claiming to have seen more than was sent leaves no room, not a huge one.
        s.peer_flow(Some(100), 10);
        assert_eq!(s.window_left(), 0);
    }
}
