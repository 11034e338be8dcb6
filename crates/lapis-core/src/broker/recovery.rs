//! Rebuilding the broker from its store's replay, one event at a time (bodies beyond
//! the inline budget stay on disk). Events are folded per key and joined at the end,
//! because compaction may carry records forward out of their original order.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};

use lapis_store::{ReplayEvent, StoreResult};

use super::codec::{self, EntityRecord, Key, MessageMeta};
use super::entity::{EntityState, StoredMessage};
use crate::body::{hold_body, release_body, Body, DEFAULT_INLINE_BODY_BUDGET};
use crate::clock::Millis;

pub struct BrokerRecovery {
    keeps_values: bool,
    budget: AtomicI64,
    entities: BTreeMap<Vec<u8>, EntityRecord>,
    metas: BTreeMap<(u64, i64), MessageMeta>,
    bodies: BTreeMap<(u64, i64), Body>,
    seen: BTreeMap<(u64, String), Millis>,
    session_states: BTreeMap<(u64, String), Vec<u8>>,
    next_seqs: BTreeMap<u64, i64>,
}

pub struct Rebuilt {
    pub entities: Vec<EntityState>,
    pub next_entity_id: u64,
    pub inline_budget_left: i64,
}

impl BrokerRecovery {
    pub fn new(keeps_values: bool) -> Self {
        BrokerRecovery {
            keeps_values,
            budget: AtomicI64::new(DEFAULT_INLINE_BODY_BUDGET),
            entities: BTreeMap::new(),
            metas: BTreeMap::new(),
            bodies: BTreeMap::new(),
            seen: BTreeMap::new(),
            session_states: BTreeMap::new(),
            next_seqs: BTreeMap::new(),
        }
    }

    /// A visitor to pass to the store's open.
    pub fn visitor(&mut self) -> impl FnMut(ReplayEvent<'_>) -> StoreResult<()> + '_ {
        move |event| {
            self.apply(event);
            Ok(())
        }
    }

    fn drop_body(&mut self, key: (u64, i64)) {
        if let Some(old) = self.bodies.remove(&key) {
            release_body(&self.budget, self.keeps_values, &old);
        }
    }

    fn drop_entity_records(&mut self, entity: u64, messages: bool) {
        if messages {
            let doomed: Vec<_> = self.metas.range((entity, i64::MIN)..=(entity, i64::MAX)).map(|(k, _)| *k).collect();
            doomed.iter().for_each(|k| {
                self.metas.remove(k);
            });
            let doomed: Vec<_> = self.bodies.range((entity, i64::MIN)..=(entity, i64::MAX)).map(|(k, _)| *k).collect();
            doomed.into_iter().for_each(|k| self.drop_body(k));
        } else {
            self.seen.retain(|(e, _), _| *e != entity);
        }
    }

    pub fn apply(&mut self, event: ReplayEvent<'_>) {
        match event {
            ReplayEvent::Put { key, value } => match codec::parse_key(key) {
                Key::Entity => {
                    if let Ok(rec) = serde_json::from_slice::<EntityRecord>(value) {
                        self.entities.insert(key.to_vec(), rec);
                    }
                }
                Key::Meta { entity, seq } => {
                    if let Ok(meta) = serde_json::from_slice::<MessageMeta>(value) {
                        self.metas.insert((entity, seq), meta);
                    }
                }
                Key::Body { entity, seq } => {
                    self.drop_body((entity, seq));
                    let body = hold_body(&self.budget, self.keeps_values, value.to_vec());
                    self.bodies.insert((entity, seq), body);
                }
                Key::Dedup { entity, message_id } => {
                    if let Ok(at) = <[u8; 8]>::try_from(value) {
                        self.seen.insert((entity, message_id.to_string()), i64::from_le_bytes(at));
                    }
                }
                Key::SessionState { entity, session } => {
                    self.session_states.insert((entity, session.to_string()), value.to_vec());
                }
                Key::NextSeq { entity } => {
                    if let Ok(next) = <[u8; 8]>::try_from(value) {
                        self.next_seqs.insert(entity, i64::from_le_bytes(next));
                    }
                }
                _ => tracing::warn!("broker recovery: ignoring an unknown key"),
            },
            ReplayEvent::Delete { key } => match codec::parse_key(key) {
                Key::Entity => {
                    self.entities.remove(key);
                }
                Key::Meta { entity, seq } => {
                    self.metas.remove(&(entity, seq));
                }
                Key::Body { entity, seq } => self.drop_body((entity, seq)),
                Key::Dedup { entity, message_id } => {
                    self.seen.remove(&(entity, message_id.to_string()));
                }
                Key::SessionState { entity, session } => {
                    self.session_states.remove(&(entity, session.to_string()));
                }
                Key::NextSeq { entity } => {
                    self.next_seqs.remove(&entity);
                }
                _ => {}
            },
            ReplayEvent::DeletePrefix { prefix } => match codec::parse_key(prefix) {
                Key::MessagesOf { entity } => self.drop_entity_records(entity, true),
                Key::DedupOf { entity } => self.drop_entity_records(entity, false),
                Key::SessionStatesOf { entity } => self.session_states.retain(|(e, _), _| *e != entity),
                _ => {}
            },
        }
    }

    pub fn finish(mut self) -> Rebuilt {
        let mut by_id: HashMap<u64, EntityState> = HashMap::new();
        let mut max_id = 0;
        for rec in std::mem::take(&mut self.entities).into_values() {
            max_id = max_id.max(rec.id);
            by_id.insert(rec.id, EntityState::new(rec));
        }
        let mut orphans = 0usize;
        for ((entity, seq), meta) in std::mem::take(&mut self.metas) {
            match (by_id.get_mut(&entity), self.bodies.remove(&(entity, seq))) {
                (Some(e), Some(body)) => e.put(StoredMessage { meta, body, lock: None }),
                _ => orphans += 1,
            }
        }
        for ((entity, message_id), at) in std::mem::take(&mut self.seen) {
            if let Some(e) = by_id.get_mut(&entity) {
                e.remember_id(&message_id, at);
            }
        }
        for (entity, next) in std::mem::take(&mut self.next_seqs) {
            if let Some(e) = by_id.get_mut(&entity) {
                e.raise_next_seq(next);
            }
        }
        for ((entity, session), state) in std::mem::take(&mut self.session_states) {
            if let Some(e) = by_id.get_mut(&entity) {
                e.session_states.insert(session, state);
            }
        }
        if orphans > 0 || !self.bodies.is_empty() {
            tracing::warn!(orphans, stray_bodies = self.bodies.len(), "broker recovery: dropped records without an entity or body");
        }
        Rebuilt {
            entities: by_id.into_values().collect(),
            next_entity_id: max_id + 1,
            inline_budget_left: self.budget.load(Ordering::Relaxed),
        }
    }
}
