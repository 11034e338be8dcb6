//! The keep-alive HTTP/1.1 client: loopback-only URL parsing (`parse_url`,
//! `Endpoint`), opening a connection (`open`), and `Client`, which signs each
//! Queue REST call with Shared Key and reconnects when the server hangs up.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use tokio::net::TcpStream;

use crate::sign::Signer;

const API_VERSION: &str = "2021-12-02";
const CONTENT_TYPE: &str = "application/xml";

/// RFC 3986 unreserved characters stay; everything else is %-encoded.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Parsed `http://HOST:PORT/ACCOUNT` (path-style, as emulators use).
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub host_header: String,
    pub account: String,
    /// `/ACCOUNT`
    pub base_path: String,
}

/// `http://HOST:PORT/PATH` -> (address, Host header, path); only loopback hosts.
pub fn parse_url(url: &str) -> Result<(SocketAddr, String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("only http:// URLs are supported: {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(h) = authority.strip_prefix('[') {
        let end = h.find(']').ok_or("bad IPv6 authority")?;
        let port = h[end + 1..].strip_prefix(':').ok_or("port required")?;
        (&h[..end], port)
    } else {
        authority.rsplit_once(':').ok_or("port required in URL")?
    };
    let ip: IpAddr = if host == "localhost" {
        IpAddr::from([127, 0, 0, 1])
    } else {
        host.parse().map_err(|_| format!("host must be an IP literal: {host}"))?
    };
    if !ip.is_loopback() {
        return Err(format!("refusing non-loopback host {host}: the benchmark talks only to this machine"));
    }
    let port: u16 = port.parse().map_err(|_| format!("bad port {port}"))?;
    Ok((SocketAddr::new(ip, port), authority.to_string(), path.to_string()))
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Self, String> {
        let (addr, host_header, path) = parse_url(url)?;
        let account = path.trim_matches('/').split('/').next().unwrap_or("").to_string();
        if account.is_empty() {
            return Err("endpoint must end in /<account>, e.g. /devstoreaccount1".into());
        }
        Ok(Endpoint { addr, host_header, base_path: format!("/{account}"), account })
    }
}

/// Why `open` failed: the step (`connect` or `handshake`) and the error text.
pub struct OpenError {
    pub step: &'static str,
    pub error: String,
}

/// Connect to `addr` (TCP_NODELAY) and hand back an HTTP/1.1 sender; the
/// connection itself is driven by a spawned task.
pub async fn open(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, OpenError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| OpenError { step: "connect", error: e.to_string() })?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| OpenError { step: "handshake", error: e.to_string() })?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

pub struct Resp {
    pub status: u16,
    pub body: Bytes,
}

impl Resp {
    /// The start of the body (at most 400 bytes) as text, for error reports.
    pub fn snippet(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body[..self.body.len().min(400)])
    }
}

/// Whether the call got an answer with exactly this status.
pub fn answered(r: &Result<Resp, String>, status: u16) -> bool {
    matches!(r, Ok(x) if x.status == status)
}

/// One keep-alive HTTP/1.1 connection with Shared Key signing.
pub struct Client {
    ep: Arc<Endpoint>,
    signer: Signer,
    sender: Option<SendRequest<Full<Bytes>>>,
    pub reconnects: u64,
}

impl Client {
    pub fn new(ep: Arc<Endpoint>, signer: Signer) -> Self {
        Client { ep, signer, sender: None, reconnects: 0 }
    }

    pub async fn connect(&mut self) -> Result<(), String> {
        let sender = open(self.ep.addr).await.map_err(|e| format!("{}: {}", e.step, e.error))?;
        self.sender = Some(sender);
        Ok(())
    }

    /// `rel_path` is relative to the account, e.g. `/q/messages`.
    /// `query` holds (name, raw value); values are %-encoded on the wire and
    /// signed decoded.
    pub async fn call(
        &mut self,
        method: Method,
        rel_path: &str,
        query: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Result<Resp, String> {
        let path = format!("{}{}", self.ep.base_path, rel_path);
        let mut uri = path.clone();
        for (i, (n, v)) in query.iter().enumerate() {
            uri.push(if i == 0 { '?' } else { '&' });
            uri.push_str(n);
            uri.push('=');
            uri.extend(utf8_percent_encode(v, QUERY_VALUE));
        }
        let date = httpdate::fmt_http_date(SystemTime::now());
        let body = body.unwrap_or_default();
        let ctype = if body.is_empty() { "" } else { CONTENT_TYPE };
        let sts = self.signer.string_to_sign(
            method.as_str(),
            body.len(),
            ctype,
            &[("x-ms-date", &date), ("x-ms-version", API_VERSION)],
            &path,
            query,
        );
        let auth = self.signer.authorization(&sts);
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", &self.ep.host_header)
            .header("x-ms-date", date)
            .header("x-ms-version", API_VERSION)
            .header("authorization", auth)
            .header("content-length", body.len().to_string());
        if !ctype.is_empty() {
            b = b.header("content-type", ctype);
        }
        let req = b.body(Full::new(body)).map_err(|e| e.to_string())?;

        let needs_connect = match &self.sender {
            None => true,
            Some(s) => s.is_closed(),
        };
        if needs_connect {
            if self.sender.is_some() {
                self.reconnects += 1;
            }
            self.sender = None;
            self.connect().await?;
        }
        let sender = self.sender.as_mut().unwrap();
        let result = async {
            sender.ready().await.map_err(|e| format!("ready: {e}"))?;
            let resp = sender.send_request(req).await.map_err(|e| format!("send: {e}"))?;
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("body: {e}"))?
                .to_bytes();
            Ok::<_, String>(Resp { status, body })
        }
        .await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pop_receipt_is_percent_encoded() {
        let v: String = utf8_percent_encode("AgAA+/x=", QUERY_VALUE).collect();
        assert_eq!(v, "AgAA%2B%2Fx%3D");
    }

    #[test]
    fn refuses_non_loopback() {
        assert!(Endpoint::parse("http://10.0.0.1:10001/devstoreaccount1").is_err());
        let ep = Endpoint::parse("http://127.0.0.1:10001/devstoreaccount1").unwrap();
        assert_eq!(ep.account, "devstoreaccount1");
        assert_eq!(ep.base_path, "/devstoreaccount1");
        assert_eq!(ep.host_header, "127.0.0.1:10001");
    }
}
