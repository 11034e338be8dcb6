//! The Service Bus broker: its entities (create, update, delete, look up), and the two
//! tools every operation is built from — [`LockSet`], which locks several entities in
//! one global order, and [`Staged`], a change applied in memory and placed in the log
//! that a caller acknowledges once it is durable.
//!
//! Sending lives in `send`, receiving in `receive`, settling in `settle`, upkeep in
//! `upkeep`, transactions in `transactions`, topics in `topics`, sessions in
//! `sessions`.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use lapis_store::{Commit, Op, Store};
use parking_lot::{Mutex, MutexGuard, RwLock};

use super::codec::{self, EntityKind, EntityRecord};
use super::entity::EntityState;
use super::error::{BrokerError, BrokerResult};
use super::model::*;
use super::recovery::BrokerRecovery;
use super::transactions::Transactions;
use crate::body::release_body;
use crate::clock::Clock;

pub(super) type EntityRef = Arc<Mutex<EntityState>>;

/// The suffix that addresses an entity's dead-letter sub-queue.
pub const DEAD_LETTER_SUFFIX: &str = "/$DeadLetterQueue";

/// A message passes through at most this many auto-forwarding hops (Azure's limit);
/// beyond that it is dead-lettered where it is.
pub const MAX_FORWARD_HOPS: u32 = 4;

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

/// Reads the routing properties (what rule filters see) out of a stored message body.
/// The core keeps bodies opaque; the protocol adapter that owns their format supplies
/// this, for messages that are routed again after they were stored (dead-letter
/// forwarding to a topic).
pub type RoutingReader = Arc<dyn Fn(&[u8]) -> Option<RoutingProperties> + Send + Sync>;

/// A change that is applied in memory and has its place in the log. Acknowledge it to
/// a client only once [`Broker::finish`] (or [`Staged::durable`]) resolves.
#[must_use = "a staged change is not acknowledged until it is durable"]
pub struct Staged<T> {
    pub(super) commits: Vec<Commit>,
    pub(super) value: T,
    /// Entities whose dead-letter sub-queue now holds messages to forward.
    pub(super) forward_dead_letters_of: Vec<String>,
}

impl<T> Staged<T> {
    pub(super) fn new(commit: Commit, value: T) -> Self {
        Staged { commits: vec![commit], value, forward_dead_letters_of: Vec::new() }
    }

    /// Waits until the change is durable. Dead-letter forwarding it started is left to
    /// upkeep; [`Broker::finish`] does it at once.
    pub async fn durable(self) -> BrokerResult<T> {
        for c in self.commits {
            c.durable().await?;
        }
        Ok(self.value)
    }
}

pub struct Broker {
    pub(super) store: Arc<dyn Store>,
    pub(super) clock: Arc<dyn Clock>,
    /// By lowercase name: entity names are case-insensitive.
    pub(super) entities: RwLock<BTreeMap<String, EntityRef>>,
    pub(super) next_entity_id: AtomicU64,
    pub(super) inline_budget: AtomicI64,
    /// Per entity, what waiting receivers are woken with (see `wakeup`).
    pub(super) wakers: super::wakeup::Wakers,
    pub(super) transactions: Transactions,
    pub(super) routing_reader: OnceLock<RoutingReader>,
}

/// Several entities locked at once, always in the order of their lowercase names, so
/// that operations spanning entities (topic fan-out, forwarding, transactions) cannot
/// deadlock one another.
pub(super) struct LockSet<'a> {
    keys: Vec<String>,
    pub guards: Vec<MutexGuard<'a, EntityState>>,
}

impl<'a> LockSet<'a> {
    /// The keys of the entities at `indexes`.
    pub fn keys_of(&self, indexes: impl Iterator<Item = usize>) -> Vec<String> {
        indexes.map(|i| self.keys[i].clone()).collect()
    }

    pub fn lock(refs: &'a BTreeMap<String, EntityRef>) -> Self {
        LockSet { keys: refs.keys().cloned().collect(), guards: refs.values().map(|r| r.lock()).collect() }
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.keys.binary_search(&name.to_ascii_lowercase()).ok()
    }

    /// The subscriptions of the topic at `topic` that are in the set.
    pub fn subscriptions_of(&self, topic: usize) -> Vec<usize> {
        let name = self.guards[topic].record.name.to_ascii_lowercase();
        (0..self.guards.len())
            .filter(|&i| matches!(&self.guards[i].record.kind, EntityKind::Subscription { topic: t } if t.to_ascii_lowercase() == name))
            .collect()
    }
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
            wakers: Default::default(),
            transactions: Transactions::default(),
            routing_reader: OnceLock::new(),
        }
    }

    /// Installs the reader of routing properties from stored bodies (once).
    pub fn set_routing_reader(&self, reader: RoutingReader) {
        let _ = self.routing_reader.set(reader);
    }

    /// Waits until a staged change is durable, then forwards the dead letters it made
    /// (best effort: upkeep retries what fails here).
    pub async fn finish<T>(&self, mut staged: Staged<T>) -> BrokerResult<T> {
        let forward = std::mem::take(&mut staged.forward_dead_letters_of);
        let value = staged.durable().await?;
        for entity in forward {
            if let Err(e) = self.forward_dead_letters(&entity).await {
                tracing::warn!(entity, error = %e, "dead-letter forwarding failed; upkeep will retry");
            }
        }
        Ok(value)
    }

    pub(super) fn keeps_values(&self) -> bool {
        self.store.keeps_values_on_disk()
    }

    pub(super) fn entity(&self, name: &str) -> BrokerResult<EntityRef> {
        self.entities.read().get(&name.to_ascii_lowercase()).cloned().ok_or_else(|| BrokerError::EntityNotFound(name.to_string()))
    }

    /// The entities a message arriving at `entry` may reach: itself, a topic's
    /// subscriptions, and auto-forwarding targets up to the hop limit, by key.
    pub(super) fn reach(&self, entry: &str, into: &mut BTreeMap<String, EntityRef>) -> BrokerResult<()> {
        let first = self.entity(entry)?;
        let mut frontier = vec![(entry.to_ascii_lowercase(), first, 0u32)];
        let mut seen = HashSet::new();
        while let Some((key, e, hops)) = frontier.pop() {
            if !seen.insert((key.clone(), hops)) || into.len() > 10_000 {
                continue;
            }
            let (kind, name, forward_to) = {
                let e = e.lock();
                (e.record.kind.clone(), e.record.name.clone(), e.record.config.forward_to.clone())
            };
            into.insert(key, e);
            if kind == EntityKind::Topic {
                for (path, ..) in self.list_subscriptions(&name)? {
                    if let Ok(s) = self.entity(&path) {
                        frontier.push((path.to_ascii_lowercase(), s, hops));
                    }
                }
            } else if let (Some(target), true) = (forward_to, hops < MAX_FORWARD_HOPS) {
                if let Ok(t) = self.entity(&target) {
                    frontier.push((target.to_ascii_lowercase(), t, hops + 1));
                }
            }
        }
        Ok(())
    }

    // ---- entities -----------------------------------------------------------------

    pub async fn create_queue(&self, name: &str, config: QueueConfig) -> BrokerResult<()> {
        self.create_entity(name, config, EntityKind::Queue, Vec::new()).await
    }

    /// Forwarding targets must exist, be something one can send to, and not be the
    /// entity itself.
    fn check_forwarding(&self, name: &str, config: &QueueConfig, kind: &EntityKind) -> BrokerResult<()> {
        let targets = [("ForwardTo", &config.forward_to), ("ForwardDeadLetteredMessagesTo", &config.forward_dead_lettered_to)];
        for (property, target) in targets {
            let Some(target) = target else { continue };
            if *kind == EntityKind::Topic {
                return Err(BrokerError::InvalidOperation(format!("{property} is not a property of topics.")));
            }
            if target.eq_ignore_ascii_case(name) {
                return Err(BrokerError::InvalidOperation(format!("{property} cannot name the entity '{name}' itself.")));
            }
            let t = self.entity(target).map_err(|_| {
                BrokerError::InvalidOperation(format!("{property}: the destination entity '{target}' does not exist."))
            })?;
            if matches!(t.lock().record.kind, EntityKind::Subscription { .. }) {
                return Err(BrokerError::InvalidOperation(format!("{property}: messages cannot be forwarded to the subscription '{target}'.")));
            }
        }
        Ok(())
    }

    pub(super) async fn create_entity(&self, name: &str, config: QueueConfig, kind: EntityKind, rules: Vec<Rule>) -> BrokerResult<()> {
        check_entity_name(name)?;
        self.check_forwarding(name, &config, &kind)?;
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
        let kind = e.lock().record.kind.clone();
        self.check_forwarding(name, &config, &kind)?;
        let commit = {
            let mut e = e.lock();
            let mut record = e.record.clone();
            record.config = config;
            let key = codec::entity_key(&record.name.to_ascii_lowercase());
            let commit = self.store.commit(&[Op::Put { key, value: codec::to_json(&record) }])?;
            e.record = record;
            commit
        };
        commit.durable().await?;
        self.forward_dead_letters(name).await
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
            self.wakers.forget(&key);
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
}
