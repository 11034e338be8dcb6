//! Building storage responses: the headers every answer carries, XML bodies, and the
//! rendering of [`StorageError`].

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, DATE};
use hyper::{Method, Request, Response, StatusCode};
use lapis_core::time_fmt;

use super::error::StorageError;
use super::request::StorageRequest;
use crate::server::HttpResponse;
use crate::xml;

/// The service version Lapis implements; answered when a request names none.
pub const SERVICE_VERSION: &str = "2026-06-06";

/// Per-request facts every response echoes.
#[derive(Debug, Clone)]
pub struct ResponseContext {
    pub request_id: String,
    pub version: String,
    pub client_request_id: Option<String>,
    pub head: bool,
}

impl ResponseContext {
    /// The context of `req`, from its method, `x-ms-version` and
    /// `x-ms-client-request-id`.
    pub fn of<B>(req: &Request<B>) -> Self {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        Self::new(req.method(), header("x-ms-version"), header("x-ms-client-request-id"))
    }

    pub fn new(method: &Method, version: Option<&str>, client_request_id: Option<&str>) -> Self {
        ResponseContext {
            request_id: uuid::Uuid::new_v4().to_string(),
            version: version.unwrap_or(SERVICE_VERSION).to_string(),
            client_request_id: client_request_id.map(str::to_string),
            head: method == Method::HEAD,
        }
    }
}

fn now_ms() -> i64 {
    lapis_core::Clock::now_ms(&lapis_core::SystemClock)
}

/// A response under construction.
pub struct Reply {
    status: StatusCode,
    headers: Vec<(HeaderName, String)>,
    body: Option<(Bytes, String)>,
    /// The `Content-Length` to announce when it is not the body's (HEAD of a blob).
    length: Option<u64>,
}

impl Reply {
    pub fn status(status: StatusCode) -> Reply {
        Reply { status, headers: Vec::new(), body: None, length: None }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((HeaderName::from_static(name), value.into()));
        self
    }

    /// Adds a header when there is a value for it.
    pub fn maybe_header(self, name: &'static str, value: Option<String>) -> Reply {
        match value {
            Some(v) => self.header(name, v),
            None => self,
        }
    }

    /// Adds a header whose name is only known at run time (metadata).
    pub fn dynamic_header(mut self, name: &str, value: impl Into<String>) -> Reply {
        if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
            self.headers.push((n, value.into()));
        }
        self
    }

    /// `x-ms-meta-*` headers, spelled on the wire as the names were given.
    pub fn metadata(mut self, req: &StorageRequest, metadata: &[(String, String)]) -> Reply {
        req.original_case.respond_with(metadata.iter().map(|(k, _)| k.as_str()));
        for (k, v) in metadata {
            self = self.dynamic_header(&format!("x-ms-meta-{k}"), v.clone());
        }
        self
    }

    /// An XML body; the declaration is added here.
    pub fn xml(self, body: String) -> Reply {
        self.body(Bytes::from(format!("{}{body}", xml::DECLARATION)), "application/xml")
    }

    /// A body of any type.
    pub fn body(mut self, body: Bytes, content_type: impl Into<String>) -> Reply {
        self.body = Some((body, content_type.into()));
        self
    }

    /// Announces `length` as the `Content-Length` although no body is sent, as HEAD
    /// answers do for the resource a GET would return.
    pub fn announce_length(mut self, length: u64) -> Reply {
        self.length = Some(length);
        self
    }

    pub fn finish(self, ctx: &ResponseContext) -> HttpResponse {
        let mut builder = Response::builder().status(self.status);
        let headers = builder.headers_mut().expect("a fresh builder has headers");
        let mut set = |name: HeaderName, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.append(name, v);
            }
        };
        set(HeaderName::from_static("x-ms-request-id"), &ctx.request_id);
        set(HeaderName::from_static("x-ms-version"), &ctx.version);
        set(DATE, &time_fmt::rfc1123(now_ms()));
        set(HeaderName::from_static("server"), concat!("Lapis/", env!("CARGO_PKG_VERSION")));
        if let Some(id) = &ctx.client_request_id {
            set(HeaderName::from_static("x-ms-client-request-id"), id);
        }
        for (name, value) in self.headers {
            set(name, &value);
        }
        let body = match self.body {
            Some((bytes, content_type)) => {
                set(CONTENT_TYPE, &content_type);
                bytes
            }
            None => Bytes::new(),
        };
        // A 304 carries neither a body nor its length.
        if self.status != StatusCode::NOT_MODIFIED {
            set(CONTENT_LENGTH, &self.length.unwrap_or(body.len() as u64).to_string());
        }
        let body = if ctx.head || self.status == StatusCode::NOT_MODIFIED { Bytes::new() } else { body };
        builder.body(Full::new(body)).unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
    }
}

/// Renders an error as Azure does: XML body (none for HEAD) and `x-ms-error-code`.
pub fn error_reply(err: &StorageError, ctx: &ResponseContext) -> HttpResponse {
    let mut body = String::from("<Error>");
    xml::element(&mut body, "Code", err.code);
    let message = format!("{}\nRequestId:{}\nTime:{}", err.message, ctx.request_id, time_fmt::iso8601_7(now_ms()));
    xml::element(&mut body, "Message", &message);
    for (name, value) in &err.details {
        xml::element(&mut body, name, value);
    }
    body.push_str("</Error>");
    let reply = err.headers.iter().fold(Reply::status(err.status), |r, (name, value)| r.header(name, value.clone()));
    reply.header("x-ms-error-code", err.code).xml(body).finish(ctx)
}
