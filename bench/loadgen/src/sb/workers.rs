//! The load loops and their tallies.
//!
//! A sender is closed-loop: it sends one 1 KiB message and waits for the broker's
//! disposition (publisher confirm) before the next. The body's first 8 bytes carry
//! the send time (nanoseconds since the process's clock base, little endian); the
//! rest is filler. A receiver takes unsettled deliveries (peek-lock) and settles each
//! with `accepted`; end-to-end latency is the time it got the delivery minus the
//! send time in the body (same process, same monotonic clock).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use fe2o3_amqp::link::delivery::Delivery;
use fe2o3_amqp::types::messaging::{Body, Message, Outcome};
use fe2o3_amqp::types::primitives::{Binary, Value};
use fe2o3_amqp::{Receiver, Sender};
use hdrhistogram::Histogram;

use crate::amqp::{Conn, Endpoint, CLOSE_TIMEOUT};
use crate::errors::Errors;

/// How long one send may wait for its disposition before it counts as failed.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

static BASE: OnceLock<Instant> = OnceLock::new();

fn base() -> Instant {
    *BASE.get_or_init(Instant::now)
}

pub fn stamp_now() -> u64 {
    base().elapsed().as_nanos() as u64
}

/// A `size`-byte body stamped with the send time.
pub fn body(size: usize, stamp: u64) -> Vec<u8> {
    let mut b = vec![b'x'; size.max(8)];
    b[..8].copy_from_slice(&stamp.to_le_bytes());
    b
}

fn stamp_of(d: &Delivery<Body<Value>>) -> Option<u64> {
    let data = d.body().try_as_data().ok()?.next()?;
    let bytes: [u8; 8] = data.as_slice().get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

fn new_hist() -> Histogram<u64> {
    crate::hist::new_hist(600_000_000)
}

/// What the loops count; merged over all workers at the end.
pub struct Tally {
    /// Sends accepted by the broker inside the measured window (counted by send start).
    pub sent: u64,
    /// Deliveries received and accepted inside the measured window.
    pub completed: u64,
    /// Over the whole run, warm-up included: the backlog left is their difference.
    pub sent_total: u64,
    pub received_total: u64,
    pub errors: Errors,
    pub reconnects: u64,
    /// Send → disposition, microseconds.
    pub send_us: Histogram<u64>,
    /// Send start → delivery at the receiver, microseconds.
    pub e2e_us: Histogram<u64>,
}

impl Tally {
    pub fn new() -> Self {
        Tally {
            sent: 0,
            completed: 0,
            sent_total: 0,
            received_total: 0,
            errors: Errors::default(),
            reconnects: 0,
            send_us: new_hist(),
            e2e_us: new_hist(),
        }
    }

    fn error(&mut self, what: String) {
        self.errors.record(what);
    }

    pub fn merge(&mut self, o: Tally) {
        self.sent += o.sent;
        self.completed += o.completed;
        self.sent_total += o.sent_total;
        self.received_total += o.received_total;
        self.errors.merge(o.errors);
        self.reconnects += o.reconnects;
        let _ = self.send_us.add(&o.send_us);
        let _ = self.e2e_us.add(&o.e2e_us);
    }
}

/// When to count and when to stop. `quota` (fill) caps the total sends over all
/// senders: each send first claims a number below `count`.
pub struct Plan {
    pub start: Instant,
    pub deadline: Instant,
    pub size: usize,
    pub quota: Option<(Arc<AtomicU64>, u64)>,
}

pub async fn sender_loop(ep: Endpoint, name: String, mut conn: Conn, mut sender: Sender, plan: Arc<Plan>) -> Tally {
    let mut t = Tally::new();
    loop {
        if let Some((next, count)) = &plan.quota {
            if next.fetch_add(1, Ordering::Relaxed) >= *count {
                break;
            }
        }
        let t0 = Instant::now();
        if t0 >= plan.deadline {
            break;
        }
        let stamp = stamp_now();
        let message = Message::builder().data(Binary::from(body(plan.size, stamp))).build();
        let r = tokio::time::timeout(SEND_TIMEOUT, sender.send(message)).await;
        let t1 = Instant::now();
        let failure = match r {
            Ok(Ok(Outcome::Accepted(_))) => {
                t.sent_total += 1;
                if t0 >= plan.start && t1 <= plan.deadline {
                    t.sent += 1;
                    let _ = t.send_us.record((t1 - t0).as_micros().max(1) as u64);
                }
                continue;
            }
            Ok(Ok(other)) => {
                // A refusal leaves the link usable.
                t.error(format!("send outcome: {other:?}"));
                continue;
            }
            Ok(Err(e)) => format!("send error: {e}"),
            Err(_) => format!("send timeout: no disposition within {SEND_TIMEOUT:?}"),
        };
        t.error(failure);
        // The link (or the connection) is gone: start over on a new connection.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sender.close()).await;
        conn.close().await;
        match reconnect_sender(&ep, &name, t.reconnects).await {
            Ok((c, s)) => {
                conn = c;
                sender = s;
                t.reconnects += 1;
            }
            Err(e) => {
                t.error(format!("reconnect: {e}"));
                return t;
            }
        }
    }
    // Closing runs on past the figures: main prints them and then gives it a moment.
    tokio::spawn(async move {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sender.close()).await;
        conn.close().await;
    });
    t
}

async fn reconnect_sender(ep: &Endpoint, name: &str, n: u64) -> Result<(Conn, Sender), String> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cname = format!("{name}-r{n}");
    let mut c = ep.connect(&cname).await?;
    let s = ep.sender(&mut c, &format!("{cname}-link")).await?;
    Ok((c, s))
}

pub async fn receiver_loop(ep: Endpoint, name: String, mut conn: Conn, mut receiver: Receiver, prefetch: u32, plan: Arc<Plan>) -> Tally {
    let mut t = Tally::new();
    loop {
        let r = tokio::time::timeout_at(plan.deadline.into(), receiver.recv::<Body<Value>>()).await;
        let failure = match r {
            Err(_) => break, // the run is over
            Ok(Ok(d)) => {
                let now = Instant::now();
                let got = stamp_now();
                if let Err(e) = receiver.accept(&d).await {
                    t.error(format!("accept error: {e}"));
                    continue;
                }
                t.received_total += 1;
                if now >= plan.start {
                    t.completed += 1;
                    match stamp_of(&d) {
                        Some(sent) => {
                            let _ = t.e2e_us.record((got.saturating_sub(sent) / 1000).max(1));
                        }
                        None => t.error("receive: a delivery without the 8-byte send stamp".into()),
                    }
                }
                continue;
            }
            Ok(Err(e)) => format!("receive error: {e}"),
        };
        t.error(failure);
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, receiver.close()).await;
        conn.close().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let cname = format!("{name}-r{}", t.reconnects);
        let fresh = async {
            let mut c = ep.connect(&cname).await?;
            let r = ep.receiver(&mut c, &format!("{cname}-link"), prefetch).await?;
            Ok::<_, String>((c, r))
        };
        match fresh.await {
            Ok((c, r)) => {
                conn = c;
                receiver = r;
                t.reconnects += 1;
            }
            Err(e) => {
                t.error(format!("reconnect: {e}"));
                return t;
            }
        }
    }
    // Unsettled deliveries still in the prefetch go back to the queue when the link closes.
    tokio::spawn(async move {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, receiver.close()).await;
        conn.close().await;
    });
    t
}
