//! The outbound side of Event Grid push delivery: sends the requests the core builds
//! to webhook endpoints over HTTP/1.1 with pooled keep-alive connections, a timeout
//! per request, and a bound on the answer's size. The core decides every header,
//! body and status rule; this only carries them.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lapis_core::events::delivery::{HttpFailure, HttpMethod, HttpRequest, HttpResponse};

/// The most of an endpoint's answer that is read (a validation answer is tiny).
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Idle connections kept per endpoint.
const MAX_IDLE_PER_HOST: usize = 64;

#[derive(Clone)]
pub struct WebhookClient {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for WebhookClient {
    fn default() -> Self {
        Self::new()
    }
}

impl WebhookClient {
    pub fn new() -> WebhookClient {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(10)));
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(60)).pool_max_idle_per_host(MAX_IDLE_PER_HOST).build(connector);
        WebhookClient { client }
    }

    /// Sends `request` and reads the answer, all within the request's timeout.
    pub async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpFailure> {
        if !request.url.to_ascii_lowercase().starts_with("http://") {
            return Err(HttpFailure::BadUrl(format!("Lapis delivers to http:// endpoints only, not {}", request.url)));
        }
        let uri: hyper::Uri = request.url.parse().map_err(|e| HttpFailure::BadUrl(format!("{}: {e}", request.url)))?;
        let method = match request.method {
            HttpMethod::Post => Method::POST,
            HttpMethod::Options => Method::OPTIONS,
        };
        let mut builder = Request::builder().method(method).uri(uri);
        for (name, value) in &request.headers {
            builder = builder.header(HeaderName::from_static(name), header_value(value));
        }
        let outgoing = builder.body(Full::new(Bytes::from(request.body))).map_err(|e| HttpFailure::BadUrl(e.to_string()))?;
        let exchange = async {
            let response = self.client.request(outgoing).await.map_err(|e| HttpFailure::Unreachable(describe(&e)))?;
            let status = response.status().as_u16();
            let headers = response.headers().iter().map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect();
            // The status decides; an answer cut short or too long still has one.
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES).collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
            Ok(HttpResponse { status, headers, body })
        };
        tokio::time::timeout(request.timeout, exchange).await.unwrap_or(Err(HttpFailure::TimedOut))
    }
}

/// `value` as a header: UTF-8 bytes go as they are; control characters (which an
/// event id may hold, and a header may not) are left out.
fn header_value(value: &str) -> HeaderValue {
    HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| {
        let clean: Vec<u8> = value.bytes().filter(|b| *b == b'\t' || (*b >= 0x20 && *b != 0x7f)).collect();
        HeaderValue::from_bytes(&clean).unwrap_or_else(|_| HeaderValue::from_static(""))
    })
}

/// The innermost cause (the connector's "connection refused", say).
fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn any_event_id_makes_a_header() {
        assert_eq!(super::header_value("plain-1").as_bytes(), b"plain-1");
        assert_eq!(super::header_value("caf\u{e9}").as_bytes(), "caf\u{e9}".as_bytes());
        assert_eq!(super::header_value("a\r\nb\u{0}c").as_bytes(), b"abc");
    }
}
