//! A small HTTP/1.1 client for the simulated clients: one request per connection,
//! with a timeout, and the two ways a flaky network fails a request — before it is
//! sent, or after it was sent but before the answer arrived (the sender cannot know
//! whether it landed).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// The connection fails before the request leaves.
    DropBefore,
    /// The request is sent; the answer never comes back.
    DropAfter,
}

#[derive(Debug)]
pub enum Outcome {
    Answered { status: u16, body: Vec<u8> },
    /// No answer: refused, reset, timed out, or dropped by the network.
    NoAnswer(String),
}

pub async fn request(addr: &str, method: &str, path: &str, headers: &[(&str, String)], body: &[u8], timeout: Duration, fault: Fault) -> Outcome {
    if fault == Fault::DropBefore {
        return Outcome::NoAnswer("the network dropped the connection".into());
    }
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).await.map_err(|e| e.to_string())?;
        s.write_all(body).await.map_err(|e| e.to_string())?;
        if fault == Fault::DropAfter {
            // Give the server time to take it; then the answer is lost on the way back.
            tokio::time::sleep(Duration::from_millis(20)).await;
            return Err("the network lost the answer".to_string());
        }
        let mut reply = Vec::new();
        s.read_to_end(&mut reply).await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&reply);
        let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| "no status line".to_string())?;
        let at = reply.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4).unwrap_or(reply.len());
        Ok((status, reply[at..].to_vec()))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok((status, body))) => Outcome::Answered { status, body },
        Ok(Err(e)) => Outcome::NoAnswer(e),
        Err(_) => Outcome::NoAnswer("timed out".into()),
    }
}
