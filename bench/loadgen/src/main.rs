//! Load generator for `bench/run queue`: drives an Azure Storage Queue REST
//! endpoint (Lapis or Azurite) with Shared Key signed requests over C
//! keep-alive HTTP/1.1 connections, one closed-loop worker per connection, and
//! prints one JSON line with the figures.
//!
//! Modes:
//!   put    workers loop Put Message for --duration seconds (after --warmup)
//!   cycle  workers loop put 1 / get 1 (visibilitytimeout=30) / delete it
//!   fill   put --count messages as fast as possible, then stop
//!   wait   poll --url until it answers HTTP (--expect STATUS to require one)
//!   ports  print --count free loopback TCP ports, one per line
//!
//! It only talks to loopback addresses and refuses any other host.

mod sign;
mod xml;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};
use tokio::net::TcpStream;

use sign::Signer;

const DEV_ACCOUNT: &str = "devstoreaccount1";
const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const API_VERSION: &str = "2021-12-02";
const CONTENT_TYPE: &str = "application/xml";

/// RFC 3986 unreserved characters stay; everything else is %-encoded.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

#[derive(Clone, Debug)]
struct Args {
    mode: String,
    endpoint: String,
    url: String,
    connections: usize,
    duration: f64,
    warmup: f64,
    count: u64,
    size: usize,
    queue: String,
    key: String,
    timeout: f64,
    expect: Option<u16>,
    visibility: u32,
}

fn usage() -> ! {
    eprintln!(
        "usage: loadgen --mode put|cycle|fill --endpoint http://127.0.0.1:PORT/devstoreaccount1 \
         [--connections C] [--duration S] [--warmup S] [--count N] [--size BYTES] [--queue NAME] \
         [--key BASE64] [--timeout S]\n       loadgen --mode wait --url http://127.0.0.1:PORT/path \
         [--expect 200] [--timeout S]\n       loadgen --mode ports --count N"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        mode: String::new(),
        endpoint: String::new(),
        url: String::new(),
        connections: 32,
        duration: 5.0,
        warmup: 1.0,
        count: 0,
        size: 1024,
        queue: "bench".into(),
        key: DEV_KEY.into(),
        timeout: 600.0,
        expect: None,
        visibility: 30,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            usage();
        }
        let val = it.next().unwrap_or_else(|| {
            eprintln!("missing value for {flag}");
            usage()
        });
        let num = |v: &str| -> f64 {
            v.parse().unwrap_or_else(|_| {
                eprintln!("bad number for {flag}: {v}");
                usage()
            })
        };
        match flag.as_str() {
            "--mode" => a.mode = val,
            "--endpoint" => a.endpoint = val,
            "--url" => a.url = val,
            "--connections" => a.connections = num(&val) as usize,
            "--duration" => a.duration = num(&val),
            "--warmup" => a.warmup = num(&val),
            "--count" => a.count = num(&val) as u64,
            "--size" => a.size = num(&val) as usize,
            "--queue" => a.queue = val,
            "--key" => a.key = val,
            "--timeout" => a.timeout = num(&val),
            "--expect" => a.expect = Some(num(&val) as u16),
            "--visibilitytimeout" => a.visibility = num(&val) as u32,
            _ => {
                eprintln!("unknown flag {flag}");
                usage()
            }
        }
    }
    if a.connections == 0 {
        a.connections = 1;
    }
    a
}

/// Parsed `http://HOST:PORT/ACCOUNT` (path-style, as emulators use).
#[derive(Clone, Debug)]
struct Endpoint {
    addr: SocketAddr,
    host_header: String,
    account: String,
    /// `/ACCOUNT`
    base_path: String,
}

fn parse_url(url: &str) -> Result<(SocketAddr, String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("only http:// URLs are supported: {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(h) = authority.strip_prefix('[') {
        let end = h.find(']').ok_or("bad IPv6 authority")?;
        let port = h[end + 1..].strip_prefix(':').ok_or("port required")?;
        (&h[..end], port)
    } else {
        authority.rsplit_once(':').ok_or("port required in URL")?
    };
    let ip: IpAddr = if host == "localhost" {
        IpAddr::from([127, 0, 0, 1])
    } else {
        host.parse().map_err(|_| format!("host must be an IP literal: {host}"))?
    };
    if !ip.is_loopback() {
        return Err(format!("refusing non-loopback host {host}: the benchmark talks only to this machine"));
    }
    let port: u16 = port.parse().map_err(|_| format!("bad port {port}"))?;
    Ok((SocketAddr::new(ip, port), authority.to_string(), path.to_string()))
}

impl Endpoint {
    fn parse(url: &str) -> Result<Self, String> {
        let (addr, host_header, path) = parse_url(url)?;
        let account = path.trim_matches('/').split('/').next().unwrap_or("").to_string();
        if account.is_empty() {
            return Err("endpoint must end in /<account>, e.g. /devstoreaccount1".into());
        }
        Ok(Endpoint { addr, host_header, base_path: format!("/{account}"), account })
    }
}

struct Resp {
    status: u16,
    body: Bytes,
}

/// One keep-alive HTTP/1.1 connection with Shared Key signing.
struct Client {
    ep: Arc<Endpoint>,
    signer: Signer,
    sender: Option<SendRequest<Full<Bytes>>>,
    reconnects: u64,
}

impl Client {
    fn new(ep: Arc<Endpoint>, signer: Signer) -> Self {
        Client { ep, signer, sender: None, reconnects: 0 }
    }

    async fn connect(&mut self) -> Result<(), String> {
        let stream = TcpStream::connect(self.ep.addr).await.map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// `rel_path` is relative to the account, e.g. `/q/messages`.
    /// `query` holds (name, raw value); values are %-encoded on the wire and
    /// signed decoded.
    async fn call(
        &mut self,
        method: Method,
        rel_path: &str,
        query: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Result<Resp, String> {
        let path = format!("{}{}", self.ep.base_path, rel_path);
        let mut uri = path.clone();
        for (i, (n, v)) in query.iter().enumerate() {
            uri.push(if i == 0 { '?' } else { '&' });
            uri.push_str(n);
            uri.push('=');
            uri.extend(utf8_percent_encode(v, QUERY_VALUE));
        }
        let date = httpdate::fmt_http_date(SystemTime::now());
        let body = body.unwrap_or_default();
        let ctype = if body.is_empty() { "" } else { CONTENT_TYPE };
        let sts = self.signer.string_to_sign(
            method.as_str(),
            body.len(),
            ctype,
            &[("x-ms-date", &date), ("x-ms-version", API_VERSION)],
            &path,
            query,
        );
        let auth = self.signer.authorization(&sts);
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", &self.ep.host_header)
            .header("x-ms-date", date)
            .header("x-ms-version", API_VERSION)
            .header("authorization", auth)
            .header("content-length", body.len().to_string());
        if !ctype.is_empty() {
            b = b.header("content-type", ctype);
        }
        let req = b.body(Full::new(body)).map_err(|e| e.to_string())?;

        let needs_connect = match &self.sender {
            None => true,
            Some(s) => s.is_closed(),
        };
        if needs_connect {
            if self.sender.is_some() {
                self.reconnects += 1;
            }
            self.sender = None;
            self.connect().await?;
        }
        let sender = self.sender.as_mut().unwrap();
        let result = async {
            sender.ready().await.map_err(|e| format!("ready: {e}"))?;
            let resp = sender.send_request(req).await.map_err(|e| format!("send: {e}"))?;
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("body: {e}"))?
                .to_bytes();
            Ok::<_, String>(Resp { status, body })
        }
        .await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds")
}

/// Per-worker tallies, merged at the end.
struct Stats {
    ok: u64,
    errors: u64,
    empty_gets: u64,
    status: BTreeMap<String, u64>,
    samples: Vec<String>,
    main: Histogram<u64>,
    put: Histogram<u64>,
    get: Histogram<u64>,
    del: Histogram<u64>,
    reconnects: u64,
}

impl Stats {
    fn new() -> Self {
        Stats {
            ok: 0,
            errors: 0,
            empty_gets: 0,
            status: BTreeMap::new(),
            samples: Vec::new(),
            main: new_hist(),
            put: new_hist(),
            get: new_hist(),
            del: new_hist(),
            reconnects: 0,
        }
    }

    fn note(&mut self, op: &str, r: &Result<Resp, String>, record: bool) {
        if !record {
            return;
        }
        let key = match r {
            Ok(resp) => format!("{op} {}", resp.status),
            Err(_) => format!("{op} transport-error"),
        };
        *self.status.entry(key).or_insert(0) += 1;
        let bad = match r {
            Ok(resp) => !(200..300).contains(&resp.status),
            Err(_) => true,
        };
        if bad && self.samples.len() < 5 {
            let s = match r {
                Ok(resp) => format!(
                    "{op} HTTP {}: {}",
                    resp.status,
                    String::from_utf8_lossy(&resp.body[..resp.body.len().min(400)])
                ),
                Err(e) => format!("{op}: {e}"),
            };
            self.samples.push(s);
        }
    }

    fn merge(&mut self, o: Stats) {
        self.ok += o.ok;
        self.errors += o.errors;
        self.empty_gets += o.empty_gets;
        for (k, v) in o.status {
            *self.status.entry(k).or_insert(0) += v;
        }
        for s in o.samples {
            if self.samples.len() < 10 && !self.samples.contains(&s) {
                self.samples.push(s);
            }
        }
        let _ = self.main.add(&o.main);
        let _ = self.put.add(&o.put);
        let _ = self.get.add(&o.get);
        let _ = self.del.add(&o.del);
        self.reconnects += o.reconnects;
    }
}

fn hist_json(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return Value::Null;
    }
    let ms = |us: u64| (us as f64 / 1000.0 * 1000.0).round() / 1000.0;
    json!({
        "count": h.len(),
        "mean": (h.mean() / 1000.0 * 1000.0).round() / 1000.0,
        "p50": ms(h.value_at_quantile(0.50)),
        "p90": ms(h.value_at_quantile(0.90)),
        "p99": ms(h.value_at_quantile(0.99)),
        "max": ms(h.max()),
    })
}

/// 1 KiB-ish message text of `size` characters that need no XML escaping.
fn message_body(size: usize, seed: u64) -> Bytes {
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

/// Create the queue; 201 (created) and 204 (already there) are both fine.
async fn ensure_queue(ep: Arc<Endpoint>, signer: Signer, queue: &str) -> Result<(), String> {
    let mut c = Client::new(ep, signer);
    let r = c.call(Method::PUT, &format!("/{queue}"), &[], None).await?;
    match r.status {
        201 | 204 => Ok(()),
        s => Err(format!(
            "create queue {queue}: HTTP {s}: {}",
            String::from_utf8_lossy(&r.body[..r.body.len().min(400)])
        )),
    }
}

async fn worker_put(
    mut c: Client,
    queue: String,
    size: usize,
    seed: u64,
    start: Instant,
    deadline: Instant,
) -> Stats {
    let mut st = Stats::new();
    let body = message_body(size, seed);
    let path = format!("/{queue}/messages");
    let mut consecutive_err = 0u32;
    loop {
        let t0 = Instant::now();
        if t0 >= deadline {
            break;
        }
        let record = t0 >= start;
        let r = c.call(Method::POST, &path, &[], Some(body.clone())).await;
        let ok = matches!(&r, Ok(x) if x.status == 201);
        st.note("put", &r, record);
        if record {
            if ok {
                st.ok += 1;
                st.main.saturating_record(us_since(t0));
            } else {
                st.errors += 1;
            }
        }
        consecutive_err = if ok { 0 } else { consecutive_err + 1 };
        if r.is_err() {
            backoff(consecutive_err).await;
        }
    }
    st.reconnects = c.reconnects;
    st
}

async fn backoff(n: u32) {
    tokio::time::sleep(Duration::from_millis((5 * n as u64).min(200))).await;
}

async fn worker_cycle(
    mut c: Client,
    queue: String,
    size: usize,
    seed: u64,
    visibility: u32,
    start: Instant,
    deadline: Instant,
) -> Stats {
    let mut st = Stats::new();
    let body = message_body(size, seed);
    let path = format!("/{queue}/messages");
    let vt = visibility.to_string();
    let mut consecutive_err = 0u32;
    'outer: loop {
        let t0 = Instant::now();
        if t0 >= deadline {
            break;
        }
        let record = t0 >= start;

        // put
        let r = c.call(Method::POST, &path, &[], Some(body.clone())).await;
        st.note("put", &r, record);
        if !matches!(&r, Ok(x) if x.status == 201) {
            if record {
                st.errors += 1;
            }
            consecutive_err += 1;
            backoff(consecutive_err).await;
            continue;
        }
        if record {
            st.put.saturating_record(us_since(t0));
        }

        // get (retry a few times if the queue looks empty: another worker
        // may hold the message we just put, and ours may be theirs)
        let mut got = None;
        for attempt in 0..20 {
            if Instant::now() >= deadline + Duration::from_secs(2) {
                break 'outer;
            }
            let t1 = Instant::now();
            let r = c.call(Method::GET, &path, &[("visibilitytimeout", &vt)], None).await;
            st.note("get", &r, record);
            match &r {
                Ok(x) if x.status == 200 => {
                    if record {
                        st.get.saturating_record(us_since(t1));
                    }
                    match xml::first_message(&x.body) {
                        Some(m) => {
                            got = Some(m);
                            break;
                        }
                        None => {
                            if record {
                                st.empty_gets += 1;
                            }
                            tokio::time::sleep(Duration::from_millis(1 + attempt)).await;
                        }
                    }
                }
                _ => break,
            }
        }
        let Some((id, pop)) = got else {
            if record {
                st.errors += 1;
            }
            consecutive_err += 1;
            backoff(consecutive_err).await;
            continue;
        };

        // delete
        let t2 = Instant::now();
        let r = c
            .call(Method::DELETE, &format!("{path}/{id}"), &[("popreceipt", &pop)], None)
            .await;
        st.note("delete", &r, record);
        if !matches!(&r, Ok(x) if x.status == 204) {
            if record {
                st.errors += 1;
            }
            consecutive_err += 1;
            backoff(consecutive_err).await;
            continue;
        }
        consecutive_err = 0;
        if record {
            st.del.saturating_record(us_since(t2));
            st.ok += 1;
            st.main.saturating_record(us_since(t0));
        }
    }
    st.reconnects = c.reconnects;
    st
}

async fn worker_fill(
    mut c: Client,
    queue: String,
    size: usize,
    seed: u64,
    next: Arc<AtomicU64>,
    total: u64,
    deadline: Instant,
) -> Stats {
    let mut st = Stats::new();
    let body = message_body(size, seed);
    let path = format!("/{queue}/messages");
    let mut consecutive_err = 0u32;
    while next.fetch_add(1, Ordering::Relaxed) < total {
        if Instant::now() >= deadline || consecutive_err > 200 {
            break;
        }
        let t0 = Instant::now();
        let r = c.call(Method::POST, &path, &[], Some(body.clone())).await;
        st.note("put", &r, true);
        if matches!(&r, Ok(x) if x.status == 201) {
            st.ok += 1;
            st.main.saturating_record(us_since(t0));
            consecutive_err = 0;
        } else {
            st.errors += 1;
            consecutive_err += 1;
            if r.is_err() {
                backoff(consecutive_err).await;
            }
        }
    }
    st.reconnects = c.reconnects;
    st
}

async fn run_load(a: Args) -> Result<Value, String> {
    let ep = Arc::new(Endpoint::parse(&a.endpoint)?);
    let signer = Signer::new(&ep.account, &a.key)?;
    if ep.account != DEV_ACCOUNT && a.key == DEV_KEY {
        eprintln!("warning: account {} signed with the devstoreaccount1 key", ep.account);
    }
    ensure_queue(ep.clone(), signer.clone(), &a.queue).await?;

    // Open every connection before the clock starts.
    let mut clients = Vec::with_capacity(a.connections);
    for _ in 0..a.connections {
        let mut c = Client::new(ep.clone(), signer.clone());
        c.connect().await?;
        clients.push(c);
    }

    let t_begin = Instant::now();
    let (start, deadline) = match a.mode.as_str() {
        "fill" => (t_begin, t_begin + Duration::from_secs_f64(a.timeout)),
        _ => {
            let s = t_begin + Duration::from_secs_f64(a.warmup);
            (s, s + Duration::from_secs_f64(a.duration))
        }
    };
    let next = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        let q = a.queue.clone();
        let seed = i as u64 + 1;
        let h = match a.mode.as_str() {
            "put" => tokio::spawn(worker_put(c, q, a.size, seed, start, deadline)),
            "cycle" => {
                tokio::spawn(worker_cycle(c, q, a.size, seed, a.visibility, start, deadline))
            }
            "fill" => tokio::spawn(worker_fill(c, q, a.size, seed, next.clone(), a.count, deadline)),
            m => return Err(format!("unknown mode {m}")),
        };
        handles.push(h);
    }
    let mut total = Stats::new();
    for h in handles {
        total.merge(h.await.map_err(|e| format!("worker panicked: {e}"))?);
    }
    let elapsed = match a.mode.as_str() {
        "fill" => t_begin.elapsed().as_secs_f64(),
        _ => a.duration,
    };
    let per_s = total.ok as f64 / elapsed;
    Ok(json!({
        "mode": a.mode,
        "endpoint": a.endpoint,
        "queue": a.queue,
        "connections": a.connections,
        "size": a.size,
        "warmup_s": if a.mode == "fill" { 0.0 } else { a.warmup },
        "elapsed_s": (elapsed * 1000.0).round() / 1000.0,
        "ok": total.ok,
        "errors": total.errors,
        "empty_gets": total.empty_gets,
        "per_s": (per_s * 10.0).round() / 10.0,
        "latency_ms": hist_json(&total.main),
        "put_ms": hist_json(&total.put),
        "get_ms": hist_json(&total.get),
        "delete_ms": hist_json(&total.del),
        "status": total.status,
        "reconnects": total.reconnects,
        "error_samples": total.samples,
    }))
}

/// Poll a URL until it answers HTTP at all (or with `expect`).
async fn wait_http(a: &Args) -> Result<Value, String> {
    let (addr, host, path) = parse_url(&a.url)?;
    let deadline = Instant::now() + Duration::from_secs_f64(a.timeout);
    let t0 = Instant::now();
    let mut last = String::from("no attempt");
    while Instant::now() < deadline {
        let attempt = async {
            let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            let req = Request::builder()
                .uri(&path)
                .header("host", &host)
                .body(Full::new(Bytes::new()))
                .map_err(|e| e.to_string())?;
            let r = sender.send_request(req).await.map_err(|e| e.to_string())?;
            Ok::<u16, String>(r.status().as_u16())
        };
        match tokio::time::timeout(Duration::from_secs(2), attempt).await {
            Ok(Ok(s)) if a.expect.map_or(true, |e| e == s) => {
                return Ok(json!({"url": a.url, "status": s, "waited_s": t0.elapsed().as_secs_f64()}))
            }
            Ok(Ok(s)) => last = format!("HTTP {s}"),
            Ok(Err(e)) => last = e,
            Err(_) => last = "timeout".into(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("{} not ready after {}s: {last}", a.url, a.timeout))
}

fn free_ports(n: u64) -> Result<Vec<u16>, String> {
    // Hold all listeners until every port is picked, so the n are distinct.
    let mut ls = Vec::new();
    for _ in 0..n {
        ls.push(std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?);
    }
    ls.iter().map(|l| l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())).collect()
}

fn main() {
    let a = parse_args();
    if a.mode == "ports" {
        match free_ports(a.count.max(1)) {
            Ok(ps) => {
                for p in ps {
                    println!("{p}");
                }
                return;
            }
            Err(e) => {
                eprintln!("loadgen: {e}");
                std::process::exit(1);
            }
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let res = rt.block_on(async {
        match a.mode.as_str() {
            "wait" => wait_http(&a).await,
            "put" | "cycle" | "fill" => run_load(a.clone()).await,
            "" => usage(),
            m => Err(format!("unknown mode {m}")),
        }
    });
    match res {
        Ok(v) => println!("{v}"),
        Err(e) => {
            println!("{}", json!({"mode": a.mode, "error": e}));
            eprintln!("loadgen: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pop_receipt_is_percent_encoded() {
        let v: String = utf8_percent_encode("AgAA+/x=", QUERY_VALUE).collect();
        assert_eq!(v, "AgAA%2B%2Fx%3D");
    }

    #[test]
    fn refuses_non_loopback() {
        assert!(Endpoint::parse("http://10.0.0.1:10001/devstoreaccount1").is_err());
        let ep = Endpoint::parse("http://127.0.0.1:10001/devstoreaccount1").unwrap();
        assert_eq!(ep.account, "devstoreaccount1");
        assert_eq!(ep.base_path, "/devstoreaccount1");
        assert_eq!(ep.host_header, "127.0.0.1:10001");
    }

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
