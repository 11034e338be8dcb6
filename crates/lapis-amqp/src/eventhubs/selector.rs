//! Where an Event Hubs receiver starts: the `apache.org:selector-filter:string` of its
//! source, an expression such as `amqp.annotation.x-opt-offset > '-1'`, read into a
//! [`Seek`]. Every SDK quotes the value; some omit the spaces. `-1` is the start of
//! the partition, `@latest` the next event to arrive. Without a filter a receiver
//! starts at the end, as the service does.

use fe2o3_amqp_types::primitives::{Symbol, Value};
use lapis_core::stream::Seek;
use serde_amqp::descriptor::Descriptor;

pub const FILTER_NAME: &str = "apache.org:selector-filter:string";
pub const FILTER_CODE: u64 = 0x0000_468c_0000_0004;

/// The expression of the selector filter in `filters`, if there is one.
pub fn expression(filters: &fe2o3_amqp_types::messaging::FilterSet) -> Option<String> {
    let value = filters.get(&Symbol::from(FILTER_NAME)).or_else(|| filters.iter().find(|(_, v)| is_selector(v)).map(|(_, v)| v))?;
    let inner = match value {
        Value::Described(d) => &d.value,
        other => other,
    };
    match inner {
        Value::String(s) => Some(s.clone()),
        Value::Symbol(s) => Some(s.0.clone()),
        _ => None,
    }
}

fn is_selector(v: &Value) -> bool {
    match v {
        Value::Described(d) => match &d.descriptor {
            Descriptor::Code(c) => *c == FILTER_CODE,
            Descriptor::Name(n) => n.as_str() == FILTER_NAME,
        },
        _ => false,
    }
}

/// The position an expression names, or why it names none.
pub fn parse(expression: &str) -> Result<Seek, String> {
    let e = expression.trim();
    let rest = e
        .strip_prefix("amqp.annotation.")
        .ok_or_else(|| format!("the selector '{expression}' must start with amqp.annotation."))?;
    let (field, rest) = rest.split_at(rest.find(|c: char| c.is_whitespace() || "<>=".contains(c)).unwrap_or(rest.len()));
    let rest = rest.trim_start();
    let (op, value) = [">=", "<=", ">", "<", "="]
        .iter()
        .find_map(|op| rest.strip_prefix(op).map(|v| (*op, v)))
        .ok_or_else(|| format!("the selector '{expression}' has no comparison"))?;
    let value = value.trim();
    let value = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')).unwrap_or(value);
    let inclusive = op.contains('=');
    let number = |v: &str| v.parse::<i64>().map_err(|_| format!("the selector value '{v}' is not a number"));
    match field {
        "x-opt-offset" => match value {
            "-1" => Ok(Seek::Start),
            "@latest" => Ok(Seek::End),
            v => Ok(Seek::Offset { offset: number(v)?, inclusive }),
        },
        "x-opt-sequence-number" => Ok(Seek::Seq { seq: number(value)?, inclusive }),
        "x-opt-enqueued-time" => Ok(Seek::Time { ms: number(value)?, inclusive }),
        other => Err(format!("the selector field '{other}' is not one Event Hubs filters on")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sdks_expressions_are_read() {
        assert_eq!(parse("amqp.annotation.x-opt-offset > '-1'"), Ok(Seek::Start));
        assert_eq!(parse("amqp.annotation.x-opt-offset >= '-1'"), Ok(Seek::Start));
        assert_eq!(parse("amqp.annotation.x-opt-offset > '@latest'"), Ok(Seek::End));
        assert_eq!(parse("amqp.annotation.x-opt-offset >'4096'"), Ok(Seek::Offset { offset: 4096, inclusive: false }));
        assert_eq!(parse("amqp.annotation.x-opt-offset >= '4096'"), Ok(Seek::Offset { offset: 4096, inclusive: true }));
        assert_eq!(parse("amqp.annotation.x-opt-sequence-number > '5'"), Ok(Seek::Seq { seq: 5, inclusive: false }));
        assert_eq!(parse("amqp.annotation.x-opt-sequence-number>=5"), Ok(Seek::Seq { seq: 5, inclusive: true }));
        assert_eq!(parse("amqp.annotation.x-opt-enqueued-time > '1700000000000'"), Ok(Seek::Time { ms: 1_700_000_000_000, inclusive: false }));
        assert!(parse("amqp.annotation.x-opt-offset > 'abc'").is_err());
        assert!(parse("sys.MessageId = 'x'").is_err());
        assert!(parse("amqp.annotation.x-opt-color > '1'").is_err());
    }
}
