//! The load itself: the closed-loop workers of the put, cycle and fill modes
//! (one per connection), the queue they share (`ensure_queue`), the message
//! they put (`message_body`) and how they back off after failures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;

use crate::client::{answered, Client, Endpoint, Resp};
use crate::sign::Signer;
use crate::stats::Stats;
use crate::xml;

/// 1 KiB-ish message text of `size` characters that need no XML escaping.
pub fn message_body(size: usize, seed: u64) -> Bytes {
    const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407) | 1;
    let mut s = Vec::with_capacity(size + 64);
    s.extend_from_slice(b"<QueueMessage><MessageText>");
    for _ in 0..size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push(ALPHA[(x % 64) as usize]);
    }
    s.extend_from_slice(b"</MessageText></QueueMessage>");
    Bytes::from(s)
}

fn us_since(t: Instant) -> u64 {
    t.elapsed().as_micros().max(1) as u64
}

async fn backoff(n: u32) {
    tokio::time::sleep(Duration::from_millis((5 * n as u64).min(200))).await;
}

/// Create the queue; 201 (created) and 204 (already there) are both fine.
pub async fn ensure_queue(ep: Arc<Endpoint>, signer: Signer, queue: &str) -> Result<(), String> {
    let mut c = Client::new(ep, signer);
    let r = c.call(Method::PUT, &format!("/{queue}"), &[], None).await?;
    match r.status {
        201 | 204 => Ok(()),
        s => Err(format!("create queue {queue}: HTTP {s}: {}", r.snippet())),
    }
}

/// What every worker carries: its connection, its tallies, the message it
/// puts, the queue's `/messages` path and its run of consecutive failures.
struct Worker {
    c: Client,
    st: Stats,
    body: Bytes,
    path: String,
    consecutive_err: u32,
}

impl Worker {
    fn new(c: Client, queue: &str, size: usize, seed: u64) -> Self {
        Worker {
            c,
            st: Stats::new(),
            body: message_body(size, seed),
            path: format!("/{queue}/messages"),
            consecutive_err: 0,
        }
    }

    /// Put Message with this worker's body.
    async fn put(&mut self) -> Result<Resp, String> {
        self.c.call(Method::POST, &self.path, &[], Some(self.body.clone())).await
    }

    /// One timed Put Message as the put and fill modes count it (latency from
    /// `t0` into `main`); backs off only after a transport error.
    async fn put_step(&mut self, t0: Instant, record: bool) {
        let r = self.put().await;
        let ok = answered(&r, 201);
        self.st.note("put", &r, record);
        if record {
            if ok {
                self.st.ok += 1;
                self.st.main.saturating_record(us_since(t0));
            } else {
                self.st.errors += 1;
            }
        }
        self.consecutive_err = if ok { 0 } else { self.consecutive_err + 1 };
        if r.is_err() {
            backoff(self.consecutive_err).await;
        }
    }

    /// A failed cycle: count the error (if recording) and back off.
    async fn fail(&mut self, record: bool) {
        if record {
            self.st.errors += 1;
        }
        self.consecutive_err += 1;
        backoff(self.consecutive_err).await;
    }

    fn finish(self) -> Stats {
        let mut st = self.st;
        st.reconnects = self.c.reconnects;
        st
    }
}

pub async fn worker_put(
    c: Client,
    queue: String,
    size: usize,
    seed: u64,
    start: Instant,
    deadline: Instant,
) -> Stats {
    let mut w = Worker::new(c, &queue, size, seed);
    loop {
        let t0 = Instant::now();
        if t0 >= deadline {
            break;
        }
        w.put_step(t0, t0 >= start).await;
    }
    w.finish()
}

pub async fn worker_cycle(
    c: Client,
    queue: String,
    size: usize,
    seed: u64,
    visibility: u32,
    start: Instant,
    deadline: Instant,
) -> Stats {
    let mut w = Worker::new(c, &queue, size, seed);
    let vt = visibility.to_string();
    'outer: loop {
        let t0 = Instant::now();
        if t0 >= deadline {
            break;
        }
        let record = t0 >= start;

        // put
        let r = w.put().await;
        w.st.note("put", &r, record);
        if !answered(&r, 201) {
            w.fail(record).await;
            continue;
        }
        if record {
            w.st.put.saturating_record(us_since(t0));
        }

        // get (retry a few times if the queue looks empty: another worker
        // may hold the message we just put, and ours may be theirs)
        let mut got = None;
        for attempt in 0..20 {
            if Instant::now() >= deadline + Duration::from_secs(2) {
                break 'outer;
            }
            let t1 = Instant::now();
            let r = w.c.call(Method::GET, &w.path, &[("visibilitytimeout", &vt)], None).await;
            w.st.note("get", &r, record);
            match &r {
                Ok(x) if x.status == 200 => {
                    if record {
                        w.st.get.saturating_record(us_since(t1));
                    }
                    match xml::first_message(&x.body) {
                        Some(m) => {
                            got = Some(m);
                            break;
                        }
                        None => {
                            if record {
                                w.st.empty_gets += 1;
                            }
                            tokio::time::sleep(Duration::from_millis(1 + attempt)).await;
                        }
                    }
                }
                _ => break,
            }
        }
        let Some((id, pop)) = got else {
            w.fail(record).await;
            continue;
        };

        // delete
        let t2 = Instant::now();
        let r = w
            .c
            .call(Method::DELETE, &format!("{}/{id}", w.path), &[("popreceipt", &pop)], None)
            .await;
        w.st.note("delete", &r, record);
        if !answered(&r, 204) {
            w.fail(record).await;
            continue;
        }
        w.consecutive_err = 0;
        if record {
            w.st.del.saturating_record(us_since(t2));
            w.st.ok += 1;
            w.st.main.saturating_record(us_since(t0));
        }
    }
    w.finish()
}

pub async fn worker_fill(
    c: Client,
    queue: String,
    size: usize,
    seed: u64,
    next: Arc<AtomicU64>,
    total: u64,
    deadline: Instant,
) -> Stats {
    let mut w = Worker::new(c, &queue, size, seed);
    while next.fetch_add(1, Ordering::Relaxed) < total {
        if Instant::now() >= deadline || w.consecutive_err > 200 {
            break;
        }
        w.put_step(Instant::now(), true).await;
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_body_size() {
        let b = message_body(1024, 1);
        let s = std::str::from_utf8(&b).unwrap();
        let text = s
            .strip_prefix("<QueueMessage><MessageText>")
            .unwrap()
            .strip_suffix("</MessageText></QueueMessage>")
            .unwrap();
        assert_eq!(text.len(), 1024);
    }
}
