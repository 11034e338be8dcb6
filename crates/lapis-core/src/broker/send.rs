//! Sending: the checks a send must pass (message and entity size, session ids),
//! duplicate detection, and delivery of each message to where it ends up — the queue
//! itself, every subscription of a topic whose rules match, or the entity that
//! auto-forwarding moves it on to (at most [`MAX_FORWARD_HOPS`] hops). One send is one
//! atomic commit over every entity it touches.

use std::collections::BTreeMap;

use lapis_store::Op;

use super::codec::{self, EntityKind, MessageMeta};
use super::entity::{EntityState, StoredMessage};
use super::error::{BrokerError, BrokerResult};
use super::model::*;
use super::service::{Broker, LockSet, Staged, MAX_FORWARD_HOPS};
use super::topics::copies_for;
use crate::body::hold_body;
use crate::clock::Millis;

/// Dead-letter reasons of auto-forwarding, as Azure writes them.
pub const REASON_HOPS: &str = "MaxTransferHopCountExceeded";
pub const REASON_NO_SESSION: &str = "Session ID is null";
pub const REASON_FORWARD_FAILED: &str = "ForwardingFailed";

/// One message on its way to where it is stored.
pub(super) struct Arrival<'m> {
    pub message: &'m OutgoingMessage,
    /// Property changes made by rule actions on the way.
    pub overrides: BTreeMap<String, PropertyValue>,
    /// The entity id and sequence number the sender was given.
    pub origin: (u64, i64),
    pub hops: u32,
}

impl Broker {
    /// Enqueues `messages` atomically and returns their sequence numbers; a duplicate
    /// within the detection window is accepted without being enqueued (`None`).
    pub async fn send(&self, entity: &str, messages: Vec<OutgoingMessage>) -> BrokerResult<Vec<Option<i64>>> {
        let staged = self.stage_send(entity, messages)?;
        self.finish(staged).await
    }

    /// [`Broker::send`] without the wait for durability, so that a connection can
    /// take its next message while this one is being synced.
    pub fn stage_send(&self, entity: &str, messages: Vec<OutgoingMessage>) -> BrokerResult<Staged<Vec<Option<i64>>>> {
        let mut reach = BTreeMap::new();
        self.reach(entity, &mut reach)?;
        let now = self.clock.now_ms();
        let (commit, seqs, woken) = {
            let mut set = LockSet::lock(&reach);
            let mut ops = Vec::with_capacity(messages.len() * 3);
            let mut woken = Vec::new();
            let seqs = self.send_locked(&mut set, entity, messages, now, &mut ops, &mut woken)?;
            (self.store.commit(&ops)?, seqs, woken)
        };
        for key in woken {
            self.wake(&key);
        }
        Ok(Staged::new(commit, seqs))
    }

    /// Checks and delivers `messages` sent to `entity`, whose reach `set` holds locked.
    /// The keys of the entities that got messages are added to `woken`.
    pub(super) fn send_locked(
        &self,
        set: &mut LockSet<'_>,
        entity: &str,
        messages: Vec<OutgoingMessage>,
        now: Millis,
        ops: &mut Vec<Op>,
        woken: &mut Vec<String>,
    ) -> BrokerResult<Vec<Option<i64>>> {
        let entry = set.index(entity).ok_or_else(|| BrokerError::EntityNotFound(entity.to_string()))?;
        if matches!(set.guards[entry].record.kind, EntityKind::Subscription { .. }) {
            return Err(BrokerError::InvalidOperation(format!("Cannot send to the subscription '{entity}': send to its topic.")));
        }
        Self::check_send(&set.guards[entry], entity, &messages)?;
        let mut touched = vec![false; set.guards.len()];
        let mut seqs = Vec::with_capacity(messages.len());
        for m in &messages {
            if !Self::admit(&mut set.guards[entry], m, now, ops) {
                seqs.push(None);
                continue;
            }
            let seq = set.guards[entry].take_seq();
            touched[entry] = true;
            let arrival = Arrival { message: m, overrides: BTreeMap::new(), origin: (set.guards[entry].record.id, seq), hops: 0 };
            self.deliver(set, entry, arrival, now, ops, &mut touched);
            seqs.push(Some(seq));
        }
        for (i, _) in touched.iter().enumerate().filter(|(_, t)| **t) {
            ops.push(set.guards[i].next_seq_op());
        }
        woken.extend(set.keys_of(touched.iter().enumerate().filter(|(_, t)| **t).map(|(i, _)| i)));
        Ok(seqs)
    }

    /// Stores `arrival` at entity `at`, or passes it on: a topic to its matching
    /// subscriptions, a forwarding entity to its target.
    pub(super) fn deliver(&self, set: &mut LockSet<'_>, at: usize, arrival: Arrival<'_>, now: Millis, ops: &mut Vec<Op>, touched: &mut [bool]) {
        let (kind, forward_to) = {
            let e = &set.guards[at];
            (e.record.kind.clone(), e.record.config.forward_to.clone())
        };
        if kind == EntityKind::Topic {
            for sub in set.subscriptions_of(at) {
                for copy in copies_for(&set.guards[sub].record.rules, &arrival.message.routing) {
                    let name = set.guards[sub].record.name.clone();
                    if let Err(e) = Self::check_send(&set.guards[sub], &name, std::slice::from_ref(arrival.message)) {
                        // A full or session-less subscription does not stop the others.
                        tracing::warn!(subscription = %name, error = %e, "a subscription could not take a message");
                        continue;
                    }
                    let mut overrides = arrival.overrides.clone();
                    overrides.extend(copy);
                    self.deliver(set, sub, Arrival { overrides, ..arrival_ref(&arrival) }, now, ops, touched);
                }
            }
            return;
        }
        if let Some(target) = forward_to {
            let next = if arrival.hops >= MAX_FORWARD_HOPS {
                Err((REASON_HOPS, "The maximum number of allowed hops when forwarding between queues has been exceeded. This value is set to 4.".to_string()))
            } else {
                match set.index(&target) {
                    None => Err((REASON_FORWARD_FAILED, format!("The forwarding destination '{target}' does not exist."))),
                    Some(t) => match Self::check_send(&set.guards[t], &target, std::slice::from_ref(arrival.message)) {
                        Err(BrokerError::InvalidOperation(_)) => Err((REASON_NO_SESSION, "A session-enabled destination cannot take a message without a session id.".into())),
                        Err(e) => Err((REASON_FORWARD_FAILED, e.to_string())),
                        Ok(()) => Ok(t),
                    },
                }
            };
            match next {
                Ok(t) => self.deliver(set, t, Arrival { hops: arrival.hops + 1, ..arrival }, now, ops, touched),
                Err((reason, description)) => {
                    let dead = DeadLetter { reason: Some(reason.into()), description: Some(description) };
                    self.store_arrival(&mut set.guards[at], arrival, Some(dead), now, ops);
                    touched[at] = true;
                }
            }
            return;
        }
        self.store_arrival(&mut set.guards[at], arrival, None, now, ops);
        touched[at] = true;
    }

    /// Stores one arrival in `e`: under the sender's sequence number when `e` is where
    /// it was sent, else under a number of `e`'s own.
    fn store_arrival(&self, e: &mut EntityState, arrival: Arrival<'_>, dead: Option<DeadLetter>, now: Millis, ops: &mut Vec<Op>) {
        let at_origin = arrival.origin.0 == e.record.id;
        let seq = if at_origin { arrival.origin.1 } else { e.take_seq() };
        let origin = (!at_origin).then_some(arrival.origin);
        self.enqueue(e, seq, arrival.message.clone(), arrival.overrides, origin, dead, now, ops);
    }

    /// Refuses a send that breaks the entity's limits: message size, entity size,
    /// session ids on session entities.
    pub(super) fn check_send(e: &EntityState, entity: &str, messages: &[OutgoingMessage]) -> BrokerResult<()> {
        let config = &e.record.config;
        let total: u64 = messages.iter().map(|m| m.body.len() as u64).sum();
        for m in messages {
            if m.body.len() as u64 > config.max_message_bytes {
                return Err(BrokerError::MessageSizeExceeded { size: m.body.len() as u64, limit: config.max_message_bytes });
            }
            if config.requires_session && m.session_id.is_none() {
                return Err(BrokerError::InvalidOperation(format!(
                    "The SessionId was not set on a message, and it cannot be sent to the entity '{entity}'. Entities that have session support enabled can only receive messages that have the SessionId set to a valid value."
                )));
            }
        }
        if e.size_bytes() + total > config.max_size_bytes {
            return Err(BrokerError::QuotaExceeded(entity.to_string()));
        }
        Ok(())
    }

    /// Duplicate detection: whether `m` is new within the window (and if so, remembers
    /// its id). Always true when detection is off or the message has no id.
    pub(super) fn admit(e: &mut EntityState, m: &OutgoingMessage, now: Millis, ops: &mut Vec<Op>) -> bool {
        let (Some(window), Some(message_id)) = (e.record.config.duplicate_detection_window_ms, &m.message_id) else {
            return true;
        };
        match e.seen_at(message_id) {
            Some(seen) if seen + window > now => false,
            _ => {
                e.remember_id(message_id, now);
                ops.push(Op::Put { key: codec::dedup_key(e.record.id, message_id), value: now.to_le_bytes().to_vec() });
                true
            }
        }
    }

    /// Stores one copy of `m` in `e` under sequence number `seq`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn enqueue(
        &self,
        e: &mut EntityState,
        seq: i64,
        m: OutgoingMessage,
        overrides: BTreeMap<String, PropertyValue>,
        origin: Option<(u64, i64)>,
        dead: Option<DeadLetter>,
        now: Millis,
        ops: &mut Vec<Op>,
    ) {
        let ttl = match (m.ttl_ms, e.record.config.default_ttl_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let scheduled = m.scheduled_enqueue_at.filter(|&at| at > now && dead.is_none());
        let enqueued_at = scheduled.unwrap_or(now);
        let meta = MessageMeta {
            seq,
            enqueued_at,
            expires_at: ttl.map(|t| enqueued_at.saturating_add(t)),
            delivery_count: 0,
            state: if scheduled.is_some() { MessageState::Scheduled } else { MessageState::Active },
            scheduled_at: scheduled,
            message_id: m.message_id,
            session_id: m.session_id,
            sub_queue: if dead.is_some() { SubQueue::DeadLetter } else { SubQueue::Main },
            dead_letter: dead,
            overrides,
            origin,
        };
        let id = e.record.id;
        ops.push(Op::Put { key: codec::body_key(id, seq), value: m.body.clone() });
        ops.push(Op::Put { key: codec::meta_key(id, seq), value: codec::to_json(&meta) });
        let body = hold_body(&self.inline_budget, self.keeps_values(), m.body);
        e.put(StoredMessage { meta, body, lock: None });
    }

    /// Removes scheduled messages by the sequence numbers their sender was given
    /// (for a topic: every copy its subscriptions hold).
    pub async fn cancel_scheduled(&self, entity: &str, seqs: &[i64]) -> BrokerResult<()> {
        let mut reach = BTreeMap::new();
        self.reach(entity, &mut reach)?;
        let commit = {
            let mut set = LockSet::lock(&reach);
            let entry = set.index(entity).ok_or_else(|| BrokerError::EntityNotFound(entity.to_string()))?;
            let origin_id = set.guards[entry].record.id;
            let mut doomed: Vec<(usize, i64)> = Vec::new();
            for &seq in seqs {
                let before = doomed.len();
                for (i, e) in set.guards.iter().enumerate() {
                    let own = i == entry && e.get(seq).is_some_and(|m| m.meta.state == MessageState::Scheduled && m.meta.origin.is_none());
                    if own {
                        doomed.push((i, seq));
                    }
                    doomed.extend(e.scheduled_from((origin_id, seq)).into_iter().map(|s| (i, s)));
                }
                if doomed.len() == before {
                    return Err(BrokerError::MessageNotFound(seq));
                }
            }
            let mut ops = Vec::new();
            for (i, seq) in doomed {
                ops.extend(self.remove_messages(&mut set.guards[i], &[seq]));
            }
            self.store.commit(&ops)?
        };
        Ok(commit.durable().await?)
    }
}

/// A copy of an arrival's identity fields, for fan-out (each copy gets its own
/// overrides).
fn arrival_ref<'m>(a: &Arrival<'m>) -> Arrival<'m> {
    Arrival { message: a.message, overrides: BTreeMap::new(), origin: a.origin, hops: a.hops }
}
