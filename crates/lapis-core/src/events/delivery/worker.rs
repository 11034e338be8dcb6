//! One subscription's delivery loop: it reads the topic's log from its mark, keeps
//! what the filter passes, sends batches with bounded concurrency, and files every
//! failed batch as a retry record (tried again on the schedule, on the service's
//! clock) until it is delivered or given up on and dead-lettered. Nothing here waits
//! on a slow endpoint but that endpoint's own batches.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lapis_store::partition::{Cursor, EventLog, Seek, StoredEvent};
use lapis_store::Store;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::{Id, JoinSet};

use super::super::model::InputSchema;
use super::super::service::SubscriptionRecord;
use super::super::subscription::Destination;
use super::metrics::DeliveryMetrics;
use super::dead_letter::{out_event, read_events, read_values, write_dead_letter};
use super::outbound::{self, DeadLetterInfo, DeadLetterReason};
use super::schedule::{retry_delay, Failure, Outcome};
use super::retries::RetryBook;
use super::state::{put_mark, GiveUp, RetryRecord};
use super::transport::{DeliveryTransport, OutEvent, ServiceDelivery};
use crate::clock::{Clock, Millis};

/// Batches one subscription has out at once.
pub const MAX_IN_FLIGHT: usize = 32;
/// Events one subscription holds for retry before it stops taking new ones: new
/// events wait in the topic's log meanwhile.
pub const MAX_RETRYING_EVENTS: usize = 100_000;
/// Events per message batch handed to this server's own services.
const SERVICE_BATCH: usize = 64;
/// Consecutive failed attempts that put a subscription on probation.
const PROBATION_AFTER: u32 = 3;
const MAX_READ_EVENTS: usize = 4096;
const MAX_READ_BYTES: usize = 4 << 20;
/// How often due retries are looked for (they are due on the service's clock, which
/// tests move).
const TICK: Duration = Duration::from_millis(100);
/// How often the mark is written while it moves.
const MARK_EVERY: Duration = Duration::from_millis(20);
/// How long a failing read of the log waits before the next try.
const READ_BACKOFF: Duration = Duration::from_secs(1);
/// A dead-letter write that fails is tried again this often, for this long (then the
/// events are dropped, as the service drops them).
const DEAD_LETTER_RETRY_MS: Millis = 60_000;
const DEAD_LETTER_GIVE_UP_MS: Millis = 4 * 3600 * 1000;

/// What a worker needs; shared with the jobs it spawns.
pub(crate) struct Context {
    pub input: InputSchema,
    pub output: InputSchema,
    pub log: Arc<dyn EventLog>,
    pub subscription: SubscriptionRecord,
    /// `<topic>/<subscription>`, lowercased.
    pub path: String,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub transport: Arc<dyn DeliveryTransport>,
    pub metrics: Arc<DeliveryMetrics>,
}

/// Where a worker starts after a restart.
#[derive(Default)]
pub(crate) struct Resume {
    pub mark: i64,
    pub retries: Vec<RetryRecord>,
    /// A queue subscription's events handed out and not finished with.
    pub pulled: Vec<super::pull::PullRecord>,
}

enum Job {
    First { seqs: Vec<i64>, published: Vec<Millis>, started: Millis },
    Retry { first_seq: i64, started: Millis },
}

enum Done {
    Delivered,
    Failed(Failure),
    /// The dead-letter write finished, had nowhere to go (`written` false, `retry`
    /// false), or failed and may be tried again (`retry`).
    DeadLettered { written: bool, retry: bool, events: usize },
}

pub(crate) struct Worker {
    ctx: Arc<Context>,
    cursor: Cursor,
    /// Events read and admitted, not yet sent: they wait for room.
    pending: VecDeque<OutEvent>,
    /// First sequence numbers of batches on their first attempt.
    first_attempts: BTreeSet<i64>,
    retries: RetryBook,
    jobs: JoinSet<Done>,
    meta: HashMap<Id, Job>,
    mark_written: i64,
    mark_written_at: Instant,
    consecutive_failures: u32,
    probation_until: Millis,
    read_again_at: Instant,
}

impl Worker {
    pub fn new(ctx: Arc<Context>, resume: Resume) -> Worker {
        let cursor = ctx.log.seek(Seek::Seq { seq: resume.mark, inclusive: true });
        let retries = RetryBook::new(ctx.path.clone(), ctx.store.clone(), ctx.metrics.clone(), resume.retries);
        Worker {
            ctx,
            cursor,
            pending: VecDeque::new(),
            first_attempts: BTreeSet::new(),
            retries,
            jobs: JoinSet::new(),
            meta: HashMap::new(),
            mark_written: resume.mark,
            mark_written_at: Instant::now(),
            consecutive_failures: 0,
            probation_until: 0,
            read_again_at: Instant::now(),
        }
    }

    /// Delivers until `stop` turns true or its sender goes (the subscription was
    /// deleted, or the server is stopping); then writes the mark.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut visible = self.ctx.log.watch_visible();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !*stop.borrow() {
            let now = self.ctx.clock.now_ms();
            self.launch_due(now);
            self.launch_pending(now);
            let newest = visible.borrow_and_update().seq;
            if self.should_read(now, newest) {
                self.read(now).await;
                self.launch_pending(now);
                while let Some(done) = self.jobs.try_join_next_with_id() {
                    self.finish(done);
                }
                self.write_mark(false);
                continue;
            }
            tokio::select! {
                done = self.jobs.join_next_with_id(), if !self.jobs.is_empty() => {
                    if let Some(done) = done {
                        self.finish(done);
                    }
                }
                changed = visible.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                _ = tick.tick() => {}
                stopped = stop.changed() => {
                    if stopped.is_err() {
                        break;
                    }
                }
            }
            self.write_mark(false);
        }
        self.jobs.abort_all();
        self.write_mark(true);
    }

    /// New events are sent only with room, outside probation, and while the retry
    /// book is within its bound.
    fn may_send_new(&self, now: Millis) -> bool {
        self.jobs.len() < MAX_IN_FLIGHT && self.retries.events() < MAX_RETRYING_EVENTS && now >= self.probation_until
    }

    fn should_read(&self, now: Millis, newest: i64) -> bool {
        self.pending.is_empty() && self.may_send_new(now) && newest >= self.cursor.next_seq && Instant::now() >= self.read_again_at
    }

    /// Every event before the mark is finished with or has a retry record in the store.
    fn mark(&self) -> i64 {
        [self.first_attempts.first().copied(), self.pending.front().map(|e| e.seq), self.retries.lowest_unfiled()]
            .into_iter()
            .flatten()
            .fold(self.cursor.next_seq, i64::min)
    }

    fn write_mark(&mut self, force: bool) {
        let mark = self.mark();
        if mark <= self.mark_written || (!force && self.mark_written_at.elapsed() < MARK_EVERY) {
            return;
        }
        match self.ctx.store.commit(&[put_mark(&self.ctx.path, mark)]) {
            // Not awaited: a mark that lags only repeats deliveries after a crash.
            Ok(_commit) => {
                self.mark_written = mark;
                self.mark_written_at = Instant::now();
            }
            Err(e) => tracing::warn!(subscription = %self.ctx.path, error = %e, "event grid: the delivery mark was not written"),
        }
    }

    fn batch_limits(&self) -> (usize, usize) {
        match &self.ctx.subscription.spec.destination {
            Destination::WebHook { max_events_per_batch, preferred_batch_size_kb, .. } => (*max_events_per_batch as usize, *preferred_batch_size_kb as usize * 1024),
            _ => (SERVICE_BATCH, usize::MAX),
        }
    }

    /// Reads what the room allows into `pending`; events past their time to live go
    /// straight to the dead-letter book.
    async fn read(&mut self, now: Millis) {
        let (max_events, _) = self.batch_limits();
        let room = MAX_IN_FLIGHT - self.jobs.len();
        let wanted = (room * max_events).clamp(1, MAX_READ_EVENTS);
        let log = self.ctx.log.clone();
        // About as many bytes as the events wanted take (1 KiB each is typical); the
        // log returns at least one event whatever its size.
        let budget = (wanted * 1024).clamp(16 << 10, MAX_READ_BYTES);
        let stored = match log.read(&mut self.cursor, wanted, budget).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(subscription = %self.ctx.path, error = %e, "event grid: reading the topic's log failed; trying again in a second");
                self.read_again_at = Instant::now() + READ_BACKOFF;
                return;
            }
        };
        let ttl = self.ttl_ms();
        let mut expired = Vec::new();
        for event in stored {
            // Already owed a retry from before a restart: not new.
            if self.retries.was_recovered(event.seq) {
                continue;
            }
            let Some(out) = self.admit(event) else { continue };
            if now.saturating_sub(out.published_at) > ttl {
                expired.push(out);
            } else {
                self.pending.push_back(out);
            }
        }
        if !expired.is_empty() {
            let record = RetryRecord {
                seqs: expired.iter().map(|e| e.seq).collect(),
                attempts: 0,
                due: now,
                published_at: expired[0].published_at,
                last: None,
                last_attempt_at: None,
                dead_letter: Some(GiveUp::TimeToLive),
                dead_letter_since: None,
            };
            self.retries.file(record);
        }
    }

    /// Sends batches from `pending` while there is room: at most `maxEventsPerBatch`
    /// events and about the preferred size each (one event over it goes alone).
    fn launch_pending(&mut self, now: Millis) {
        let (max_events, preferred_bytes) = self.batch_limits();
        while !self.pending.is_empty() && self.jobs.len() < MAX_IN_FLIGHT && now >= self.probation_until {
            let mut batch = Vec::new();
            let mut bytes = 0;
            while let Some(next) = self.pending.front() {
                if !batch.is_empty() && (batch.len() >= max_events || bytes + next.json.len() > preferred_bytes) {
                    break;
                }
                bytes += next.json.len();
                batch.extend(self.pending.pop_front());
            }
            self.launch_first(batch, now);
        }
    }

    fn ttl_ms(&self) -> Millis {
        self.ctx.subscription.spec.retry_policy.event_time_to_live_in_minutes as Millis * 60_000
    }

    /// The event in the delivery schema, if the filter passes it.
    fn admit(&self, stored: StoredEvent) -> Option<OutEvent> {
        let ctx = &self.ctx;
        let out = out_event(stored, ctx.input, ctx.output, Some(&ctx.subscription.spec.filter))?;
        ctx.metrics.matched(1);
        Some(out)
    }

    fn launch_first(&mut self, batch: Vec<OutEvent>, now: Millis) {
        let seqs: Vec<i64> = batch.iter().map(|e| e.seq).collect();
        let published = batch.iter().map(|e| e.published_at).collect();
        self.first_attempts.insert(seqs[0]);
        let ctx = self.ctx.clone();
        let handle = self.jobs.spawn(async move { attempt(&ctx, &batch, 0).await });
        self.meta.insert(handle.id(), Job::First { seqs, published, started: now });
    }

    /// Starts every retry and dead-letter write that is due, as room allows.
    fn launch_due(&mut self, now: Millis) {
        let room = MAX_IN_FLIGHT.saturating_sub(self.jobs.len());
        if room == 0 {
            return;
        }
        let ttl = self.ttl_ms();
        for mut record in self.retries.take_due(now, room) {
            // The time to live is looked at only when an attempt comes due.
            if record.dead_letter.is_none() && now.saturating_sub(record.published_at) > ttl {
                record.dead_letter = Some(GiveUp::TimeToLive);
            }
            let first_seq = record.first_seq();
            let ctx = self.ctx.clone();
            let handle = match record.dead_letter {
                Some(why) => self.jobs.spawn(async move { dead_letter(&ctx, &record, why).await }),
                None => self.jobs.spawn(async move {
                    let events = read_events(&ctx.log, ctx.input, ctx.output, &record.seqs).await;
                    if events.is_empty() {
                        // Gone from the log (retention): nothing left to deliver.
                        return Done::Delivered;
                    }
                    attempt(&ctx, &events, record.attempts).await
                }),
            };
            self.meta.insert(handle.id(), Job::Retry { first_seq, started: now });
        }
    }

    fn finish(&mut self, done: Result<(Id, Done), tokio::task::JoinError>) {
        let (id, done) = match done {
            Ok(d) => d,
            Err(e) => {
                let failure = Failure { outcome: Outcome::Busy, status: None, detail: format!("the delivery task failed: {e}") };
                (e.id(), Done::Failed(failure))
            }
        };
        let Some(job) = self.meta.remove(&id) else { return };
        let now = self.ctx.clock.now_ms();
        match job {
            Job::First { seqs, published, started } => {
                self.first_attempts.remove(&seqs[0]);
                match done {
                    Done::Delivered => self.succeeded(published.into_iter(), now),
                    Done::Failed(f) => {
                        let published_at = published.iter().copied().min().unwrap_or(now);
                        let record = RetryRecord { seqs, attempts: 0, due: now, published_at, last: None, last_attempt_at: Some(started), dead_letter: None, dead_letter_since: None };
                        self.failed(record, f, now);
                    }
                    Done::DeadLettered { .. } => {}
                }
            }
            Job::Retry { first_seq, started } => {
                let Some(mut record) = self.retries.get(first_seq).cloned() else { return };
                match done {
                    Done::Delivered => {
                        self.retries.forget(first_seq);
                        // Retried events' latency counts from when they were published.
                        self.succeeded(std::iter::repeat_n(record.published_at, record.seqs.len()), now);
                    }
                    Done::Failed(f) => {
                        record.last_attempt_at = Some(started);
                        self.failed(record, f, now);
                    }
                    Done::DeadLettered { written: true, events, .. } => {
                        self.ctx.metrics.dead_lettered(events);
                        self.retries.forget(first_seq);
                    }
                    Done::DeadLettered { written: false, retry, events } => {
                        let since = *record.dead_letter_since.get_or_insert(now);
                        if retry && now - since < DEAD_LETTER_GIVE_UP_MS {
                            record.due = now + DEAD_LETTER_RETRY_MS;
                            self.retries.file(record);
                        } else {
                            self.ctx.metrics.dropped(events);
                            self.retries.forget(first_seq);
                        }
                    }
                }
            }
        }
    }

    fn succeeded(&mut self, published: impl Iterator<Item = Millis>, now: Millis) {
        self.consecutive_failures = 0;
        self.probation_until = 0;
        self.ctx.metrics.delivered(now, published);
    }

    /// Files a failed attempt: given up on at once for a final answer or the last
    /// allowed attempt, otherwise due again on the schedule.
    fn failed(&mut self, mut record: RetryRecord, failure: Failure, now: Millis) {
        self.ctx.metrics.failed(format!("{:?}: {}", failure.outcome, failure.detail));
        record.attempts += 1;
        self.consecutive_failures += 1;
        if self.consecutive_failures >= PROBATION_AFTER {
            self.probation_until = now + failure.probation();
        }
        let max = self.ctx.subscription.spec.retry_policy.max_delivery_attempts;
        if failure.is_final() {
            record.dead_letter = Some(GiveUp::FinalAnswer);
        } else if record.attempts >= max {
            record.dead_letter = Some(GiveUp::MaxDeliveryAttempts);
        }
        record.due = match record.dead_letter {
            Some(_) => now,
            None => now + retry_delay(record.attempts, &failure),
        };
        record.last = Some(failure);
        self.retries.file(record);
    }
}

/// One attempt to hand `events` to the subscription's destination.
async fn attempt(ctx: &Context, events: &[OutEvent], delivery_count: u32) -> Done {
    let name = &ctx.subscription.name;
    let result = match &ctx.subscription.spec.destination {
        Destination::WebHook { endpoint_url, .. } => {
            let request = outbound::notification(endpoint_url, name, ctx.output, events, delivery_count);
            match ctx.transport.http(request).await {
                Ok(r) if (200..=204).contains(&r.status) => Ok(()),
                Ok(r) => Err(Failure::from_status(r.status)),
                Err(f) => Err(Failure::from_http(&f)),
            }
        }
        destination => {
            let delivery = ServiceDelivery { topic: &ctx.subscription.topic, subscription: name, destination, schema: ctx.output, delivery_count, events };
            ctx.transport.to_service(delivery).await.map_err(|f| Failure::from_service(&f))
        }
    };
    match result {
        Ok(()) => Done::Delivered,
        Err(f) => Done::Failed(f),
    }
}

/// Writes the batch's dead-letter blob, or drops the events when the subscription
/// has no dead-letter container (as the service does).
async fn dead_letter(ctx: &Context, record: &RetryRecord, why: GiveUp) -> Done {
    let values: Vec<(Value, Millis)> = read_values(&ctx.log, ctx.input, ctx.output, &record.seqs).await.into_iter().map(|(_, v, at)| (v, at)).collect();
    let reason = match why {
        GiveUp::MaxDeliveryAttempts => DeadLetterReason::MaxDeliveryAttemptsExceeded,
        GiveUp::TimeToLive => DeadLetterReason::TimeToLiveExceeded,
        GiveUp::FinalAnswer => DeadLetterReason::Undeliverable,
    };
    let info = DeadLetterInfo { reason, attempts: record.attempts, last: record.last.as_ref(), last_attempt_at: record.last_attempt_at };
    let now = ctx.clock.now_ms();
    let n = values.len();
    let written = write_dead_letter(Some(ctx.transport.as_ref()), &ctx.subscription, n, || outbound::dead_letter_blob(&ctx.subscription.name, ctx.output, &values, &info, now)).await;
    // Without a container there is nothing to try again; a failed write is.
    let retry = !written && ctx.subscription.spec.dead_letter_container.is_some();
    Done::DeadLettered { written, retry, events: n }
}
