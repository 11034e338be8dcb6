//! Correlation filters: a set of system and application property values that must all
//! be equal on a message (logical AND). System strings compare case-sensitively, as
//! Azure documents; application properties compare as the SQL `=` of
//! `name = value` would, since Azure describes the filter as that conjunction.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ast::CmpOp;
use super::error::FilterError;
use super::eval::{compare, user, Value};
use crate::broker::model::{PropertyValue, RoutingProperties};

/// Matches messages whose properties equal every value it names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Fields")]
pub struct CorrelationFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// `Label` in older SDKs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, PropertyValue>,
}

impl CorrelationFilter {
    /// A filter that names nothing would match everything by accident; it is refused.
    pub fn validate(&self) -> Result<(), FilterError> {
        let fields = [
            &self.correlation_id,
            &self.message_id,
            &self.to,
            &self.reply_to,
            &self.subject,
            &self.session_id,
            &self.reply_to_session_id,
            &self.content_type,
        ];
        if fields.iter().all(|f| f.is_none()) && self.properties.is_empty() {
            return Err(FilterError::EmptyCorrelationFilter);
        }
        Ok(())
    }

    pub fn matches(&self, props: &RoutingProperties) -> bool {
        let pairs = [
            (&self.correlation_id, &props.correlation_id),
            (&self.message_id, &props.message_id),
            (&self.to, &props.to),
            (&self.reply_to, &props.reply_to),
            (&self.subject, &props.subject),
            (&self.session_id, &props.session_id),
            (&self.reply_to_session_id, &props.reply_to_session_id),
            (&self.content_type, &props.content_type),
        ];
        let system_ok = pairs.iter().all(|(want, have)| match want {
            Some(w) => have.as_deref() == Some(w.as_str()),
            None => true,
        });
        system_ok
            && self.properties.iter().all(|(name, want)| {
                compare(CmpOp::Eq, &user(props, name), &wanted(want)) == Value::Bool(true)
            })
    }
}

fn wanted(v: &PropertyValue) -> Value<'_> {
    match v {
        PropertyValue::String(s) => Value::Str(s.as_str().into()),
        PropertyValue::Long(n) => Value::Long(*n),
        PropertyValue::Double(d) => Value::Double(*d),
        PropertyValue::Bool(b) => Value::Bool(*b),
        PropertyValue::Timestamp(t) => Value::Timestamp(*t),
    }
}

/// The serialized form, checked on the way in so a stored empty filter cannot load.
#[derive(Deserialize)]
struct Fields {
    #[serde(default)]
    correlation_id: Option<String>,
    #[serde(default)]
    message_id: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    reply_to: Option<String>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    reply_to_session_id: Option<String>,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    properties: BTreeMap<String, PropertyValue>,
}

impl TryFrom<Fields> for CorrelationFilter {
    type Error = FilterError;

    fn try_from(f: Fields) -> Result<Self, FilterError> {
        let filter = CorrelationFilter {
            correlation_id: f.correlation_id,
            message_id: f.message_id,
            to: f.to,
            reply_to: f.reply_to,
            subject: f.subject,
            session_id: f.session_id,
            reply_to_session_id: f.reply_to_session_id,
            content_type: f.content_type,
            properties: f.properties,
        };
        filter.validate()?;
        Ok(filter)
    }
}
