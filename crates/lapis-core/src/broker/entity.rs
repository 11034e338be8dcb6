//! One entity's messages in memory and the indexes the broker serves from: what is
//! available in each sub-queue (in sequence order), what is scheduled, and which lock
//! token holds which message. Callers hold the entity's lock while using it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

use super::codec::{EntityRecord, MessageMeta};
use super::model::{MessageState, SubQueue};
use crate::body::Body;
use crate::clock::Millis;

/// A peek-lock held by a receiver. Locks are not persisted: after a restart every
/// message is available again, as after a lock expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lock {
    pub token: Uuid,
    pub until: Millis,
}

#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub meta: MessageMeta,
    pub body: Body,
    pub lock: Option<Lock>,
}

fn sub_index(sub: SubQueue) -> usize {
    match sub {
        SubQueue::Main => 0,
        SubQueue::DeadLetter => 1,
    }
}

#[derive(Debug)]
pub struct EntityState {
    pub record: EntityRecord,
    messages: BTreeMap<i64, StoredMessage>,
    /// Active, unlocked messages per sub-queue, by sequence number.
    available: [BTreeSet<i64>; 2],
    /// Scheduled messages by (due, sequence).
    scheduled: BTreeSet<(Millis, i64)>,
    /// Main-queue messages with a time to live, by (expiry, sequence).
    expiring: BTreeSet<(Millis, i64)>,
    locks: HashMap<Uuid, i64>,
    /// Locked messages by (lock expiry, sequence).
    lock_expiry: BTreeSet<(Millis, i64)>,
    /// Available main-queue messages of each session, by sequence number.
    by_session: BTreeMap<String, BTreeSet<i64>>,
    /// Sessions held by a receiver.
    pub session_locks: HashMap<String, Lock>,
    /// Session state set by receivers (durable).
    pub session_states: BTreeMap<String, Vec<u8>>,
    /// When each session's state was last set, since the server started (not kept
    /// across restarts: a listing filtered by update time sees only what changed
    /// since).
    pub session_state_times: HashMap<String, Millis>,
    /// Message id → when first seen, for duplicate detection, and the same in time
    /// order, so that forgetting old ids costs only what is forgotten.
    seen_ids: HashMap<String, Millis>,
    seen_order: BTreeSet<(Millis, String)>,
    next_seq: i64,
    size_bytes: u64,
}

impl EntityState {
    pub fn new(record: EntityRecord) -> Self {
        EntityState {
            record,
            messages: BTreeMap::new(),
            available: [BTreeSet::new(), BTreeSet::new()],
            scheduled: BTreeSet::new(),
            expiring: BTreeSet::new(),
            locks: HashMap::new(),
            by_session: BTreeMap::new(),
            session_locks: HashMap::new(),
            session_states: BTreeMap::new(),
            session_state_times: HashMap::new(),
            seen_ids: HashMap::new(),
            seen_order: BTreeSet::new(),
            lock_expiry: BTreeSet::new(),
            next_seq: 1,
            size_bytes: 0,
        }
    }

    pub fn take_seq(&mut self) -> i64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    /// The store op that records the next sequence number (after assigning some).
    pub fn next_seq_op(&self) -> lapis_store::Op {
        lapis_store::Op::Put { key: super::codec::next_seq_key(self.record.id), value: self.next_seq.to_le_bytes().to_vec() }
    }

    /// Never assign a number below `next` (recovery).
    pub fn raise_next_seq(&mut self, next: i64) {
        self.next_seq = self.next_seq.max(next);
    }

    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    pub fn count(&self, sub: SubQueue) -> usize {
        self.messages.values().filter(|m| m.meta.sub_queue == sub).count()
    }

    /// Messages of `sub` that a receiver could take now.
    pub fn count_available(&self, sub: SubQueue) -> usize {
        self.available[sub_index(sub)].len()
    }

    /// Scheduled copies of the message its sender knows as `origin` (entity id,
    /// sequence number).
    pub fn scheduled_from(&self, origin: (u64, i64)) -> Vec<i64> {
        self.scheduled.iter().map(|(_, seq)| *seq).filter(|seq| self.messages[seq].meta.origin == Some(origin)).collect()
    }

    pub fn get(&self, seq: i64) -> Option<&StoredMessage> {
        self.messages.get(&seq)
    }

    pub fn seq_of_lock(&self, token: &Uuid) -> Option<i64> {
        self.locks.get(token).copied()
    }

    /// Inserts or replaces a message, keeping every index in step.
    pub fn put(&mut self, m: StoredMessage) {
        let seq = m.meta.seq;
        if let Some(old) = self.remove(seq) {
            drop(old);
        }
        self.next_seq = self.next_seq.max(seq + 1);
        self.size_bytes += m.body.len() as u64;
        if let (SubQueue::Main, Some(at)) = (m.meta.sub_queue, m.meta.expires_at) {
            self.expiring.insert((at, seq));
        }
        if let Some(lock) = m.lock {
            self.locks.insert(lock.token, seq);
            self.lock_expiry.insert((lock.until, seq));
        } else {
            match m.meta.state {
                MessageState::Active => {
                    self.available[sub_index(m.meta.sub_queue)].insert(seq);
                    if let (SubQueue::Main, Some(session)) = (m.meta.sub_queue, &m.meta.session_id) {
                        self.by_session.entry(session.clone()).or_default().insert(seq);
                    }
                }
                MessageState::Scheduled => {
                    self.scheduled.insert((m.meta.scheduled_at.unwrap_or(0), seq));
                }
                MessageState::Deferred => {}
            }
        }
        self.messages.insert(seq, m);
    }

    pub fn remove(&mut self, seq: i64) -> Option<StoredMessage> {
        let m = self.messages.remove(&seq)?;
        self.size_bytes -= m.body.len() as u64;
        self.available[sub_index(m.meta.sub_queue)].remove(&seq);
        if let Some(session) = &m.meta.session_id {
            if let Some(set) = self.by_session.get_mut(session) {
                set.remove(&seq);
                if set.is_empty() {
                    self.by_session.remove(session);
                }
            }
        }
        self.scheduled.remove(&(m.meta.scheduled_at.unwrap_or(0), seq));
        if let Some(at) = m.meta.expires_at {
            self.expiring.remove(&(at, seq));
        }
        if let Some(lock) = m.lock {
            self.locks.remove(&lock.token);
            self.lock_expiry.remove(&(lock.until, seq));
        }
        Some(m)
    }

    /// Removes every message, returning them.
    pub fn clear(&mut self) -> Vec<StoredMessage> {
        let seqs: Vec<i64> = self.messages.keys().copied().collect();
        seqs.into_iter().filter_map(|s| self.remove(s)).collect()
    }

    /// Turns scheduled messages that are due into active ones (in memory: a restart
    /// re-derives the same from the due time).
    pub fn promote_due(&mut self, now: Millis) {
        let due: Vec<(Millis, i64)> = self.scheduled.range(..=(now, i64::MAX)).copied().collect();
        for (_, seq) in due {
            if let Some(mut m) = self.remove(seq) {
                m.meta.state = MessageState::Active;
                self.put(m);
            }
        }
    }

    /// Up to `n` available messages of `sub`, in sequence order.
    pub fn available(&self, sub: SubQueue, n: usize) -> Vec<i64> {
        self.available[sub_index(sub)].iter().take(n).copied().collect()
    }

    /// Up to `n` available messages of `session`, in sequence order.
    pub fn available_in_session(&self, session: &str, n: usize) -> Vec<i64> {
        self.by_session.get(session).map(|set| set.iter().take(n).copied().collect()).unwrap_or_default()
    }

    /// The first session (by its oldest available message) that has messages and is
    /// not held by a receiver at `now`.
    pub fn next_free_session(&self, now: Millis) -> Option<String> {
        self.by_session
            .iter()
            .filter(|(id, _)| self.session_locks.get(*id).is_none_or(|l| l.until <= now))
            .min_by_key(|(_, seqs)| seqs.first().copied())
            .map(|(id, _)| id.clone())
    }

    /// Sessions that hold messages (in any state) or state.
    pub fn sessions(&self) -> Vec<String> {
        let mut ids: BTreeSet<String> = self.messages.values().filter_map(|m| m.meta.session_id.clone()).collect();
        ids.extend(self.session_states.keys().cloned());
        ids.into_iter().collect()
    }

    /// Messages locked under `session` (their locks follow the session's).
    pub fn locked_in_session(&self, session: &str) -> Vec<i64> {
        self.locks.values().filter(|seq| self.messages[*seq].meta.session_id.as_deref() == Some(session)).copied().collect()
    }

    /// Sessions whose lock has run out at `now`.
    pub fn expired_session_locks(&self, now: Millis) -> Vec<String> {
        self.session_locks.iter().filter(|(_, l)| l.until <= now).map(|(id, _)| id.clone()).collect()
    }

    /// Messages whose lock has run out at `now`.
    pub fn expired_locks(&self, now: Millis) -> Vec<i64> {
        self.lock_expiry.range(..=(now, i64::MAX)).map(|(_, seq)| *seq).collect()
    }

    /// When `message_id` was first seen (duplicate detection).
    pub fn seen_at(&self, message_id: &str) -> Option<Millis> {
        self.seen_ids.get(message_id).copied()
    }

    pub fn remember_id(&mut self, message_id: &str, at: Millis) {
        if let Some(old) = self.seen_ids.insert(message_id.to_string(), at) {
            self.seen_order.remove(&(old, message_id.to_string()));
        }
        self.seen_order.insert((at, message_id.to_string()));
    }

    /// Forgets ids first seen before `cutoff`, returning them.
    pub fn forget_ids_before(&mut self, cutoff: Millis) -> Vec<String> {
        let mut gone = Vec::new();
        while let Some(first) = self.seen_order.first() {
            if first.0 >= cutoff {
                break;
            }
            let (_, id) = self.seen_order.pop_first().expect("checked above");
            self.seen_ids.remove(&id);
            gone.push(id);
        }
        gone
    }

    /// Messages of any state from sequence number `from` on, for peek.
    pub fn browse(&self, sub: SubQueue, from: i64, n: usize) -> Vec<i64> {
        self.messages.range(from..).filter(|(_, m)| m.meta.sub_queue == sub).take(n).map(|(s, _)| *s).collect()
    }

    /// Messages of `session` in any state from sequence number `from` on, for peek.
    pub fn browse_session(&self, session: &str, from: i64, n: usize) -> Vec<i64> {
        self.messages
            .range(from..)
            .filter(|(_, m)| m.meta.sub_queue == SubQueue::Main && m.meta.session_id.as_deref() == Some(session))
            .take(n)
            .map(|(s, _)| *s)
            .collect()
    }

    /// Every message that has outlived its time to live at `now` and is not locked.
    pub fn expired(&self, now: Millis) -> Vec<i64> {
        self.expiring
            .range(..=(now, i64::MAX))
            .map(|(_, seq)| *seq)
            .filter(|seq| self.messages.get(seq).is_some_and(|m| m.lock.is_none() && m.meta.sub_queue == SubQueue::Main))
            .collect()
    }
}
