//! Helpers shared by the binary's integration tests: run `lapis`, start `lapis serve`
//! on free ports and wait for /health, stop it with SIGTERM.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn lapis() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lapis"))
}

pub fn run(args: &[&str]) -> Output {
    lapis().args(args).output().expect("lapis runs")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `lapis serve` on free ports and waits until /health answers. A port another
/// test took between `free_port` and the server's bind makes the server exit; then it
/// starts again on fresh ports.
pub fn start(extra: &[&str]) -> (Child, u16, u16) {
    let mut last = String::new();
    for _ in 0..5 {
        let (queue_port, http_port, amqp_port) = (free_port(), free_port(), free_port());
        let mut args = vec![
            "serve".to_string(),
            "--queue-port".into(),
            queue_port.to_string(),
            "--blob-port".into(),
            "0".into(),
            "--http-port".into(),
            http_port.to_string(),
            "--amqp-port".into(),
            amqp_port.to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut child = lapis().args(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("lapis starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", http_port)) {
                let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                let mut reply = String::new();
                let _ = s.read_to_string(&mut reply);
                if reply.starts_with("HTTP/1.1 200") {
                    return (child, queue_port, http_port);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        last.clear();
        if let Some(mut err) = child.stderr.take() {
            let _ = err.read_to_string(&mut last);
        }
        if !last.contains("binding") {
            break;
        }
    }
    panic!("lapis did not become healthy:\n{last}");
}

pub fn terminate(mut child: Child) -> (std::process::ExitStatus, String) {
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (status, err)
}


/// `lapis <service> --endpoint … <args>` (the admin CLI, `sb` or `eh`) against the
/// server whose HTTP port is `http_port`: success, stdout, stderr.
pub fn admin_cli(service: &str, http_port: u16, args: &[&str]) -> (bool, String, String) {
    let endpoint = format!("http://127.0.0.1:{http_port}");
    let mut full = vec![service, "--endpoint", endpoint.as_str()];
    full.extend_from_slice(args);
    let out = run(&full);
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// Parses a CLI's JSON output, failing the test with the text if it is not JSON.
pub fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}
