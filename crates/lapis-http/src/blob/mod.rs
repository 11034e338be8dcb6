//! The Azure Blob REST subset that Event Hubs checkpoint stores use (path-style
//! `/<account>/<container>/<blob>`): classify, authenticate with the storage rules
//! the queue endpoint uses, call [`BlobService`], encode.

mod handlers;
mod headers;
mod ops;
mod xml;

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::Request;
use lapis_core::auth::sas::BlobTarget;
use lapis_core::blob::{limits, BlobService};

use crate::server::HttpResponse;
use crate::storage::auth::{self, SasScope};
use crate::storage::response::{error_reply, ResponseContext};
use crate::storage::{StorageApi, StorageError, StorageRequest};
use ops::BlobOp;

/// Largest request body the blob endpoint reads: the largest blob. Anything past it is
/// refused with 413 before it reaches the core.
pub const MAX_REQUEST_BODY: usize = limits::MAX_BLOB_BYTES;

/// Everything the blob endpoint needs to answer requests.
pub type BlobApi = StorageApi<BlobService>;

impl BlobApi {
    /// Answers one HTTP request.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> HttpResponse {
        let ctx = ResponseContext::of(&req);
        let answer = match StorageRequest::read(req, MAX_REQUEST_BODY).await {
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
