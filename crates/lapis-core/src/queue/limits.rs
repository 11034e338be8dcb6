//! The limits of the Storage Queue service and the checks that enforce them.

use super::error::{QueueError, QueueResult};
use super::model::{CorsRule, Metadata, ServicePropertiesUpdate, SignedIdentifier};
use crate::storage_rules::{self, NameError};

/// Largest message text, counted in UTF-8 bytes as sent (after any client base64).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Largest visibility timeout and update timeout: seven days.
pub const MAX_VISIBILITY_SECS: i64 = 604_800;
/// Default time to live: seven days.
pub const DEFAULT_TTL_SECS: i64 = 604_800;
/// Get/Peek return at most this many messages.
pub const MAX_MESSAGES_PER_GET: i64 = 32;
/// Default visibility timeout of Get Messages.
pub const DEFAULT_GET_VISIBILITY_SECS: i64 = 30;
/// List Queues pages hold at most this many queues.
pub const MAX_LIST_RESULTS: i64 = 5000;
/// Stored access policies per queue.
pub const MAX_SIGNED_IDENTIFIERS: usize = 5;
/// CORS rules per service.
pub const MAX_CORS_RULES: usize = 5;

/// Queue names: 3-63 characters of lowercase letters, digits and single dashes, not
/// starting or ending with a dash.
pub fn check_queue_name(name: &str) -> QueueResult<()> {
    storage_rules::check_resource_name(name).map_err(|e| match e {
        NameError::InvalidCharacters => QueueError::InvalidResourceName,
        NameError::Length => QueueError::ResourceNameLength,
    })
}

pub fn check_range(name: &'static str, value: i64, min: i64, max: i64) -> QueueResult<()> {
    if value < min || value > max {
        return Err(QueueError::OutOfRange { name, value, min, max });
    }
    Ok(())
}

/// Metadata names must be C# identifiers, unique regardless of case, and the whole set
/// at most 8 KiB; queues report every violation as invalid metadata.
pub fn check_metadata(metadata: &Metadata) -> QueueResult<()> {
    storage_rules::check_metadata(metadata).map_err(|_| QueueError::InvalidMetadata)
}

fn bad_xml(detail: impl Into<String>) -> QueueError {
    QueueError::InvalidXml { detail: detail.into() }
}

pub fn check_signed_identifiers(ids: &[SignedIdentifier]) -> QueueResult<()> {
    if ids.len() > MAX_SIGNED_IDENTIFIERS {
        return Err(bad_xml(format!("at most {MAX_SIGNED_IDENTIFIERS} signed identifiers are allowed")));
    }
    for id in ids {
        if id.id.is_empty() || id.id.len() > 64 {
            return Err(bad_xml("a signed identifier's Id must be 1-64 characters"));
        }
        if let Some(p) = &id.permission {
            if !p.chars().all(|c| "raup".contains(c)) {
                return Err(bad_xml(format!("permission {p:?} has letters outside 'raup'")));
            }
        }
        for t in [&id.start, &id.expiry].into_iter().flatten() {
            if crate::time_fmt::parse_iso8601(t).is_none() {
                return Err(bad_xml(format!("{t:?} is not an ISO 8601 time")));
            }
        }
    }
    Ok(())
}

pub fn check_service_properties(update: &ServicePropertiesUpdate) -> QueueResult<()> {
    let retention = [
        update.logging.as_ref().map(|l| &l.retention),
        update.hour_metrics.as_ref().map(|m| &m.retention),
        update.minute_metrics.as_ref().map(|m| &m.retention),
    ];
    for r in retention.into_iter().flatten() {
        match (r.enabled, r.days) {
            (true, Some(d)) if (1..=365).contains(&d) => {}
            (true, _) => return Err(bad_xml("retention days must be 1-365 when retention is enabled")),
            (false, _) => {}
        }
    }
    for m in [&update.hour_metrics, &update.minute_metrics].into_iter().flatten() {
        if m.enabled && m.include_apis.is_none() {
            return Err(bad_xml("IncludeAPIs is required when metrics are enabled"));
        }
    }
    if let Some(cors) = &update.cors {
        if cors.len() > MAX_CORS_RULES {
            return Err(bad_xml(format!("at most {MAX_CORS_RULES} CORS rules are allowed")));
        }
        cors.iter().try_for_each(check_cors_rule)?;
    }
    Ok(())
}

fn check_cors_rule(rule: &CorsRule) -> QueueResult<()> {
    const METHODS: [&str; 9] = ["DELETE", "GET", "HEAD", "MERGE", "POST", "OPTIONS", "PUT", "PATCH", "CONNECT"];
    if rule.allowed_origins.trim().is_empty() || rule.allowed_methods.trim().is_empty() {
        return Err(bad_xml("a CORS rule needs AllowedOrigins and AllowedMethods"));
    }
    for m in rule.allowed_methods.split(',') {
        if !METHODS.contains(&m.trim()) {
            return Err(bad_xml(format!("CORS method {m:?} is not allowed")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names() {
        for ok in ["abc", "a-b-c", "queue1", &"a".repeat(63)] {
            assert!(check_queue_name(ok).is_ok(), "{ok}");
        }
        for bad in ["Abc", "a_b", "-ab", "ab-", "a--b", ""] {
            assert!(matches!(check_queue_name(bad), Err(QueueError::InvalidResourceName)), "{bad}");
        }
        for bad in ["ab", &"a".repeat(64)] {
            assert!(matches!(check_queue_name(bad), Err(QueueError::ResourceNameLength)), "{bad}");
        }
    }

    #[test]
    fn metadata_names() {
        assert!(check_metadata(&vec![("Color".into(), "red".into()), ("_x1".into(), "".into())]).is_ok());
        assert!(check_metadata(&vec![("1x".into(), "".into())]).is_err());
        assert!(check_metadata(&vec![("a".into(), "".into()), ("A".into(), "".into())]).is_err());
    }
}
