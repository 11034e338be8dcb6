//! The producer and consumer loops and their tallies.
//!
//! A producer sends batch messages (format 0x80013700): an outer message whose body
//! is one `data` section per event, each holding a complete encoded inner message —
//! itself one `data` section of `size` bytes whose first 8 bytes are the batch's send
//! time (nanoseconds since the process's clock base, little endian). It keeps up to
//! `inflight` batches sent and not yet accepted; with a rate it sends on a fixed
//! schedule (open loop: a batch waits for its slot, not for the previous answer).
//!
//! A consumer reads one partition from `@latest` (attached before any producer
//! starts); deliveries arrive pre-settled. End-to-end latency is the time it got an
//! event minus the send time in the event (same process, same monotonic clock).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use fe2o3_amqp::link::delivery::{Delivery, Sendable};
use fe2o3_amqp::types::messaging::{Data, Message, Outcome};
use fe2o3_amqp::{Receiver, Sender};
use futures_util::stream::{FuturesUnordered, StreamExt};
use hdrhistogram::Histogram;

use crate::amqp::{Conn, CLOSE_TIMEOUT};
use crate::errors::Errors;

/// The batch message format of Event Hubs (Microsoft's 0x80013700).
pub const BATCH_FORMAT: u32 = 0x8001_3700;
/// How long one batch may wait for its disposition before it counts as failed.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// A rate-limited producer more than this behind its schedule starts over from now
/// (counted as `late`), instead of sending a burst to catch up.
const MAX_LAG: Duration = Duration::from_millis(100);

static BASE: OnceLock<Instant> = OnceLock::new();

pub fn base() -> Instant {
    *BASE.get_or_init(Instant::now)
}

pub fn stamp_now() -> u64 {
    base().elapsed().as_nanos() as u64
}

fn stamp_at(t: Instant) -> u64 {
    t.saturating_duration_since(base()).as_nanos() as u64
}

/// The encoded inner message: a `data` section (descriptor 0x75, vbin32) of `size`
/// bytes; the stamp goes at [`STAMP_AT`].
pub fn inner_template(size: usize) -> Vec<u8> {
    let mut m = Vec::with_capacity(size + 8);
    m.extend_from_slice(&[0x00, 0x53, 0x75, 0xb0]);
    m.extend_from_slice(&(size as u32).to_be_bytes());
    m.extend(std::iter::repeat_n(b'x', size));
    m
}
pub const STAMP_AT: usize = 8;

fn batch(template: &[u8], events: usize, stamp: u64) -> Sendable<fe2o3_amqp::types::messaging::Batch<Data>> {
    let datas = (0..events).map(|_| {
        let mut m = template.to_vec();
        m[STAMP_AT..STAMP_AT + 8].copy_from_slice(&stamp.to_le_bytes());
        Data::from(m)
    });
    Sendable::builder().message(Message::builder().data_batch(datas).build()).message_format(BATCH_FORMAT).build()
}

/// Sets every event's stamp in a batch built once and sent again and again, so the
/// load generator does not copy each event into a new buffer per batch (its CPU is
/// taken from the same 2 cores as Lapis's).
fn restamp(sendable: &mut Sendable<fe2o3_amqp::types::messaging::Batch<Data>>, stamp: u64) {
    for data in sendable.message.body.iter_mut() {
        data.0[STAMP_AT..STAMP_AT + 8].copy_from_slice(&stamp.to_le_bytes());
    }
}

fn new_hist() -> Histogram<u64> {
    crate::hist::new_hist(600_000_000)
}

/// What the loops count; merged over all workers at the end.
pub struct Tally {
    /// Events (and batches) sent inside the measured window and accepted before its end.
    pub events: u64,
    pub batches: u64,
    /// Accepted over the whole run, warm-up included.
    pub events_total: u64,
    /// Events consumers got (whole run) and inside the window (by send stamp).
    pub received_total: u64,
    pub received: u64,
    /// Events consumers got between the window's start and end, whenever sent.
    pub arrived: u64,
    /// Rate-limited sends that fell more than MAX_LAG behind their schedule.
    pub late: u64,
    pub errors: Errors,
    /// Batch send → accepted, microseconds.
    pub send_us: Histogram<u64>,
    /// Send → delivery at the consumer, per event, microseconds.
    pub e2e_us: Histogram<u64>,
    /// When the last batch was accepted (fill: the elapsed time).
    pub last_accept: Option<Instant>,
}

impl Tally {
    pub fn new() -> Self {
        Tally {
            events: 0,
            batches: 0,
            events_total: 0,
            received_total: 0,
            received: 0,
            arrived: 0,
            late: 0,
            errors: Errors::default(),
            send_us: new_hist(),
            e2e_us: new_hist(),
            last_accept: None,
        }
    }

    pub fn error(&mut self, what: String) {
        self.errors.record(what);
    }

    pub fn merge(&mut self, o: Tally) {
        self.events += o.events;
        self.batches += o.batches;
        self.events_total += o.events_total;
        self.received_total += o.received_total;
        self.received += o.received;
        self.arrived += o.arrived;
        self.late += o.late;
        self.errors.merge(o.errors);
        let _ = self.send_us.add(&o.send_us);
        let _ = self.e2e_us.add(&o.e2e_us);
        self.last_accept = self.last_accept.max(o.last_accept);
    }
}

/// When to count and when to stop. `quota` (fill) caps the events over all
/// producers: each batch first claims its events below the count.
pub struct Plan {
    pub start: Instant,
    pub deadline: Instant,
    /// Consumers keep reading this long past the deadline (what was sent last).
    pub drain: Duration,
    pub size: usize,
    pub batch: usize,
    pub inflight: usize,
    /// Per producer: time between two batches (rate-limited runs).
    pub interval: Option<Duration>,
    pub quota: Option<(Arc<AtomicU64>, u64)>,
}

type InFlight = std::pin::Pin<Box<dyn std::future::Future<Output = (Instant, Option<Result<Outcome, String>>)> + Send>>;

pub async fn producer_loop(name: String, conn: Conn, mut sender: Sender, plan: Arc<Plan>, index: usize, producers: usize) -> Tally {
    let mut t = Tally::new();
    let mut sendable = batch(&inner_template(plan.size), plan.batch, 0);
    let mut inflight: FuturesUnordered<InFlight> = FuturesUnordered::new();
    // Rate-limited producers are staggered over one interval.
    let mut next_at = match plan.interval {
        Some(iv) => Instant::now() + iv.mul_f64(index as f64 / producers.max(1) as f64),
        None => Instant::now(),
    };
    let mut stopping = false;
    loop {
        let now = Instant::now();
        if now >= plan.deadline {
            stopping = true;
        }
        let due = plan.interval.is_none() || now >= next_at;
        if !stopping && inflight.len() < plan.inflight && due {
            if let Some((claimed, count)) = &plan.quota {
                if claimed.fetch_add(plan.batch as u64, Ordering::Relaxed) >= *count {
                    stopping = true;
                    continue;
                }
            }
            if let Some(iv) = plan.interval {
                if now > next_at + MAX_LAG {
                    t.late += 1;
                    next_at = now;
                }
                next_at += iv;
            }
            let t0 = Instant::now();
            restamp(&mut sendable, stamp_at(t0));
            match tokio::time::timeout(SEND_TIMEOUT, sender.send_batchable_ref(&sendable)).await {
                Ok(Ok(fut)) => inflight.push(Box::pin(async move {
                    let r = tokio::time::timeout(SEND_TIMEOUT, fut).await;
                    (t0, Some(r.map_err(|_| format!("send timeout: no disposition within {SEND_TIMEOUT:?}")).and_then(|o| o.map_err(|e| format!("send error: {e}")))))
                })),
                Ok(Err(e)) => {
                    t.error(format!("send error: {e}"));
                    break;
                }
                Err(_) => {
                    t.error("send timeout: the transfer could not be sent (no credit?)".into());
                    break;
                }
            }
            continue;
        }
        if stopping && inflight.is_empty() {
            break;
        }
        let wake = if stopping { None } else if plan.interval.is_some() && inflight.len() < plan.inflight { Some(next_at.min(plan.deadline)) } else { Some(plan.deadline) };
        tokio::select! {
            Some((t0, r)) = inflight.next(), if !inflight.is_empty() => {
                let t1 = Instant::now();
                match r {
                    Some(Ok(Outcome::Accepted(_))) => {
                        t.events_total += plan.batch as u64;
                        t.last_accept = Some(t1);
                        if t0 >= plan.start && t1 <= plan.deadline {
                            t.events += plan.batch as u64;
                            t.batches += 1;
                            let _ = t.send_us.record((t1 - t0).as_micros().max(1) as u64);
                        }
                    }
                    Some(Ok(other)) => t.error(format!("send outcome: {other:?}")),
                    Some(Err(e)) => { t.error(e); stopping = true; }
                    None => {}
                }
            }
            _ = sleep_until_opt(wake) => {}
        }
    }
    // Waits for what is still in flight after an error, then closes in the background.
    while let Some((_, r)) = inflight.next().await {
        if let Some(Ok(Outcome::Accepted(_))) = r {
            t.events_total += plan.batch as u64;
        }
    }
    tokio::spawn(async move {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sender.close()).await;
        conn.close().await;
    });
    let _ = name;
    t
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

fn stamp_of(d: &Delivery<Data>) -> Option<u64> {
    let bytes: [u8; 8] = d.body().0.as_slice().get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

pub async fn consumer_loop(name: String, conn: Conn, mut receiver: Receiver, plan: Arc<Plan>) -> Tally {
    let mut t = Tally::new();
    let (from, to) = (stamp_at(plan.start), stamp_at(plan.deadline));
    let end = plan.deadline + plan.drain;
    loop {
        match tokio::time::timeout_at(end.into(), receiver.recv::<Data>()).await {
            Err(_) => break,
            Ok(Ok(d)) => {
                let got = stamp_now();
                t.received_total += 1;
                if got >= from && got <= to {
                    t.arrived += 1;
                }
                match stamp_of(&d) {
                    Some(sent) if sent >= from && sent <= to => {
                        t.received += 1;
                        let _ = t.e2e_us.record((got.saturating_sub(sent) / 1000).max(1));
                    }
                    Some(_) => {}
                    None => t.error("receive: an event without the 8-byte send stamp".into()),
                }
            }
            Ok(Err(e)) => {
                t.error(format!("receive error: {e}"));
                break;
            }
        }
    }
    tokio::spawn(async move {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, receiver.close()).await;
        conn.close().await;
    });
    let _ = name;
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use fe2o3_amqp::types::messaging::message::__private::Deserializable;

    #[test]
    fn an_inner_message_is_one_data_section_carrying_the_stamp() {
        let mut m = inner_template(1024);
        m[STAMP_AT..STAMP_AT + 8].copy_from_slice(&42u64.to_le_bytes());
        let Deserializable(msg): Deserializable<Message<Data>> = serde_amqp::from_slice(&m).expect("a valid AMQP message");
        assert_eq!(msg.body.0.len(), 1024);
        assert_eq!(u64::from_le_bytes(msg.body.0[..8].try_into().unwrap()), 42);
    }

    #[test]
    fn a_batch_is_format_0x80013700_with_one_data_section_per_event() {
        let s = batch(&inner_template(16), 3, 7);
        assert_eq!(s.message_format, 0x8001_3700);
        assert_eq!(s.message.body.len(), 3);
        for d in s.message.body.iter() {
            assert_eq!(&d.0[..4], &[0x00, 0x53, 0x75, 0xb0]);
            assert_eq!(u64::from_le_bytes(d.0[STAMP_AT..STAMP_AT + 8].try_into().unwrap()), 7);
        }
    }

    #[test]
    fn restamping_changes_every_stamp_and_nothing_else() {
        let mut s = batch(&inner_template(16), 3, 7);
        restamp(&mut s, 9);
        let fresh = batch(&inner_template(16), 3, 9);
        assert_eq!(s.message.body.iter().map(|d| d.0.to_vec()).collect::<Vec<_>>(), fresh.message.body.iter().map(|d| d.0.to_vec()).collect::<Vec<_>>());
    }
}
