//! The Service Bus broker for queues: entities, sending (duplicate detection, TTL,
//! scheduling, size limits), peek-lock and receive-and-delete, settlement, lock
//! renewal and expiry, deferral, peek, and the dead-letter sub-queue.
//!
//! As in the Storage Queue service, each change is committed to the store under the
//! entity's lock and acknowledged once durable.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use lapis_store::{Commit, Op, Store};
use parking_lot::{Mutex, RwLock};
use uuid::Uuid;

use super::codec::{self, EntityKind, EntityRecord, MessageMeta};
use super::entity::{EntityState, Lock, StoredMessage};
use super::error::{BrokerError, BrokerResult};
use super::model::*;
use super::recovery::BrokerRecovery;
use crate::body::{hold_body, release_body, Body};
use crate::clock::{Clock, Millis};

pub(super) type EntityRef = Arc<Mutex<EntityState>>;

/// The suffix that addresses an entity's dead-letter sub-queue.
pub const DEAD_LETTER_SUFFIX: &str = "/$DeadLetterQueue";

/// Splits `queue1/$DeadLetterQueue` into the entity name and its sub-queue.
pub fn parse_address(address: &str) -> (&str, SubQueue) {
    match address.len().checked_sub(DEAD_LETTER_SUFFIX.len()) {
        Some(cut) if address.is_char_boundary(cut) && address[cut..].eq_ignore_ascii_case(DEAD_LETTER_SUFFIX) => {
            (&address[..cut], SubQueue::DeadLetter)
        }
        _ => (address, SubQueue::Main),
    }
}

fn check_entity_name(name: &str) -> BrokerResult<()> {
    let ok = (1..=260).contains(&name.len())
        && !name.starts_with('/')
        && !name.ends_with('/')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
    if ok {
        Ok(())
    } else {
        Err(BrokerError::InvalidEntityName(name.to_string()))
    }
}

pub struct Broker {
    pub(super) store: Arc<dyn Store>,
    pub(super) clock: Arc<dyn Clock>,
    /// By lowercase name: entity names are case-insensitive.
    pub(super) entities: RwLock<BTreeMap<String, EntityRef>>,
    pub(super) next_entity_id: AtomicU64,
    inline_budget: AtomicI64,
    /// Woken whenever messages may have become available (sent, abandoned, unlocked).
    pub(super) activity: tokio::sync::Notify,
}

impl Broker {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Broker {
        let recovery = BrokerRecovery::new(store.keeps_values_on_disk());
        Self::recover(store, clock, recovery)
    }

    pub fn recover(store: Arc<dyn Store>, clock: Arc<dyn Clock>, recovery: BrokerRecovery) -> Broker {
        let rebuilt = recovery.finish();
        let entities = rebuilt.entities.into_iter().map(|e| (e.record.name.to_ascii_lowercase(), Arc::new(Mutex::new(e))));
        Broker {
            store,
            clock,
            entities: RwLock::new(entities.collect()),
            next_entity_id: AtomicU64::new(rebuilt.next_entity_id),
            inline_budget: AtomicI64::new(rebuilt.inline_budget_left),
            activity: tokio::sync::Notify::new(),
        }
    }

    /// Resolves when messages may have become available somewhere; receivers waiting
    /// for messages check again then (and on a timer, for lock expiry and schedules).
    pub fn activity(&self) -> tokio::sync::futures::Notified<'_> {
        self.activity.notified()
    }

    fn keeps_values(&self) -> bool {
        self.store.keeps_values_on_disk()
    }

    pub(super) fn entity(&self, name: &str) -> BrokerResult<EntityRef> {
        self.entities.read().get(&name.to_ascii_lowercase()).cloned().ok_or_else(|| BrokerError::EntityNotFound(name.to_string()))
    }

    // ---- entities -----------------------------------------------------------------

    pub async fn create_queue(&self, name: &str, config: QueueConfig) -> BrokerResult<()> {
        self.create_entity(name, config, EntityKind::Queue, Vec::new()).await
    }

    pub(super) async fn create_entity(&self, name: &str, config: QueueConfig, kind: EntityKind, rules: Vec<Rule>) -> BrokerResult<()> {
        check_entity_name(name)?;
        let commit = {
            let mut entities = self.entities.write();
            let key = name.to_ascii_lowercase();
            if entities.contains_key(&key) {
                return Err(BrokerError::EntityAlreadyExists(name.to_string()));
            }
            let record = EntityRecord {
                id: self.next_entity_id.fetch_add(1, Ordering::SeqCst),
                name: name.to_string(),
                config,
                kind,
                rules,
            };
            let commit = self.store.commit(&[Op::Put { key: codec::entity_key(&key), value: codec::to_json(&record) }])?;
            entities.insert(key, Arc::new(Mutex::new(EntityState::new(record))));
            commit
        };
        Ok(commit.durable().await?)
    }

    pub async fn update_queue(&self, name: &str, config: QueueConfig) -> BrokerResult<()> {
        self.update_config(name, config).await
    }

    /// Changes the properties of any entity (queue, topic or subscription path).
    pub async fn update_config(&self, name: &str, config: QueueConfig) -> BrokerResult<()> {
        let e = self.entity(name)?;
        let commit = {
            let mut e = e.lock();
            let mut record = e.record.clone();
            record.config = config;
            let key = codec::entity_key(&record.name.to_ascii_lowercase());
            let commit = self.store.commit(&[Op::Put { key, value: codec::to_json(&record) }])?;
            e.record = record;
            commit
        };
        Ok(commit.durable().await?)
    }

    pub async fn delete_queue(&self, name: &str) -> BrokerResult<()> {
        self.delete_entity(name).await
    }

    /// Deletes an entity with its messages, duplicate-detection history and session
    /// state.
    pub(super) async fn delete_entity(&self, name: &str) -> BrokerResult<()> {
        let commit = {
            let mut entities = self.entities.write();
            let key = name.to_ascii_lowercase();
            let e = entities.get(&key).cloned().ok_or_else(|| BrokerError::EntityNotFound(name.to_string()))?;
            let mut e = e.lock();
            let id = e.record.id;
            let ops = [
                Op::Delete { key: codec::entity_key(&key) },
                Op::DeletePrefix { prefix: codec::messages_prefix(id) },
                Op::DeletePrefix { prefix: codec::dedup_prefix(id) },
                Op::DeletePrefix { prefix: codec::session_state_prefix(id) },
                Op::Delete { key: codec::next_seq_key(id) },
            ];
            let commit = self.store.commit(&ops)?;
            for m in e.clear() {
                release_body(&self.inline_budget, self.keeps_values(), &m.body);
            }
            entities.remove(&key);
            commit
        };
        Ok(commit.durable().await?)
    }

    /// The properties of any entity (queue, topic or subscription path).
    pub fn queue_config(&self, name: &str) -> BrokerResult<QueueConfig> {
        Ok(self.entity(name)?.lock().record.config.clone())
    }

    /// Every queue with its configuration and (active + dead-lettered) message counts.
    pub fn list_queues(&self) -> Vec<(String, QueueConfig, usize, usize)> {
        self.list_entities(|kind| *kind == EntityKind::Queue)
    }

    pub(super) fn list_entities(&self, which: impl Fn(&EntityKind) -> bool) -> Vec<(String, QueueConfig, usize, usize)> {
        self.entities
            .read()
            .values()
            .filter_map(|e| {
                let e = e.lock();
                which(&e.record.kind).then(|| {
                    (e.record.name.clone(), e.record.config.clone(), e.count(SubQueue::Main), e.count(SubQueue::DeadLetter))
                })
            })
            .collect()
    }

    // ---- sending ------------------------------------------------------------------

    /// Enqueues `messages` atomically and returns their sequence numbers; a duplicate
    /// within the detection window is accepted without being enqueued (`None`). A
    /// topic hands a copy to every subscription whose rules match.
    pub async fn send(&self, entity: &str, messages: Vec<OutgoingMessage>) -> BrokerResult<Vec<Option<i64>>> {
        let e = self.entity(entity)?;
        let kind = e.lock().record.kind.clone();
        match kind {
            EntityKind::Topic => return self.send_to_topic(entity, e, messages).await,
            EntityKind::Subscription { .. } => {
                return Err(BrokerError::InvalidOperation(format!("Cannot send to the subscription '{entity}': send to its topic.")));
            }
            EntityKind::Queue => {}
        }
        let now = self.clock.now_ms();
        let (commit, seqs) = {
            let mut e = e.lock();
            Self::check_send(&e, entity, &messages)?;
            let mut ops = Vec::with_capacity(messages.len() * 3);
            let mut seqs = Vec::with_capacity(messages.len());
            for m in messages {
                if !Self::admit(&mut e, &m, now, &mut ops) {
                    seqs.push(None);
                    continue;
                }
                let seq = e.take_seq();
                self.enqueue(&mut e, seq, m, BTreeMap::new(), now, &mut ops);
                seqs.push(Some(seq));
            }
            if seqs.iter().any(Option::is_some) {
                ops.push(e.next_seq_op());
            }
            (self.store.commit(&ops)?, seqs)
        };
        commit.durable().await?;
        self.activity.notify_waiters();
        Ok(seqs)
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
        match e.seen_ids.get(message_id) {
            Some(&seen) if seen + window > now => false,
            _ => {
                e.seen_ids.insert(message_id.clone(), now);
                ops.push(Op::Put { key: codec::dedup_key(e.record.id, message_id), value: now.to_le_bytes().to_vec() });
                true
            }
        }
    }

    /// Stores one copy of `m` in `e` under sequence number `seq`, with the property
    /// changes a rule action made.
    pub(super) fn enqueue(&self, e: &mut EntityState, seq: i64, m: OutgoingMessage, overrides: BTreeMap<String, PropertyValue>, now: Millis, ops: &mut Vec<Op>) {
        let ttl = match (m.ttl_ms, e.record.config.default_ttl_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let scheduled = m.scheduled_enqueue_at.filter(|&at| at > now);
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
            sub_queue: SubQueue::Main,
            dead_letter: None,
            overrides,
        };
        let id = e.record.id;
        ops.push(Op::Put { key: codec::body_key(id, seq), value: m.body.clone() });
        ops.push(Op::Put { key: codec::meta_key(id, seq), value: codec::to_json(&meta) });
        let body = hold_body(&self.inline_budget, self.keeps_values(), m.body);
        e.put(StoredMessage { meta, body, lock: None });
    }

    /// Removes scheduled messages by sequence number.
    pub async fn cancel_scheduled(&self, entity: &str, seqs: &[i64]) -> BrokerResult<()> {
        let e = self.entity(entity)?;
        let commit = {
            let mut e = e.lock();
            for &seq in seqs {
                match e.get(seq) {
                    Some(m) if m.meta.state == MessageState::Scheduled => {}
                    _ => return Err(BrokerError::MessageNotFound(seq)),
                }
            }
            let ops = self.remove_messages(&mut e, seqs);
            self.store.commit(&ops)?
        };
        Ok(commit.durable().await?)
    }

    // ---- receiving ----------------------------------------------------------------

    /// Takes up to `max` messages from `sub` of `entity`.
    pub async fn receive(&self, entity: &str, sub: SubQueue, mode: ReceiveMode, max: usize) -> BrokerResult<Vec<Delivery>> {
        assert!(max > 0, "receive asks for at least one message");
        let e = self.entity(entity)?;
        let now = self.clock.now_ms();
        let (taken, commit, id) = {
            let mut e = e.lock();
            if e.record.config.requires_session && sub == SubQueue::Main {
                return Err(BrokerError::InvalidOperation(format!(
                    "It is not possible for an entity that requires sessions to create a non-sessionful message receiver: '{entity}'."
                )));
            }
            let mut ops = self.tidy(&mut e, now);
            let seqs = e.available(sub, max);
            let lock_until = now + e.record.config.lock_duration_ms;
            let taken = self.take(&mut e, &seqs, mode, lock_until, &mut ops);
            (taken, self.store.commit(&ops)?, e.record.id)
        };
        commit.durable().await?;
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
            let body = match &m.body {
                Body::Inline(b) => b.to_vec(),
                Body::Stored { .. } => match self.store.read(&codec::body_key(entity_id, m.meta.seq)).await? {
                    Some(b) => b,
                    None => continue,
                },
            };
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

    /// Browses messages from sequence number `from` without locking them.
    pub async fn peek(&self, entity: &str, sub: SubQueue, from: i64, max: usize) -> BrokerResult<Vec<Delivery>> {
        let e = self.entity(entity)?;
        let (seen, id) = {
            let e = e.lock();
            let seqs = e.browse(sub, from, max);
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

    // ---- settling -----------------------------------------------------------------

    /// Settles the message locked by `token`.
    pub async fn settle(&self, entity: &str, sub: SubQueue, token: Uuid, settlement: Settlement) -> BrokerResult<()> {
        let e = self.entity(entity)?;
        let now = self.clock.now_ms();
        let commit = {
            let mut e = e.lock();
            // In a session the session lock governs: once it lapses, that is what the
            // receiver is told, whatever the message lock says.
            let session = e.seq_of_lock(&token).and_then(|seq| e.get(seq)).and_then(|m| m.meta.session_id.clone());
            if let (true, Some(session)) = (e.record.config.requires_session, session) {
                if e.session_locks.get(&session).is_none_or(|l| l.until <= now) {
                    return Err(BrokerError::SessionLockLost);
                }
            }
            let seq = self.locked(&e, sub, &token, now)?;
            let mut m = e.remove(seq).expect("a locked sequence number is present");
            m.lock = None;
            let ops = match settlement {
                Settlement::Complete => {
                    release_body(&self.inline_budget, self.keeps_values(), &m.body);
                    let id = e.record.id;
                    vec![Op::Delete { key: codec::body_key(id, seq) }, Op::Delete { key: codec::meta_key(id, seq) }]
                }
                Settlement::Abandon { properties } => {
                    m.meta.overrides.extend(properties);
                    self.count_failed_delivery(&mut e, m)
                }
                Settlement::DeadLetter { reason, description, properties } => {
                    m.meta.overrides.extend(properties);
                    Self::dead_letter(&mut m, reason, description);
                    self.persist(&mut e, m)
                }
                Settlement::Release => {
                    e.put(m);
                    Vec::new()
                }
                Settlement::Defer { properties } => {
                    m.meta.overrides.extend(properties);
                    m.meta.state = MessageState::Deferred;
                    self.persist(&mut e, m)
                }
            };
            self.store.commit(&ops)?
        };
        commit.durable().await?;
        self.activity.notify_waiters();
        Ok(())
    }

    /// Extends the locks held by `tokens`; returns the new expiry of each.
    pub fn renew_locks(&self, entity: &str, sub: SubQueue, tokens: &[Uuid]) -> BrokerResult<Vec<Millis>> {
        let e = self.entity(entity)?;
        let now = self.clock.now_ms();
        let mut e = e.lock();
        let lock_ms = e.record.config.lock_duration_ms;
        let seqs = tokens.iter().map(|t| self.locked(&e, sub, t, now)).collect::<BrokerResult<Vec<_>>>()?;
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

    fn dead_letter(m: &mut StoredMessage, reason: Option<String>, description: Option<String>) {
        m.meta.sub_queue = SubQueue::DeadLetter;
        m.meta.state = MessageState::Active;
        m.meta.dead_letter = Some(DeadLetter { reason, description });
    }

    /// A delivery failed (abandon or lock expiry): count it, and dead-letter the
    /// message once it reaches the entity's maximum delivery count.
    fn count_failed_delivery(&self, e: &mut EntityState, mut m: StoredMessage) -> Vec<Op> {
        m.meta.delivery_count += 1;
        if m.meta.sub_queue == SubQueue::Main && m.meta.delivery_count >= e.record.config.max_delivery_count {
            let description = format!("Message could not be consumed after {} delivery attempts.", m.meta.delivery_count);
            Self::dead_letter(&mut m, Some(REASON_MAX_DELIVERY.into()), Some(description));
        }
        self.persist(e, m)
    }

    fn persist(&self, e: &mut EntityState, m: StoredMessage) -> Vec<Op> {
        let op = Op::Put { key: codec::meta_key(e.record.id, m.meta.seq), value: codec::to_json(&m.meta) };
        e.put(m);
        vec![op]
    }

    fn remove_messages(&self, e: &mut EntityState, seqs: &[i64]) -> Vec<Op> {
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

    /// Brings an entity up to `now`: due scheduled messages become active, expired
    /// locks are counted as failed deliveries, expired messages are dead-lettered or
    /// dropped, and duplicate-detection entries past the window are forgotten.
    pub(super) fn tidy(&self, e: &mut EntityState, now: Millis) -> Vec<Op> {
        e.promote_due(now);
        for session in e.expired_session_locks(now) {
            e.session_locks.remove(&session);
        }
        let mut ops = Vec::new();
        for seq in e.expired_locks(now) {
            let mut m = e.remove(seq).expect("a locked sequence number is present");
            m.lock = None;
            ops.extend(self.count_failed_delivery(e, m));
        }
        let expired = e.expired(now);
        if e.record.config.dead_letter_on_expiration {
            for seq in expired {
                let mut m = e.remove(seq).expect("an expired sequence number is present");
                Self::dead_letter(&mut m, Some(REASON_TTL.into()), Some("The message expired and was dead lettered.".into()));
                ops.extend(self.persist(e, m));
            }
        } else {
            ops.extend(self.remove_messages(e, &expired));
        }
        if let Some(window) = e.record.config.duplicate_detection_window_ms {
            let id = e.record.id;
            let stale: Vec<String> = e.seen_ids.iter().filter(|(_, &at)| at + window <= now).map(|(k, _)| k.clone()).collect();
            for message_id in stale {
                e.seen_ids.remove(&message_id);
                ops.push(Op::Delete { key: codec::dedup_key(id, &message_id) });
            }
        }
        ops
    }

    /// Background upkeep for every entity (see `tidy`).
    pub async fn maintain(&self) -> BrokerResult<()> {
        let now = self.clock.now_ms();
        let entities: Vec<EntityRef> = self.entities.read().values().cloned().collect();
        let mut commits: Vec<Commit> = Vec::new();
        for e in entities {
            let mut e = e.lock();
            let ops = self.tidy(&mut e, now);
            if !ops.is_empty() {
                commits.push(self.store.commit(&ops)?);
            }
        }
        for c in commits {
            c.durable().await?;
        }
        Ok(())
    }
}
