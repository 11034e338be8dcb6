//! The demo's processes: Lapis (the `lapis` binary), and this binary's API, workers
//! and handlers, each on free loopback ports, killed when dropped — and killed and
//! started again on purpose, which is the demo's fault injection.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

use crate::http::{request, Fault, Outcome};

/// A free loopback port (bound, then let go).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A process the demo runs: how to start it, and the running child.
pub struct Proc {
    pub name: String,
    program: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    health: Option<String>,
    child: Option<Child>,
}

async fn healthy(addr: &str) -> bool {
    matches!(request(addr, "GET", "/health", &[], b"", Duration::from_secs(1), Fault::None).await, Outcome::Answered { status: 200, .. })
}

impl Proc {
    /// `health` is the host:port answering `GET /health` once it is ready.
    pub fn new(name: &str, program: &Path, args: Vec<String>, dir: &Path, health: Option<String>) -> Proc {
        Proc { name: name.into(), program: program.into(), args, log: dir.join(format!("{name}.log")), health, child: None }
    }

    pub async fn start(&mut self) -> anyhow::Result<()> {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} ({})", self.name, self.program.display()))?;
        self.child = Some(child);
        let Some(addr) = self.health.clone() else { return Ok(()) };
        for _ in 0..300 {
            if healthy(&addr).await {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!("{} exited with {status} before it was ready; see {}", self.name, self.log.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("{} did not answer GET /health on {addr} within 30 s; see {}", self.name, self.log.display())
    }

    /// SIGKILL: no chance to finish anything.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }
}
