//! The Storage Queue XML documents: message lists, queue listings, access policies and
//! service properties, written and read.

use lapis_core::queue::*;
use lapis_core::time_fmt::rfc1123;
use roxmltree::Node;

use crate::storage::listing::{self, ListEcho};
use crate::storage::StorageError;
use crate::xml::{self, child, child_bool, child_text, children, element};

/// The elements every message entry starts with; `None` fields are left out (Peek).
fn message_head(s: &mut String, id: &str, inserted: i64, expires: i64, pop_receipt: Option<&str>, next_visible: Option<i64>) {
    element(s, "MessageId", id);
    element(s, "InsertionTime", &rfc1123(inserted));
    element(s, "ExpirationTime", &rfc1123(expires));
    if let Some(p) = pop_receipt {
        element(s, "PopReceipt", p);
    }
    if let Some(t) = next_visible {
        element(s, "TimeNextVisible", &rfc1123(t));
    }
}

pub fn put_receipt(r: &PutReceipt) -> String {
    let mut s = String::from("<QueueMessagesList><QueueMessage>");
    message_head(&mut s, &r.id, r.inserted, r.expires, Some(&r.pop_receipt), Some(r.next_visible));
    s.push_str("</QueueMessage></QueueMessagesList>");
    s
}

pub fn messages(list: &[ReceivedMessage]) -> String {
    let mut s = String::from("<QueueMessagesList>");
    for m in list {
        s.push_str("<QueueMessage>");
        message_head(&mut s, &m.id, m.inserted, m.expires, m.pop_receipt.as_deref(), m.next_visible);
        element(&mut s, "DequeueCount", &m.dequeue_count.to_string());
        element(&mut s, "MessageText", &m.text);
        s.push_str("</QueueMessage>");
    }
    s.push_str("</QueueMessagesList>");
    s
}

pub fn queue_list(page: &QueuePage, echo: &ListEcho<'_>) -> String {
    let mut s = echo.open("");
    s.push_str("<Queues>");
    for q in &page.queues {
        s.push_str("<Queue>");
        element(&mut s, "Name", &q.name);
        if echo.include_metadata {
            listing::metadata(&mut s, &q.metadata);
        }
        s.push_str("</Queue>");
    }
    s.push_str("</Queues>");
    listing::close(&mut s, page.next_marker.as_deref());
    s
}

pub fn signed_identifiers(ids: &[SignedIdentifier]) -> String {
    let mut s = String::from("<SignedIdentifiers>");
    for id in ids {
        s.push_str("<SignedIdentifier>");
        element(&mut s, "Id", &id.id);
        s.push_str("<AccessPolicy>");
        if let Some(t) = &id.start {
            element(&mut s, "Start", t);
        }
        if let Some(t) = &id.expiry {
            element(&mut s, "Expiry", t);
        }
        if let Some(p) = &id.permission {
            element(&mut s, "Permission", p);
        }
        s.push_str("</AccessPolicy></SignedIdentifier>");
    }
    s.push_str("</SignedIdentifiers>");
    s
}

fn non_empty(text: Option<String>) -> Option<String> {
    text.filter(|t| !t.trim().is_empty())
}

pub fn parse_signed_identifiers(body: &str) -> Result<Vec<SignedIdentifier>, StorageError> {
    if body.trim().is_empty() {
        return Ok(Vec::new());
    }
    let doc = xml::parse(body, "SignedIdentifiers").map_err(StorageError::invalid_xml)?;
    let mut out = Vec::new();
    for node in children(doc.root_element(), "SignedIdentifier") {
        let id = child_text(node, "Id").ok_or_else(|| StorageError::invalid_xml("a SignedIdentifier has no Id"))?;
        let policy = child(node, "AccessPolicy");
        let field = |name: &str| policy.and_then(|p| non_empty(child_text(p, name)));
        out.push(SignedIdentifier { id, start: field("Start"), expiry: field("Expiry"), permission: field("Permission") });
    }
    Ok(out)
}

/// The text of `<QueueMessage><MessageText>`; `None` for an empty body (Update).
pub fn parse_message_text(body: &str) -> Result<Option<String>, StorageError> {
    if body.trim().is_empty() {
        return Ok(None);
    }
    let doc = xml::parse(body, "QueueMessage").map_err(StorageError::invalid_xml)?;
    child_text(doc.root_element(), "MessageText")
        .map(Some)
        .ok_or_else(|| StorageError::invalid_xml("<QueueMessage> has no <MessageText>"))
}

fn retention_xml(s: &mut String, r: &RetentionPolicy) {
    s.push_str("<RetentionPolicy>");
    element(s, "Enabled", if r.enabled { "true" } else { "false" });
    if let (true, Some(d)) = (r.enabled, r.days) {
        element(s, "Days", &d.to_string());
    }
    s.push_str("</RetentionPolicy>");
}

fn metrics_xml(s: &mut String, name: &str, m: &Metrics) {
    s.push_str(&format!("<{name}>"));
    element(s, "Version", &m.version);
    element(s, "Enabled", if m.enabled { "true" } else { "false" });
    if let (true, Some(i)) = (m.enabled, m.include_apis) {
        element(s, "IncludeAPIs", if i { "true" } else { "false" });
    }
    retention_xml(s, &m.retention);
    s.push_str(&format!("</{name}>"));
}

pub fn service_properties(p: &ServiceProperties) -> String {
    let mut s = String::from("<StorageServiceProperties><Logging>");
    element(&mut s, "Version", &p.logging.version);
    for (name, v) in [("Delete", p.logging.delete), ("Read", p.logging.read), ("Write", p.logging.write)] {
        element(&mut s, name, if v { "true" } else { "false" });
    }
    retention_xml(&mut s, &p.logging.retention);
    s.push_str("</Logging>");
    metrics_xml(&mut s, "HourMetrics", &p.hour_metrics);
    metrics_xml(&mut s, "MinuteMetrics", &p.minute_metrics);
    s.push_str("<Cors>");
    for r in &p.cors {
        s.push_str("<CorsRule>");
        element(&mut s, "AllowedOrigins", &r.allowed_origins);
        element(&mut s, "AllowedMethods", &r.allowed_methods);
        element(&mut s, "AllowedHeaders", &r.allowed_headers);
        element(&mut s, "ExposedHeaders", &r.exposed_headers);
        element(&mut s, "MaxAgeInSeconds", &r.max_age_seconds.to_string());
        s.push_str("</CorsRule>");
    }
    s.push_str("</Cors></StorageServiceProperties>");
    s
}

fn parse_retention(node: Node<'_, '_>) -> Result<RetentionPolicy, String> {
    let Some(r) = child(node, "RetentionPolicy") else {
        return Ok(RetentionPolicy { enabled: false, days: None });
    };
    let days = match child_text(r, "Days") {
        Some(d) => Some(d.trim().parse::<u32>().map_err(|_| format!("Days {d:?} is not a number"))?),
        None => None,
    };
    Ok(RetentionPolicy { enabled: child_bool(r, "Enabled")?.unwrap_or(false), days })
}

fn parse_metrics(node: Node<'_, '_>) -> Result<Metrics, String> {
    Ok(Metrics {
        version: child_text(node, "Version").unwrap_or_else(|| "1.0".into()),
        enabled: child_bool(node, "Enabled")?.unwrap_or(false),
        include_apis: child_bool(node, "IncludeAPIs")?,
        retention: parse_retention(node)?,
    })
}

pub fn parse_service_properties(body: &str) -> Result<ServicePropertiesUpdate, StorageError> {
    let inner = || -> Result<ServicePropertiesUpdate, String> {
        let doc = xml::parse(body, "StorageServiceProperties")?;
        let root = doc.root_element();
        let logging = match child(root, "Logging") {
            Some(l) => Some(Logging {
                version: child_text(l, "Version").unwrap_or_else(|| "1.0".into()),
                delete: child_bool(l, "Delete")?.unwrap_or(false),
                read: child_bool(l, "Read")?.unwrap_or(false),
                write: child_bool(l, "Write")?.unwrap_or(false),
                retention: parse_retention(l)?,
            }),
            None => None,
        };
        let hour_metrics = child(root, "HourMetrics").map(parse_metrics).transpose()?;
        let minute_metrics = child(root, "MinuteMetrics").map(parse_metrics).transpose()?;
        let cors = match child(root, "Cors") {
            Some(c) => Some(
                children(c, "CorsRule")
                    .map(|r| {
                        let text = |n: &str| child_text(r, n).unwrap_or_default();
                        let max_age = text("MaxAgeInSeconds");
                        Ok(CorsRule {
                            allowed_origins: text("AllowedOrigins"),
                            allowed_methods: text("AllowedMethods"),
                            allowed_headers: text("AllowedHeaders"),
                            exposed_headers: text("ExposedHeaders"),
                            max_age_seconds: max_age.trim().parse().map_err(|_| format!("MaxAgeInSeconds {max_age:?} is not a number"))?,
                        })
                    })
                    .collect::<Result<Vec<_>, String>>()?,
            ),
            None => None,
        };
        Ok(ServicePropertiesUpdate { logging, hour_metrics, minute_metrics, cors })
    };
    inner().map_err(StorageError::invalid_xml)
}

pub fn service_stats(now_ms: i64) -> String {
    let mut s = String::from("<StorageServiceStats><GeoReplication>");
    element(&mut s, "Status", "live");
    element(&mut s, "LastSyncTime", &rfc1123(now_ms));
    s.push_str("</GeoReplication></StorageServiceStats>");
    s
}
