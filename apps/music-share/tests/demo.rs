//! The demonstration as a user runs it — `music-share demo` starting Lapis (the real
//! `lapis` binary), the API, the workers and the handlers, with its faults — at a
//! size that keeps CI quick, with an assertion on every count: messaging mode loses
//! nothing and stores nothing twice or out of order; direct mode loses items, but
//! never one it acknowledged.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn lapis_bin() -> PathBuf {
    match std::env::var_os("LAPIS_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/lapis"),
    }
}

/// Runs the demo in `mode` and returns its JSON summary.
fn demo(mode: &str, dir: &std::path::Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_music-share"))
        .args(["demo", "--mode", mode, "--phones", "40", "--uploads", "3", "--comments", "5", "--plays", "5", "--drop", "0.2", "--seed", "7", "--json", "--dir"])
        .arg(dir)
        .env("LAPIS_BIN", lapis_bin())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the demo failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let last = stdout.lines().last().unwrap_or_default();
    let summary: Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert!(dir.join("report.html").exists(), "the report is written");
    summary
}

fn tally<'a>(summary: &'a Value, task: &str) -> &'a Value {
    summary["tallies"].as_array().unwrap().iter().find(|t| t["task"] == task).unwrap_or_else(|| panic!("no {task}: {summary}"))
}

fn n(t: &Value, field: &str) -> u64 {
    t[field].as_u64().unwrap_or_else(|| panic!("no {field} in {t}"))
}

const TASKS: [(&str, u64); 3] = [("uploads", 120), ("comments", 200), ("plays", 200)];
const HANDLERS: [&str; 2] = ["published → notifications", "published → search-index"];

#[test]
fn messaging_mode_loses_nothing_and_stores_nothing_twice_under_faults() {
    let dir = tempfile::tempdir().unwrap();
    let s = demo("messaging", dir.path());
    assert_eq!(s["settled"], true, "{s}");
    let notes: Vec<&str> = s["notes"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for fault in ["search-index handler down", "API and workers killed (SIGKILL)", "network blip: every phone connection to Lapis cut", "API and workers started again", "search-index handler back"] {
        assert!(notes.contains(&fault), "the fault {fault:?} happened: {notes:?}");
    }
    assert!(notes.iter().any(|n| n.starts_with("the network cut")), "the flaky network cut connections to Lapis: {notes:?}");
    assert!(s["retried_items"].as_u64().unwrap() > 0, "the flaky network made phones retry: {s}");
    for (task, attempted) in TASKS {
        let t = tally(&s, task);
        assert_eq!(
            [n(t, "attempted"), n(t, "acknowledged"), n(t, "stored"), n(t, "lost"), n(t, "lost_after_ack"), n(t, "duplicated"), n(t, "out_of_order")],
            [attempted, attempted, attempted, 0, 0, 0, 0],
            "{task}: {t}"
        );
    }
    for handler in HANDLERS {
        let t = tally(&s, handler);
        assert_eq!([n(t, "attempted"), n(t, "stored"), n(t, "lost"), n(t, "duplicated")], [120, 120, 0, 0], "every stored upload reached {handler}: {t}");
    }
    assert_eq!((s["stale_sent"].as_u64(), s["dead_lettered"].as_i64()), (Some(2), Some(2)), "comments on a deleted track are dead-lettered: {s}");
    let replayed = &s["replayed"];
    assert!(replayed["events"].as_u64().unwrap() >= 200, "every play is read again from the hub (retries may have sent some twice): {s}");
    assert_eq!(replayed["new_plays"], 0, "a replay counts nothing twice: {s}");
}

#[test]
fn direct_mode_loses_items_under_the_same_burst_but_never_one_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let s = demo("direct", dir.path());
    let mut lost = 0;
    for (task, attempted) in TASKS {
        let t = tally(&s, task);
        assert_eq!(n(t, "attempted"), attempted, "{task}: {t}");
        assert_eq!(n(t, "lost"), attempted - n(t, "stored"), "{task}: {t}");
        assert_eq!((n(t, "lost_after_ack"), n(t, "duplicated")), (0, 0), "{task}: what the API acknowledged is stored, once: {t}");
        assert!(n(t, "acknowledged") <= n(t, "stored"), "{task}: {t}");
        lost += n(t, "lost");
    }
    assert!(lost > 0, "direct calls under a burst with faults lose items: {s}");
    assert_eq!((s["stale_sent"].as_u64(), s["stale_refused"].as_u64()), (Some(2), Some(2)), "comments on a deleted track are refused: {s}");
    let uploads = n(tally(&s, "uploads"), "stored");
    let missed = n(tally(&s, HANDLERS[1]), "lost");
    assert!(missed > 0 && missed <= uploads, "the handler that was down missed tracks the API told it of directly: {s}");
}
