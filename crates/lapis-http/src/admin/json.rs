//! What every part of the admin API shares: JSON answers and errors, the shared
//! access signature check, reading a bounded JSON body, and splitting a resource path.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use lapis_core::auth::sas_token;
use lapis_core::Clock;
use serde_json::{json, Value};

use super::{AdminApi, MAX_ADMIN_BODY};
use crate::server::HttpResponse;

pub fn reply(status: StatusCode, body: Value) -> HttpResponse {
    let bytes = if body.is_null() { Bytes::new() } else { Bytes::from(body.to_string()) };
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(bytes))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> HttpResponse {
    reply(status, json!({"error": {"code": code, "message": message.into()}}))
}

/// Why the request's token does not authorize it, if it does not.
pub fn authorize(api: &AdminApi, req: &Request<Incoming>) -> Result<(), String> {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or("an Authorization header with a SharedAccessSignature token is required")?;
    let now = lapis_core::SystemClock.now_ms();
    sas_token::verify(token, &api.sas_keys, now).map(|_| ()).map_err(|e| e.to_string())
}

pub async fn read_json<T: serde::de::DeserializeOwned + Default>(req: Request<Incoming>) -> Result<T, HttpResponse> {
    let body = Limited::new(req.into_body(), MAX_ADMIN_BODY)
        .collect()
        .await
        .map_err(|_| error(StatusCode::PAYLOAD_TOO_LARGE, "BadRequest", format!("the body exceeds {MAX_ADMIN_BODY} bytes")))?
        .to_bytes();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&body).map_err(|e| error(StatusCode::BAD_REQUEST, "BadRequest", format!("invalid properties: {e}")))
}

/// The percent-decoded segments of `path` after `prefix` (a trailing '/' ignored), or
/// `None` if `path` is not under `prefix`.
pub fn path_segments(path: &str, prefix: &str) -> Option<Vec<String>> {
    let rest = path.strip_prefix(prefix)?.trim_end_matches('/');
    Some(rest.split('/').map(|p| percent_encoding::percent_decode_str(p).decode_utf8_lossy().into_owned()).collect())
}
