//! How broker state is laid out in its store.
//!
//! - `E<name>` → entity record (JSON: id, name, config)
//! - `N<entity id: u64 BE><sequence: i64 BE>s` → message metadata (JSON)
//! - `N<entity id: u64 BE><sequence: i64 BE>b` → message body (opaque bytes)
//! - `D<entity id: u64 BE><message id>` → when a message id was first seen (duplicate detection)
//! - `T<entity id: u64 BE><session id>` → session state (opaque bytes)
//! - `H<entity id: u64 BE>` → the next sequence number (i64 LE)
//!
//! All records of one entity share the prefixes `N<id>`, `D<id>` and `T<id>`, so
//! deleting an entity is three prefix deletes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::{DeadLetter, MessageState, PropertyValue, QueueConfig, Rule, SubQueue};
use crate::clock::Millis;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntityRecord {
    pub id: u64,
    pub name: String,
    pub config: QueueConfig,
    #[serde(default)]
    pub kind: EntityKind,
    /// A subscription's rules (empty for queues and topics).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
}

/// What an entity is. Subscriptions are named `<topic>/Subscriptions/<name>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntityKind {
    #[default]
    Queue,
    Topic,
    Subscription { topic: String },
}

/// Everything about a message except its body and its (volatile) lock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageMeta {
    pub seq: i64,
    pub enqueued_at: Millis,
    pub expires_at: Option<Millis>,
    pub delivery_count: u32,
    pub state: MessageState,
    pub scheduled_at: Option<Millis>,
    pub message_id: Option<String>,
    pub session_id: Option<String>,
    pub sub_queue: SubQueue,
    pub dead_letter: Option<DeadLetter>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<String, PropertyValue>,
    /// The entity id and sequence number its sender was given, when the message landed
    /// elsewhere (a topic's subscription, a forwarding target): how a scheduled
    /// message sent to a topic is found again to cancel it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<(u64, i64)>,
}

pub fn entity_key(name: &str) -> Vec<u8> {
    let mut k = vec![b'E'];
    k.extend_from_slice(name.as_bytes());
    k
}

pub fn messages_prefix(entity: u64) -> Vec<u8> {
    let mut k = vec![b'N'];
    k.extend_from_slice(&entity.to_be_bytes());
    k
}

fn message_key(entity: u64, seq: i64, kind: u8) -> Vec<u8> {
    let mut k = messages_prefix(entity);
    k.extend_from_slice(&seq.to_be_bytes());
    k.push(kind);
    k
}

pub fn meta_key(entity: u64, seq: i64) -> Vec<u8> {
    message_key(entity, seq, b's')
}

pub fn body_key(entity: u64, seq: i64) -> Vec<u8> {
    message_key(entity, seq, b'b')
}

pub fn dedup_prefix(entity: u64) -> Vec<u8> {
    let mut k = vec![b'D'];
    k.extend_from_slice(&entity.to_be_bytes());
    k
}

pub fn dedup_key(entity: u64, message_id: &str) -> Vec<u8> {
    let mut k = dedup_prefix(entity);
    k.extend_from_slice(message_id.as_bytes());
    k
}

pub fn session_state_prefix(entity: u64) -> Vec<u8> {
    let mut k = vec![b'T'];
    k.extend_from_slice(&entity.to_be_bytes());
    k
}

pub fn session_state_key(entity: u64, session: &str) -> Vec<u8> {
    let mut k = session_state_prefix(entity);
    k.extend_from_slice(session.as_bytes());
    k
}

/// The next sequence number an entity will assign, kept so that numbers are never
/// reused after a restart, even when the entity holds no messages (topics never do).
pub fn next_seq_key(entity: u64) -> Vec<u8> {
    let mut k = vec![b'H'];
    k.extend_from_slice(&entity.to_be_bytes());
    k
}

/// A decoded key.
pub enum Key<'a> {
    Entity,
    Meta { entity: u64, seq: i64 },
    Body { entity: u64, seq: i64 },
    Dedup { entity: u64, message_id: &'a str },
    SessionState { entity: u64, session: &'a str },
    SessionStatesOf { entity: u64 },
    NextSeq { entity: u64 },
    MessagesOf { entity: u64 },
    DedupOf { entity: u64 },
    Unknown,
}

fn u64_at(k: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(k[at..at + 8].try_into().expect("8 bytes"))
}

pub fn parse_key(k: &[u8]) -> Key<'_> {
    match (k.first(), k.len()) {
        (Some(b'E'), _) => Key::Entity,
        (Some(b'N'), 9) => Key::MessagesOf { entity: u64_at(k, 1) },
        (Some(b'N'), 18) => {
            let (entity, seq) = (u64_at(k, 1), u64_at(k, 9) as i64);
            match k[17] {
                b's' => Key::Meta { entity, seq },
                b'b' => Key::Body { entity, seq },
                _ => Key::Unknown,
            }
        }
        (Some(b'D'), 9) => Key::DedupOf { entity: u64_at(k, 1) },
        (Some(b'D'), n) if n > 9 => match std::str::from_utf8(&k[9..]) {
            Ok(message_id) => Key::Dedup { entity: u64_at(k, 1), message_id },
            Err(_) => Key::Unknown,
        },
        (Some(b'H'), 9) => Key::NextSeq { entity: u64_at(k, 1) },
        (Some(b'T'), 9) => Key::SessionStatesOf { entity: u64_at(k, 1) },
        (Some(b'T'), n) if n > 9 => match std::str::from_utf8(&k[9..]) {
            Ok(session) => Key::SessionState { entity: u64_at(k, 1), session },
            Err(_) => Key::Unknown,
        },
        _ => Key::Unknown,
    }
}

pub fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("broker records always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_back() {
        assert!(matches!(parse_key(&meta_key(3, 42)), Key::Meta { entity: 3, seq: 42 }));
        assert!(matches!(parse_key(&body_key(3, 42)), Key::Body { entity: 3, seq: 42 }));
        assert!(matches!(parse_key(&dedup_key(3, "m-1")), Key::Dedup { entity: 3, message_id: "m-1" }));
        assert!(matches!(parse_key(&messages_prefix(3)), Key::MessagesOf { entity: 3 }));
        assert!(matches!(parse_key(&dedup_prefix(3)), Key::DedupOf { entity: 3 }));
        assert!(matches!(parse_key(&session_state_key(3, "s-1")), Key::SessionState { entity: 3, session: "s-1" }));
        assert!(matches!(parse_key(&session_state_prefix(3)), Key::SessionStatesOf { entity: 3 }));
        assert!(matches!(parse_key(&next_seq_key(3)), Key::NextSeq { entity: 3 }));
        assert!(meta_key(3, 42).starts_with(&messages_prefix(3)));
    }
}
