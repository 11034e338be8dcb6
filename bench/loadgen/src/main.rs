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
//!
//! This file owns the modes: it starts a run (`run_load`), `wait_http`,
//! `free_ports`, and prints the result. The rest lives in `args` (command
//! line), `client` (HTTP + signing glue), `sign` (Shared Key), `stats`
//! (figures), `workers` (the load loops) and `xml` (reading Get Messages).

mod args;
mod flags;
mod client;
mod hist;
mod sign;
mod stats;
mod workers;
mod xml;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use serde_json::{json, Value};

use args::{parse_args, usage, Args};
use client::{Client, Endpoint};
use sign::{Signer, DEV_ACCOUNT, DEV_KEY};
use hist::hist_json;
use stats::Stats;
use workers::{ensure_queue, worker_cycle, worker_fill, worker_put};

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
    let (addr, host, path) = client::parse_url(&a.url)?;
    let deadline = Instant::now() + Duration::from_secs_f64(a.timeout);
    let t0 = Instant::now();
    let mut last = String::from("no attempt");
    while Instant::now() < deadline {
        let attempt = async {
            let mut sender = client::open(addr).await.map_err(|e| e.error)?;
            let req = Request::builder()
                .uri(&path)
                .header("host", &host)
                .body(Full::new(Bytes::new()))
                .map_err(|e| e.to_string())?;
            let r = sender.send_request(req).await.map_err(|e| e.to_string())?;
            Ok::<u16, String>(r.status().as_u16())
        };
        match tokio::time::timeout(Duration::from_secs(2), attempt).await {
            Ok(Ok(s)) if a.expect.is_none_or(|e| e == s) => {
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
