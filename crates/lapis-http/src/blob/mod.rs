//! The Azure Blob REST subset that Event Hubs checkpoint stores and the reference
//! application use (path-style `/<account>/<container>/<blob>`), block blobs
//! included: classify, authenticate with the storage rules the queue endpoint uses,
//! call [`BlobService`], encode.
//!
//! Request bodies are read whole before a request is served, so their size is bounded
//! per request ([`MAX_REQUEST_BODY`] for content, [`MAX_OTHER_BODY`] for the rest) and
//! in total ([`MAX_BODIES_IN_FLIGHT`]: past it, further requests wait before their
//! bodies are read).

mod blocks;
mod handlers;
mod headers;
mod ops;
mod xml;

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request};
use tokio::sync::Semaphore;
use lapis_core::auth::sas::BlobTarget;
use lapis_core::blob::{limits, BlobService};

use crate::server::HttpResponse;
use crate::storage::auth::{self, SasScope};
use crate::storage::response::{error_reply, ResponseContext};
use crate::storage::{StorageApi, StorageError, StorageRequest};
use ops::BlobOp;

/// Largest body of a request that carries content (Put Blob, Put Block): the largest
/// block. Anything past it is refused with 413 before it reaches the core.
pub const MAX_REQUEST_BODY: usize = limits::MAX_CONTENT_BODY_BYTES;
/// Largest body of any other request. A block list of 50,000 of the longest ids fits.
pub const MAX_OTHER_BODY: usize = 8 << 20;
/// Bytes of request bodies held at once, across all requests.
pub const MAX_BODIES_IN_FLIGHT: usize = 256 << 20;

static BODIES_IN_FLIGHT: Semaphore = Semaphore::const_new(MAX_BODIES_IN_FLIGHT);

/// The body bound of `req`, from its method and `comp`/`restype` query parameters.
fn body_limit(req: &Request<Incoming>) -> usize {
    let mut comp = None;
    let mut container = false;
    for pair in req.uri().query().unwrap_or("").split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name.eq_ignore_ascii_case("comp") {
            comp = Some(value);
        } else if name.eq_ignore_ascii_case("restype") {
            container = true;
        }
    }
    match (req.method() == Method::PUT && !container, comp) {
        (true, None | Some("block")) => MAX_REQUEST_BODY,
        _ => MAX_OTHER_BODY,
    }
}

/// How much of [`MAX_BODIES_IN_FLIGHT`] reading `req`'s body may take: its announced
/// length; its whole bound when it is chunked (or its length unreadable); nothing when
/// it has no body.
fn body_share(req: &Request<Incoming>, limit: usize) -> u32 {
    let headers = req.headers();
    let share = match headers.get(hyper::header::CONTENT_LENGTH) {
        Some(v) => v.to_str().ok().and_then(|v| v.trim().parse::<usize>().ok()).unwrap_or(limit),
        None if headers.contains_key(hyper::header::TRANSFER_ENCODING) => limit,
        None => 0,
    };
    u32::try_from(share.min(limit)).unwrap_or(u32::MAX)
}

/// Everything the blob endpoint needs to answer requests.
pub type BlobApi = StorageApi<BlobService>;

impl BlobApi {
    /// Answers one HTTP request.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> HttpResponse {
        let ctx = ResponseContext::of(&req);
        let limit = body_limit(&req);
        // Held until the answer is ready: the body lives that long. The semaphore is
        // never closed, so acquiring only fails if it were; then the request goes on.
        let _share = BODIES_IN_FLIGHT.acquire_many(body_share(&req, limit)).await.ok();
        let answer = match StorageRequest::read(req, limit).await {
            Ok(req) => self.dispatch(req, &ctx).await,
            Err(e) => Err(e),
        };
        answer.unwrap_or_else(|e| error_reply(&e, &ctx))
    }

    async fn dispatch(&self, req: StorageRequest, ctx: &ResponseContext) -> Result<HttpResponse, StorageError> {
        req.check_version()?;
        req.check_account(&self.accounts)?;
        let (op, target) = BlobOp::classify(&req)?;
        if let Some(name) = &target.container {
            limits::check_container_name(name)?;
        }
        if let Some(name) = &target.blob {
            limits::check_blob_name(name)?;
        }
        let scope = match &target.container {
            Some(container) => SasScope::Blob(BlobTarget { container, blob: target.blob.as_deref() }),
            None => SasScope::AccountOnly,
        };
        auth::authenticate(&req, &self.accounts, op.sas_needs(), scope, self.auth_clock.now_ms())?;
        handlers::run(&self.service, op, &target, &req, ctx).await
    }
}
