//! `ehload`, the Event Hubs load generator of `bench/run eventhubs`: producers that
//! send batches of 1 KiB events to Lapis's Event Hubs endpoint over AMQP 1.0
//! (fe2o3-amqp, the client Lapis itself is built on), consumers on every partition,
//! and a probe of the disk's synced sequential write limit. Prints JSON lines.
//!
//! Modes:
//!   load  P producers (one connection and sender link each, to `<hub>/Partitions/<i
//!         mod N>` or `<hub>`) for --warmup + --duration seconds, as fast as batches
//!         are accepted (--inflight per producer) or at --rate events/s; with
//!         --consumers 1 also one consumer per partition (own connection, from
//!         `@latest`, attached first) measuring send → receive latency; with
//!         --producers 0 --position -1 the consumers only read what is stored
//!   fill  producers send until --bytes of event bodies were accepted (or --timeout)
//!   wait  connect and attach a sender to `<hub>/Partitions/0` until that works
//!   disk  append + fdatasync at --sizes with --writers threads (see `disk`)
//!
//! It only connects to 127.0.0.1. `args` is the command line, `amqp` the connection
//! set-up, `workers` the loops and figures, `disk` the fdatasync probe.

mod amqp;
mod args;
mod disk;
#[path = "../errors.rs"]
mod errors;
#[path = "../flags.rs"]
mod flags;
#[path = "../hist.rs"]
mod hist;
mod workers;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use args::{parse_args, usage, Args};
use hist::hist_json;
use workers::{consumer_loop, producer_loop, Plan, Tally};

fn producer_address(a: &Args, i: usize) -> String {
    match a.target.as_str() {
        "hub" => a.hub.clone(),
        _ => format!("{}/Partitions/{}", a.hub, i as u32 % a.partitions),
    }
}

async fn run(a: Args) -> Result<Value, String> {
    let fill = a.mode == "fill";
    let consumers = a.consumers && !fill;
    // Consumers first (from @latest they see every event the producers send).
    let mut readers = Vec::new();
    if consumers {
        let mut opening = Vec::new();
        for p in 0..a.partitions {
            let (port, hub, prefetch, position) = (a.port, a.hub.clone(), a.prefetch, a.position.clone());
            opening.push(tokio::spawn(async move {
                let name = format!("consumer-{p}");
                let mut c = amqp::connect(port, &name).await?;
                let r = amqp::receiver(&mut c, &format!("{name}-link"), &hub, p, &position, prefetch).await?;
                Ok::<_, String>((name, c, r))
            }));
        }
        for h in opening {
            readers.push(h.await.map_err(|e| format!("attach task: {e}"))??);
        }
    }
    let mut writers = Vec::new();
    let mut opening = Vec::new();
    for i in 0..a.producers {
        let (port, address) = (a.port, producer_address(&a, i));
        opening.push(tokio::spawn(async move {
            let name = format!("producer-{i}");
            let mut c = amqp::connect(port, &name).await?;
            let s = amqp::sender(&mut c, &format!("{name}-link"), &address).await?;
            Ok::<_, String>((name, c, s))
        }));
    }
    for h in opening {
        writers.push(h.await.map_err(|e| format!("attach task: {e}"))??);
    }

    let t_begin = Instant::now();
    let interval = (a.rate > 0.0 && a.producers > 0).then(|| Duration::from_secs_f64(a.batch as f64 * a.producers as f64 / a.rate));
    let plan = Arc::new(if fill {
        let count = (a.bytes / a.size as f64).ceil() as u64;
        Plan {
            start: t_begin,
            deadline: t_begin + Duration::from_secs_f64(a.timeout),
            drain: Duration::ZERO,
            size: a.size,
            batch: a.batch,
            inflight: a.inflight,
            interval,
            quota: Some((Arc::new(AtomicU64::new(0)), count)),
        }
    } else {
        let start = t_begin + Duration::from_secs_f64(a.warmup);
        Plan {
            start,
            deadline: start + Duration::from_secs_f64(a.duration),
            drain: if consumers { Duration::from_secs(2) } else { Duration::ZERO },
            size: a.size,
            batch: a.batch,
            inflight: a.inflight,
            interval,
            quota: None,
        }
    });
    let mut handles = Vec::new();
    for (name, conn, r) in readers {
        handles.push(tokio::spawn(consumer_loop(name, conn, r, plan.clone())));
    }
    let n = writers.len();
    for (i, (name, conn, s)) in writers.into_iter().enumerate() {
        handles.push(tokio::spawn(producer_loop(name, conn, s, plan.clone(), i, n)));
    }
    let mut total = Tally::new();
    for h in handles {
        total.merge(h.await.map_err(|e| format!("worker panicked: {e}"))?);
    }
    let elapsed = if fill { total.last_accept.map(|t| (t - t_begin).as_secs_f64()).unwrap_or(0.0).max(1e-3) } else { a.duration };
    let counted = if fill { total.events_total } else { total.events };
    let round1 = |x: f64| (x * 10.0).round() / 10.0;
    let mut v = json!({
        "mode": a.mode,
        "port": a.port,
        "hub": a.hub,
        "partitions": a.partitions,
        "target": a.target,
        "producers": a.producers,
        "inflight": a.inflight,
        "batch": a.batch,
        "size": a.size,
        "rate_target": a.rate,
        "elapsed_s": (elapsed * 1000.0).round() / 1000.0,
        "events": counted,
        "events_per_s": round1(counted as f64 / elapsed),
        "mb_per_s": round1(counted as f64 * a.size as f64 / elapsed / 1e6),
        "batches": total.batches,
        "events_total": total.events_total,
        "bytes_total": total.events_total * a.size as u64,
        "send_ms": hist_json(&total.send_us),
        "late_batches": total.late,
        "client_cpu_s": client_cpu_s(),
        "errors": total.errors.count,
        "outcomes": total.errors.by_kind,
        "error_samples": total.errors.samples,
    });
    if consumers {
        let extra = json!({
            "consumers": a.partitions,
            "position": a.position,
            "prefetch": a.prefetch,
            "arrived_per_s": round1(total.arrived as f64 / a.duration),
            "received": total.received,
            "received_per_s": round1(total.received as f64 / a.duration),
            "received_total": total.received_total,
            "backlog": total.events_total as i64 - total.received_total as i64,
            "e2e_ms": hist_json(&total.e2e_us),
        });
        if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
            m.extend(e);
        }
    }
    Ok(v)
}

/// This process's CPU time so far (user + system, from /proc/self/stat; 100 ticks/s).
fn client_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i - 3).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ((ticks(14) + ticks(15)) / 100.0 * 100.0).round() / 100.0
}

/// Connects and attaches a sender to partition 0 until that works.
async fn wait(a: &Args) -> Result<Value, String> {
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(a.timeout);
    let mut last = String::from("no attempt");
    let address = format!("{}/Partitions/0", a.hub);
    while Instant::now() < deadline {
        let attempt = async {
            let mut c = amqp::connect(a.port, "wait").await?;
            let s = amqp::sender(&mut c, "wait-link", &address).await;
            if let Ok(s) = s {
                let _ = tokio::time::timeout(amqp::CLOSE_TIMEOUT, s.close()).await;
                c.close().await;
                Ok(())
            } else {
                c.close().await;
                s.map(|_| ())
            }
        };
        match tokio::time::timeout(Duration::from_secs(5), attempt).await {
            Ok(Ok(())) => return Ok(json!({"port": a.port, "hub": a.hub, "waited_s": t0.elapsed().as_secs_f64()})),
            Ok(Err(e)) => last = e,
            Err(_) => last = "timeout".into(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("127.0.0.1:{} not ready after {}s: {last}", a.port, a.timeout))
}

fn main() {
    let a = parse_args();
    workers::stamp_now(); // fix the clock base before anything is sent
    if a.mode == "disk" {
        if a.dir.is_empty() {
            eprintln!("--dir is required");
            usage();
        }
        for layout in ["append", "overwrite"] {
            if a.layout != layout && a.layout != "both" {
                continue;
            }
            match disk::run(&a.dir, &a.sizes, &a.writers, a.duration, layout == "overwrite") {
                Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
                Err(e) => {
                    println!("{}", json!({"mode": "disk", "error": e}));
                    eprintln!("ehload: {e}");
                    std::process::exit(1);
                }
            }
        }
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let res = rt.block_on(async {
        match a.mode.as_str() {
            "wait" => wait(&a).await,
            "load" | "fill" => {
                let r = run(a.clone()).await;
                tokio::time::sleep(Duration::from_millis(300)).await; // let the closes go out
                r
            }
            "" => usage(),
            m => Err(format!("unknown mode {m}")),
        }
    });
    rt.shutdown_timeout(Duration::from_secs(2));
    match res {
        Ok(v) => println!("{v}"),
        Err(e) => {
            println!("{}", json!({"mode": a.mode, "error": e}));
            eprintln!("ehload: {e}");
            std::process::exit(1);
        }
    }
}
