//! The webhook receivers of `egload`: plain HTTP/1.1 servers on 127.0.0.1 that pass
//! Event Grid's validation handshake and, for every delivered event, take the send
//! time the publisher wrote into its id and record publish → delivery latency.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::net::TcpListener;

use crate::hist::new_hist;

/// What one receiver saw.
pub struct Hook {
    pub url: String,
    pub events: AtomicU64,
    pub requests: AtomicU64,
    /// publish → delivery, µs, for events sent at or after `record_from_us`.
    pub latency: Mutex<Histogram<u64>>,
    pub record_from_us: AtomicU64,
}

/// The send times (µs since `base`) in the ids of the delivered events: each id is
/// `<µs>-<publisher>-<n>`.
fn send_times(body: &[u8]) -> Vec<u64> {
    let finder = memchr::memmem::Finder::new(b"\"id\":\"");
    finder
        .find_iter(body)
        .filter_map(|at| {
            let digits = &body[at + 6..];
            let end = digits.iter().position(|b| !b.is_ascii_digit())?;
            (end > 0 && digits.get(end) == Some(&b'-')).then(|| std::str::from_utf8(&digits[..end]).ok()?.parse().ok())?
        })
        .collect()
}

async fn answer(hook: Arc<Hook>, base: Instant, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let validation = req.headers().get("aeg-event-type").is_some_and(|v| v == "SubscriptionValidation");
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    if validation {
        let code = serde_json::from_slice::<serde_json::Value>(&body).ok().and_then(|v| v[0]["data"]["validationCode"].as_str().map(str::to_string)).unwrap_or_default();
        return Ok(Response::new(Full::new(Bytes::from(serde_json::json!({ "validationResponse": code }).to_string()))));
    }
    let now = base.elapsed().as_micros() as u64;
    let times = send_times(&body);
    hook.requests.fetch_add(1, Ordering::Relaxed);
    hook.events.fetch_add(times.len() as u64, Ordering::Relaxed);
    let from = hook.record_from_us.load(Ordering::Relaxed);
    {
        let mut h = hook.latency.lock().expect("latency lock");
        for t in times.into_iter().filter(|t| *t >= from) {
            let _ = h.record(now.saturating_sub(t).max(1));
        }
    }
    Ok(Response::new(Full::new(Bytes::new())))
}

/// Starts one receiver; it serves until the process ends.
pub async fn start(base: Instant) -> std::io::Result<Arc<Hook>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/api/updates", listener.local_addr()?);
    let hook = Arc::new(Hook { url, events: AtomicU64::new(0), requests: AtomicU64::new(0), latency: Mutex::new(new_hist(60_000_000)), record_from_us: AtomicU64::new(u64::MAX) });
    let serving = hook.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let hook = serving.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| answer(hook.clone(), base, req));
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
            });
        }
    });
    Ok(hook)
}

#[cfg(test)]
mod tests {
    #[test]
    fn send_times_are_read_from_the_ids() {
        let body = br#"[{"data":{"p":"x"},"id":"123-0-1","topic":"t"},{"id":"77-1-9"},{"id":"nope"}]"#;
        assert_eq!(super::send_times(body), [123, 77]);
    }
}
