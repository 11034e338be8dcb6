//! Entity and rule properties in Azure's naming, as the Service Bus emulator's
//! `Config.json` and Lapis's admin API write them (`LockDuration: "PT1M"`,
//! `FilterType: "Sql"`, …), and their translation to [`QueueConfig`] and [`Rule`] with
//! Azure's bounds. Topics and subscriptions use the same property set as queues (each
//! the subset Azure defines for it).

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::filter::{CorrelationFilter, Filter, SqlAction, SqlFilter};
use super::model::{PropertyValue, QueueConfig, Rule};
use crate::time_fmt::{format_duration, parse_duration};

/// The properties object of one queue. Absent fields take the defaults chosen by the
/// caller: the emulator's for `Config.json`, Azure's for the admin API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct QueueProperties {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_lettering_on_message_expiration: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_message_time_to_live: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_detection_history_time_window: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_dead_lettered_messages_to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_delivery_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requires_duplicate_detection: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requires_session: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_size_in_megabytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_message_size_in_kilobytes: Option<u64>,
}

/// Whose defaults fill absent properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defaults {
    /// Microsoft's Service Bus emulator: TTL 1 h, duplicate window 20 s, 3 deliveries.
    Emulator,
    /// Azure Service Bus: no TTL, duplicate window 10 min, 10 deliveries.
    Azure,
}

/// Azure's bounds.
const LOCK_MS: (i64, i64) = (5_000, 300_000);
const DUPLICATE_WINDOW_MS: (i64, i64) = (20_000, 7 * 86_400_000);
const MESSAGE_KB: (u64, u64) = (1, 100 * 1024);

fn duration(name: &str, text: &Option<String>, default: Option<i64>) -> Result<Option<i64>, String> {
    match text {
        None => Ok(default),
        Some(t) => parse_duration(t).map(Some).ok_or_else(|| format!("{name} {t:?} is not an ISO 8601 duration such as PT1M")),
    }
}

fn within(name: &str, value: i64, (min, max): (i64, i64)) -> Result<(), String> {
    if value < min || value > max {
        return Err(format!("{name} must be between {} and {}", format_duration(min), format_duration(max)));
    }
    Ok(())
}

impl QueueProperties {
    /// The configuration these properties describe, or why they are invalid.
    pub fn to_config(&self, defaults: Defaults) -> Result<QueueConfig, String> {
        let (ttl, window, deliveries) = match defaults {
            Defaults::Emulator => (Some(3_600_000), 20_000, 3),
            Defaults::Azure => (None, 600_000, 10),
        };
        let target = |t: &Option<String>| t.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_string);
        let lock = duration("LockDuration", &self.lock_duration, Some(60_000))?.unwrap_or(60_000);
        within("LockDuration", lock, LOCK_MS)?;
        let ttl = duration("DefaultMessageTimeToLive", &self.default_message_time_to_live, ttl)?;
        if ttl.is_some_and(|t| t <= 0) {
            return Err("DefaultMessageTimeToLive must be positive".into());
        }
        let window = duration("DuplicateDetectionHistoryTimeWindow", &self.duplicate_detection_history_time_window, Some(window))?
            .unwrap_or(window);
        within("DuplicateDetectionHistoryTimeWindow", window, DUPLICATE_WINDOW_MS)?;
        let max_delivery_count = self.max_delivery_count.unwrap_or(deliveries);
        if max_delivery_count == 0 {
            return Err("MaxDeliveryCount must be at least 1".into());
        }
        let message_kb = self.max_message_size_in_kilobytes.unwrap_or(256);
        if message_kb < MESSAGE_KB.0 || message_kb > MESSAGE_KB.1 {
            return Err(format!("MaxMessageSizeInKilobytes must be between {} and {}", MESSAGE_KB.0, MESSAGE_KB.1));
        }
        let size_mb = self.max_size_in_megabytes.unwrap_or(1024);
        if size_mb == 0 {
            return Err("MaxSizeInMegabytes must be positive".into());
        }
        Ok(QueueConfig {
            lock_duration_ms: lock,
            max_delivery_count,
            default_ttl_ms: ttl,
            dead_letter_on_expiration: self.dead_lettering_on_message_expiration.unwrap_or(false),
            requires_session: self.requires_session.unwrap_or(false),
            duplicate_detection_window_ms: self.requires_duplicate_detection.unwrap_or(false).then_some(window),
            max_size_bytes: size_mb << 20,
            max_message_bytes: message_kb << 10,
            forward_to: target(&self.forward_to),
            forward_dead_lettered_to: target(&self.forward_dead_lettered_messages_to),
        })
    }

    /// These properties over `base`: every property named here replaces `base`'s (an
    /// update that names only what changes).
    pub fn over(self, base: QueueProperties) -> QueueProperties {
        QueueProperties {
            dead_lettering_on_message_expiration: self.dead_lettering_on_message_expiration.or(base.dead_lettering_on_message_expiration),
            default_message_time_to_live: self.default_message_time_to_live.or(base.default_message_time_to_live),
            duplicate_detection_history_time_window: self.duplicate_detection_history_time_window.or(base.duplicate_detection_history_time_window),
            forward_dead_lettered_messages_to: self.forward_dead_lettered_messages_to.or(base.forward_dead_lettered_messages_to),
            forward_to: self.forward_to.or(base.forward_to),
            lock_duration: self.lock_duration.or(base.lock_duration),
            max_delivery_count: self.max_delivery_count.or(base.max_delivery_count),
            requires_duplicate_detection: self.requires_duplicate_detection.or(base.requires_duplicate_detection),
            requires_session: self.requires_session.or(base.requires_session),
            max_size_in_megabytes: self.max_size_in_megabytes.or(base.max_size_in_megabytes),
            max_message_size_in_kilobytes: self.max_message_size_in_kilobytes.or(base.max_message_size_in_kilobytes),
        }
    }

    /// The properties that describe `config` in full.
    pub fn from_config(config: &QueueConfig) -> QueueProperties {
        QueueProperties {
            dead_lettering_on_message_expiration: Some(config.dead_letter_on_expiration),
            default_message_time_to_live: config.default_ttl_ms.map(format_duration),
            duplicate_detection_history_time_window: config.duplicate_detection_window_ms.map(format_duration),
            forward_dead_lettered_messages_to: config.forward_dead_lettered_to.clone(),
            forward_to: config.forward_to.clone(),
            lock_duration: Some(format_duration(config.lock_duration_ms)),
            max_delivery_count: Some(config.max_delivery_count),
            requires_duplicate_detection: Some(config.duplicate_detection_window_ms.is_some()),
            requires_session: Some(config.requires_session),
            max_size_in_megabytes: Some(config.max_size_bytes >> 20),
            max_message_size_in_kilobytes: Some(config.max_message_bytes >> 10),
        }
    }
}

/// A rule as `Config.json` writes it: `{"FilterType": "Sql", "SqlFilter": {...}, "Action": {...}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RuleProperties {
    pub filter_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_filter: Option<CorrelationProperties>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_filter: Option<SqlText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<SqlText>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SqlText {
    pub sql_expression: String,
}

/// A correlation filter in `Config.json`'s naming (`Label` is the subject).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CorrelationProperties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "Subject")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, serde_json::Value>,
}

fn property_value(name: &str, v: &serde_json::Value) -> Result<PropertyValue, String> {
    match v {
        serde_json::Value::String(s) => Ok(PropertyValue::String(s.clone())),
        serde_json::Value::Bool(b) => Ok(PropertyValue::Bool(*b)),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Ok(PropertyValue::Long(i)),
            None => n.as_f64().map(PropertyValue::Double).ok_or_else(|| format!("property {name:?} is not a usable number")),
        },
        _ => Err(format!("property {name:?} must be a string, number or boolean")),
    }
}

fn json_value(v: &PropertyValue) -> serde_json::Value {
    match v {
        PropertyValue::String(s) => serde_json::Value::String(s.clone()),
        PropertyValue::Long(i) => serde_json::Value::from(*i),
        PropertyValue::Double(d) => serde_json::Value::from(*d),
        PropertyValue::Bool(b) => serde_json::Value::Bool(*b),
        PropertyValue::Timestamp(t) => serde_json::Value::from(*t),
    }
}

impl RuleProperties {
    /// The rule these properties describe, or why they are invalid.
    pub fn to_rule(&self, name: &str) -> Result<Rule, String> {
        let filter = match self.filter_type.to_ascii_lowercase().as_str() {
            "sql" => {
                let sql = self.sql_filter.as_ref().ok_or("FilterType Sql needs SqlFilter.SqlExpression")?;
                Filter::Sql(SqlFilter::parse(&sql.sql_expression).map_err(|e| format!("SqlFilter: {e}"))?)
            }
            "correlation" => {
                let c = self.correlation_filter.as_ref().ok_or("FilterType Correlation needs CorrelationFilter")?;
                let properties = c.properties.iter().map(|(k, v)| Ok((k.clone(), property_value(k, v)?))).collect::<Result<_, String>>()?;
                let filter = CorrelationFilter {
                    correlation_id: c.correlation_id.clone(),
                    message_id: c.message_id.clone(),
                    to: c.to.clone(),
                    reply_to: c.reply_to.clone(),
                    subject: c.label.clone(),
                    session_id: c.session_id.clone(),
                    reply_to_session_id: c.reply_to_session_id.clone(),
                    content_type: c.content_type.clone(),
                    properties,
                };
                filter.validate().map_err(|e| format!("CorrelationFilter: {e}"))?;
                Filter::Correlation(filter)
            }
            "true" | "truefilter" => Filter::True,
            "false" | "falsefilter" => Filter::False,
            _ => return Err(format!("FilterType {:?} is not Sql, Correlation, True or False", self.filter_type)),
        };
        let action = match &self.action {
            Some(a) => Some(SqlAction::parse(&a.sql_expression).map_err(|e| format!("Action: {e}"))?),
            None => None,
        };
        Ok(Rule { name: name.to_string(), filter, action })
    }

    /// The properties that describe `rule`.
    pub fn from_rule(rule: &Rule) -> RuleProperties {
        let action = rule.action.as_ref().map(|a| SqlText { sql_expression: a.text().to_string() });
        match &rule.filter {
            Filter::True => RuleProperties { filter_type: "True".into(), action, ..Default::default() },
            Filter::False => RuleProperties { filter_type: "False".into(), action, ..Default::default() },
            Filter::Sql(sql) => RuleProperties { filter_type: "Sql".into(), sql_filter: Some(SqlText { sql_expression: sql.text().to_string() }), action, ..Default::default() },
            Filter::Correlation(c) => RuleProperties {
                filter_type: "Correlation".into(),
                correlation_filter: Some(CorrelationProperties {
                    content_type: c.content_type.clone(),
                    correlation_id: c.correlation_id.clone(),
                    label: c.subject.clone(),
                    message_id: c.message_id.clone(),
                    reply_to: c.reply_to.clone(),
                    reply_to_session_id: c.reply_to_session_id.clone(),
                    session_id: c.session_id.clone(),
                    to: c.to.clone(),
                    properties: c.properties.iter().map(|(k, v)| (k.clone(), json_value(v))).collect(),
                }),
                action,
                ..Default::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulator_rules_map_both_ways() {
        let json = r#"{"FilterType": "Correlation", "CorrelationFilter": {"ContentType": "application/text", "Label": "subject1", "Properties": {"prop1": "value1", "n": 3}}}"#;
        let props: RuleProperties = serde_json::from_str(json).unwrap();
        let rule = props.to_rule("corr").unwrap();
        let Filter::Correlation(c) = &rule.filter else { panic!("a correlation filter") };
        assert_eq!(c.subject.as_deref(), Some("subject1"));
        assert_eq!(c.properties.get("n"), Some(&PropertyValue::Long(3)));
        assert_eq!(RuleProperties::from_rule(&rule).to_rule("corr").unwrap(), rule);

        let sql: RuleProperties = serde_json::from_str(
            r#"{"FilterType": "Sql", "SqlFilter": {"SqlExpression": "sys.MessageId = '123456' AND userProp1 = 'value1'"}, "Action": {"SqlExpression": "SET sys.To = 'Entity'"}}"#,
        )
        .unwrap();
        let rule = sql.to_rule("sql").unwrap();
        assert!(matches!(rule.filter, Filter::Sql(_)) && rule.action.is_some());
        assert_eq!(RuleProperties::from_rule(&rule).to_rule("sql").unwrap(), rule);
    }

    #[test]
    fn invalid_rules_are_explained() {
        let bad = |json: &str| serde_json::from_str::<RuleProperties>(json).unwrap().to_rule("r").unwrap_err();
        assert!(bad(r#"{"FilterType": "Sql"}"#).contains("SqlExpression"));
        assert!(bad(r#"{"FilterType": "Sql", "SqlFilter": {"SqlExpression": "a = "}}"#).starts_with("SqlFilter"));
        assert!(bad(r#"{"FilterType": "Correlation", "CorrelationFilter": {}}"#).starts_with("CorrelationFilter"));
        assert!(bad(r#"{"FilterType": "Regex"}"#).contains("Regex"));
    }

    #[test]
    fn emulator_config_maps_with_emulator_defaults() {
        let p: QueueProperties = serde_json::from_str(
            r#"{"DeadLetteringOnMessageExpiration": true, "LockDuration": "PT30S", "RequiresDuplicateDetection": true, "ForwardTo": ""}"#,
        )
        .unwrap();
        let c = p.to_config(Defaults::Emulator).unwrap();
        assert_eq!((c.lock_duration_ms, c.max_delivery_count, c.default_ttl_ms), (30_000, 3, Some(3_600_000)));
        assert_eq!((c.dead_letter_on_expiration, c.duplicate_detection_window_ms), (true, Some(20_000)));
        let azure = QueueProperties::default().to_config(Defaults::Azure).unwrap();
        assert_eq!(azure, QueueConfig::default());
        assert_eq!(QueueProperties::from_config(&c).to_config(Defaults::Azure).unwrap(), c);
        let update = QueueProperties { max_delivery_count: Some(7), ..Default::default() };
        let updated = update.over(QueueProperties::from_config(&c)).to_config(Defaults::Azure).unwrap();
        assert_eq!(updated, QueueConfig { max_delivery_count: 7, ..c.clone() });
        let forwarding = QueueProperties { forward_to: Some("next".into()), forward_dead_lettered_messages_to: Some(" ".into()), ..Default::default() };
        let f = forwarding.to_config(Defaults::Azure).unwrap();
        assert_eq!((f.forward_to.as_deref(), f.forward_dead_lettered_to.as_deref()), (Some("next"), None));
        assert_eq!(QueueProperties::from_config(&f).to_config(Defaults::Azure).unwrap(), f);
    }

    #[test]
    fn invalid_properties_are_named() {
        let bad = |json: &str| QueueProperties::to_config(&serde_json::from_str(json).unwrap(), Defaults::Azure).unwrap_err();
        assert!(bad(r#"{"LockDuration": "PT10M"}"#).contains("LockDuration"));
        assert!(bad(r#"{"LockDuration": "soon"}"#).contains("ISO 8601"));
        assert!(bad(r#"{"MaxDeliveryCount": 0}"#).contains("MaxDeliveryCount"));
        assert!(serde_json::from_str::<QueueProperties>(r#"{"LockDurration": "PT1M"}"#).is_err());
    }
}
