//! One queue's state in memory: its messages and the index that orders them by when
//! they become visible. Callers hold the queue's lock while using it.

use std::collections::{BTreeMap, HashMap};

pub use crate::body::{hold_body, release_body, Body, InlineBudget, DEFAULT_INLINE_BODY_BUDGET};

use super::codec::{MessageState, QueueRecord};
use crate::clock::Millis;

#[derive(Debug, Clone)]
pub struct Message {
    pub state: MessageState,
    pub body: Body,
}

/// A queue: its durable description plus its messages.
#[derive(Debug)]
pub struct QueueState {
    pub record: QueueRecord,
    messages: HashMap<u128, Message>,
    /// (visible at, sequence) → message id: Get takes from the front.
    by_visibility: BTreeMap<(Millis, u64), u128>,
    next_seq: u64,
}

impl QueueState {
    pub fn new(record: QueueRecord) -> Self {
        QueueState { record, messages: HashMap::new(), by_visibility: BTreeMap::new(), next_seq: 1 }
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    pub fn take_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    pub fn get(&self, id: u128) -> Option<&Message> {
        self.messages.get(&id)
    }

    /// Inserts or replaces a message, keeping the visibility index in step.
    pub fn put(&mut self, id: u128, message: Message) -> Option<Message> {
        self.next_seq = self.next_seq.max(message.state.seq + 1);
        self.by_visibility.insert((message.state.visible, message.state.seq), id);
        let old = self.messages.insert(id, message);
        if let Some(old) = &old {
            let key = (old.state.visible, old.state.seq);
            let new_key = (self.messages[&id].state.visible, self.messages[&id].state.seq);
            if key != new_key {
                self.by_visibility.remove(&key);
            }
        }
        old
    }

    pub fn remove(&mut self, id: u128) -> Option<Message> {
        let old = self.messages.remove(&id)?;
        self.by_visibility.remove(&(old.state.visible, old.state.seq));
        Some(old)
    }

    /// Removes every message, returning them (so their memory can be accounted for).
    pub fn clear(&mut self) -> Vec<Message> {
        self.by_visibility.clear();
        self.messages.drain().map(|(_, m)| m).collect()
    }

    /// Up to `n` messages visible at `now` in visibility order, skipping expired ones,
    /// which are returned separately for the caller to purge.
    pub fn visible(&self, now: Millis, n: usize) -> (Vec<u128>, Vec<u128>) {
        let mut live = Vec::with_capacity(n);
        let mut expired = Vec::new();
        for (_, &id) in self.by_visibility.range(..=(now, u64::MAX)) {
            if live.len() == n {
                break;
            }
            if self.messages[&id].state.expires <= now {
                expired.push(id);
            } else {
                live.push(id);
            }
        }
        (live, expired)
    }

    /// Every message that has expired at `now`.
    pub fn expired(&self, now: Millis) -> Vec<u128> {
        self.messages.iter().filter(|(_, m)| m.state.expires <= now).map(|(&id, _)| id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: u64, visible: Millis, expires: Millis) -> Message {
        Message {
            state: MessageState { seq, inserted: 0, expires, visible, dequeue_count: 0, pop_receipt: [0; 12] },
            body: Body::Inline(b"x".to_vec().into()),
        }
    }

    #[test]
    fn orders_by_visibility_then_insertion_and_skips_expired() {
        let rec = QueueRecord { id: 1, account: "a".into(), name: "q".into(), metadata: vec![], acl: vec![] };
        let mut q = QueueState::new(rec);
        q.put(10, msg(1, 5, 100));
        q.put(11, msg(2, 0, 100));
        q.put(12, msg(3, 0, 1));
        q.put(13, msg(4, 50, 100));
        assert_eq!(q.visible(10, 32), (vec![11, 10], vec![12]));
        let mut moved = q.get(11).unwrap().clone();
        moved.state.visible = 60;
        q.put(11, moved);
        assert_eq!(q.visible(70, 32).0, vec![10, 13, 11]);
        assert_eq!(q.visible(70, 1).0, vec![10]);
        q.remove(10);
        assert_eq!(q.len(), 3);
        assert_eq!(q.take_seq(), 5);
    }
}
