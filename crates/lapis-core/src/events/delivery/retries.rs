//! One subscription's book of batches owed a retry or a dead-letter write: kept in
//! memory with an index by due time, and in the store (written before the mark may
//! pass the batch's events). Records recovered at start also say which events a
//! worker re-reading the log from its mark must not send again as new.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use lapis_store::{Op, Store};

use super::metrics::DeliveryMetrics;
use super::state::{retry_key, RetryRecord};
use crate::clock::Millis;

pub(crate) struct RetryBook {
    path: String,
    store: Arc<dyn Store>,
    metrics: Arc<DeliveryMetrics>,
    records: BTreeMap<i64, RetryRecord>,
    /// Records not out now, by when they are due.
    due: BTreeSet<(Millis, i64)>,
    /// Records whose retry or dead-letter write is out now.
    out: BTreeSet<i64>,
    /// Events in the records found at start.
    recovered: BTreeSet<i64>,
    /// Records whose write failed: their events hold the mark back.
    unfiled: BTreeSet<i64>,
    events: usize,
}

impl RetryBook {
    pub fn new(path: String, store: Arc<dyn Store>, metrics: Arc<DeliveryMetrics>, found: Vec<RetryRecord>) -> RetryBook {
        let mut book = RetryBook { path, store, metrics, records: BTreeMap::new(), due: BTreeSet::new(), out: BTreeSet::new(), recovered: BTreeSet::new(), unfiled: BTreeSet::new(), events: 0 };
        for r in found.into_iter().filter(|r| !r.seqs.is_empty()) {
            book.recovered.extend(r.seqs.iter().copied());
            book.insert(r);
        }
        book.metrics.set_retrying(book.events);
        book
    }

    fn insert(&mut self, record: RetryRecord) {
        let seq = record.first_seq();
        self.due.insert((record.due, seq));
        self.events += record.seqs.len();
        self.records.insert(seq, record);
    }

    fn remove(&mut self, seq: i64) -> Option<RetryRecord> {
        let old = self.records.remove(&seq)?;
        self.due.remove(&(old.due, seq));
        self.events -= old.seqs.len();
        Some(old)
    }

    /// Events waiting for a retry or a dead-letter write.
    pub fn events(&self) -> usize {
        self.events
    }

    /// Whether `seq` already has a record from before the restart (so it is not new).
    pub fn was_recovered(&mut self, seq: i64) -> bool {
        if self.recovered.is_empty() {
            return false;
        }
        let hit = self.recovered.remove(&seq);
        // Once the reader is past every recovered event, the set is done with.
        if self.recovered.last().is_some_and(|last| *last < seq) {
            self.recovered.clear();
        }
        hit
    }

    /// The first event a failed write holds the mark at.
    pub fn lowest_unfiled(&self) -> Option<i64> {
        self.unfiled.first().copied()
    }

    /// Keeps `record` (replacing the one for the same batch), in memory and in the
    /// store, due at `record.due`.
    pub fn file(&mut self, record: RetryRecord) {
        let seq = record.first_seq();
        self.remove(seq);
        self.out.remove(&seq);
        let value = serde_json::to_vec(&record).expect("a retry record serializes");
        match self.store.commit(&[Op::Put { key: retry_key(&self.path, seq), value }]) {
            Ok(_) => {
                self.unfiled.remove(&seq);
            }
            Err(e) => {
                tracing::warn!(subscription = %self.path, error = %e, "event grid: a retry record was not written; its events hold the mark");
                self.unfiled.insert(seq);
            }
        }
        self.insert(record);
        self.metrics.set_retrying(self.events);
    }

    /// Drops a finished batch's record.
    pub fn forget(&mut self, seq: i64) {
        self.out.remove(&seq);
        if self.remove(seq).is_some() {
            if let Err(e) = self.store.commit(&[Op::Delete { key: retry_key(&self.path, seq) }]) {
                tracing::warn!(subscription = %self.path, error = %e, "event grid: a finished retry record was not removed");
            }
        }
        self.unfiled.remove(&seq);
        self.metrics.set_retrying(self.events);
    }

    /// Up to `limit` records due at `now`, marked as out (their jobs report back
    /// through [`RetryBook::file`] or [`RetryBook::forget`]).
    pub fn take_due(&mut self, now: Millis, limit: usize) -> Vec<RetryRecord> {
        let due: Vec<(Millis, i64)> = self.due.range(..=(now, i64::MAX)).take(limit).copied().collect();
        due.into_iter()
            .filter_map(|key| {
                self.due.remove(&key);
                self.out.insert(key.1);
                self.records.get(&key.1).cloned()
            })
            .collect()
    }

    pub fn get(&self, seq: i64) -> Option<&RetryRecord> {
        self.records.get(&seq)
    }
}
