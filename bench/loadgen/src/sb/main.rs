//! `sbload`, the AMQP 1.0 load generator of `bench/run servicebus`: drives one
//! queue of Lapis (Service Bus over AMQP, CBS-authorized) or RabbitMQ (its AMQP 1.0
//! plugin) with the same client, fe2o3-amqp, and prints one JSON line.
//!
//! Modes:
//!   load  S closed-loop senders (one connection, session and unsettled sender link
//!         each) and R peek-lock receivers (one connection each, credit --prefetch)
//!         on one queue for --warmup + --duration seconds
//!   fill  S senders put --count messages as fast as they are confirmed, then stop
//!   wait  connect (and for Lapis put a CBS token) until it works or --timeout passes
//!
//! It only connects to 127.0.0.1. This file owns the modes; `args` is the command
//! line, `amqp` the connection set-up (SASL, CBS, addresses), `sas` the Service Bus
//! token, `workers` the send and receive loops and their figures.

mod amqp;
mod args;
#[path = "../errors.rs"]
mod errors;
#[path = "../flags.rs"]
mod flags;
#[path = "../hist.rs"]
mod hist;
mod sas;
mod workers;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use amqp::{Conn, Endpoint, Flavor};
use args::{parse_args, usage, Args};
use hist::hist_json;
use workers::{receiver_loop, sender_loop, Plan, Tally};

fn endpoint(a: &Args) -> Result<Endpoint, String> {
    Ok(Endpoint { flavor: Flavor::parse(&a.flavor)?, port: a.port, queue: a.queue.clone() })
}

/// Opens `n` connections at once, each with one link made by `link`.
async fn open_many<L, F, Fut>(ep: &Endpoint, prefix: &str, n: usize, link: F) -> Result<Vec<(String, Conn, L)>, String>
where
    F: Fn(Endpoint, Conn, String) -> Fut,
    Fut: std::future::Future<Output = Result<(Conn, L), String>> + Send + 'static,
    L: Send + 'static,
{
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let (ep, name) = (ep.clone(), format!("{prefix}-{i}"));
        let conn = ep.connect(&name).await?;
        handles.push((name.clone(), tokio::spawn(link(ep, conn, format!("{name}-link")))));
    }
    let mut out = Vec::with_capacity(n);
    for (name, h) in handles {
        let (conn, l) = h.await.map_err(|e| format!("attach task: {e}"))??;
        out.push((name, conn, l));
    }
    Ok(out)
}

async fn run(a: Args) -> Result<Value, String> {
    let ep = endpoint(&a)?;
    let fill = a.mode == "fill";
    let senders = open_many(&ep, "sender", a.senders, |ep, mut c, name| async move {
        let s = ep.sender(&mut c, &name).await?;
        Ok((c, s))
    })
    .await?;
    let prefetch = a.prefetch;
    let receivers = if fill {
        Vec::new()
    } else {
        open_many(&ep, "receiver", a.receivers, move |ep, mut c, name| async move {
            let r = ep.receiver(&mut c, &name, prefetch).await?;
            Ok((c, r))
        })
        .await?
    };

    let t_begin = Instant::now();
    let plan = Arc::new(if fill {
        Plan {
            start: t_begin,
            deadline: t_begin + Duration::from_secs_f64(a.timeout),
            size: a.size,
            quota: Some((Arc::new(AtomicU64::new(0)), a.count)),
        }
    } else {
        let start = t_begin + Duration::from_secs_f64(a.warmup);
        Plan { start, deadline: start + Duration::from_secs_f64(a.duration), size: a.size, quota: None }
    });
    let mut handles = Vec::new();
    for (name, conn, r) in receivers {
        handles.push(tokio::spawn(receiver_loop(ep.clone(), name, conn, r, prefetch, plan.clone())));
    }
    for (name, conn, s) in senders {
        handles.push(tokio::spawn(sender_loop(ep.clone(), name, conn, s, plan.clone())));
    }
    let mut total = Tally::new();
    for h in handles {
        total.merge(h.await.map_err(|e| format!("worker panicked: {e}"))?);
    }
    let elapsed = if fill { t_begin.elapsed().as_secs_f64() } else { a.duration };
    let rate = |n: u64| (n as f64 / elapsed * 10.0).round() / 10.0;
    let mut v = json!({
        "mode": a.mode,
        "flavor": a.flavor,
        "port": a.port,
        "queue": a.queue,
        "senders": a.senders,
        "size": a.size,
        "elapsed_s": (elapsed * 1000.0).round() / 1000.0,
        "sent": total.sent,
        "sent_per_s": rate(total.sent),
        "sent_total": total.sent_total,
        "send_ms": hist_json(&total.send_us),
        "errors": total.errors.count,
        "outcomes": total.errors.by_kind,
        "reconnects": total.reconnects,
        "error_samples": total.errors.samples,
    });
    if !fill {
        let extra = json!({
            "receivers": a.receivers,
            "prefetch": a.prefetch,
            "warmup_s": a.warmup,
            "completed": total.completed,
            "completed_per_s": rate(total.completed),
            "received_total": total.received_total,
            "backlog": total.sent_total.saturating_sub(total.received_total),
            "e2e_ms": hist_json(&total.e2e_us),
        });
        if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
            m.extend(e);
        }
    }
    Ok(v)
}

/// Connects (with CBS for Lapis) until that works.
async fn wait(a: &Args) -> Result<Value, String> {
    let ep = endpoint(a)?;
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(a.timeout);
    let mut last = String::from("no attempt");
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), ep.connect("wait")).await {
            Ok(Ok(c)) => {
                c.close().await;
                return Ok(json!({"port": a.port, "flavor": a.flavor, "waited_s": t0.elapsed().as_secs_f64()}));
            }
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
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let res = rt.block_on(async {
        match a.mode.as_str() {
            "wait" => wait(&a).await,
            "load" | "fill" => {
                let r = run(a.clone()).await;
                tokio::time::sleep(Duration::from_millis(500)).await; // let the closes go out
                r
            }
            "" => usage(),
            m => Err(format!("unknown mode {m}")),
        }
    });
    // Links and connections close in the background; give that a moment, then stop
    // whatever has not finished (a client engine that hangs on a close must not hold
    // the benchmark up).
    rt.shutdown_timeout(Duration::from_secs(2));
    match res {
        Ok(v) => println!("{v}"),
        Err(e) => {
            println!("{}", json!({"mode": a.mode, "flavor": a.flavor, "error": e}));
            eprintln!("sbload: {e}");
            std::process::exit(1);
        }
    }
}
