//! CORS on the queue endpoint: answering preflights and decorating responses, with the
//! account's stored rules and the core's matching.

use hyper::header::{HeaderValue, VARY};
use hyper::{Method, StatusCode};
use lapis_core::queue::{cors, QueueService};

use crate::server::HttpResponse;
use crate::storage::response::{Reply, ResponseContext};
use crate::storage::{StorageError, StorageRequest};

fn preflight_failure() -> StorageError {
    StorageError::new(StatusCode::FORBIDDEN, "CorsPreflightFailure", "CORS not enabled or no matching rule found for this request.")
}

pub fn preflight(service: &QueueService, req: &StorageRequest, ctx: &ResponseContext) -> Result<HttpResponse, StorageError> {
    let origin = req.header("origin").ok_or_else(preflight_failure)?;
    let method = req.header("access-control-request-method").ok_or_else(preflight_failure)?;
    let requested = req.header("access-control-request-headers").unwrap_or("");
    let headers: Vec<&str> = requested.split(',').map(str::trim).filter(|h| !h.is_empty()).collect();
    let rules = service.service_properties(&req.account).cors;
    let grant = cors::preflight(&rules, origin, method, &headers).ok_or_else(preflight_failure)?;
    let mut reply = Reply::status(StatusCode::OK)
        .header("access-control-allow-origin", grant.allow_origin)
        .header("access-control-allow-methods", method)
        .header("access-control-max-age", grant.max_age_seconds.to_string());
    if !requested.is_empty() {
        reply = reply.header("access-control-allow-headers", requested);
    }
    if grant.allow_credentials {
        reply = reply.header("access-control-allow-credentials", "true");
    }
    Ok(reply.finish(ctx))
}

/// Adds the CORS headers of the rule matching `origin` and `method`, if any.
pub fn decorate(service: &QueueService, account: &str, origin: &str, method: &Method, mut response: HttpResponse) -> HttpResponse {
    let rules = service.service_properties(account).cors;
    let Some(grant) = cors::actual(&rules, origin, method.as_str()) else {
        return response;
    };
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set("access-control-allow-origin", &grant.allow_origin);
    if !grant.exposed_headers.is_empty() {
        set("access-control-expose-headers", &grant.exposed_headers);
    }
    if grant.allow_credentials {
        set("access-control-allow-credentials", "true");
    }
    headers.append(VARY, HeaderValue::from_static("Origin"));
    response
}
