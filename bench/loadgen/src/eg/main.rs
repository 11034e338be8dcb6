//! `egload`, the Event Grid load generator of `bench/run eventgrid`: it serves W
//! webhook receivers on 127.0.0.1, makes a topic with one webhook subscription per
//! receiver through Lapis's admin API, then runs C publishers posting batches of 1 KiB
//! Event Grid events (as fast as they are answered, or at --rate events/s in all)
//! for --warmup + --duration seconds, waits for every acknowledged event to reach
//! every receiver, deletes the topic and prints one JSON line: publish throughput,
//! delivery throughput per subscription, publish → 200 and publish → webhook
//! latency, and how long delivery took to drain.

#[path = "../flags.rs"]
mod flags;
#[path = "../hist.rs"]
mod hist;
mod hooks;
mod publish;
#[path = "../sb/sas.rs"]
mod sas;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::{json, Value};

use hist::hist_json;
use publish::{admin, publisher, Publishing};

struct Args {
    port: u16,
    topic: String,
    publishers: usize,
    batch: usize,
    size: usize,
    rate: f64,
    hooks: usize,
    hook_batch: u32,
    hook_kb: u32,
    warmup: f64,
    duration: f64,
    drain: f64,
}

fn usage() -> ! {
    eprintln!(
        "usage: egload --port HTTP_PORT [--topic T] [--publishers C] [--batch B] [--size BYTES] [--rate EVENTS_PER_S]\n\
         \x20             [--hooks W] [--hook-batch MAX_EVENTS] [--hook-kb KB] [--warmup S] [--duration S] [--drain S]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args { port: 0, topic: "bench".into(), publishers: 8, batch: 100, size: 1024, rate: 0.0, hooks: 4, hook_batch: 100, hook_kb: 128, warmup: 2.0, duration: 10.0, drain: 30.0 };
    for (flag, value) in flags::pairs(usage) {
        let n = || flags::number(&flag, &value, usage);
        match flag.as_str() {
            "--port" => a.port = n() as u16,
            "--topic" => a.topic = value.clone(),
            "--publishers" => a.publishers = n() as usize,
            "--batch" => a.batch = n() as usize,
            "--size" => a.size = n() as usize,
            "--rate" => a.rate = n(),
            "--hooks" => a.hooks = n() as usize,
            "--hook-batch" => a.hook_batch = n() as u32,
            "--hook-kb" => a.hook_kb = n() as u32,
            "--warmup" => a.warmup = n(),
            "--duration" => a.duration = n(),
            "--drain" => a.drain = n(),
            _ => {
                eprintln!("unknown flag {flag}");
                usage()
            }
        }
    }
    if a.port == 0 || a.publishers == 0 || a.batch == 0 || a.hooks == 0 {
        usage()
    }
    a
}

async fn run(a: Args) -> Result<Value, String> {
    let base = Instant::now();
    let mut receivers = Vec::new();
    for _ in 0..a.hooks {
        receivers.push(hooks::start(base).await.map_err(|e| format!("webhook: {e}"))?);
    }
    let topic_path = format!("/admin/eventgrid/topics/{}", a.topic);
    let (status, topic) = admin(a.port, Method::PUT, &topic_path, Some(json!({"InputSchema": "EventGridSchema"}))).await?;
    if status != 201 {
        return Err(format!("creating the topic: {status} {topic}"));
    }
    let key = topic["Key1"].as_str().ok_or("the topic has no Key1")?.to_string();
    for (i, h) in receivers.iter().enumerate() {
        let spec = json!({"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": h.url, "maxEventsPerBatch": a.hook_batch, "preferredBatchSizeInKilobytes": a.hook_kb}}});
        let (status, body) = admin(a.port, Method::PUT, &format!("{topic_path}/subscriptions/hook-{i}"), Some(spec)).await?;
        if status != 201 {
            return Err(format!("creating subscription hook-{i}: {status} {body}"));
        }
    }
    let p = Publishing::new(a.port, a.topic.clone(), key, a.batch, a.size, a.rate / a.publishers as f64, base);
    let tasks: Vec<_> = (0..a.publishers).map(|i| tokio::spawn(publisher(p.clone(), i))).collect();
    tokio::time::sleep(Duration::from_secs_f64(a.warmup)).await;

    let from = base.elapsed().as_micros() as u64;
    p.measure_from_us.store(from, Ordering::Relaxed);
    for h in &receivers {
        h.record_from_us.store(from, Ordering::Relaxed);
    }
    let delivered_before: Vec<u64> = receivers.iter().map(|h| h.events.load(Ordering::Relaxed)).collect();
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(a.duration)).await;
    let elapsed = window.elapsed().as_secs_f64();
    let acked = p.acked.load(Ordering::Relaxed);
    let delivered_in_window: Vec<u64> = receivers.iter().zip(&delivered_before).map(|(h, b)| h.events.load(Ordering::Relaxed) - b).collect();
    p.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }

    // Every acknowledged event reaches every receiver (at least once).
    let total = p.acked_total.load(Ordering::Relaxed);
    let drain_started = Instant::now();
    let mut drained = false;
    while drain_started.elapsed().as_secs_f64() < a.drain {
        if receivers.iter().all(|h| h.events.load(Ordering::Relaxed) >= total) {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain_s = drain_started.elapsed().as_secs_f64();
    let (status, _) = admin(a.port, Method::DELETE, &topic_path, None).await?;
    if status != 204 {
        return Err(format!("deleting the topic: {status}"));
    }

    let mut e2e = hist::new_hist(60_000_000);
    for h in &receivers {
        e2e.add(&*h.latency.lock().expect("latency lock")).map_err(|e| e.to_string())?;
    }
    let slowest = delivered_in_window.iter().copied().min().unwrap_or(0);
    let errors = p.errors.load(Ordering::Relaxed);
    Ok(json!({
        "publishers": a.publishers, "batch": a.batch, "size": a.size, "rate": a.rate, "hooks": a.hooks,
        "hook_batch": a.hook_batch, "hook_kb": a.hook_kb, "seconds": (elapsed * 1000.0).round() / 1000.0,
        "published_eps": (acked as f64 / elapsed).round(),
        "delivered_eps_slowest_hook": (slowest as f64 / elapsed).round(),
        "delivered_eps_all_hooks": (delivered_in_window.iter().sum::<u64>() as f64 / elapsed).round(),
        "acked_total": total,
        "delivered_per_hook": receivers.iter().map(|h| h.events.load(Ordering::Relaxed)).collect::<Vec<_>>(),
        "requests_per_hook": receivers.iter().map(|h| h.requests.load(Ordering::Relaxed)).collect::<Vec<_>>(),
        "drained": drained, "drain_s": (drain_s * 1000.0).round() / 1000.0,
        "publish_ms": hist_json(&p.ack_latency.lock().expect("latency lock")),
        "e2e_ms": hist_json(&e2e),
        "errors": errors,
        "last_error": p.last_error.lock().expect("error lock").clone(),
    }))
}

fn main() {
    let a = parse_args();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    match runtime.block_on(run(a)) {
        Ok(v) => println!("{v}"),
        Err(e) => {
            println!("{}", json!({ "error": e }));
            std::process::exit(1);
        }
    }
}
