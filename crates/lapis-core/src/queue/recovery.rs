//! Rebuilding queue state from the store's replay, one event at a time, so that start
//! up never holds more message text in memory than the inline budget.
//!
//! Compaction may carry records forward out of their original order, so events are
//! folded per key first and queues and messages are joined at the end.

use std::collections::{BTreeMap, HashMap};

use lapis_store::{ReplayEvent, StoreResult};

use super::codec::{self, Key, MessageState, QueueRecord};
use super::model::ServiceProperties;
use super::state::{Body, InlineBudget, Message, QueueState, DEFAULT_INLINE_BODY_BUDGET};

/// Accumulates replayed events.
pub struct Recovery {
    budget: InlineBudget,
    queues: BTreeMap<Vec<u8>, QueueRecord>,
    properties: HashMap<String, ServiceProperties>,
    states: BTreeMap<(u64, u128), MessageState>,
    bodies: BTreeMap<(u64, u128), Body>,
}

/// What recovery produced.
pub struct Rebuilt {
    pub queues: Vec<QueueState>,
    pub properties: HashMap<String, ServiceProperties>,
    pub next_queue_id: u64,
    pub inline_budget_left: i64,
}

impl Recovery {
    /// `keeps_values`: whether the store can read message text back later.
    pub fn new(keeps_values: bool) -> Recovery {
        Recovery {
            budget: InlineBudget::new(keeps_values, DEFAULT_INLINE_BODY_BUDGET),
            queues: BTreeMap::new(),
            properties: HashMap::new(),
            states: BTreeMap::new(),
            bodies: BTreeMap::new(),
        }
    }

    /// A visitor to pass to the store's open.
    pub fn visitor(&mut self) -> impl FnMut(ReplayEvent<'_>) -> StoreResult<()> + '_ {
        move |event| {
            self.apply(event);
            Ok(())
        }
    }

    fn drop_body(&mut self, key: (u64, u128)) {
        if let Some(old) = self.bodies.remove(&key) {
            self.budget.release(&old);
        }
    }

    pub fn apply(&mut self, event: ReplayEvent<'_>) {
        match event {
            ReplayEvent::Put { key, value } => match codec::parse_key(key) {
                Key::Queue => {
                    if let Some(rec) = codec::decode_queue(value) {
                        self.queues.insert(key.to_vec(), rec);
                    }
                }
                Key::Properties(account) => {
                    if let Some(p) = codec::decode_properties(value) {
                        self.properties.insert(account.to_string(), p);
                    }
                }
                Key::MessageState { queue_id, message_id } => {
                    if let Some(s) = MessageState::decode(value) {
                        self.states.insert((queue_id, message_id), s);
                    }
                }
                Key::MessageBody { queue_id, message_id } => {
                    self.drop_body((queue_id, message_id));
                    let body = self.budget.hold(value.to_vec());
                    self.bodies.insert((queue_id, message_id), body);
                }
                Key::MessagesOf { .. } | Key::Unknown => tracing::warn!("recovery: ignoring an unknown key"),
            },
            ReplayEvent::Delete { key } => match codec::parse_key(key) {
                Key::Queue => {
                    self.queues.remove(key);
                }
                Key::MessageState { queue_id, message_id } => {
                    self.states.remove(&(queue_id, message_id));
                }
                Key::MessageBody { queue_id, message_id } => self.drop_body((queue_id, message_id)),
                _ => {}
            },
            ReplayEvent::DeletePrefix { prefix } => {
                if let Key::MessagesOf { queue_id } = codec::parse_key(prefix) {
                    let range = (queue_id, 0)..=(queue_id, u128::MAX);
                    let doomed: Vec<_> = self.states.range(range.clone()).map(|(k, _)| *k).collect();
                    for k in doomed {
                        self.states.remove(&k);
                    }
                    let doomed: Vec<_> = self.bodies.range(range).map(|(k, _)| *k).collect();
                    for k in doomed {
                        self.drop_body(k);
                    }
                }
            }
        }
    }

    pub fn finish(mut self) -> Rebuilt {
        let mut by_id: HashMap<u64, QueueState> = HashMap::new();
        let mut max_id = 0;
        for rec in std::mem::take(&mut self.queues).into_values() {
            max_id = max_id.max(rec.id);
            by_id.insert(rec.id, QueueState::new(rec));
        }
        let mut orphans = 0usize;
        for ((queue_id, message_id), state) in std::mem::take(&mut self.states) {
            let (Some(q), Some(body)) = (by_id.get_mut(&queue_id), self.bodies.remove(&(queue_id, message_id))) else {
                orphans += 1;
                continue;
            };
            q.put(message_id, Message { state, body });
        }
        if orphans > 0 || !self.bodies.is_empty() {
            tracing::warn!(orphans, stray_texts = self.bodies.len(), "recovery: dropped message records without a queue or text");
        }
        Rebuilt {
            queues: by_id.into_values().collect(),
            properties: self.properties,
            next_queue_id: max_id + 1,
            inline_budget_left: self.budget.left(),
        }
    }
}
