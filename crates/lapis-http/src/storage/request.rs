//! A storage request, decoded once: account, path segments, query parameters, headers
//! and body.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Method, Request};
use lapis_core::auth::Accounts;
use percent_encoding::percent_decode_str;

use super::error::StorageError;
use crate::header_case::OriginalCase;

/// How long a client may take to send its body once the headers are in.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes past a body's limit that are still read (and dropped) before refusing it, so
/// that a client still sending can read the 413 instead of a reset connection.
pub const MAX_DRAINED_BYTES: usize = 16 << 20;

/// Why a body could not be taken.
enum BodyError {
    TooLarge,
    Unreadable,
}

/// Collects `body` up to `max` bytes (`expected` is the announced length, if any). A
/// longer one is read on to its end (within [`MAX_DRAINED_BYTES`] more) and refused.
async fn collect_bounded(mut body: Incoming, max: usize, expected: Option<usize>) -> Result<Bytes, BodyError> {
    let mut kept = BytesMut::with_capacity(expected.unwrap_or(0).min(max));
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| BodyError::Unreadable)?.into_data() else { continue };
        seen = seen.saturating_add(data.len());
        if seen <= max {
            kept.extend_from_slice(&data);
        } else if seen - max > MAX_DRAINED_BYTES {
            break;
        }
    }
    if seen > max {
        return Err(BodyError::TooLarge);
    }
    Ok(kept.freeze())
}

pub struct StorageRequest {
    pub method: Method,
    /// The path exactly as sent (still percent-encoded), for signatures.
    pub raw_path: String,
    /// The account, without any `-secondary` suffix.
    pub account: String,
    pub secondary: bool,
    /// Decoded path segments after the account.
    pub segments: Vec<String>,
    /// Decoded query parameters; names lowercased, repeated names keep every value.
    pub query: BTreeMap<String, Vec<String>>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Original spellings of metadata header names on this connection.
    pub original_case: OriginalCase,
    /// `http://host:port/account` (path-style) or `http://host:port/` (host-style), for
    /// `ServiceEndpoint` attributes.
    pub endpoint: String,
}

fn decode(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// Whether `host` is an IP literal (so the account is the first path segment).
fn is_ip_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').split(']').next().unwrap_or(host);
    let without_port = if host.starts_with('[') { bare } else { host.split(':').next().unwrap_or(host) };
    without_port.parse::<std::net::IpAddr>().is_ok()
}

impl StorageRequest {
    /// Reads the request, including its body (at most `max_body` bytes).
    pub async fn read(req: Request<Incoming>, max_body: usize) -> Result<StorageRequest, StorageError> {
        let (parts, body) = req.into_parts();
        let original_case = parts.extensions.get::<OriginalCase>().cloned().unwrap_or_default();
        let host = parts.headers.get(hyper::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1").to_string();
        let raw_path = parts.uri.path().to_string();
        let mut segments: Vec<String> = raw_path.split('/').skip(1).map(decode).collect();
        if segments.last().is_some_and(|s| s.is_empty()) {
            segments.pop();
        }
        // Production-style hosts (`account.queue.localhost`) name the account in the
        // host; IP hosts and single-label names (`localhost`) put it in the path.
        let host_name = host.split(':').next().unwrap_or("");
        let host_account = (!is_ip_host(&host) && host_name.contains('.')).then(|| host_name.split('.').next().unwrap_or("").to_string());
        let (account_segment, endpoint) = match host_account {
            Some(a) => (a, format!("http://{host}/")),
            None => {
                let a = if segments.is_empty() { String::new() } else { segments.remove(0) };
                let endpoint = format!("http://{host}/{a}");
                (a, endpoint)
            }
        };
        let (account, secondary) = match account_segment.strip_suffix("-secondary") {
            Some(a) => (a.to_string(), true),
            None => (account_segment.clone(), false),
        };
        let mut query: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for pair in parts.uri.query().unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            query.entry(decode(k).to_ascii_lowercase()).or_default().push(decode(v));
        }
        let declared = parts.headers.get(hyper::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        if declared.is_some_and(|n| n.saturating_sub(max_body) > MAX_DRAINED_BYTES) {
            return Err(StorageError::body_too_large(max_body));
        }
        let body = match tokio::time::timeout(BODY_TIMEOUT, collect_bounded(body, max_body, declared)).await {
            Err(_) => return Err(StorageError::request_timeout()),
            Ok(Err(BodyError::TooLarge)) => return Err(StorageError::body_too_large(max_body)),
            Ok(Err(BodyError::Unreadable)) => return Err(StorageError::invalid_input("The request body could not be read.")),
            Ok(Ok(bytes)) => bytes,
        };
        Ok(StorageRequest {
            method: parts.method,
            raw_path,
            endpoint,
            account,
            secondary,
            segments,
            query,
            headers: parts.headers,
            body,
            original_case,
        })
    }

    /// What every storage endpoint checks first: an `x-ms-version` that looks like a
    /// version (any `YYYY-MM-DD`, so clients newer than this server still work).
    pub fn check_version(&self) -> Result<(), StorageError> {
        match self.header("x-ms-version") {
            Some(v) if !looks_like_version(v) => Err(StorageError::invalid_header("x-ms-version", v)),
            _ => Ok(()),
        }
    }

    /// That the addressed account exists.
    pub fn check_account(&self, accounts: &Accounts) -> Result<(), StorageError> {
        if self.account.is_empty() || accounts.keys(&self.account).is_none() {
            return Err(StorageError::authentication_failed(format!("No account named {:?}.", self.account)));
        }
        Ok(())
    }

    /// The first value of query parameter `name` (lowercase).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).and_then(|v| v.first()).map(|s| s.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// An integer query parameter; present but not an integer is a 400.
    pub fn int_param(&self, name: &str) -> Result<Option<i64>, StorageError> {
        match self.param(name) {
            None => Ok(None),
            Some(v) => v.trim().parse::<i64>().map(Some).map_err(|_| StorageError::invalid_query_parameter(name, v, "not an integer")),
        }
    }

    /// `x-ms-meta-*` headers as (name, value) pairs, names spelled as the client sent them.
    pub fn metadata(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .filter_map(|(k, v)| {
                let name = k.as_str().strip_prefix("x-ms-meta-")?;
                Some((self.original_case.restore(name), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            })
            .collect()
    }

    /// Whether a comma-separated query parameter (such as `include`) lists `item`.
    pub fn param_lists(&self, name: &str, item: &str) -> bool {
        self.param(name).is_some_and(|v| v.split(',').any(|i| i.trim() == item))
    }

    /// The body as UTF-8 text.
    pub fn body_text(&self) -> Result<&str, StorageError> {
        std::str::from_utf8(&self.body).map_err(|_| StorageError::invalid_xml("The request body is not valid UTF-8."))
    }
}

fn looks_like_version(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 10 && b[4] == b'-' && b[7] == b'-' && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}
