//! The claims-based security node `$cbs`: clients put SAS tokens for the entities
//! they will use; a connection may then attach links to those entities until the
//! tokens expire.

use std::collections::HashMap;

use fe2o3_amqp_types::messaging::{ApplicationProperties, Body, Message, Properties};
use fe2o3_amqp_types::primitives::{SimpleValue, Value};
use lapis_core::auth::sas_token::{self, SasKeys};
use lapis_core::clock::Millis;

use crate::message::Decoded;

/// Entities a connection has been authorized for, by normalized path prefix.
#[derive(Debug, Default)]
pub struct Grants {
    until: HashMap<String, Millis>,
}

/// The entity path an audience or link address names: scheme and host dropped,
/// lowercase (`sb://localhost:5672/Q1` → `q1`; `sb://localhost/` → ``).
pub fn normalize(address: &str) -> String {
    let without_scheme = address.split_once("://").map(|(_, rest)| rest.split_once('/').map(|(_, p)| p).unwrap_or("")).unwrap_or(address);
    without_scheme.trim_start_matches('/').trim_end_matches('/').to_ascii_lowercase()
}

/// Compares secrets without leaking where they differ through timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Grants {
    /// Authorizes every entity for as long as the connection lives (SASL PLAIN with
    /// a shared access key).
    pub fn allow_everything(&mut self) {
        self.until.insert(String::new(), Millis::MAX);
    }

    /// Whether `path` (normalized) is covered by an unexpired grant.
    pub fn allows(&self, path: &str, now: Millis) -> bool {
        self.until.iter().any(|(prefix, &until)| until > now && (prefix.is_empty() || path == prefix || path.starts_with(&format!("{prefix}/"))))
    }
}

/// The answer to a put-token request: status code and description. As Azure does,
/// the token is checked first (so that nobody without a key can probe which
/// entities exist), then that the audience names an entity (`exists`, given its
/// normalized path): 404 if not.
pub fn put_token(request: &Decoded, keys: &SasKeys, grants: &mut Grants, now: Millis, exists: impl Fn(&str) -> bool) -> (i32, String) {
    let app = |key: &str| -> Option<String> {
        request.application_properties.as_ref()?.0.get(key).and_then(|v| match v {
            SimpleValue::String(s) => Some(s.clone()),
            SimpleValue::Symbol(s) => Some(s.0.clone()),
            _ => None,
        })
    };
    if app("operation").as_deref() != Some("put-token") {
        return (400, "Only the put-token operation is supported.".into());
    }
    let Some(audience) = app("name") else { return (400, "The put-token request has no name (audience).".into()) };
    let token = match &request.body {
        Body::Value(v) => match &v.0 {
            Value::String(s) => s.clone(),
            _ => return (400, "The token must be a string.".into()),
        },
        _ => return (400, "The token must be an amqp-value.".into()),
    };
    match sas_token::verify(&token, keys, now) {
        Ok(claims) => {
            let resource = normalize(&claims.resource);
            let path = normalize(&audience);
            if !path.starts_with(&resource) {
                return (401, "The token's resource does not cover the audience.".into());
            }
            if !exists(&path) {
                return (404, format!("The messaging entity '{audience}' could not be found."));
            }
            grants.until.insert(resource, claims.expires_at);
            (202, "Accepted".into())
        }
        Err(e) => (401, format!("InvalidSignature: {e}")),
    }
}

/// The response message for a CBS request.
pub fn response(request: &Decoded, status: i32, description: &str) -> Message<Body<Value>> {
    let correlation = request.properties.as_ref().and_then(|p| p.message_id.clone());
    let mut props = Properties::builder().build();
    props.correlation_id = correlation;
    let app = ApplicationProperties::builder()
        .insert("status-code", SimpleValue::Int(status))
        .insert("status-description", SimpleValue::String(description.to_string()))
        .build();
    Message::builder().properties(props).application_properties(app).body(Body::Value(fe2o3_amqp_types::messaging::AmqpValue(Value::Null))).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_normalize_to_entity_paths() {
        assert_eq!(normalize("sb://localhost:5672/Orders"), "orders");
        assert_eq!(normalize("amqps://localhost/t1/Subscriptions/s1"), "t1/subscriptions/s1");
        assert_eq!(normalize("sb://localhost/"), "");
        assert_eq!(normalize("/queue1"), "queue1");
        let mut g = Grants::default();
        g.until.insert("orders".into(), 100);
        assert!(g.allows("orders", 50) && g.allows("orders/$deadletterqueue", 50));
        assert!(!g.allows("orders2", 50) && !g.allows("orders", 100));
    }
}
