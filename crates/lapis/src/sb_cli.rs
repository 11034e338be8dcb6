//! `lapis sb …`: manage Service Bus entities of a running server through its admin
//! API, signing each request with a shared access signature token.

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use lapis_core::auth::sas_token;
use lapis_core::broker::QueueProperties;

use crate::cli::{QueueAction, QueueFlags, SbArgs, SbCommand};

/// How long a token the CLI signs stays valid.
const TOKEN_LIFETIME_SECS: i64 = 300;

pub fn run(args: SbArgs) -> anyhow::Result<()> {
    let SbCommand::Queue { action } = args.command.clone();
    let (method, name, body, condition) = match action {
        QueueAction::List => (Method::GET, None, None, None),
        QueueAction::Show { name } => (Method::GET, Some(name), None, None),
        QueueAction::Delete { name } => (Method::DELETE, Some(name), None, None),
        QueueAction::Create(flags) => (Method::PUT, Some(flags.name.clone()), Some(properties(&flags)), Some("if-none-match")),
        QueueAction::Update(flags) => (Method::PUT, Some(flags.name.clone()), Some(properties(&flags)), Some("if-match")),
    };
    let path = match &name {
        Some(n) => format!("/admin/servicebus/queues/{n}"),
        None => "/admin/servicebus/queues".to_string(),
    };
    let body = body.map(|p| serde_json::to_vec(&p)).transpose()?.unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (status, text) = runtime.block_on(send(&args, method, &path, body, condition))?;
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

fn properties(f: &QueueFlags) -> QueueProperties {
    QueueProperties {
        lock_duration: f.lock_duration.clone(),
        max_delivery_count: f.max_delivery_count,
        default_message_time_to_live: f.default_message_ttl.clone(),
        dead_lettering_on_message_expiration: f.dead_letter_on_expiration,
        requires_session: f.requires_session,
        requires_duplicate_detection: f.duplicate_detection_window.as_ref().map(|_| true),
        duplicate_detection_history_time_window: f.duplicate_detection_window.clone(),
        max_size_in_megabytes: f.max_size_mb,
        max_message_size_in_kilobytes: f.max_message_kb,
        ..Default::default()
    }
}

async fn send(args: &SbArgs, method: Method, path: &str, body: Vec<u8>, condition: Option<&str>) -> anyhow::Result<(hyper::StatusCode, String)> {
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
