//! What the Event Grid store holds, read back at start: topic and subscription
//! records, and each subscription's delivery mark and retry records.

use std::collections::BTreeMap;

use lapis_store::{ReplayEvent, StoreResult};

use super::delivery::state::{MARK_PREFIX, RETRY_PREFIX};
use super::delivery::pull::{PullRecord, PULL_PREFIX};
use super::delivery::worker::Resume;
use super::delivery::RetryRecord;
use super::model::TopicRecord;
use super::service::{SubscriptionRecord, SUBSCRIPTION_PREFIX, TOPIC_PREFIX};

/// Records found while the store replays.
#[derive(Default)]
pub struct EventsRecovery {
    pub(super) records: BTreeMap<Vec<u8>, TopicRecord>,
    pub(super) subscriptions: BTreeMap<Vec<u8>, SubscriptionRecord>,
    marks: BTreeMap<Vec<u8>, i64>,
    retries: BTreeMap<Vec<u8>, RetryRecord>,
    pulled: BTreeMap<Vec<u8>, PullRecord>,
}

fn keep<T: serde::de::DeserializeOwned>(into: &mut BTreeMap<Vec<u8>, T>, key: &[u8], value: &[u8], what: &str) {
    match serde_json::from_slice::<T>(value) {
        Ok(v) => {
            into.insert(key.to_vec(), v);
        }
        Err(e) => tracing::warn!(error = %e, "event grid recovery: an unreadable {what}; skipped"),
    }
}

fn drop_prefix<T>(from: &mut BTreeMap<Vec<u8>, T>, prefix: &[u8]) {
    from.retain(|k, _| !k.starts_with(prefix));
}

impl EventsRecovery {
    pub fn visitor(&mut self) -> impl FnMut(ReplayEvent<'_>) -> StoreResult<()> + '_ {
        move |event| {
            match event {
                ReplayEvent::Put { key, value } => match key.first().copied() {
                    Some(TOPIC_PREFIX) => keep(&mut self.records, key, value, "topic record"),
                    Some(SUBSCRIPTION_PREFIX) => keep(&mut self.subscriptions, key, value, "subscription record"),
                    Some(MARK_PREFIX) => match std::str::from_utf8(value).ok().and_then(|t| t.parse::<i64>().ok()) {
                        Some(mark) => {
                            self.marks.insert(key.to_vec(), mark);
                        }
                        None => tracing::warn!("event grid recovery: an unreadable delivery mark; skipped"),
                    },
                    Some(RETRY_PREFIX) => keep(&mut self.retries, key, value, "retry record"),
                    Some(PULL_PREFIX) => keep(&mut self.pulled, key, value, "pull record"),
                    _ => {}
                },
                ReplayEvent::Delete { key } => {
                    self.records.remove(key);
                    self.subscriptions.remove(key);
                    self.marks.remove(key);
                    self.retries.remove(key);
                    self.pulled.remove(key);
                }
                ReplayEvent::DeletePrefix { prefix } => {
                    drop_prefix(&mut self.records, prefix);
                    drop_prefix(&mut self.subscriptions, prefix);
                    drop_prefix(&mut self.marks, prefix);
                    drop_prefix(&mut self.retries, prefix);
                    drop_prefix(&mut self.pulled, prefix);
                }
            }
            Ok(())
        }
    }

    /// Each subscription's place to resume delivery from, by `<topic>/<subscription>`.
    pub(super) fn resume(&mut self) -> BTreeMap<String, Resume> {
        let mut out: BTreeMap<String, Resume> = BTreeMap::new();
        for (key, mark) in std::mem::take(&mut self.marks) {
            let path = String::from_utf8_lossy(&key[1..]).into_owned();
            out.entry(path).or_default().mark = mark;
        }
        for (key, record) in std::mem::take(&mut self.retries) {
            let text = String::from_utf8_lossy(&key[1..]).into_owned();
            let Some((path, _)) = text.rsplit_once('/') else { continue };
            if record.seqs.is_empty() {
                continue;
            }
            out.entry(path.to_string()).or_default().retries.push(record);
        }
        for (key, record) in std::mem::take(&mut self.pulled) {
            let text = String::from_utf8_lossy(&key[1..]).into_owned();
            let Some((path, _)) = text.rsplit_once('/') else { continue };
            out.entry(path.to_string()).or_default().pulled.push(record);
        }
        out
    }
}
