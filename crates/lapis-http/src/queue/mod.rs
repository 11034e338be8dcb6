//! The Azure Storage Queue REST API (path-style `/<account>/<queue>/messages/<id>`):
//! classify, authenticate, call [`QueueService`], encode.

mod cors;
mod handlers;
mod ops;
mod xml;

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request};
use lapis_core::auth::sas::PolicyFields;
use lapis_core::queue::{limits, QueueService};

use crate::server::HttpResponse;
use crate::storage::auth::{self, SasScope};
use crate::storage::response::{error_reply, ResponseContext};
use crate::storage::{StorageApi, StorageError, StorageRequest};
use ops::QueueOp;

/// Largest request body the queue endpoint reads. A 64 KiB message can grow several
/// times when XML-escaped; anything past this is refused before parsing.
pub const MAX_REQUEST_BODY: usize = 1 << 20;

/// Everything the queue endpoint needs to answer requests.
pub type QueueApi = StorageApi<QueueService>;

impl QueueApi {
    /// Answers one HTTP request.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> HttpResponse {
        let ctx = ResponseContext::of(&req);
        let req = match StorageRequest::read(req, MAX_REQUEST_BODY).await {
            Ok(r) => r,
            Err(e) => return error_reply(&e, &ctx),
        };
        let origin = req.header("origin").map(str::to_string);
        let method = req.method.clone();
        let account = req.account.clone();
        let response = match self.dispatch(req, &ctx).await {
            Ok(r) => r,
            Err(e) => error_reply(&e, &ctx),
        };
        match origin {
            Some(origin) if method != Method::OPTIONS => cors::decorate(&self.service, &account, &origin, &method, response),
            _ => response,
        }
    }

    async fn dispatch(&self, req: StorageRequest, ctx: &ResponseContext) -> Result<HttpResponse, StorageError> {
        req.check_version()?;
        if req.method == Method::OPTIONS {
            return cors::preflight(&self.service, &req, ctx);
        }
        req.check_account(&self.accounts)?;
        let op = QueueOp::classify(&req)?;
        let queue = req.segments.first().cloned();
        if let Some(name) = &queue {
            limits::check_queue_name(name)?;
        }
        let policy = |id: &str| -> Option<PolicyFields> {
            let name = queue.as_deref()?;
            let acl = self.service.queue_acl(&req.account, name).ok()?;
            acl.into_iter().find(|p| p.id == id).map(|p| PolicyFields { start: p.start, expiry: p.expiry, permission: p.permission })
        };
        let scope = match &queue {
            Some(name) => SasScope::Queue { name, policy: &policy },
            None => SasScope::AccountOnly,
        };
        auth::authenticate(&req, &self.accounts, op.sas_needs(), scope, self.auth_clock.now_ms())?;
        handlers::run(&self.service, op, &req, ctx).await
    }
}
