//! The publishing side of `egload`: the admin calls that make the topic and its
//! webhook subscriptions, and publishers that post batches of Event Grid events over
//! keep-alive HTTP/1.1 connections, as fast as they are answered or at a set rate.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use serde_json::Value;
use tokio::net::TcpStream;

use crate::hist::new_hist;
use crate::sas;

pub async fn connect(port: u16) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn call(sender: &mut SendRequest<Full<Bytes>>, req: Request<Full<Bytes>>) -> Result<(u16, Bytes), String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((status, body))
}

/// One admin API request, signed with the development key.
pub async fn admin(port: u16, method: Method, path: &str, body: Option<Value>) -> Result<(u16, Value), String> {
    let url = format!("http://127.0.0.1:{port}{path}");
    let expiry = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) + 3600;
    let token = sas::token(&url, sas::DEV_KEY_NAME, sas::DEV_KEY, expiry);
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = Request::builder().method(method).uri(path).header("host", format!("127.0.0.1:{port}")).header("authorization", token).header("content-type", "application/json").body(Full::new(Bytes::from(body))).map_err(|e| e.to_string())?;
    let mut sender = connect(port).await?;
    let (status, body) = call(&mut sender, req).await?;
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// What the publishers share.
pub struct Publishing {
    pub port: u16,
    pub topic: String,
    pub key: String,
    pub batch: usize,
    pub size: usize,
    /// Events per second per publisher; 0 = as fast as answered.
    pub rate: f64,
    pub base: Instant,
    pub stop: AtomicBool,
    /// Counted from `measure_from_us` on.
    pub measure_from_us: AtomicU64,
    pub acked: AtomicU64,
    pub acked_total: AtomicU64,
    pub errors: AtomicU64,
    pub ack_latency: Mutex<Histogram<u64>>,
    pub last_error: Mutex<Option<String>>,
}

impl Publishing {
    pub fn new(port: u16, topic: String, key: String, batch: usize, size: usize, rate: f64, base: Instant) -> Arc<Publishing> {
        Arc::new(Publishing {
            port,
            topic,
            key,
            batch,
            size,
            rate,
            base,
            stop: AtomicBool::new(false),
            measure_from_us: AtomicU64::new(u64::MAX),
            acked: AtomicU64::new(0),
            acked_total: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            ack_latency: Mutex::new(new_hist(60_000_000)),
            last_error: Mutex::new(None),
        })
    }
}

/// A batch of `n` events of about `size` bytes each, ids carrying the send time.
fn batch_body(p: &Publishing, publisher: usize, first: u64, sent_us: u64) -> Vec<u8> {
    let skeleton = r#"{"id":"00000000000-000-0000000000","subject":"bench/tracks","eventType":"Bench.TrackPlayed","eventTime":"2026-12-02T00:00:00Z","dataVersion":"1","data":{"p":""}}"#.len();
    let padding = "x".repeat(p.size.saturating_sub(skeleton));
    let mut body = Vec::with_capacity(p.batch * (p.size + 8));
    body.push(b'[');
    for i in 0..p.batch as u64 {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(
            format!(r#"{{"id":"{sent_us}-{publisher}-{}","subject":"bench/tracks","eventType":"Bench.TrackPlayed","eventTime":"2026-12-02T00:00:00Z","dataVersion":"1","data":{{"p":"{padding}"}}}}"#, first + i).as_bytes(),
        );
    }
    body.push(b']');
    body
}

/// One publisher: a connection posting batches until told to stop.
pub async fn publisher(p: Arc<Publishing>, id: usize) {
    let mut sender = match connect(p.port).await {
        Ok(s) => s,
        Err(e) => {
            p.errors.fetch_add(1, Ordering::Relaxed);
            *p.last_error.lock().expect("error lock") = Some(e);
            return;
        }
    };
    let path = format!("/topics/{}/api/events?api-version=2018-01-01", p.topic);
    let interval = (p.rate > 0.0).then(|| Duration::from_secs_f64(p.batch as f64 / p.rate));
    let mut next = Instant::now();
    let mut n = 0u64;
    while !p.stop.load(Ordering::Relaxed) {
        if let Some(every) = interval {
            let now = Instant::now();
            if next > now {
                tokio::time::sleep(next - now).await;
            }
            next += every;
        }
        let sent_us = p.base.elapsed().as_micros() as u64;
        let body = batch_body(&p, id, n, sent_us);
        n += p.batch as u64;
        let req = Request::builder()
            .method(Method::POST)
            .uri(&path)
            .header("host", format!("127.0.0.1:{}", p.port))
            .header("aeg-sas-key", &p.key)
            .header("content-type", "application/json; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
            .expect("a request builds");
        match call(&mut sender, req).await {
            Ok((200, _)) => {
                let done = p.base.elapsed().as_micros() as u64;
                p.acked_total.fetch_add(p.batch as u64, Ordering::Relaxed);
                if sent_us >= p.measure_from_us.load(Ordering::Relaxed) {
                    p.acked.fetch_add(p.batch as u64, Ordering::Relaxed);
                    let _ = p.ack_latency.lock().expect("latency lock").record(done.saturating_sub(sent_us).max(1));
                }
            }
            Ok((status, body)) => {
                p.errors.fetch_add(1, Ordering::Relaxed);
                *p.last_error.lock().expect("error lock") = Some(format!("{status}: {}", String::from_utf8_lossy(&body[..body.len().min(200)])));
            }
            Err(e) => {
                p.errors.fetch_add(1, Ordering::Relaxed);
                *p.last_error.lock().expect("error lock") = Some(e);
                match connect(p.port).await {
                    Ok(s) => sender = s,
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
    }
}
