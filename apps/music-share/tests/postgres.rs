//! The app on PostgreSQL (`--database-url postgres://…`), the same schema and
//! queries as on SQLite: the API's idempotent writes, its bad-input refusals and a
//! restart, then the messaging demo with every count asserted. The test starts its
//! own server from Debian's `postgresql` package (initdb in a temporary directory,
//! on a free loopback port), run as the `postgres` user when the test runs as root.
//!
//! `scripts/test` installs the package and sets `MUSIC_SHARE_POSTGRES_TEST=1`, which
//! makes a missing PostgreSQL a failure; elsewhere the test is skipped without it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn pg_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql").ok()?.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).filter(|b| b.join("initdb").exists()).collect();
    found.sort();
    found.pop()
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// `program args…`, as the `postgres` user when we are root (PostgreSQL refuses root).
fn as_pg(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    _dir: tempfile::TempDir,
    url: String,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_pg(&self.bin.join("pg_ctl")).args(["-D"]).arg(&self.data).args(["stop", "-m", "immediate"]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_postgres() -> Option<Postgres> {
    let Some(bin) = pg_bin() else {
        assert!(std::env::var("MUSIC_SHARE_POSTGRES_TEST").as_deref() != Ok("1"), "MUSIC_SHARE_POSTGRES_TEST=1 but no PostgreSQL under /usr/lib/postgresql (scripts/test installs it)");
        eprintln!("skipping: no PostgreSQL installed");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    if is_root() {
        assert!(Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status().unwrap().success());
    }
    let init = as_pg(&bin.join("initdb")).args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"]).arg(&data).output().unwrap();
    assert!(init.status.success(), "initdb: {}", String::from_utf8_lossy(&init.stderr));
    let port = free_port();
    let log = dir.path().join("postgres.log");
    let started = as_pg(&bin.join("pg_ctl"))
        .args(["-D"])
        .arg(&data)
        .args(["-l"])
        .arg(&log)
        .args(["-o", &format!("-p {port} -k {} -c listen_addresses=127.0.0.1", dir.path().display()), "-w", "start"])
        .output()
        .unwrap();
    assert!(started.status.success(), "pg_ctl start: {} {}", String::from_utf8_lossy(&started.stderr), std::fs::read_to_string(&log).unwrap_or_default());
    Some(Postgres { bin, data, _dir: dir, url: format!("postgres://postgres@127.0.0.1:{port}/postgres") })
}

fn music_share() -> Command {
    Command::new(env!("CARGO_BIN_EXE_music-share"))
}

struct Api(Child, u16);

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn api(url: &str, media: &Path) -> Api {
    let mut child = music_share().args(["api", "--listen", "127.0.0.1:0", "--database-url", url, "--media"]).arg(media).stdout(Stdio::piped()).spawn().unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let port = first.trim().rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no address in {first:?}"));
    Api(child, port)
}

fn call(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    s.write_all(format!("{head}\r\n").as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    let status = reply.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = reply.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}

#[test]
fn the_app_runs_on_postgresql_with_the_same_rules() {
    let Some(pg) = start_postgres() else { return };
    let work = tempfile::tempdir().unwrap();
    let mut a = api(&pg.url, &work.path().join("media"));
    let mut audio = b"ID3\x04\x00\x00".to_vec();
    audio.resize(50_000, 0x55);
    let up = |port: u16, id: &str, body: &[u8]| call(port, "POST", "/api/tracks", &[("x-upload-id", id), ("x-title", "Night Drive"), ("x-artist", "Trio")], body);
    let (status, track) = up(a.1, "pg-1", &audio);
    assert_eq!(status, 201, "{track}");
    let (status, again) = up(a.1, "pg-1", &audio);
    assert_eq!((status, &again["id"]), (200, &track["id"]), "a retried upload is the same track");
    assert_eq!(up(a.1, "pg-2", b"%PDF-1.7").0, 415, "not audio");
    let id = track["id"].as_str().unwrap().to_string();
    let comments = format!("/api/tracks/{id}/comments");
    let json = [("content-type", "application/json")];
    assert_eq!(call(a.1, "POST", &comments, &json, br#"{"comment_id":"c1","author":"ana","body":"first"}"#).0, 201);
    assert_eq!(call(a.1, "POST", &comments, &json, br#"{"comment_id":"c2","author":"ben","body":"second"}"#).0, 201);
    let (status, c1) = call(a.1, "POST", &comments, &json, br#"{"comment_id":"c1","author":"ana","body":"first"}"#);
    assert_eq!((status, c1["seq"].as_i64()), (200, Some(1)), "a retried comment is the stored one");
    assert_eq!(call(a.1, "POST", &comments, &json, br#"{"comment_id":"c3","author":"ana","body":"  "}"#).0, 400);
    assert_eq!(call(a.1, "POST", "/api/tracks/nope/comments", &json, br#"{"comment_id":"c4","author":"a","body":"b"}"#).0, 404);
    assert_eq!(call(a.1, "POST", &format!("/api/tracks/{id}/plays"), &json, br#"{"play_id":"p1"}"#).0, 204);
    assert_eq!(call(a.1, "POST", &format!("/api/tracks/{id}/plays"), &json, br#"{"play_id":"p1"}"#).0, 204, "a retried play answers the same");
    drop(a);
    a = api(&pg.url, &work.path().join("media"));
    let (_, listed) = call(a.1, "GET", &comments, &[], b"");
    let order: Vec<(String, i64)> = listed.as_array().unwrap().iter().map(|c| (c["id"].as_str().unwrap().to_string(), c["seq"].as_i64().unwrap())).collect();
    assert_eq!(order, [("c1".to_string(), 1), ("c2".to_string(), 2)], "kept across a restart, in order, once each");
    let (_, t) = call(a.1, "GET", &format!("/api/tracks/{id}"), &[], b"");
    assert_eq!((t["plays"].as_i64(), t["comments"].as_i64()), (Some(1), Some(2)), "{t}");
    drop(a);

    // The whole demo in messaging mode, counted from PostgreSQL.
    let lapis = std::env::var_os("LAPIS_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/lapis"));
    let out = music_share()
        .args(["demo", "--mode", "messaging", "--phones", "30", "--uploads", "2", "--comments", "4", "--plays", "4", "--drop", "0.2", "--json", "--database-url", &pg.url, "--dir"])
        .arg(work.path().join("demo"))
        .env("LAPIS_BIN", lapis)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let s: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(s["settled"], true, "{s}");
    for (task, attempted) in [("uploads", 60), ("comments", 120), ("plays", 120), ("published → notifications", 60), ("published → search-index", 60)] {
        let t = s["tallies"].as_array().unwrap().iter().find(|t| t["task"] == task).unwrap_or_else(|| panic!("no {task}: {s}"));
        let n = |f: &str| t[f].as_u64().unwrap();
        assert_eq!([n("attempted"), n("stored"), n("lost"), n("lost_after_ack"), n("duplicated"), n("out_of_order")], [attempted, attempted, 0, 0, 0, 0], "{task} on PostgreSQL: {t}");
    }
    assert_eq!(s["dead_lettered"].as_i64(), Some(2), "{s}");
}
