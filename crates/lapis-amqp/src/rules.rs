//! Subscription rules as the `$management` rule operations carry them: an `add-rule`
//! request's plain map (`sql-filter`, `correlation-filter`, `sql-rule-action`) read
//! into a [`Rule`], and a rule written back as the described types `enumerate-rules`
//! answers with (the codes the SDKs decode: rule description `0x137:0x4`, SQL / true /
//! false / correlation filters `0x13:0x70000006…9`, SQL / empty rule actions
//! `0x137:0x6` / `0x137:0x5`).

use std::collections::BTreeMap;

use fe2o3_amqp_types::primitives::{OrderedMap, Timestamp, Value};
use lapis_core::broker::filter::{CorrelationFilter, Filter, SqlAction, SqlFilter};
use lapis_core::broker::{PropertyValue, Rule};
use serde_amqp::described::Described;
use serde_amqp::descriptor::Descriptor;

pub const RULE_DESCRIPTION: u64 = 0x0000_0137_0000_0004;
pub const EMPTY_ACTION: u64 = 0x0000_0137_0000_0005;
pub const SQL_ACTION: u64 = 0x0000_0137_0000_0006;
pub const SQL_FILTER: u64 = 0x0000_0013_7000_0006;
pub const TRUE_FILTER: u64 = 0x0000_0013_7000_0007;
pub const FALSE_FILTER: u64 = 0x0000_0013_7000_0008;
pub const CORRELATION_FILTER: u64 = 0x0000_0013_7000_0009;
/// The SQL compatibility level Service Bus reports.
const COMPATIBILITY_LEVEL: i32 = 20;

type Map = OrderedMap<Value, Value>;

fn get<'a>(m: &'a Map, key: &str) -> Option<&'a Value> {
    m.get(&Value::String(key.to_string())).or_else(|| m.get(&Value::Symbol(key.into())))
}

fn text(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Symbol(s)) => Some(s.0.clone()),
        _ => None,
    }
}

fn property(v: &Value) -> Option<PropertyValue> {
    Some(match v {
        Value::String(s) => PropertyValue::String(s.clone()),
        Value::Symbol(s) => PropertyValue::String(s.0.clone()),
        Value::Bool(b) => PropertyValue::Bool(*b),
        Value::Byte(n) => PropertyValue::Long(*n as i64),
        Value::Short(n) => PropertyValue::Long(*n as i64),
        Value::Int(n) => PropertyValue::Long(*n as i64),
        Value::Long(n) => PropertyValue::Long(*n),
        Value::Ubyte(n) => PropertyValue::Long(*n as i64),
        Value::Ushort(n) => PropertyValue::Long(*n as i64),
        Value::Uint(n) => PropertyValue::Long(*n as i64),
        Value::Ulong(n) => PropertyValue::Long(*n as i64),
        Value::Float(f) => PropertyValue::Double(f.into_inner() as f64),
        Value::Double(d) => PropertyValue::Double(d.into_inner()),
        Value::Timestamp(t) => PropertyValue::Timestamp(t.milliseconds()),
        _ => return None,
    })
}

fn wire(v: &PropertyValue) -> Value {
    match v {
        PropertyValue::String(s) => Value::String(s.clone()),
        PropertyValue::Long(n) => Value::Long(*n),
        PropertyValue::Double(d) => Value::Double((*d).into()),
        PropertyValue::Bool(b) => Value::Bool(*b),
        PropertyValue::Timestamp(t) => Value::Timestamp(Timestamp::from_milliseconds(*t)),
    }
}

/// The rule an `add-rule` request describes, or why it is invalid.
pub fn rule_from_request(name: &str, description: &Map) -> Result<Rule, String> {
    let expression = |v: Option<&Value>, what: &str| -> Result<Option<String>, String> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Map(m)) => text(get(m, "expression")).map(Some).ok_or_else(|| format!("{what} needs an expression")),
            Some(_) => Err(format!("{what} must be a map")),
        }
    };
    let sql = expression(get(description, "sql-filter"), "sql-filter")?;
    let correlation = match get(description, "correlation-filter") {
        None | Some(Value::Null) => None,
        Some(Value::Map(m)) => Some(correlation_from(m)?),
        Some(_) => return Err("correlation-filter must be a map".into()),
    };
    let filter = match (sql, correlation) {
        (Some(s), None) => Filter::Sql(SqlFilter::parse(&s).map_err(|e| format!("sql-filter: {e}"))?),
        (None, Some(c)) => Filter::Correlation(c),
        (None, None) => return Err("the rule description needs a sql-filter or a correlation-filter".into()),
        (Some(_), Some(_)) => return Err("the rule description has both a sql-filter and a correlation-filter".into()),
    };
    let action = match expression(get(description, "sql-rule-action"), "sql-rule-action")? {
        Some(a) => Some(SqlAction::parse(&a).map_err(|e| format!("sql-rule-action: {e}"))?),
        None => None,
    };
    Ok(Rule { name: name.to_string(), filter, action })
}

fn correlation_from(m: &Map) -> Result<CorrelationFilter, String> {
    let properties = match get(m, "properties") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Map(p)) => p
            .iter()
            .map(|(k, v)| {
                let key = text(Some(k)).ok_or("correlation property names must be strings")?;
                let value = property(v).ok_or_else(|| format!("correlation property {key:?} has an unsupported type"))?;
                Ok((key, value))
            })
            .collect::<Result<_, String>>()?,
        Some(_) => return Err("correlation-filter properties must be a map".into()),
    };
    let f = CorrelationFilter {
        correlation_id: text(get(m, "correlation-id")),
        message_id: text(get(m, "message-id")),
        to: text(get(m, "to")),
        reply_to: text(get(m, "reply-to")),
        subject: text(get(m, "label")).or_else(|| text(get(m, "subject"))),
        session_id: text(get(m, "session-id")),
        reply_to_session_id: text(get(m, "reply-to-session-id")),
        content_type: text(get(m, "content-type")),
        properties,
    };
    Ok(f)
}

fn described(code: u64, fields: Vec<Value>) -> Value {
    Value::Described(Box::new(Described { descriptor: Descriptor::Code(code), value: Value::List(fields) }))
}

fn optional(s: &Option<String>) -> Value {
    s.clone().map(Value::String).unwrap_or(Value::Null)
}

/// A rule as `enumerate-rules` answers with it (`rule-description`'s value).
pub fn rule_description(rule: &Rule, created_at: i64) -> Value {
    let filter = match &rule.filter {
        Filter::True => described(TRUE_FILTER, Vec::new()),
        Filter::False => described(FALSE_FILTER, Vec::new()),
        Filter::Sql(s) => described(SQL_FILTER, vec![Value::String(s.text().to_string()), Value::Int(COMPATIBILITY_LEVEL)]),
        Filter::Correlation(c) => {
            let properties: Map = c.properties.iter().map(|(k, v)| (Value::String(k.clone()), wire(v))).collect();
            described(
                CORRELATION_FILTER,
                vec![
                    optional(&c.correlation_id),
                    optional(&c.message_id),
                    optional(&c.to),
                    optional(&c.reply_to),
                    optional(&c.subject),
                    optional(&c.session_id),
                    optional(&c.reply_to_session_id),
                    optional(&c.content_type),
                    Value::Map(properties),
                ],
            )
        }
    };
    let action = match &rule.action {
        Some(a) => described(SQL_ACTION, vec![Value::String(a.text().to_string()), Value::Int(COMPATIBILITY_LEVEL)]),
        None => described(EMPTY_ACTION, Vec::new()),
    };
    described(RULE_DESCRIPTION, vec![filter, action, Value::String(rule.name.clone()), Value::Timestamp(Timestamp::from_milliseconds(created_at))])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, Value)]) -> Map {
        entries.iter().map(|(k, v)| (Value::String(k.to_string()), v.clone())).collect()
    }

    #[test]
    fn add_rule_requests_become_rules() {
        let sql = map(&[("sql-filter", Value::Map(map(&[("expression", Value::String("color = 'red'".into()))])))]);
        let rule = rule_from_request("reds", &sql).unwrap();
        assert!(matches!(rule.filter, Filter::Sql(_)) && rule.action.is_none());

        let props = Value::Map(map(&[("n", Value::Uint(3))]));
        let corr = map(&[
            ("correlation-filter", Value::Map(map(&[("label", Value::String("order".into())), ("to", Value::Null), ("properties", props)]))),
            ("sql-rule-action", Value::Map(map(&[("expression", Value::String("SET seen = true".into()))]))),
        ]);
        let rule = rule_from_request("orders", &corr).unwrap();
        let Filter::Correlation(c) = &rule.filter else { panic!("a correlation filter") };
        assert_eq!((c.subject.as_deref(), c.to.as_deref()), (Some("order"), None));
        assert_eq!(c.properties.get("n"), Some(&PropertyValue::Long(3)));
        assert!(rule.action.is_some());
    }

    #[test]
    fn invalid_rule_requests_are_explained() {
        assert!(rule_from_request("r", &Map::new()).unwrap_err().contains("needs a sql-filter"));
        let bad_sql = map(&[("sql-filter", Value::Map(map(&[("expression", Value::String("a = ".into()))])))]);
        assert!(rule_from_request("r", &bad_sql).unwrap_err().starts_with("sql-filter"));
    }

    #[test]
    fn rules_are_written_as_described_lists() {
        let rule = Rule { name: "$Default".into(), filter: Filter::True, action: None };
        let Value::Described(d) = rule_description(&rule, 0) else { panic!("described") };
        assert_eq!(d.descriptor, Descriptor::Code(RULE_DESCRIPTION));
        let Value::List(fields) = &d.value else { panic!("a list") };
        assert_eq!(fields.len(), 4);
        assert!(matches!(&fields[0], Value::Described(f) if f.descriptor == Descriptor::Code(TRUE_FILTER)));
        assert!(matches!(&fields[1], Value::Described(a) if a.descriptor == Descriptor::Code(EMPTY_ACTION)));
        assert_eq!(fields[2], Value::String("$Default".into()));
    }
}
