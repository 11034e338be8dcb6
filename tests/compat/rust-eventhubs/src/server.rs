//! A real `lapis serve` on free loopback ports with a fresh data directory and an
//! Event Hubs emulator `Config.json`; killed (and its directory removed) on drop. Its
//! log goes to a file whose tail is printed when a test fails.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    child: Child,
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
            eprintln!("--- lapis log tail ({}) ---\n{}", self.log.display(), self.log_tail(80));
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

/// The status of `GET /health` (HTTP/1.0, so the answer is never chunked).
fn health(port: u16) -> Option<u16> {
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET /health HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes()).ok()?;
    let mut got = Vec::new();
    s.read_to_end(&mut got).ok()?;
    String::from_utf8_lossy(&got).split(' ').nth(1)?.parse().ok()
}

impl Server {
    /// Starts a server whose hubs are the Event Hubs emulator `Config.json`
    /// document `config` (see [`config`]).
    pub fn start(config: &serde_json::Value) -> Server {
        let bin = lapis_bin();
        assert!(bin.exists(), "lapis binary not found at {} (set LAPIS_BIN or run `cargo build -p lapis`)", bin.display());
        let dir = std::env::temp_dir().join(format!(
            "lapis-rust-eventhubs-{}-{}",
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
                let healthy = health(hp) == Some(200);
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

    /// Where the SDK's socket goes: Lapis's plain-TCP AMQP port.
    pub fn amqp_url(&self) -> String {
        format!("amqp://127.0.0.1:{}", self.amqp_port)
    }

    /// The emulator-style connection string for `hub`, signed with `key`.
    pub fn connection_string(&self, hub: &str, key: &str) -> String {
        format!(
            "Endpoint=sb://localhost:{};SharedAccessKeyName={};SharedAccessKey={key};UseDevelopmentEmulator=true;EntityPath={hub}",
            self.amqp_port,
            crate::KEY_NAME
        )
    }

    /// The last `n` lines of the server's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// The Event Hubs emulator's `Config.json` declaring `hubs` (each an `Entities[]` item).
pub fn config(hubs: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "UserConfig": {
            "NamespaceConfig": [{ "Type": "EventHub", "Name": "emulatorNs1", "Entities": hubs }],
            "LoggingConfig": { "Type": "File" }
        }
    })
}
