//! Receiving: peek-lock and receive-and-delete from a sub-queue, deferred messages by
//! sequence number, and peek (browse without locking). Bodies beyond the inline budget
//! are read back from the store here.

use lapis_store::Op;
use uuid::Uuid;

use super::codec;
use super::entity::{EntityState, Lock, StoredMessage};
use super::error::{BrokerError, BrokerResult};
use super::model::*;
use super::service::Broker;
use crate::body::{release_body, Body};
use crate::clock::Millis;

impl Broker {
    /// Takes up to `max` messages from `sub` of `entity`.
    pub async fn receive(&self, entity: &str, sub: SubQueue, mode: ReceiveMode, max: usize) -> BrokerResult<Vec<Delivery>> {
        assert!(max > 0, "receive asks for at least one message");
        let e = self.entity(entity)?;
        let now = self.clock.now_ms();
        let (taken, commit, id, forward) = {
            let mut e = e.lock();
            if e.record.config.requires_session && sub == SubQueue::Main {
                return Err(BrokerError::InvalidOperation(format!(
                    "It is not possible for an entity that requires sessions to create a non-sessionful message receiver: '{entity}'."
                )));
            }
            let (mut ops, forward) = self.tidy(&mut e, now);
            let seqs = e.available(sub, max);
            let lock_until = now + e.record.config.lock_duration_ms;
            let taken = self.take(&mut e, &seqs, mode, lock_until, &mut ops);
            (taken, self.store.commit(&ops)?, e.record.id, forward)
        };
        commit.durable().await?;
        if forward {
            self.forward_dead_letters(entity).await?;
        }
        self.deliveries(id, taken).await
    }

    /// Takes deferred messages by sequence number.
    pub async fn receive_deferred(&self, entity: &str, sub: SubQueue, mode: ReceiveMode, seqs: &[i64]) -> BrokerResult<Vec<Delivery>> {
        let e = self.entity(entity)?;
        let now = self.clock.now_ms();
        let (taken, commit, id) = {
            let mut e = e.lock();
            for &seq in seqs {
                match e.get(seq) {
                    Some(m) if m.meta.state == MessageState::Deferred && m.meta.sub_queue == sub && m.lock.is_none() => {}
                    _ => return Err(BrokerError::MessageNotFound(seq)),
                }
            }
            let mut ops = Vec::new();
            let lock_until = now + e.record.config.lock_duration_ms;
            let taken = self.take(&mut e, seqs, mode, lock_until, &mut ops);
            (taken, self.store.commit(&ops)?, e.record.id)
        };
        commit.durable().await?;
        self.deliveries(id, taken).await
    }

    /// Locks (peek-lock) or removes (receive-and-delete) the given messages.
    pub(super) fn take(&self, e: &mut EntityState, seqs: &[i64], mode: ReceiveMode, lock_until: Millis, ops: &mut Vec<Op>) -> Vec<StoredMessage> {
        let mut taken = Vec::with_capacity(seqs.len());
        match mode {
            ReceiveMode::ReceiveAndDelete => {
                let id = e.record.id;
                for &seq in seqs {
                    if let Some(m) = e.remove(seq) {
                        ops.push(Op::Delete { key: codec::body_key(id, seq) });
                        ops.push(Op::Delete { key: codec::meta_key(id, seq) });
                        release_body(&self.inline_budget, self.keeps_values(), &m.body);
                        taken.push(m);
                    }
                }
            }
            ReceiveMode::PeekLock => {
                for &seq in seqs {
                    if let Some(mut m) = e.remove(seq) {
                        m.lock = Some(Lock { token: Uuid::new_v4(), until: lock_until });
                        e.put(m.clone());
                        taken.push(m);
                    }
                }
            }
        }
        taken
    }

    /// Reads back bodies that are only in the store and builds the deliveries.
    pub(super) async fn deliveries(&self, entity_id: u64, taken: Vec<StoredMessage>) -> BrokerResult<Vec<Delivery>> {
        let mut out = Vec::with_capacity(taken.len());
        for m in taken {
            let Some(body) = self.body_of(entity_id, &m).await? else { continue };
            out.push(Delivery {
                body,
                sequence_number: m.meta.seq,
                enqueued_at: m.meta.enqueued_at,
                expires_at: m.meta.expires_at,
                delivery_count: m.meta.delivery_count,
                lock_token: m.lock.map(|l| l.token),
                locked_until: m.lock.map(|l| l.until),
                state: m.meta.state,
                message_id: m.meta.message_id,
                session_id: m.meta.session_id,
                dead_letter: m.meta.dead_letter,
                property_overrides: m.meta.overrides,
            });
        }
        Ok(out)
    }

    /// The body of a stored message, from memory or the store.
    pub(super) async fn body_of(&self, entity_id: u64, m: &StoredMessage) -> BrokerResult<Option<Vec<u8>>> {
        Ok(match &m.body {
            Body::Inline(b) => Some(b.to_vec()),
            Body::Stored { .. } => self.store.read(&codec::body_key(entity_id, m.meta.seq)).await?,
        })
    }

    /// Browses messages from sequence number `from` without locking them.
    pub async fn peek(&self, entity: &str, sub: SubQueue, from: i64, max: usize) -> BrokerResult<Vec<Delivery>> {
        self.peek_in(entity, sub, None, from, max).await
    }

    /// [`Broker::peek`], limited to one session's messages when `session` is given.
    pub async fn peek_in(&self, entity: &str, sub: SubQueue, session: Option<&str>, from: i64, max: usize) -> BrokerResult<Vec<Delivery>> {
        let e = self.entity(entity)?;
        let (seen, id) = {
            let e = e.lock();
            let seqs = match session {
                Some(s) => e.browse_session(s, from, max),
                None => e.browse(sub, from, max),
            };
            let seen: Vec<StoredMessage> = seqs
                .iter()
                .filter_map(|s| e.get(*s).cloned())
                .map(|mut m| {
                    m.lock = None;
                    m
                })
                .collect();
            (seen, e.record.id)
        };
        self.deliveries(id, seen).await
    }
}
