//! A real `lapis serve` on free loopback ports with a fresh data directory and an
//! emulator `Config.json`; killed (and its directory removed) on drop. Its log goes
//! to a file whose tail is printed when a test fails. Shared by the Rust test crates
//! next to this folder, each of which includes it as its `server` module and adds
//! what its own tests need.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub(crate) child: Child,
    pub amqp_port: u16,
    pub http_port: u16,
    dir: PathBuf,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- lapis log tail ({}) ---\n{}", self.log.display(), self.log_tail(60));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn lapis_bin() -> PathBuf {
    match std::env::var_os("LAPIS_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../target/debug/lapis"),
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// One HTTP/1.0 request (so the answer is never chunked); status and body.
pub fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> Option<(u16, String)> {
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut got = Vec::new();
    s.read_to_end(&mut got).ok()?;
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

impl Server {
    /// Starts a server whose entities are the emulator `Config.json` document
    /// `config`.
    pub fn start(config: &serde_json::Value) -> Server {
        let bin = lapis_bin();
        assert!(bin.exists(), "lapis binary not found at {} (set LAPIS_BIN or run `cargo build -p lapis`)", bin.display());
        let dir = std::env::temp_dir().join(format!(
            "lapis-{}-{}-{}",
            env!("CARGO_PKG_NAME"),
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        ));
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let config_path = dir.join("config.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(config).unwrap()).unwrap();
        let log = dir.join("lapis.log");
        // Ports are picked by binding 0 and closing; retry in the unlikely case
        // another process takes one in between.
        for _attempt in 0..3 {
            let (ap, hp) = (free_port(), free_port());
            let log_file = std::fs::File::create(&log).unwrap();
            let mut child = Command::new(&bin)
                .args(["serve", "--data-dir"])
                .arg(&data)
                .args(["--host", "127.0.0.1"])
                .args(["--queue-port", "0", "--blob-port", "0", "--kafka-port", "0"])
                .args(["--http-port", &hp.to_string()])
                .args(["--amqp-port", &ap.to_string()])
                .arg("--config")
                .arg(&config_path)
                .args(["--log-level", "info,lapis_amqp=debug"])
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    eprintln!("lapis exited early with {status}; retrying with other ports\n{}", std::fs::read_to_string(&log).unwrap_or_default());
                    break;
                }
                let healthy = http(hp, "GET", "/health", &[]).is_some_and(|(s, _)| s == 200);
                let amqp_up = TcpStream::connect(("127.0.0.1", ap)).is_ok();
                if healthy && amqp_up {
                    return Server { child, amqp_port: ap, http_port: hp, dir, log };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("lapis did not get ready on ports {hp}/{ap} within 30 s\n{}", std::fs::read_to_string(&log).unwrap_or_default());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("lapis failed to start three times");
    }

    pub fn amqp_url(&self) -> String {
        format!("amqp://127.0.0.1:{}", self.amqp_port)
    }

    /// The last `n` lines of the server's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Whether the server still answers `GET /health` and is still running.
    pub fn healthy(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None)) && http(self.http_port, "GET", "/health", &[]).is_some_and(|(s, _)| s == 200)
    }
}

/// Runs `f`, failing the test if it takes longer than `secs` (a server that stops
/// answering fails the test instead of hanging it).
pub async fn bounded<F: std::future::Future>(secs: u64, what: &str, f: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(secs), f).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: not done within {secs} s"),
    }
}
