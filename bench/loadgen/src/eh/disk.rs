//! `--mode disk`: the physical limit of the disk under Lapis's write pattern. Each of
//! W writer threads (W from `--writers`, like Lapis's one journal writer per
//! partition) appends `size` bytes to its own new file in `--dir` and calls
//! `fdatasync` (`File::sync_data`), over and over, for `--duration` seconds; the
//! first fifth (at most 0.3 s) is warm-up and not counted. The data is pseudo-random
//! (nothing a compressing or zero-detecting layer could shrink).
//!
//! `--layout overwrite` instead pre-writes and syncs a 64 MiB file (a Lapis segment's size) and then
//! overwrites it in place, wrapping around: the file size never changes, so each
//! `fdatasync` has only data to flush — what preallocated segments would allow.
//!
//! One JSON line per (size, writers): `mb_per_s` (10^6 bytes), `syncs_per_s`, and
//! `sync_ms` (one write + fdatasync; p50/p90/p99/max).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::hist::hist_json;

/// The preallocated file of `--layout overwrite`: one Lapis segment's size.
const OVERWRITE_FILE: u64 = 64 << 20;

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

struct Outcome {
    bytes: u64,
    syncs: u64,
    hist: Histogram<u64>,
}

/// When a run's writers start counting and stop, set by `run` once every file is ready.
type Schedule = Arc<Mutex<Option<(Instant, Instant)>>>;

fn writer(path: &Path, size: usize, overwrite: bool, ready: &Barrier, go: &Barrier, schedule: &Schedule, seed: u64) -> Result<Outcome, String> {
    let err = |what: &str, e: std::io::Error| format!("{what} {}: {e}", path.display());
    let prepared = (|| {
        let mut f = OpenOptions::new().create(true).write(true).truncate(true).open(path).map_err(|e| err("create", e))?;
        if overwrite {
            let chunk = noise(1 << 20, seed ^ 0x9e37);
            for _ in 0..(OVERWRITE_FILE >> 20) {
                f.write_all(&chunk).map_err(|e| err("prewrite", e))?;
            }
            f.sync_all().map_err(|e| err("sync", e))?;
        }
        if let Some(dir) = path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(|e| err("sync dir of", e))?;
        }
        Ok::<File, String>(f)
    })();
    // Always meet the others at both barriers, even after a failure.
    ready.wait();
    go.wait();
    let mut f = prepared?;
    let (counted_from, until) = schedule.lock().unwrap().expect("the schedule is set before go");
    let buf = noise(size, seed);
    let mut out = Outcome { bytes: 0, syncs: 0, hist: Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds") };
    let mut pos = 0u64;
    loop {
        let t0 = Instant::now();
        if t0 >= until {
            break;
        }
        if overwrite {
            if pos + size as u64 > OVERWRITE_FILE {
                pos = 0;
            }
            f.write_all_at(&buf, pos).map_err(|e| err("write", e))?;
            pos += size as u64;
        } else {
            f.write_all(&buf).map_err(|e| err("write", e))?;
        }
        f.sync_data().map_err(|e| err("fdatasync", e))?;
        let t1 = Instant::now();
        if t0 >= counted_from {
            out.bytes += size as u64;
            out.syncs += 1;
            let _ = out.hist.record((t1 - t0).as_micros().max(1) as u64);
        }
    }
    drop(f);
    let _ = std::fs::remove_file(path);
    Ok(out)
}

/// Runs every (size, writers) pair in turn; one JSON value per pair.
pub fn run(dir: &str, sizes: &[usize], writers: &[usize], duration: f64, overwrite: bool) -> Result<Vec<Value>, String> {
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let mut results = Vec::new();
    for &size in sizes {
        for &w in writers {
            let (ready, go) = (Arc::new(Barrier::new(w + 1)), Arc::new(Barrier::new(w + 1)));
            let schedule: Schedule = Arc::default();
            let handles: Vec<_> = (0..w)
                .map(|i| {
                    let (ready, go, schedule, path) = (ready.clone(), go.clone(), schedule.clone(), dir.join(format!("ehload-disk-{i}.dat")));
                    std::thread::spawn(move || writer(&path, size, overwrite, &ready, &go, &schedule, i as u64 + 1))
                })
                .collect();
            ready.wait();
            let warm = Duration::from_secs_f64((duration / 5.0).min(0.3));
            let begin = Instant::now();
            *schedule.lock().unwrap() = Some((begin + warm, begin + Duration::from_secs_f64(duration)));
            go.wait();
            let mut bytes = 0u64;
            let mut syncs = 0u64;
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
            let mut error = None;
            for h in handles {
                match h.join().map_err(|_| "a writer panicked".to_string()).and_then(|r| r) {
                    Ok(o) => {
                        bytes += o.bytes;
                        syncs += o.syncs;
                        let _ = hist.add(&o.hist);
                    }
                    Err(e) => error = Some(e),
                }
            }
            if let Some(e) = error {
                return Err(e);
            }
            let secs = (duration - warm.as_secs_f64()).max(1e-3);
            results.push(json!({
                "mode": "disk",
                "layout": if overwrite { "overwrite" } else { "append" },
                "size": size,
                "writers": w,
                "seconds": (secs * 1000.0).round() / 1000.0,
                "syncs": syncs,
                "mb_per_s": (bytes as f64 / secs / 1e6 * 10.0).round() / 10.0,
                "syncs_per_s": (syncs as f64 / secs * 10.0).round() / 10.0,
                "sync_ms": hist_json(&hist),
            }));
        }
    }
    Ok(results)
}
