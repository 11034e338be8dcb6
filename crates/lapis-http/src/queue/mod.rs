//! The Azure Storage Queue REST API (path-style `/<account>/<queue>/messages/<id>`):
//! classify, authenticate, call [`QueueService`], encode.

mod cors;
mod handlers;
mod ops;
mod xml;

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request};
use lapis_core::auth::Accounts;
use lapis_core::auth::sas::PolicyFields;
use lapis_core::queue::{limits, QueueService};
use lapis_core::Clock;

use crate::server::HttpResponse;
use crate::storage::auth::{self, SasScope};
use crate::storage::response::{error_reply, ResponseContext};
use crate::storage::{StorageError, StorageRequest};
use ops::QueueOp;

/// Largest request body the queue endpoint reads. A 64 KiB message can grow several
/// times when XML-escaped; anything past this is refused before parsing.
pub const MAX_REQUEST_BODY: usize = 1 << 20;

/// Everything the queue endpoint needs to answer requests.
pub struct QueueApi {
    pub service: Arc<QueueService>,
    pub accounts: Arc<Accounts>,
    /// The clock SAS validity and request dates are checked against.
    pub auth_clock: Arc<dyn Clock>,
}

impl QueueApi {
    /// Answers one HTTP request.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> HttpResponse {
        let ctx = ResponseContext::new(
            req.method(),
            req.headers().get("x-ms-version").and_then(|v| v.to_str().ok()),
            req.headers().get("x-ms-client-request-id").and_then(|v| v.to_str().ok()),
        );
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
        if let Some(v) = req.header("x-ms-version") {
            if !looks_like_version(v) {
                return Err(StorageError::invalid_header("x-ms-version", v));
            }
        }
        if req.method == Method::OPTIONS {
            return cors::preflight(&self.service, &req, ctx);
        }
        if req.account.is_empty() || self.accounts.keys(&req.account).is_none() {
            return Err(StorageError::authentication_failed(format!("No account named {:?}.", req.account)));
        }
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

/// Any `YYYY-MM-DD` is accepted: clients newer than this server still work.
fn looks_like_version(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 10 && b[4] == b'-' && b[7] == b'-' && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}
