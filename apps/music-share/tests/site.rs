//! The web site and the admin page as people use them, against the whole
//! application in messaging mode (`music-share up`: the real `lapis` binary, the
//! API, the workers, the handlers, the site):
//!
//! - in headless Chromium (tests/browser/site.mjs, Debian's `chromium` driven by
//!   playwright-core): upload a track and see it, comment and see it, bad input
//!   refused, the live list updated; screenshots kept in
//!   `target/browser-screenshots`;
//! - the admin page shows comments the back end could not store (on a deleted
//!   track), which Service Bus dead-lettered.
//!
//! `scripts/test` installs Chromium and the npm package and sets
//! `MUSIC_SHARE_BROWSER_TEST=1`, which makes a missing browser a failure; elsewhere
//! the browser half is skipped when Chromium is not installed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn lapis_bin() -> PathBuf {
    match std::env::var_os("LAPIS_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/lapis"),
    }
}

struct Up {
    child: Child,
    web: String,
    api: String,
    ports: Vec<String>,
}

impl Drop for Up {
    fn drop(&mut self) {
        // SIGINT lets `up` stop what it started; then make sure.
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn up(dir: &Path) -> Up {
    let mut child = Command::new(env!("CARGO_BIN_EXE_music-share"))
        .args(["up", "--mode", "messaging", "--web-port", &free_port().to_string(), "--dir"])
        .arg(dir)
        .env("LAPIS_BIN", lapis_bin())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    let second = lines.next().and_then(Result::ok).unwrap_or_default();
    let after = |text: &str, key: &str| text.split(key).nth(1).and_then(|r| r.split([',', ' ']).next()).map(str::to_string).unwrap_or_else(|| panic!("no {key} in {text:?}"));
    let web = after(&first, "web site on ");
    let api = after(&first, "API on http://");
    // "Lapis: queues :Q, blobs :B, AMQP :A, Event Grid and admin :H"
    let ports: Vec<String> = second.split(':').skip(2).map(|p| p.split(',').next().unwrap_or_default().trim().to_string()).collect();
    assert_eq!(ports.len(), 4, "{second:?}");
    std::thread::spawn(move || for _ in lines {});
    Up { child, web, api, ports }
}

fn get(url: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, path) = rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    let status = reply.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, reply)
}

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("CHROMIUM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    path.exists().then_some(path)
}

#[test]
fn a_visitor_uploads_and_comments_in_chromium_and_the_admin_page_shows_poison() {
    let dir = tempfile::tempdir().unwrap();
    let app = up(dir.path());
    let browser_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let required = std::env::var("MUSIC_SHARE_BROWSER_TEST").as_deref() == Ok("1");
    match (chromium(), browser_dir.join("node_modules/playwright-core").exists()) {
        (Some(_), true) => {
            let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/browser-screenshots");
            let out = Command::new("node").arg(browser_dir.join("site.mjs")).arg(&app.web).arg(&shots).output().expect("node runs");
            assert!(out.status.success(), "the browser test failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            for shot in ["home.png", "track.png", "live.png"] {
                assert!(shots.join(shot).exists(), "{shot} was taken");
            }
        }
        _ if required => panic!("MUSIC_SHARE_BROWSER_TEST=1 but Chromium or tests/browser/node_modules is missing (scripts/test installs both)"),
        _ => eprintln!("skipping the browser half: no Chromium or no tests/browser/node_modules"),
    }

    // Two phones comment on a track that has been deleted: the comment worker cannot
    // store them and dead-letters them, and the admin page says why.
    let ledger = dir.path().join("stale.json");
    let out = Command::new(env!("CARGO_BIN_EXE_music-share"))
        .args(["mobile", "--mode", "messaging", "--api", &app.api, "--phones", "2", "--uploads", "0", "--comments", "0", "--plays", "0", "--catalog", "1", "--stale-comments", "2", "--drop", "0"])
        .args(["--queue-port", &app.ports[0], "--blob-port", &app.ports[1], "--amqp-port", &app.ports[2], "--http-port", &app.ports[3], "--ledger"])
        .arg(&ledger)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, page) = get(&format!("{}/admin", app.web));
        assert_eq!(status, 200, "{page}");
        if page.matches("UnknownTrack").count() == 2 {
            assert!(page.contains("phone0-stale") && page.contains("phone1-stale"), "{page}");
            assert!(page.contains("deleted-track-0"), "the dead-letter reason's description or body names the track: {page}");
            break;
        }
        assert!(Instant::now() < deadline, "the admin page never showed both dead-lettered comments: {page}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A multipart form POST on its own connection: (status, head and body).
fn post_form(url: &str, fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, path) = rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap();
    let boundary = "----music-share-test-boundary";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").bytes());
    }
    if let Some((name, bytes)) = file {
        body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").bytes());
        body.extend_from_slice(bytes);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").bytes());
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes()).unwrap();
    let _ = s.write_all(&body);
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    let text = String::from_utf8_lossy(&reply).into_owned();
    (text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0), text)
}

fn post_urlencoded(url: &str, body: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, path) = rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes()).unwrap();
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    (reply.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0), reply)
}

fn get_bytes(url: &str) -> Vec<u8> {
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, path) = rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    let at = reply.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    reply[at..].to_vec()
}

#[test]
fn a_track_of_tens_of_megabytes_goes_through_blob_and_the_queue_and_bad_uploads_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let app = up(dir.path());
    let mut audio = b"ID3\x04\x00\x00".to_vec();
    audio.extend((0..24u32 << 20).map(|i| (i % 251) as u8));
    let id = "0b9f3c1e-7a0d-4c55-9d7e-3f0a2b8c6d41";
    let (status, head) = post_form(&format!("{}/upload", app.web), &[("upload_id", id), ("title", "Long Take"), ("artist", "The Lapis Trio")], Some(("long.mp3", &audio)));
    assert_eq!(status, 303, "{head}");
    // Refused: not audio, over 64 MB, no title. None of them reaches Lapis.
    let (status, page) = post_form(&format!("{}/upload", app.web), &[("title", "Lyrics"), ("artist", "Me")], Some(("lyrics.txt", b"la la la")));
    assert!(status == 415 && page.contains("not an audio file"), "{status} {page}");
    let mut huge = b"ID3\x04\x00\x00".to_vec();
    huge.resize((64 << 20) + 1, 0x55);
    let (status, page) = post_form(&format!("{}/upload", app.web), &[("title", "Too Long"), ("artist", "Me")], Some(("huge.mp3", &huge)));
    assert!(status == 413 && page.contains("over 64 MB"), "{status} {page}");
    let (status, page) = post_form(&format!("{}/upload", app.web), &[("title", ""), ("artist", "Me")], Some(("a.mp3", b"ID3\x04\x00\x00x")));
    assert!(status == 400 && page.contains("needs a title"), "{status} {page}");

    // A comment of more than 2,000 characters, and one on a track that does not
    // exist, are refused by the site before anything is sent.
    let long = format!("comment_id=x&author=ana&body={}", "x".repeat(2001));
    let (status, page) = post_urlencoded(&format!("{}/tracks/anything/comments", app.web), &long);
    assert!(status == 400 && page.contains("at most 2000 characters"), "{status} {page}");
    let (status, page) = post_urlencoded(&format!("{}/tracks/no-such-track/comments", app.web), "comment_id=x&author=ana&body=hello");
    assert!(status == 404 && page.contains("no such track"), "{status} {page}");

    // The worker takes the job, reads the blob, stores the track.
    let deadline = Instant::now() + Duration::from_secs(60);
    let track = loop {
        let (_, list) = get(&format!("http://{}/api/tracks", app.api));
        let body = list.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        let tracks: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if let Some(t) = tracks.as_array().and_then(|a| a.iter().find(|t| t["title"] == "Long Take")) {
            assert_eq!(tracks.as_array().unwrap().len(), 1, "only the good upload is stored: {tracks}");
            break t.clone();
        }
        assert!(Instant::now() < deadline, "the upload was never stored: {body}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(track["size_bytes"].as_u64(), Some(audio.len() as u64));
    assert_eq!(track["upload_id"], format!("web-{id}"));
    let served = get_bytes(&format!("{}/tracks/{}/audio", app.web, track["id"].as_str().unwrap()));
    assert!(served == audio, "the audio comes back as uploaded ({} of {} bytes)", served.len(), audio.len());
    // The same form sent again (a double click, a retry) stores nothing new.
    let (status, _) = post_form(&format!("{}/upload", app.web), &[("upload_id", id), ("title", "Long Take"), ("artist", "The Lapis Trio")], Some(("long.mp3", &audio)));
    assert_eq!(status, 303);
    std::thread::sleep(Duration::from_secs(2));
    let (_, list) = get(&format!("http://{}/api/tracks", app.api));
    assert_eq!(list.matches("Long Take").count(), 1, "a resubmitted form is one track: {list}");
}
