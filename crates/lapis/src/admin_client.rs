//! Calling a running server's admin API from the CLI (`lapis sb …`, `lapis eh …`):
//! one HTTP request signed with a shared access signature token, its JSON answer
//! printed, its error turned into the command's failure.

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use lapis_core::auth::sas_token;

use crate::cli::AdminConnection;

/// How long a token the CLI signs stays valid.
const TOKEN_LIFETIME_SECS: i64 = 300;

/// One admin request.
pub struct Call {
    pub method: Method,
    pub path: String,
    pub body: Option<Vec<u8>>,
    /// `if-none-match` (create only) or `if-match` (update only).
    pub condition: Option<&'static str>,
}

/// Sends `call` and prints its answer.
pub fn perform(connection: &AdminConnection, call: Call) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (status, text) = runtime.block_on(send(connection, call.method, &call.path, call.body.unwrap_or_default(), call.condition))?;
    if !status.is_success() {
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or(text);
        bail!("{} {}", status.as_u16(), message);
    }
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
        println!("{}", serde_json::to_string_pretty(&value)?);
    }
    Ok(())
}

async fn send(args: &AdminConnection, method: Method, path: &str, body: Vec<u8>, condition: Option<&str>) -> anyhow::Result<(hyper::StatusCode, String)> {
    let endpoint = args.endpoint.trim_end_matches('/');
    let authority = endpoint.strip_prefix("http://").with_context(|| format!("--endpoint {endpoint:?} must start with http://"))?;
    let stream = tokio::net::TcpStream::connect(authority).await.with_context(|| format!("connecting to {endpoint}: is `lapis serve` running?"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    let token = sas_token::generate(&format!("{endpoint}{path}"), &args.key_name, &args.key, now + TOKEN_LIFETIME_SECS);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", authority)
        .header("authorization", token)
        .header("content-type", "application/json");
    if let Some(header) = condition {
        request = request.header(header, "*");
    }
    let response = sender.send_request(request.body(Full::new(Bytes::from(body)))?).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}
