//! Pull delivery: a namespace topic's queue subscription. Clients receive events
//! under a lock and then acknowledge, release (now or after a delay), reject or renew
//! them; a lock that lapses makes the event receivable again, and an event received
//! `maxDeliveryCount` times, or older than its time to live, is dead-lettered.
//!
//! What survives a restart: the mark (as for push delivery) and one record per event
//! handed out and not yet finished with (its delivery count and when it may be
//! received again). Locks do not survive: after a restart every unfinished event is
//! receivable again, as when its lock lapses.

use std::collections::{BTreeMap, HashMap};
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
use super::dead_letter::{read_events, write_dead_letter};
use super::metrics::DeliveryMetrics;
use super::outbound::{namespace_dead_letter_blob, DeadLetterReason};
use super::state::mark_key;
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

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LockResults {
    pub succeeded: Vec<String>,
    pub failed: Vec<(String, LockFailure)>,
}

struct Outstanding {
    record: PullRecord,
    lock: Option<(String, Millis)>,
}

struct State {
    cursor: Cursor,
    outstanding: BTreeMap<i64, Outstanding>,
    tokens: HashMap<String, i64>,
    mark_written: i64,
    mark_written_at: Instant,
}

pub(crate) struct PullQueue {
    log: Arc<dyn EventLog>,
    input: InputSchema,
    subscription: SubscriptionRecord,
    path: String,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    transport: Arc<OnceLock<Arc<dyn DeliveryTransport>>>,
    pub metrics: Arc<DeliveryMetrics>,
    lock_ms: Millis,
    max_deliveries: u32,
    ttl_ms: Millis,
    state: tokio::sync::Mutex<State>,
}

impl PullQueue {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        log: Arc<dyn EventLog>,
        input: InputSchema,
        subscription: SubscriptionRecord,
        path: String,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        transport: Arc<OnceLock<Arc<dyn DeliveryTransport>>>,
        mark: i64,
        records: Vec<PullRecord>,
    ) -> PullQueue {
        let (lock_seconds, max_deliveries) = match &subscription.spec.destination {
            Destination::Queue { lock_seconds, max_delivery_count, .. } => (*lock_seconds, *max_delivery_count),
            _ => unreachable!("a pull queue is made only for a Queue destination"),
        };
        let ttl_ms = subscription.spec.destination.queue_ttl_ms().unwrap_or(super::super::subscription::MAX_QUEUE_TTL_MS);
        let cursor = log.seek(Seek::Seq { seq: mark, inclusive: true });
        let outstanding: BTreeMap<i64, Outstanding> = records.into_iter().map(|r| (r.seq, Outstanding { record: r, lock: None })).collect();
        let metrics = DeliveryMetrics::new();
        metrics.set_retrying(outstanding.len());
        PullQueue {
            log,
            input,
            subscription,
            path,
            store,
            clock,
            transport,
            metrics,
            lock_ms: lock_seconds as Millis * 1000,
            max_deliveries,
            ttl_ms,
            state: tokio::sync::Mutex::new(State { cursor, outstanding, tokens: HashMap::new(), mark_written: mark, mark_written_at: Instant::now() }),
        }
    }

    /// Up to `max` events, waiting up to `wait` for the first; each locked for the
    /// subscription's lock duration.
    pub async fn receive(&self, max: usize, wait: Duration) -> Vec<Received> {
        let deadline = Instant::now() + wait;
        let mut visible = self.log.watch_visible();
        loop {
            visible.borrow_and_update();
            let got = self.take(max).await;
            let now = Instant::now();
            if !got.is_empty() || now >= deadline {
                return got;
            }
            // New events wake us at once; lapsed locks and delays are on the
            // service's clock, so they are looked for every little while.
            tokio::select! {
                _ = visible.changed() => {}
                _ = tokio::time::sleep(POLL.min(deadline - now)) => {}
            }
        }
    }

    async fn take(&self, max: usize) -> Vec<Received> {
        let now = self.clock.now_ms();
        let mut st = self.state.lock().await;
        let mut handed: Vec<(i64, String, u32)> = Vec::new();
        let mut give_up: Vec<(PullRecord, DeadLetterReason)> = Vec::new();
        let mut ops = Vec::new();

        // Events seen before whose lock lapsed or whose delay is over come first.
        let again: Vec<i64> = st
            .outstanding
            .iter()
            .filter(|(_, o)| o.record.available_at <= now && o.lock.as_ref().is_none_or(|(_, until)| *until <= now))
            .map(|(seq, _)| *seq)
            .take(max)
            .collect();
        for seq in again {
            let Some(o) = st.outstanding.get_mut(&seq) else { continue };
            if let Some((token, _)) = o.lock.take() {
                st.tokens.remove(&token);
            }
            let Some(o) = st.outstanding.get_mut(&seq) else { continue };
            let reason = if now.saturating_sub(o.record.published_at) > self.ttl_ms {
                Some(DeadLetterReason::TimeToLiveExceeded)
            } else if o.record.delivery_count >= self.max_deliveries {
                Some(DeadLetterReason::MaxDeliveryAttemptsExceeded)
            } else {
                None
            };
            if let Some(reason) = reason {
                let record = o.record;
                st.outstanding.remove(&seq);
                ops.push(Op::Delete { key: pull_key(&self.path, seq) });
                give_up.push((record, reason));
                continue;
            }
            o.record.delivery_count += 1;
            let token = uuid::Uuid::new_v4().to_string();
            o.lock = Some((token.clone(), now + self.lock_ms));
            ops.push(Op::Put { key: pull_key(&self.path, seq), value: serde_json::to_vec(&o.record).expect("a pull record serializes") });
            handed.push((seq, token.clone(), o.record.delivery_count));
            st.tokens.insert(token, seq);
        }

        // Then new events from the log, as the filter passes them.
        let room = max.saturating_sub(handed.len());
        if room > 0 && st.outstanding.len() < MAX_OUTSTANDING {
            let mut cursor = st.cursor;
            let stored = self.log.read(&mut cursor, room, 4 << 20).await.unwrap_or_else(|e| {
                tracing::warn!(subscription = %self.path, error = %e, "event grid: reading the topic's log failed");
                Vec::new()
            });
            st.cursor = cursor;
            for e in stored {
                let Ok(value) = serde_json::from_slice::<Value>(&e.body) else { continue };
                if !self.subscription.spec.filter.matches(&PublishedEvent::from_stored(self.input, value)) {
                    continue;
                }
                self.metrics.matched(1);
                let record = PullRecord { seq: e.seq, delivery_count: 1, available_at: now, published_at: e.enqueued_at };
                if now.saturating_sub(e.enqueued_at) > self.ttl_ms {
                    give_up.push((PullRecord { delivery_count: 0, ..record }, DeadLetterReason::TimeToLiveExceeded));
                    continue;
                }
                let token = uuid::Uuid::new_v4().to_string();
                ops.push(Op::Put { key: pull_key(&self.path, e.seq), value: serde_json::to_vec(&record).expect("a pull record serializes") });
                st.outstanding.insert(e.seq, Outstanding { record, lock: Some((token.clone(), now + self.lock_ms)) });
                st.tokens.insert(token.clone(), e.seq);
                handed.push((e.seq, token, 1));
            }
        }
        self.commit(&mut st, ops);
        self.metrics.set_retrying(st.outstanding.len());
        drop(st);

        if !give_up.is_empty() {
            self.dead_letter(give_up).await;
        }
        handed.sort_by_key(|(seq, _, _)| *seq);
        let seqs: Vec<i64> = handed.iter().map(|(seq, _, _)| *seq).collect();
        let mut events: BTreeMap<i64, Value> = read_events(&self.log, self.input, self.input, &seqs).await.into_iter().filter_map(|e| Some((e.seq, serde_json::from_slice(&e.json).ok()?))).collect();
        handed.into_iter().filter_map(|(seq, lock_token, delivery_count)| Some(Received { lock_token, delivery_count, event: events.remove(&seq)? })).collect()
    }

    /// Applies `how` to each token's event; every token is answered.
    pub async fn settle(&self, tokens: &[String], how: Settle) -> LockResults {
        let now = self.clock.now_ms();
        let mut results = LockResults::default();
        let mut rejected = Vec::new();
        let mut ops = Vec::new();
        let mut acknowledged = Vec::new();
        {
            let mut st = self.state.lock().await;
            for token in tokens {
                if uuid::Uuid::parse_str(token).is_err() {
                    results.failed.push((token.clone(), LockFailure::Malformed));
                    continue;
                }
                let held = st.tokens.get(token).copied().and_then(|seq| {
                    let o = st.outstanding.get(&seq)?;
                    matches!(&o.lock, Some((t, until)) if t == token && *until > now).then_some(seq)
                });
                let Some(seq) = held else {
                    st.tokens.remove(token);
                    results.failed.push((token.clone(), LockFailure::Lost));
                    continue;
                };
                match how {
                    Settle::RenewLock => {
                        if let Some(o) = st.outstanding.get_mut(&seq) {
                            o.lock = Some((token.clone(), now + self.lock_ms));
                        }
                    }
                    Settle::Release { delay_ms } => {
                        st.tokens.remove(token);
                        if let Some(o) = st.outstanding.get_mut(&seq) {
                            o.lock = None;
                            o.record.available_at = now + delay_ms;
                            ops.push(Op::Put { key: pull_key(&self.path, seq), value: serde_json::to_vec(&o.record).expect("a pull record serializes") });
                        }
                    }
                    Settle::Acknowledge | Settle::Reject => {
                        st.tokens.remove(token);
                        if let Some(o) = st.outstanding.remove(&seq) {
                            ops.push(Op::Delete { key: pull_key(&self.path, seq) });
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
            let commit = self.commit(&mut st, ops);
            self.metrics.set_retrying(st.outstanding.len());
            drop(st);
            // An acknowledged event must not come back after a crash.
            if let Some(c) = commit {
                if let Err(e) = c.durable().await {
                    tracing::error!(subscription = %self.path, error = %e, "event grid: a settlement was not made durable");
                }
            }
        }
        self.metrics.delivered(acknowledged.into_iter().map(|p| (now.saturating_sub(p).max(0) as u64) * 1000));
        if !rejected.is_empty() {
            let reason = DeadLetterReason::Rejected;
            self.dead_letter(rejected.into_iter().map(|r| (r, reason)).collect()).await;
        }
        results
    }

    /// Commits `ops` and, when it moved, the mark (in that order, so the mark never
    /// passes an event whose record is not yet written).
    fn commit(&self, st: &mut State, mut ops: Vec<Op>) -> Option<lapis_store::Commit> {
        let mark = st.outstanding.keys().next().copied().unwrap_or(st.cursor.next_seq).min(st.cursor.next_seq);
        if mark > st.mark_written {
            ops.push(Op::Put { key: mark_key(&self.path), value: mark.to_string().into_bytes() });
            st.mark_written = mark;
            st.mark_written_at = Instant::now();
        }
        if ops.is_empty() {
            return None;
        }
        match self.store.commit(&ops) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(subscription = %self.path, error = %e, "event grid: pull delivery state was not written");
                None
            }
        }
    }

    async fn dead_letter(&self, given_up: Vec<(PullRecord, DeadLetterReason)>) {
        let transport = self.transport.get().cloned();
        for (record, reason) in given_up {
            let events = read_events(&self.log, self.input, self.input, &[record.seq]).await;
            let values: Vec<(Value, Millis)> = events.iter().filter_map(|e| Some((serde_json::from_slice(&e.json).ok()?, e.published_at))).collect();
            let n = values.len();
            let now = self.clock.now_ms();
            let (topic, name) = (&self.subscription.topic, &self.subscription.name);
            let written = write_dead_letter(transport.as_deref(), &self.subscription, n, || namespace_dead_letter_blob(topic, name, &values, reason, record.delivery_count, now)).await;
            if written {
                self.metrics.dead_lettered(n);
            } else {
                self.metrics.dropped(n);
            }
        }
    }
}
