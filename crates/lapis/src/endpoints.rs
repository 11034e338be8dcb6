//! The endpoints block printed at start and by `lapis connection-strings`.

use std::fmt::Write;
use std::net::IpAddr;

use lapis_core::auth::sas_token::DEV_KEY_NAME;
use lapis_core::auth::{DEV_ACCOUNT, DEV_ACCOUNT_KEY};

use crate::config::{Settings, Storage};

fn host_text(host: IpAddr) -> String {
    match host {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) if v4.is_unspecified() => "127.0.0.1".into(),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// The HTTP endpoint as clients on this machine reach it (`http://127.0.0.1:5300`).
pub fn http_base(s: &Settings) -> String {
    format!("http://{}:{}", host_text(s.host), s.http_port)
}

pub fn banner(s: &Settings) -> String {
    let host = host_text(s.host);
    let mut out = String::new();
    let storage = match &s.storage {
        Storage::Disk(p) => format!("data in {}", p.display()),
        Storage::Memory => "in memory (nothing survives a restart)".into(),
    };
    let durability = match s.durability {
        crate::cli::DurabilityArg::Strict => "strict",
        crate::cli::DurabilityArg::Relaxed => "relaxed",
    };
    let _ = writeln!(out, "Lapis {} — {storage}, {durability} durability", env!("CARGO_PKG_VERSION"));
    if s.queue_port != 0 {
        let _ = writeln!(out, "  Storage Queues   http://{host}:{}/<account>", s.queue_port);
    }
    if s.blob_port != 0 {
        let _ = writeln!(out, "  Blob             http://{host}:{}/<account> (containers, block blobs up to 256 MiB)", s.blob_port);
    }
    if s.amqp_port != 0 {
        let _ = writeln!(out, "  Service Bus      amqp://{host}:{}", s.amqp_port);
    }
    if let Some(tls) = &s.amqps {
        let _ = writeln!(out, "  Service Bus TLS  amqps://{host}:{} (certificate {})", tls.port, tls.cert.display());
    }
    if s.http_port != 0 {
        let _ = writeln!(out, "  Event Grid       http://{host}:{}/topics/<topic>/api/events (lapis eg topic create <topic>)", s.http_port);
        let _ = writeln!(out, "  Event Grid ns    http://{host}:{} (namespace topics: lapis eg topic create <topic> --namespace)", s.http_port);
        let _ = writeln!(out, "  Health, admin    http://{host}:{}/health", s.http_port);
    }
    if s.amqp_port != 0 {
        let _ = writeln!(out, "Service Bus connection string:\n  {}", service_bus_connection(s));
    }
    if s.queue_port != 0 || s.blob_port != 0 {
        let _ = writeln!(out, "Connection strings:");
        for account in s.accounts.names() {
            let _ = writeln!(out, "  {}", storage_connection(s, account));
        }
    }
    out
}

/// The Service Bus (and Event Hubs, with `EntityPath=`) connection string.
fn service_bus_connection(s: &Settings) -> String {
    let sb_host = if s.host.is_loopback() { "localhost".to_string() } else { host_text(s.host) };
    let (name, key) = match s.sas_keys.get(DEV_KEY_NAME) {
        Some(k) => (DEV_KEY_NAME, k.to_string()),
        None => ("<key name>", "<its key>".to_string()),
    };
    let emulator = if s.host.is_loopback() { "UseDevelopmentEmulator=true;" } else { "" };
    format!("Endpoint=sb://{sb_host}:{};SharedAccessKeyName={name};SharedAccessKey={key};{emulator}", s.amqp_port)
}

/// A storage account's connection string, with the endpoints that are served.
fn storage_connection(s: &Settings, account: &str) -> String {
    let host = host_text(s.host);
    let key = if account == DEV_ACCOUNT { DEV_ACCOUNT_KEY.to_string() } else { "<its key>".to_string() };
    let mut line = format!("DefaultEndpointsProtocol=http;AccountName={account};AccountKey={key};");
    for (name, port) in [("QueueEndpoint", s.queue_port), ("BlobEndpoint", s.blob_port)] {
        if port != 0 {
            let _ = write!(line, "{name}=http://{host}:{port}/{account};");
        }
    }
    line
}

/// What `lapis choose` prints connection strings and snippets with.
pub fn advisor_endpoints(s: &Settings) -> lapis_core::advisor::snippets::Endpoints {
    lapis_core::advisor::snippets::Endpoints { storage: storage_connection(s, DEV_ACCOUNT), service_bus: service_bus_connection(s), http: http_base(s) }
}
