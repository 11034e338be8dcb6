//! The outbound side of Event Grid push delivery: sends the requests the core builds
//! to webhook endpoints over HTTP/1.1, plain or TLS (Mozilla's roots, plus any CA the
//! operator adds for local endpoints), with pooled keep-alive connections, a timeout
//! per request, and a bound on the answer's size. The core decides every header,
//! body and status rule; this only carries them.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lapis_core::events::delivery::{HttpFailure, HttpMethod, HttpRequest, HttpResponse};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// The most of an endpoint's answer that is read (a validation answer is tiny).
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Idle connections kept per endpoint.
const MAX_IDLE_PER_HOST: usize = 64;

#[derive(Clone)]
pub struct WebhookClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// A CA file the client could not use.
#[derive(Debug, thiserror::Error)]
#[error("the webhook CA file {path}: {detail}")]
pub struct CaError {
    pub path: String,
    pub detail: String,
}

impl WebhookClient {
    /// A client trusting Mozilla's roots and the certificates in `extra_ca` (PEM
    /// files: a local CA or a self-signed endpoint's certificate).
    pub fn new(extra_ca: &[std::path::PathBuf]) -> Result<WebhookClient, CaError> {
        let mut roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for path in extra_ca {
            let error = |detail: String| CaError { path: path.display().to_string(), detail };
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path).map_err(|e| error(e.to_string()))?.collect::<Result<_, _>>().map_err(|e| error(e.to_string()))?;
            if certs.is_empty() {
                return Err(error("no certificate in the file".into()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| error(e.to_string()))?;
            }
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| CaError { path: String::new(), detail: e.to_string() })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(60)).pool_max_idle_per_host(MAX_IDLE_PER_HOST).build(connector);
        Ok(WebhookClient { client })
    }

    /// Sends `request` and reads the answer, all within the request's timeout.
    pub async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpFailure> {
        let lower = request.url.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return Err(HttpFailure::BadUrl(format!("Lapis delivers to http:// and https:// endpoints, not {}", request.url)));
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
    fn a_ca_file_that_is_not_one_is_refused_naming_it() {
        let dir = std::env::temp_dir().join(format!("lapis-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let err = super::WebhookClient::new(std::slice::from_ref(&empty)).err().expect("refused");
        assert!(err.to_string().contains("empty.pem"), "{err}");
        assert!(super::WebhookClient::new(&[dir.join("missing.pem")]).is_err());
        assert!(super::WebhookClient::new(&[]).is_ok(), "Mozilla's roots alone");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn any_event_id_makes_a_header() {
        assert_eq!(super::header_value("plain-1").as_bytes(), b"plain-1");
        assert_eq!(super::header_value("caf\u{e9}").as_bytes(), "caf\u{e9}".as_bytes());
        assert_eq!(super::header_value("a\r\nb\u{0}c").as_bytes(), b"abc");
    }
}
