//! Settling locked messages — complete, abandon, dead-letter, defer, release — and
//! renewing their locks. A failed delivery (abandon, lock expiry) counts towards the
//! entity's maximum delivery count, past which the message is dead-lettered.

use lapis_store::Op;
use uuid::Uuid;

use super::codec;
use super::entity::{EntityState, Lock, StoredMessage};
use super::error::{BrokerError, BrokerResult};
use super::model::*;
use super::service::{Broker, Staged};
use crate::body::release_body;
use crate::clock::Millis;

impl Broker {
    /// Settles the message locked by `token`.
    pub async fn settle(&self, entity: &str, sub: SubQueue, token: Uuid, settlement: Settlement) -> BrokerResult<()> {
        let staged = self.stage_settle(entity, sub, token, settlement)?;
        self.finish(staged).await
    }

    /// [`Broker::settle`] without the wait for durability.
    pub fn stage_settle(&self, entity: &str, sub: SubQueue, token: Uuid, settlement: Settlement) -> BrokerResult<Staged<()>> {
        let e = self.entity(entity)?;
        let now = self.clock.now_ms();
        // Anything but a completion or a deferral gives a message back to receivers.
        let gives_back = !matches!(settlement, Settlement::Complete | Settlement::Defer { .. });
        let (commit, dead_lettered) = {
            let mut e = e.lock();
            let (ops, dead_lettered) = self.settle_locked(&mut e, sub, token, settlement, now)?;
            (self.store.commit(&ops)?, dead_lettered && e.record.config.forward_dead_lettered_to.is_some())
        };
        if gives_back {
            self.wake(&entity.to_ascii_lowercase());
        }
        let mut staged = Staged::new(commit, ());
        if dead_lettered {
            staged.forward_dead_letters_of.push(entity.to_string());
        }
        Ok(staged)
    }

    /// Whether `token` holds a lock on a message of `sub` at `now` (and, in a session,
    /// whether the session lock still holds).
    pub(super) fn check_lock(&self, e: &EntityState, sub: SubQueue, token: &Uuid, now: Millis) -> BrokerResult<i64> {
        // In a session the session lock governs: once it lapses, that is what the
        // receiver is told, whatever the message lock says.
        let session = e.seq_of_lock(token).and_then(|seq| e.get(seq)).and_then(|m| m.meta.session_id.clone());
        if let (true, Some(session)) = (e.record.config.requires_session, session) {
            if e.session_locks.get(&session).is_none_or(|l| l.until <= now) {
                return Err(BrokerError::SessionLockLost);
            }
        }
        self.locked(e, sub, token, now)
    }

    /// Applies a settlement in `e` (locked by the caller); returns the store ops and
    /// whether the message was dead-lettered.
    pub(super) fn settle_locked(&self, e: &mut EntityState, sub: SubQueue, token: Uuid, settlement: Settlement, now: Millis) -> BrokerResult<(Vec<Op>, bool)> {
        let seq = self.check_lock(e, sub, &token, now)?;
        let mut m = e.remove(seq).expect("a locked sequence number is present");
        m.lock = None;
        let mut dead_lettered = false;
        let ops = match settlement {
            Settlement::Complete => {
                release_body(&self.inline_budget, self.keeps_values(), &m.body);
                let id = e.record.id;
                vec![Op::Delete { key: codec::body_key(id, seq) }, Op::Delete { key: codec::meta_key(id, seq) }]
            }
            Settlement::Abandon { properties } => {
                m.meta.overrides.extend(properties);
                let (ops, dead) = self.count_failed_delivery(e, m);
                dead_lettered = dead;
                ops
            }
            Settlement::DeadLetter { reason, description, properties } => {
                if m.meta.sub_queue == SubQueue::DeadLetter {
                    e.put(m);
                    return Err(BrokerError::InvalidOperation("A message in a dead-letter queue cannot be dead-lettered again.".into()));
                }
                m.meta.overrides.extend(properties);
                Self::dead_letter(&mut m, reason, description);
                dead_lettered = true;
                self.persist(e, m)
            }
            Settlement::Release => {
                e.put(m);
                Vec::new()
            }
            Settlement::Defer { properties } => {
                m.meta.overrides.extend(properties);
                m.meta.state = MessageState::Deferred;
                self.persist(e, m)
            }
        };
        Ok((ops, dead_lettered))
    }

    /// Extends the locks held by `tokens`; returns the new expiry of each.
    pub fn renew_locks(&self, entity: &str, sub: SubQueue, tokens: &[Uuid]) -> BrokerResult<Vec<Millis>> {
        let e = self.entity(entity)?;
        let now = self.clock.now_ms();
        let mut e = e.lock();
        let lock_ms = e.record.config.lock_duration_ms;
        let seqs = tokens.iter().map(|t| self.check_lock(&e, sub, t, now)).collect::<BrokerResult<Vec<_>>>()?;
        let mut until = Vec::with_capacity(seqs.len());
        for (seq, token) in seqs.into_iter().zip(tokens) {
            let mut m = e.remove(seq).expect("a locked sequence number is present");
            m.lock = Some(Lock { token: *token, until: now + lock_ms });
            until.push(now + lock_ms);
            e.put(m);
        }
        Ok(until)
    }

    fn locked(&self, e: &EntityState, sub: SubQueue, token: &Uuid, now: Millis) -> BrokerResult<i64> {
        let seq = e.seq_of_lock(token).ok_or(BrokerError::MessageLockLost)?;
        match e.get(seq) {
            Some(m) if m.meta.sub_queue == sub && m.lock.is_some_and(|l| l.until > now) => Ok(seq),
            _ => Err(BrokerError::MessageLockLost),
        }
    }

    pub(super) fn dead_letter(m: &mut StoredMessage, reason: Option<String>, description: Option<String>) {
        m.meta.sub_queue = SubQueue::DeadLetter;
        m.meta.state = MessageState::Active;
        m.meta.dead_letter = Some(DeadLetter { reason, description });
    }

    /// A delivery failed (abandon or lock expiry): count it, and dead-letter the
    /// message once it reaches the entity's maximum delivery count. Returns the ops
    /// and whether it was dead-lettered.
    pub(super) fn count_failed_delivery(&self, e: &mut EntityState, mut m: StoredMessage) -> (Vec<Op>, bool) {
        m.meta.delivery_count += 1;
        let dead = m.meta.sub_queue == SubQueue::Main && m.meta.delivery_count >= e.record.config.max_delivery_count;
        if dead {
            let description = format!("Message could not be consumed after {} delivery attempts.", m.meta.delivery_count);
            Self::dead_letter(&mut m, Some(REASON_MAX_DELIVERY.into()), Some(description));
        }
        (self.persist(e, m), dead)
    }

    /// The lock on message `seq` is lost (it lapsed, or its session was let go):
    /// unlocks it and counts the failed delivery, as [`Self::count_failed_delivery`].
    pub(super) fn lose_lock(&self, e: &mut EntityState, seq: i64) -> (Vec<Op>, bool) {
        let mut m = e.remove(seq).expect("a locked sequence number is present");
        m.lock = None;
        self.count_failed_delivery(e, m)
    }

    pub(super) fn persist(&self, e: &mut EntityState, m: StoredMessage) -> Vec<Op> {
        let op = Op::Put { key: codec::meta_key(e.record.id, m.meta.seq), value: codec::to_json(&m.meta) };
        e.put(m);
        vec![op]
    }

    pub(super) fn remove_messages(&self, e: &mut EntityState, seqs: &[i64]) -> Vec<Op> {
        let id = e.record.id;
        let mut ops = Vec::with_capacity(seqs.len() * 2);
        for &seq in seqs {
            if let Some(m) = e.remove(seq) {
                release_body(&self.inline_budget, self.keeps_values(), &m.body);
                ops.push(Op::Delete { key: codec::body_key(id, seq) });
                ops.push(Op::Delete { key: codec::meta_key(id, seq) });
            }
        }
        ops
    }
}
