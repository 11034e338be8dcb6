//! Pull delivery: a namespace topic's queue subscription. Clients receive events
//! under a lock and then acknowledge, release (now or after a delay), reject or renew
//! them; a lock that lapses makes the event receivable again, and an event received
//! `maxDeliveryCount` times, or older than its time to live, is dead-lettered.
//!
//! What survives a restart: the mark (as for push delivery) and one record per event
//! handed out and not yet finished with (its delivery count and when it may be
//! received again). Locks do not survive: after a restart every unfinished event is
//! receivable again, as when its lock lapses.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use lapis_store::partition::{Cursor, EventLog, Seek};
use lapis_store::{Op, Store};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::super::model::InputSchema;
use super::super::publish::PublishedEvent;
use super::super::service::SubscriptionRecord;
use super::super::subscription::Destination;
use super::dead_letter::{read_values, write_dead_letter};
use super::metrics::DeliveryMetrics;
use super::outbound::{namespace_dead_letter_blob, DeadLetterReason};
use super::state::put_mark;
use super::transport::DeliveryTransport;
use crate::clock::{Clock, Millis};

pub(crate) const PULL_PREFIX: u8 = b'q';
/// Events one receive may ask for.
pub const MAX_RECEIVE_EVENTS: usize = 100;
/// Lock tokens one acknowledge, release, reject or renew may carry (the service's
/// "events per request").
pub const MAX_LOCK_TOKENS: usize = 1000;
/// The delays a release may ask for, in seconds.
pub const RELEASE_DELAYS: [i64; 5] = [0, 10, 60, 600, 3600];
/// A receive waits 10-120 s for its first event, 60 by default.
pub const MIN_WAIT_SECONDS: u64 = 10;
pub const MAX_WAIT_SECONDS: u64 = 120;
/// Unfinished events a subscription holds before receives stop taking new ones from
/// the log (the rest wait there).
const MAX_OUTSTANDING: usize = 100_000;
const POLL: Duration = Duration::from_millis(50);

pub(crate) fn pull_prefix(path: &str) -> Vec<u8> {
    let mut k = vec![PULL_PREFIX];
    k.extend_from_slice(path.as_bytes());
    k.push(b'/');
    k
}

fn pull_key(path: &str, seq: i64) -> Vec<u8> {
    let mut k = pull_prefix(path);
    k.extend_from_slice(format!("{seq:020}").as_bytes());
    k
}

/// Writes `record` under its key.
fn put(path: &str, record: &PullRecord) -> Op {
    Op::Put { key: pull_key(path, record.seq), value: serde_json::to_vec(record).expect("a pull record serializes") }
}

/// What the store keeps of an event handed out and not yet finished with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRecord {
    pub seq: i64,
    pub delivery_count: u32,
    /// Not receivable before this (a release with a delay).
    pub available_at: Millis,
    pub published_at: Millis,
}

/// One event as a receive hands it out.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub lock_token: String,
    pub delivery_count: u32,
    pub event: Value,
}

/// What a client does with events it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    Acknowledge,
    Release { delay_ms: Millis },
    Reject,
    RenewLock,
}

/// Why a lock token was not honoured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockFailure {
    /// Not a token this subscription handed out, or its lock lapsed, or its event
    /// was already settled.
    Lost,
    /// Not a lock token at all.
    Malformed,
}

/// Why a settlement could not be made at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettleError {
    Closed,
    /// The store did not take it: nothing is promised.
    Store(String),
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LockResults {
    pub succeeded: Vec<String>,
    pub failed: Vec<(String, LockFailure)>,
}

struct Outstanding {
    record: PullRecord,
    lock: Option<(String, Millis)>,
}

impl Outstanding {
    /// When the event may be received (again): when its lock lapses or its delay ends.
    fn ready_at(&self) -> Millis {
        match &self.lock {
            Some((_, until)) => *until,
            None => self.record.available_at,
        }
    }
}

/// Events handed out and not finished with, indexed by when each may be received
/// again (so a receive never walks the locked ones).
#[derive(Default)]
struct Outstandings {
    by_seq: BTreeMap<i64, Outstanding>,
    ready: BTreeSet<(Millis, i64)>,
}

impl Outstandings {
    fn insert(&mut self, seq: i64, o: Outstanding) {
        self.ready.insert((o.ready_at(), seq));
        if let Some(old) = self.by_seq.insert(seq, o) {
            self.ready.remove(&(old.ready_at(), seq));
            self.ready.insert((self.by_seq[&seq].ready_at(), seq));
        }
    }

    fn remove(&mut self, seq: i64) -> Option<Outstanding> {
        let o = self.by_seq.remove(&seq)?;
        self.ready.remove(&(o.ready_at(), seq));
        Some(o)
    }

    /// Changes one event, keeping the index right.
    fn update(&mut self, seq: i64, change: impl FnOnce(&mut Outstanding)) -> Option<&Outstanding> {
        let o = self.by_seq.get_mut(&seq)?;
        self.ready.remove(&(o.ready_at(), seq));
        change(o);
        self.ready.insert((o.ready_at(), seq));
        self.by_seq.get(&seq)
    }

    /// Up to `max` events receivable at `now`, soonest ready first.
    fn ready_by(&self, now: Millis, max: usize) -> Vec<i64> {
        self.ready.range(..=(now, i64::MAX)).take(max).map(|(_, seq)| *seq).collect()
    }

    fn len(&self) -> usize {
        self.by_seq.len()
    }
}

struct State {
    cursor: Cursor,
    outstanding: Outstandings,
    tokens: HashMap<String, i64>,
    mark_written: i64,
    /// Set when the subscription is deleted: nothing more is handed out or written.
    closed: bool,
}

/// A queue subscription that was deleted while a client used it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// What a pull queue works on.
pub(crate) struct PullParts {
    pub log: Arc<dyn EventLog>,
    pub input: InputSchema,
    pub subscription: SubscriptionRecord,
    /// `<topic>/<subscription>`, lowercased.
    pub path: String,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// For dead letters; unset until delivery starts.
    pub transport: Arc<OnceLock<Arc<dyn DeliveryTransport>>>,
}

pub(crate) struct PullQueue {
    parts: PullParts,
    pub metrics: Arc<DeliveryMetrics>,
    lock_ms: Millis,
    max_deliveries: u32,
    ttl_ms: Millis,
    state: tokio::sync::Mutex<State>,
}

impl PullQueue {
    pub fn new(parts: PullParts, mark: i64, records: Vec<PullRecord>) -> PullQueue {
        let (lock_seconds, max_deliveries) = match &parts.subscription.spec.destination {
            Destination::Queue { lock_seconds, max_delivery_count, .. } => (*lock_seconds, *max_delivery_count),
            _ => unreachable!("a pull queue is made only for a Queue destination"),
        };
        let ttl_ms = parts.subscription.spec.destination.queue_ttl_ms().unwrap_or(super::super::subscription::MAX_QUEUE_TTL_MS);
        let cursor = parts.log.seek(Seek::Seq { seq: mark, inclusive: true });
        let mut outstanding = Outstandings::default();
        for r in records {
            outstanding.insert(r.seq, Outstanding { record: r, lock: None });
        }
        let metrics = DeliveryMetrics::new();
        metrics.set_retrying(outstanding.len());
        PullQueue {
            parts,
            metrics,
            lock_ms: lock_seconds as Millis * 1000,
            max_deliveries,
            ttl_ms,
            state: tokio::sync::Mutex::new(State { cursor, outstanding, tokens: HashMap::new(), mark_written: mark, closed: false }),
        }
    }

    /// Up to `max` events, waiting up to `wait` for the first; each locked for the
    /// subscription's lock duration.
    pub async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Received>, Closed> {
        let deadline = Instant::now() + wait;
        let mut visible = self.parts.log.watch_visible();
        loop {
            visible.borrow_and_update();
            let got = self.take(max).await?;
            let now = Instant::now();
            if !got.is_empty() || now >= deadline {
                return Ok(got);
            }
            // New events wake us at once; lapsed locks and delays are on the
            // service's clock, so they are looked for every little while.
            tokio::select! {
                _ = visible.changed() => {}
                _ = tokio::time::sleep(POLL.min(deadline - now)) => {}
            }
        }
    }

    /// Stops the queue for good (its subscription is being deleted): waiting receives
    /// return, and nothing more is handed out or written.
    pub async fn close(&self) {
        self.state.lock().await.closed = true;
    }

    async fn take(&self, max: usize) -> Result<Vec<Received>, Closed> {
        let now = self.parts.clock.now_ms();
        let mut st = self.state.lock().await;
        if st.closed {
            return Err(Closed);
        }
        let mut handed: Vec<(i64, String, u32)> = Vec::new();
        let mut give_up: Vec<(PullRecord, DeadLetterReason)> = Vec::new();
        let mut ops = Vec::new();

        // Events seen before whose lock lapsed or whose delay is over come first.
        for seq in st.outstanding.ready_by(now, max) {
            let Some(o) = st.outstanding.by_seq.get(&seq) else { continue };
            if let Some((token, _)) = &o.lock {
                let token = token.clone();
                st.tokens.remove(&token);
            }
            let o = &st.outstanding.by_seq[&seq];
            let reason = if now.saturating_sub(o.record.published_at) > self.ttl_ms {
                Some(DeadLetterReason::TimeToLiveExceeded)
            } else if o.record.delivery_count >= self.max_deliveries {
                Some(DeadLetterReason::MaxDeliveryAttemptsExceeded)
            } else {
                None
            };
            if let Some(reason) = reason {
                if let Some(o) = st.outstanding.remove(seq) {
                    ops.push(Op::Delete { key: pull_key(&self.parts.path, seq) });
                    give_up.push((o.record, reason));
                }
                continue;
            }
            let token = uuid::Uuid::new_v4().to_string();
            let lock = (token.clone(), now + self.lock_ms);
            let Some(o) = st.outstanding.update(seq, |o| {
                o.record.delivery_count += 1;
                o.lock = Some(lock);
            }) else {
                continue;
            };
            ops.push(put(&self.parts.path, &o.record));
            handed.push((seq, token.clone(), o.record.delivery_count));
            st.tokens.insert(token, seq);
        }

        // Then new events from the log, as the filter passes them (kept as read:
        // they need not be read again to be handed out).
        let mut fresh: BTreeMap<i64, Value> = BTreeMap::new();
        let room = max.saturating_sub(handed.len());
        if room > 0 && st.outstanding.len() < MAX_OUTSTANDING {
            let mut cursor = st.cursor;
            let stored = self.parts.log.read(&mut cursor, room, (room * 1024).clamp(16 << 10, 4 << 20)).await.unwrap_or_else(|e| {
                tracing::warn!(subscription = %self.parts.path, error = %e, "event grid: reading the topic's log failed");
                Vec::new()
            });
            st.cursor = cursor;
            for e in stored {
                // Already handed out (a record from before a restart): not new.
                if st.outstanding.by_seq.contains_key(&e.seq) {
                    continue;
                }
                let Ok(value) = serde_json::from_slice::<Value>(&e.body) else { continue };
                let event = PublishedEvent::from_stored(self.parts.input, value);
                if !self.parts.subscription.spec.filter.matches(&event) {
                    continue;
                }
                self.metrics.matched(1);
                let record = PullRecord { seq: e.seq, delivery_count: 1, available_at: now, published_at: e.enqueued_at };
                if now.saturating_sub(e.enqueued_at) > self.ttl_ms {
                    give_up.push((PullRecord { delivery_count: 0, ..record }, DeadLetterReason::TimeToLiveExceeded));
                    continue;
                }
                let token = uuid::Uuid::new_v4().to_string();
                ops.push(put(&self.parts.path, &record));
                st.outstanding.insert(e.seq, Outstanding { record, lock: Some((token.clone(), now + self.lock_ms)) });
                st.tokens.insert(token.clone(), e.seq);
                handed.push((e.seq, token, 1));
                fresh.insert(e.seq, event.event);
            }
        }
        if let Err(e) = self.commit(&mut st, ops) {
            // Handed out anyway: at worst an event is received again after a crash.
            tracing::warn!(subscription = %self.parts.path, error = %e, "event grid: pull delivery state was not written");
        }
        self.metrics.set_retrying(st.outstanding.len());
        drop(st);

        if !give_up.is_empty() {
            self.dead_letter(give_up).await;
        }
        handed.sort_by_key(|(seq, _, _)| *seq);
        // Only events handed out before are read back from the log.
        let again: Vec<i64> = handed.iter().map(|(seq, _, _)| *seq).filter(|seq| !fresh.contains_key(seq)).collect();
        let mut events = fresh;
        events.extend(read_values(&self.parts.log, self.parts.input, self.parts.input, &again).await.into_iter().map(|(seq, v, _)| (seq, v)));
        Ok(handed.into_iter().filter_map(|(seq, lock_token, delivery_count)| Some(Received { lock_token, delivery_count, event: events.remove(&seq)? })).collect())
    }

    /// Applies `how` to each token's event; every token is answered. Acknowledgements
    /// and rejections are durable before this returns.
    pub async fn settle(&self, tokens: &[String], how: Settle) -> Result<LockResults, SettleError> {
        let now = self.parts.clock.now_ms();
        let mut results = LockResults::default();
        let mut rejected = Vec::new();
        let mut ops = Vec::new();
        let mut acknowledged = Vec::new();
        let commit = {
            let mut st = self.state.lock().await;
            if st.closed {
                return Err(SettleError::Closed);
            }
            for token in tokens {
                if uuid::Uuid::parse_str(token).is_err() {
                    results.failed.push((token.clone(), LockFailure::Malformed));
                    continue;
                }
                let held = st.tokens.get(token).copied().filter(|seq| {
                    st.outstanding.by_seq.get(seq).is_some_and(|o| matches!(&o.lock, Some((t, until)) if t == token && *until > now))
                });
                let Some(seq) = held else {
                    st.tokens.remove(token);
                    results.failed.push((token.clone(), LockFailure::Lost));
                    continue;
                };
                match how {
                    Settle::RenewLock => {
                        st.outstanding.update(seq, |o| o.lock = Some((token.clone(), now + self.lock_ms)));
                    }
                    Settle::Release { delay_ms } => {
                        st.tokens.remove(token);
                        if let Some(o) = st.outstanding.update(seq, |o| {
                            o.lock = None;
                            o.record.available_at = now + delay_ms;
                        }) {
                            ops.push(put(&self.parts.path, &o.record));
                        }
                    }
                    Settle::Acknowledge | Settle::Reject => {
                        st.tokens.remove(token);
                        if let Some(o) = st.outstanding.remove(seq) {
                            ops.push(Op::Delete { key: pull_key(&self.parts.path, seq) });
                            if how == Settle::Reject {
                                rejected.push(o.record);
                            } else {
                                acknowledged.push(o.record.published_at);
                            }
                        }
                    }
                }
                results.succeeded.push(token.clone());
            }
            let commit = self.commit(&mut st, ops).map_err(SettleError::Store)?;
            self.metrics.set_retrying(st.outstanding.len());
            commit
        };
        // An acknowledged event must not come back after a crash.
        if let Some(c) = commit {
            c.durable().await.map_err(|e| SettleError::Store(e.to_string()))?;
        }
        self.metrics.delivered(now, acknowledged.into_iter());
        if !rejected.is_empty() {
            self.dead_letter(rejected.into_iter().map(|r| (r, DeadLetterReason::Rejected)).collect()).await;
        }
        Ok(results)
    }

    /// Commits `ops` and, when it moved, the mark: the read position, since every
    /// event before it was finished with or has a record in the same or an earlier
    /// commit.
    fn commit(&self, st: &mut State, mut ops: Vec<Op>) -> Result<Option<lapis_store::Commit>, String> {
        let mark = st.cursor.next_seq;
        if mark > st.mark_written {
            ops.push(put_mark(&self.parts.path, mark));
        }
        if ops.is_empty() {
            return Ok(None);
        }
        let commit = self.parts.store.commit(&ops).map_err(|e| e.to_string())?;
        st.mark_written = st.mark_written.max(mark);
        Ok(Some(commit))
    }

    async fn dead_letter(&self, given_up: Vec<(PullRecord, DeadLetterReason)>) {
        let transport = self.parts.transport.get().cloned();
        for (record, reason) in given_up {
            let values: Vec<(Value, Millis)> = read_values(&self.parts.log, self.parts.input, self.parts.input, &[record.seq]).await.into_iter().map(|(_, v, at)| (v, at)).collect();
            let n = values.len();
            let now = self.parts.clock.now_ms();
            let (topic, name) = (&self.parts.subscription.topic, &self.parts.subscription.name);
            let written = write_dead_letter(transport.as_deref(), &self.parts.subscription, n, || namespace_dead_letter_blob(topic, name, &values, reason, record.delivery_count, now)).await;
            if written {
                self.metrics.dead_lettered(n);
            } else {
                self.metrics.dropped(n);
            }
        }
    }
}
