//! What delivery keeps in the store so that it survives a restart: per subscription a
//! mark (every event before it is finished with, or has a retry record) and one retry
//! record per batch still to be tried again or dead-lettered. Delivery is at least
//! once: the mark may lag, never lead.

use serde::{Deserialize, Serialize};

use super::schedule::Failure;
use crate::clock::Millis;

pub(crate) const MARK_PREFIX: u8 = b'c';
pub(crate) const RETRY_PREFIX: u8 = b'r';

/// `<topic>/<subscription>`, lowercased: what a subscription's state is filed under.
pub(crate) fn subscription_path(topic: &str, name: &str) -> String {
    format!("{}/{}", topic.to_ascii_lowercase(), name.to_ascii_lowercase())
}

pub(crate) fn mark_key(path: &str) -> Vec<u8> {
    let mut k = vec![MARK_PREFIX];
    k.extend_from_slice(path.as_bytes());
    k
}

/// Writes a subscription's mark.
pub(crate) fn put_mark(path: &str, mark: i64) -> lapis_store::Op {
    lapis_store::Op::Put { key: mark_key(path), value: mark.to_string().into_bytes() }
}

/// Every retry record of a subscription starts with this (the trailing '/' keeps
/// `sub` from matching `sub2`).
pub(crate) fn retry_prefix(path: &str) -> Vec<u8> {
    let mut k = vec![RETRY_PREFIX];
    k.extend_from_slice(path.as_bytes());
    k.push(b'/');
    k
}

pub(crate) fn retry_key(path: &str, first_seq: i64) -> Vec<u8> {
    let mut k = retry_prefix(path);
    k.extend_from_slice(format!("{first_seq:020}").as_bytes());
    k
}

/// Every mark, retry record and pull record of a topic's subscriptions starts with one
/// of these.
pub(crate) fn topic_prefixes(topic: &str) -> [Vec<u8>; 3] {
    let path = format!("{}/", topic.to_ascii_lowercase());
    [MARK_PREFIX, RETRY_PREFIX, super::pull::PULL_PREFIX].map(|p| [&[p], path.as_bytes()].concat())
}

/// What a subscription still owes for one batch of events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryRecord {
    /// The events' places in the topic's log, ascending.
    pub seqs: Vec<i64>,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt (or the dead-letter write) is due.
    pub due: Millis,
    /// When the oldest of them was published: their time to live counts from it.
    pub published_at: Millis,
    pub last: Option<Failure>,
    pub last_attempt_at: Option<Millis>,
    /// Set once delivery has given up: the record now waits for its dead-letter write.
    pub dead_letter: Option<GiveUp>,
    /// When the first dead-letter write was tried (they are tried again for 4 hours).
    #[serde(default)]
    pub dead_letter_since: Option<Millis>,
}

/// Why delivery gave up on a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GiveUp {
    MaxDeliveryAttempts,
    TimeToLive,
    FinalAnswer,
}

impl RetryRecord {
    pub fn first_seq(&self) -> i64 {
        self.seqs[0]
    }
}
