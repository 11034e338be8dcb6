//! The web API as its clients use it, against the real binary on a fresh database:
//! uploads (idempotent by upload id, audio recognised by its bytes, the size limit),
//! comments (idempotent by comment id, numbered per track, bad input refused with
//! nothing stored), plays, and everything still there after a restart.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

struct Api {
    child: Child,
    port: u16,
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &std::path::Path) -> Api {
    let mut child = Command::new(env!("CARGO_BIN_EXE_music-share"))
        .args(["api", "--listen", "127.0.0.1:0", "--database"])
        .arg(dir.join("app.db"))
        .arg("--media")
        .arg(dir.join("media"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("music-share starts");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let port = first.trim().rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no address in {first:?}"));
    Api { child, port }
}

/// One request on its own connection: (status, body).
fn call(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    let text = String::from_utf8_lossy(&reply).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn mp3(len: usize) -> Vec<u8> {
    let mut b = b"ID3\x04\x00\x00".to_vec();
    b.resize(len, 0x55);
    b
}

fn upload(port: u16, id: &str, body: &[u8]) -> (u16, String) {
    call(port, "POST", "/api/tracks", &[("x-upload-id", id), ("x-title", "Night Drive"), ("x-artist", "The Lapis Trio"), ("content-type", "audio/mpeg")], body)
}

#[test]
fn uploads_are_stored_once_and_only_audio_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let api = start(dir.path());
    let audio = mp3(300_000);
    let (status, body) = upload(api.port, "up-1", &audio);
    assert_eq!(status, 201, "{body}");
    let track = json(&body);
    assert_eq!((track["title"].as_str(), track["content_type"].as_str(), track["size_bytes"].as_i64()), (Some("Night Drive"), Some("audio/mpeg"), Some(300_000)));
    let (status, again) = upload(api.port, "up-1", &audio);
    assert_eq!((status, json(&again)["id"].clone()), (200, track["id"].clone()), "a retried upload is the same track");

    let (status, body) = call(api.port, "POST", "/api/tracks", &[("x-upload-id", "up-utf8"), ("x-title", "Caf%C3%A9 %C3%A0 minuit"), ("x-artist", "Zo%C3%A9")], &audio);
    assert_eq!((status, json(&body)["title"].as_str(), json(&body)["artist"].as_str()), (201, Some("Café à minuit"), Some("Zoé")), "titles travel percent-encoded: {body}");
    let (status, _) = call(api.port, "POST", "/api/tracks", &[("x-upload-id", "up-bad"), ("x-title", "Bad%0Aline"), ("x-artist", "Me")], &audio);
    assert_eq!(status, 400, "a control character in a title is refused");
    let (status, body) = upload(api.port, "up-2", b"%PDF-1.7 not music");
    assert_eq!(status, 415, "{body}");
    assert!(json(&body)["error"].as_str().unwrap().contains("not an audio file"));
    let (status, _) = call(api.port, "POST", "/api/tracks", &[("x-upload-id", "up-3")], &audio);
    assert_eq!(status, 400, "a title and an artist are required");
    let (status, _) = upload(api.port, "up-4", &mp3(65 << 20));
    assert_eq!(status, 413, "over 64 MB");

    let (_, list) = call(api.port, "GET", "/api/tracks", &[], b"");
    assert_eq!(json(&list).as_array().unwrap().len(), 2, "nothing half-stored by the refused uploads");
    let id = track["id"].as_str().unwrap();
    let (status, got) = call(api.port, "GET", &format!("/api/tracks/{id}/audio"), &[], b"");
    assert_eq!((status, got.len()), (200, audio.len()));
    let files = std::fs::read_dir(dir.path().join("media")).unwrap().count();
    assert_eq!(files, 2, "one file for each track");
}

#[test]
fn comments_are_stored_once_in_order_and_bad_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut api = start(dir.path());
    let (_, body) = upload(api.port, "up-1", &mp3(1000));
    let id = json(&body)["id"].as_str().unwrap().to_string();
    let path = format!("/api/tracks/{id}/comments");
    let post = |port: u16, body: &str| call(port, "POST", &path, &[("content-type", "application/json")], body.as_bytes());
    assert_eq!(post(api.port, r#"{"comment_id":"c1","author":"ana","body":"love the bass"}"#).0, 201);
    assert_eq!(post(api.port, r#"{"comment_id":"c2","author":"ben","body":"second!"}"#).0, 201);
    let (status, retried) = post(api.port, r#"{"comment_id":"c1","author":"ana","body":"love the bass"}"#);
    assert_eq!((status, json(&retried)["seq"].as_i64()), (200, Some(1)), "a retried comment is the stored one");
    assert_eq!(post(api.port, r#"{"comment_id":"c3","author":"ana","body":"   "}"#).0, 400, "empty");
    assert_eq!(post(api.port, &format!(r#"{{"comment_id":"c4","author":"ana","body":"{}"}}"#, "x".repeat(2001))).0, 400, "too long");
    assert_eq!(post(api.port, "{not json").0, 400);
    assert_eq!(call(api.port, "POST", "/api/tracks/nope/comments", &[], br#"{"comment_id":"c5","author":"a","body":"b"}"#).0, 404);
    assert_eq!(call(api.port, "POST", &format!("/api/tracks/{id}/plays"), &[], b"").0, 204);
    assert_eq!(call(api.port, "POST", "/api/tracks/nope/plays", &[], b"").0, 404);

    drop(api);
    api = start(dir.path());
    let (_, listed) = call(api.port, "GET", &path, &[], b"");
    let listed = json(&listed);
    let order: Vec<(&str, i64)> = listed.as_array().unwrap().iter().map(|c| (c["id"].as_str().unwrap(), c["seq"].as_i64().unwrap())).collect();
    assert_eq!(order, [("c1", 1), ("c2", 2)], "kept across a restart, in order, once each");
    let (_, track) = call(api.port, "GET", &format!("/api/tracks/{id}"), &[], b"");
    assert_eq!((json(&track)["plays"].as_i64(), json(&track)["comments"].as_i64()), (Some(1), Some(2)));
}

fn music_share(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_music-share")).args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn phones_on_a_flaky_network_lose_items_when_they_call_the_api_directly() {
    let dir = tempfile::tempdir().unwrap();
    let api = start(dir.path());
    let ledger = dir.path().join("ledger.json");
    let addr = format!("127.0.0.1:{}", api.port);
    // Half the attempts meet a fault and a phone tries twice: about one item in
    // sixteen never reaches the API at all (the seed fixes which).
    let said = music_share(&["mobile", "--api", &addr, "--phones", "10", "--uploads", "2", "--comments", "5", "--drop", "0.5", "--tries", "2", "--seed", "3", "--audio-bytes", "2048", "--ledger", ledger.to_str().unwrap()]);
    assert!(said.contains("acknowledged"), "{said}");
    let db = dir.path().join("app.db");
    let counted: serde_json::Value = serde_json::from_str(&music_share(&["count", "--database", db.to_str().unwrap(), "--ledger", ledger.to_str().unwrap(), "--json"])).unwrap();
    let table = music_share(&["count", "--database", db.to_str().unwrap(), "--ledger", ledger.to_str().unwrap()]);
    let tally = |task: &str| counted.as_array().unwrap().iter().find(|t| t["task"] == task).unwrap_or_else(|| panic!("no {task} in {counted}")).clone();
    for (task, attempted) in [("uploads", 20), ("comments", 50), ("plays", 50)] {
        let t = &tally(task);
        assert_eq!(t["attempted"], attempted, "{table}");
        assert_eq!(t["lost"].as_u64().unwrap(), attempted - t["stored"].as_u64().unwrap(), "{table}");
        assert_eq!(t["lost_after_ack"], 0, "the API never loses what it acknowledged: {table}");
        assert_eq!(t["duplicated"], 0, "retries are idempotent: {table}");
        assert!(t["acknowledged"].as_u64().unwrap() <= t["stored"].as_u64().unwrap(), "{table}");
    }
    let lost = tally("uploads")["lost"].as_u64().unwrap() + tally("comments")["lost"].as_u64().unwrap();
    assert!(lost > 0, "direct calls over a flaky network lose what the phones gave up on: {table}");
}
