//! How queue state is laid out in the store: keys and value encodings.
//!
//! - `Q<account>\0<queue>` → queue record (JSON: id, metadata, ACL)
//! - `P<account>` → service properties (JSON)
//! - `M<queue id: u64 BE><message id: 16 bytes>s` → message state (fixed 48 bytes)
//! - `M<queue id: u64 BE><message id: 16 bytes>b` → message text (UTF-8)
//!
//! Every message key of a queue shares the prefix `M<queue id>`, so clearing or
//! deleting a queue is a single prefix delete.

use serde::{Deserialize, Serialize};

use super::model::{Metadata, ServiceProperties, SignedIdentifier};
use crate::clock::Millis;

pub const POP_RECEIPT_LEN: usize = 12;
pub type PopReceipt = [u8; POP_RECEIPT_LEN];

pub fn queue_key(account: &str, queue: &str) -> Vec<u8> {
    crate::storage_rules::named_key(b'Q', account, queue)
}

pub fn properties_key(account: &str) -> Vec<u8> {
    let mut k = vec![b'P'];
    k.extend_from_slice(account.as_bytes());
    k
}

pub fn messages_prefix(queue_id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(26);
    k.push(b'M');
    k.extend_from_slice(&queue_id.to_be_bytes());
    k
}

fn message_key(queue_id: u64, message_id: u128, kind: u8) -> Vec<u8> {
    let mut k = messages_prefix(queue_id);
    k.extend_from_slice(&message_id.to_be_bytes());
    k.push(kind);
    k
}

pub fn state_key(queue_id: u64, message_id: u128) -> Vec<u8> {
    message_key(queue_id, message_id, b's')
}

pub fn body_key(queue_id: u64, message_id: u128) -> Vec<u8> {
    message_key(queue_id, message_id, b'b')
}

/// A decoded key.
pub enum Key<'a> {
    Queue,
    Properties(&'a str),
    MessageState { queue_id: u64, message_id: u128 },
    MessageBody { queue_id: u64, message_id: u128 },
    MessagesOf { queue_id: u64 },
    Unknown,
}

pub fn parse_key(key: &[u8]) -> Key<'_> {
    match key.first() {
        Some(b'Q') => Key::Queue,
        Some(b'P') => std::str::from_utf8(&key[1..]).map(Key::Properties).unwrap_or(Key::Unknown),
        Some(b'M') if key.len() == 9 => Key::MessagesOf { queue_id: u64::from_be_bytes(key[1..9].try_into().expect("8 bytes")) },
        Some(b'M') if key.len() == 26 => {
            let queue_id = u64::from_be_bytes(key[1..9].try_into().expect("8 bytes"));
            let message_id = u128::from_be_bytes(key[9..25].try_into().expect("16 bytes"));
            match key[25] {
                b's' => Key::MessageState { queue_id, message_id },
                b'b' => Key::MessageBody { queue_id, message_id },
                _ => Key::Unknown,
            }
        }
        _ => Key::Unknown,
    }
}

/// The durable description of a queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueRecord {
    pub id: u64,
    pub account: String,
    pub name: String,
    pub metadata: Metadata,
    pub acl: Vec<SignedIdentifier>,
}

/// The mutable state of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageState {
    pub seq: u64,
    pub inserted: Millis,
    pub expires: Millis,
    pub visible: Millis,
    pub dequeue_count: u32,
    pub pop_receipt: PopReceipt,
}

const STATE_LEN: usize = 8 * 4 + 4 + POP_RECEIPT_LEN;

impl MessageState {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(STATE_LEN);
        v.extend_from_slice(&self.seq.to_le_bytes());
        v.extend_from_slice(&self.inserted.to_le_bytes());
        v.extend_from_slice(&self.expires.to_le_bytes());
        v.extend_from_slice(&self.visible.to_le_bytes());
        v.extend_from_slice(&self.dequeue_count.to_le_bytes());
        v.extend_from_slice(&self.pop_receipt);
        v
    }

    pub fn decode(v: &[u8]) -> Option<MessageState> {
        if v.len() != STATE_LEN {
            return None;
        }
        let u64_at = |i: usize| u64::from_le_bytes(v[i..i + 8].try_into().expect("8 bytes"));
        Some(MessageState {
            seq: u64_at(0),
            inserted: u64_at(8) as i64,
            expires: u64_at(16) as i64,
            visible: u64_at(24) as i64,
            dequeue_count: u32::from_le_bytes(v[32..36].try_into().expect("4 bytes")),
            pop_receipt: v[36..48].try_into().expect("12 bytes"),
        })
    }
}

pub fn encode_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("queue records always serialize")
}

pub fn decode_queue(v: &[u8]) -> Option<QueueRecord> {
    serde_json::from_slice(v).ok()
}

pub fn decode_properties(v: &[u8]) -> Option<ServiceProperties> {
    serde_json::from_slice(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_keys_parse() {
        let s = MessageState { seq: 7, inserted: 1, expires: -1, visible: 3, dequeue_count: 2, pop_receipt: [9; 12] };
        assert_eq!(MessageState::decode(&s.encode()), Some(s));
        assert!(matches!(parse_key(&state_key(5, 42)), Key::MessageState { queue_id: 5, message_id: 42 }));
        assert!(matches!(parse_key(&body_key(5, 42)), Key::MessageBody { queue_id: 5, message_id: 42 }));
        assert!(matches!(parse_key(&messages_prefix(5)), Key::MessagesOf { queue_id: 5 }));
        assert!(state_key(5, 42).starts_with(&messages_prefix(5)));
    }
}
