//! Azure returns metadata names in the case the client wrote them (`x-ms-meta-Color`
//! comes back as `Color`), but hyper lowercases header names both ways and keeps no
//! record of the original. [`CaseRecorder`] wraps a connection's byte stream:
//!
//! - inbound, it notes the spelling of every `x-ms-meta-*` header name, which a
//!   handler reads back through [`OriginalCase::restore`];
//! - outbound, it rewrites the `x-ms-meta-*` names a handler registered with
//!   [`OriginalCase::respond_with`] to their stored spelling. Case never changes a
//!   name's length, so the rewrite is in place.
//!
//! Requests on one connection are handled one after another (SDKs do not pipeline),
//! so the names on a connection's state belong to the exchange in progress.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const PREFIX: &[u8] = b"x-ms-meta-";
/// Longest header name considered; longer lines are not metadata names we track.
const MAX_NAME: usize = 256;
/// Names remembered per connection before the memory is reset.
const MAX_NAMES: usize = 512;

#[derive(Debug, Default)]
struct Spellings {
    /// Seen in requests, by lowercase name.
    inbound: HashMap<String, String>,
    /// To write in the next response head, by lowercase name.
    outbound: HashMap<String, String>,
}

/// One connection's metadata-name spellings.
#[derive(Debug, Clone, Default)]
pub struct OriginalCase(Arc<Mutex<Spellings>>);

impl OriginalCase {
    /// The name as the client wrote it, or `lowercase` if it was not seen.
    pub fn restore(&self, lowercase: &str) -> String {
        self.0.lock().inbound.get(lowercase).cloned().unwrap_or_else(|| lowercase.to_string())
    }

    /// Spell these metadata names (without the `x-ms-meta-` prefix) as given in the
    /// response about to be written.
    pub fn respond_with<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let mut s = self.0.lock();
        s.outbound = names.into_iter().map(|n| (n.to_ascii_lowercase(), n.to_string())).collect();
    }

    fn record(&self, name: &[u8]) {
        let Ok(name) = std::str::from_utf8(name) else { return };
        let mut s = self.0.lock();
        if s.inbound.len() >= MAX_NAMES {
            s.inbound.clear();
        }
        s.inbound.insert(name.to_ascii_lowercase(), name.to_string());
    }

    fn outbound_spelling(&self, lowercase: &[u8]) -> Option<String> {
        let s = self.0.lock();
        std::str::from_utf8(lowercase).ok().and_then(|n| s.outbound.get(&n.to_ascii_lowercase()).cloned())
    }

    fn head_written(&self) {
        self.0.lock().outbound.clear();
    }
}

/// What a scan found, at an index of the bytes it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Found {
    /// A complete `x-ms-meta-<name>` header name ends at `end` (the colon's index);
    /// `name` is without the prefix.
    MetadataName { end: usize, name: Vec<u8> },
    /// An empty line ends at `end`: the end of a message head.
    EndOfHead { end: usize },
}

/// Finds `x-ms-meta-*` header names line by line in a byte stream. Only the first
/// bytes of each line are examined; the rest of a line is skipped with `memchr`, so
/// bodies cost almost nothing.
struct Scanner {
    /// The start of the current line, while it may still be a metadata header name.
    line: Vec<u8>,
    /// False once the current line is known not to be one; then skip to `\n`.
    collecting: bool,
}

impl Scanner {
    fn new() -> Self {
        Scanner { line: Vec::with_capacity(32), collecting: true }
    }

    fn scan(&mut self, bytes: &[u8]) -> Vec<Found> {
        let mut found = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if !self.collecting {
                match memchr::memchr(b'\n', &bytes[i..]) {
                    Some(p) => {
                        i += p + 1;
                        self.line.clear();
                        self.collecting = true;
                        continue;
                    }
                    None => break,
                }
            }
            let b = bytes[i];
            match b {
                b'\n' => {
                    if self.line.is_empty() || self.line == b"\r" {
                        found.push(Found::EndOfHead { end: i });
                    }
                    self.line.clear();
                }
                b':' => {
                    if self.line.len() > PREFIX.len() && self.line[..PREFIX.len()].eq_ignore_ascii_case(PREFIX) {
                        found.push(Found::MetadataName { end: i, name: self.line[PREFIX.len()..].to_vec() });
                    }
                    self.collecting = false;
                }
                _ => {
                    self.line.push(b);
                    let n = self.line.len();
                    let is_cr_only = n == 1 && b == b'\r';
                    let prefix_broken = !is_cr_only && n <= PREFIX.len() && !b.eq_ignore_ascii_case(&PREFIX[n - 1]);
                    if prefix_broken || n > MAX_NAME {
                        self.collecting = false;
                    }
                }
            }
            i += 1;
        }
        found
    }
}

/// A byte stream that records metadata header spellings on the way in and restores
/// them on the way out.
pub struct CaseRecorder<S> {
    inner: S,
    names: OriginalCase,
    inbound: Scanner,
    outbound: Scanner,
}

impl<S> CaseRecorder<S> {
    pub fn new(inner: S) -> (Self, OriginalCase) {
        let names = OriginalCase::default();
        (CaseRecorder { inner, names: names.clone(), inbound: Scanner::new(), outbound: Scanner::new() }, names)
    }

    fn observe(&mut self, bytes: &[u8]) {
        for f in self.inbound.scan(bytes) {
            if let Found::MetadataName { name, .. } = f {
                self.names.record(&name);
            }
        }
    }

    /// Returns `bytes` with registered metadata names respelled (if any were found),
    /// and whether a message head ended within them. Clearing the registered names
    /// is left to the caller, who knows how many bytes were really written.
    fn respell(&mut self, bytes: &[u8]) -> (Option<Vec<u8>>, bool) {
        let mut out: Option<Vec<u8>> = None;
        let mut head_ended = false;
        for f in self.outbound.scan(bytes) {
            match f {
                Found::MetadataName { end, name } if end >= name.len() && !head_ended => {
                    if let Some(spelling) = self.names.outbound_spelling(&name).filter(|s| s.len() == name.len()) {
                        out.get_or_insert_with(|| bytes.to_vec())[end - name.len()..end].copy_from_slice(spelling.as_bytes());
                    }
                }
                Found::EndOfHead { .. } => head_ended = true,
                Found::MetadataName { .. } => {}
            }
        }
        (out, head_ended)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CaseRecorder<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &poll {
            self.observe(&buf.filled()[before..]);
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CaseRecorder<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        // The scanner must see each byte once, so scan a copy and only commit the scan
        // for the bytes actually written.
        let saved = Scanner { line: self.outbound.line.clone(), collecting: self.outbound.collecting };
        let (rewritten, mut head_ended) = self.respell(buf);
        let data = rewritten.as_deref().unwrap_or(buf);
        let poll = Pin::new(&mut self.inner).poll_write(cx, data);
        match &poll {
            Poll::Ready(Ok(n)) if *n == buf.len() => {}
            Poll::Ready(Ok(n)) => {
                self.outbound = saved;
                let n = *n;
                head_ended = self.respell(&buf[..n]).1;
            }
            _ => {
                self.outbound = saved;
                head_ended = false;
            }
        }
        if head_ended {
            self.names.head_written();
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_metadata_names_split_across_reads() {
        let (mut rec, names) = CaseRecorder::new(());
        let head = b"PUT /a/q HTTP/1.1\r\nHost: x\r\nX-MS-META-Color: red\r\nx-ms-meta-someKey: 1\r\nx-ms-date: d\r\n\r\n";
        for chunk in head.chunks(7) {
            rec.observe(chunk);
        }
        assert_eq!(names.restore("color"), "Color");
        assert_eq!(names.restore("somekey"), "someKey");
        assert_eq!(names.restore("other"), "other");
    }

    #[test]
    fn respells_registered_names_in_response_heads_only() {
        let (mut rec, names) = CaseRecorder::new(());
        names.respond_with(["Color", "camelCase"]);
        let head = b"HTTP/1.1 200 OK\r\nx-ms-meta-color: red\r\nx-ms-meta-camelcase: 1\r\nx-ms-meta-other: 2\r\n\r\n";
        let (out, ended) = rec.respell(head);
        assert_eq!(
            std::str::from_utf8(&out.unwrap()).unwrap(),
            "HTTP/1.1 200 OK\r\nx-ms-meta-Color: red\r\nx-ms-meta-camelCase: 1\r\nx-ms-meta-other: 2\r\n\r\n"
        );
        assert!(ended);
        // A head split across writes is still respelled when the name itself lies in
        // one write; the registered names stay until the caller marks the head written.
        let (first, ended) = rec.respell(b"HTTP/1.1 200 OK\r\nx-ms-me");
        assert!(first.is_none() && !ended);
        let (rest, ended) = rec.respell(b"ta-color: red\r\n\r\n");
        assert!(ended);
        assert_eq!(rest.as_deref(), Some(&b"ta-Color: red\r\n\r\n"[..]));
        rec.names.head_written();
        let (after, _) = rec.respell(b"HTTP/1.1 200 OK\r\nx-ms-meta-color: red\r\n\r\n");
        assert!(after.is_none(), "cleared after the head");
    }
}
