//! Evaluates a parsed expression against a message's routing properties with SQL's
//! three-valued logic: a missing property or NULL is *unknown*, unknown spreads through
//! arithmetic and comparisons, and a filter matches only when the result is TRUE.
//!
//! Types follow C#'s implicit conversions as the Azure docs promise: long and double
//! promote to double, strings compare ordinally (case-sensitive), and operands of types
//! C# cannot combine give unknown rather than an error.

use std::borrow::Cow;
use std::cmp::Ordering;

use super::ast::{ArithOp, CmpOp, Expr, PropRef, SysProp};
use super::like::like;
use crate::broker::model::{PropertyValue, RoutingProperties};

/// A value during evaluation. `Null` doubles as *unknown*.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value<'a> {
    Null,
    Str(Cow<'a, str>),
    Long(i64),
    Double(f64),
    Bool(bool),
    /// Milliseconds since the Unix epoch (C# DateTime).
    Timestamp(i64),
    /// Milliseconds (C# TimeSpan: `sys.TimeToLive`, timestamp differences).
    Duration(i64),
}

impl Value<'_> {
    pub(crate) fn into_owned(self) -> Value<'static> {
        match self {
            Value::Str(s) => Value::Str(Cow::Owned(s.into_owned())),
            Value::Null => Value::Null,
            Value::Long(n) => Value::Long(n),
            Value::Double(d) => Value::Double(d),
            Value::Bool(b) => Value::Bool(b),
            Value::Timestamp(t) => Value::Timestamp(t),
            Value::Duration(d) => Value::Duration(d),
        }
    }

    fn from_property(p: &PropertyValue) -> Value<'_> {
        match p {
            PropertyValue::String(s) => Value::Str(Cow::Borrowed(s)),
            PropertyValue::Long(n) => Value::Long(*n),
            PropertyValue::Double(d) => Value::Double(*d),
            PropertyValue::Bool(b) => Value::Bool(*b),
            PropertyValue::Timestamp(t) => Value::Timestamp(*t),
        }
    }
}

/// Finds an application property. Azure documents property names as case-insensitive;
/// an exact match wins so that a message carrying both `a` and `A` stays predictable.
pub(crate) fn find_user_key<'m>(props: &'m RoutingProperties, name: &str) -> Option<&'m str> {
    if let Some((k, _)) = props.application.get_key_value(name) {
        return Some(k);
    }
    props.application.keys().find(|k| eq_ignore_case(k, name)).map(String::as_str)
}

fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.chars().flat_map(char::to_lowercase).eq(b.chars().flat_map(char::to_lowercase))
}

pub(crate) fn user<'m>(props: &'m RoutingProperties, name: &str) -> Value<'m> {
    match find_user_key(props, name).and_then(|k| props.application.get(k)) {
        Some(v) => Value::from_property(v),
        None => Value::Null,
    }
}

fn text(s: &Option<String>) -> Value<'_> {
    s.as_deref().map_or(Value::Null, |s| Value::Str(Cow::Borrowed(s)))
}

fn system(props: &RoutingProperties, p: SysProp) -> Value<'_> {
    match p {
        SysProp::MessageId => text(&props.message_id),
        SysProp::CorrelationId => text(&props.correlation_id),
        SysProp::To => text(&props.to),
        SysProp::ReplyTo => text(&props.reply_to),
        SysProp::Subject => text(&props.subject),
        SysProp::SessionId => text(&props.session_id),
        SysProp::ReplyToSessionId => text(&props.reply_to_session_id),
        SysProp::ContentType => text(&props.content_type),
        SysProp::TimeToLive => props.time_to_live_ms.map_or(Value::Null, Value::Duration),
        SysProp::ScheduledEnqueueTimeUtc => props.scheduled_enqueue_at.map_or(Value::Null, Value::Timestamp),
        SysProp::Size => Value::Long(props.size),
        SysProp::BrokerOwned(_) | SysProp::NotCarried(_) => Value::Null,
    }
}

pub(crate) fn property<'m>(props: &'m RoutingProperties, p: &PropRef) -> Value<'m> {
    match p {
        PropRef::User(name) => user(props, name),
        PropRef::Sys(s) => system(props, *s),
    }
}

/// Whether a condition holds: TRUE, not FALSE or unknown.
pub(crate) fn holds(expr: &Expr, props: &RoutingProperties) -> bool {
    eval(expr, props) == Value::Bool(true)
}

/// Evaluates `expr`; strings are borrowed from the expression or the message.
pub(crate) fn eval<'a>(expr: &'a Expr, props: &'a RoutingProperties) -> Value<'a> {
    match expr {
        Expr::Const(Value::Str(s)) => Value::Str(Cow::Borrowed(s)),
        Expr::Const(v) => v.clone(),
        Expr::Prop(p) => property(props, p),
        Expr::NewId => Value::Str(Cow::Owned(uuid::Uuid::new_v4().hyphenated().to_string())),
        Expr::PropertyFn(name) => match eval(name, props) {
            // Only application properties: `property('sys.Label')` does not reach
            // system properties in Azure either.
            Value::Str(n) => user(props, &n),
            _ => Value::Null,
        },
        Expr::Neg(e) => match eval(e, props) {
            Value::Long(n) => n.checked_neg().map_or(Value::Null, Value::Long),
            Value::Double(d) => Value::Double(-d),
            Value::Duration(d) => d.checked_neg().map_or(Value::Null, Value::Duration),
            _ => Value::Null,
        },
        Expr::Pos(e) => match eval(e, props) {
            v @ (Value::Long(_) | Value::Double(_) | Value::Duration(_)) => v,
            _ => Value::Null,
        },
        Expr::Arith { first, rest } => {
            let mut acc = eval(first, props);
            for (op, e) in rest {
                acc = arith(*op, acc, eval(e, props));
            }
            acc
        }
        Expr::Compare { op, left, right } => compare(*op, &eval(left, props), &eval(right, props)),
        Expr::Like { value, pattern, escape, negated } => {
            let escape = escape.as_ref().map(|e| eval(e, props));
            match (eval(value, props), eval(pattern, props), escape) {
                (Value::Str(v), Value::Str(p), None) => negate(like(&v, &p, None), *negated),
                (Value::Str(v), Value::Str(p), Some(Value::Str(e))) => {
                    let mut chars = e.chars();
                    match (chars.next(), chars.next()) {
                        (Some(c), None) => negate(like(&v, &p, Some(c)), *negated),
                        _ => Value::Null,
                    }
                }
                _ => Value::Null,
            }
        }
        Expr::In { value, list, negated } => {
            let v = eval(value, props);
            if v == Value::Null {
                return Value::Null;
            }
            let found = list.iter().any(|e| compare(CmpOp::Eq, &v, &eval(e, props)) == Value::Bool(true));
            Value::Bool(found != *negated)
        }
        Expr::IsNull { value, negated } => Value::Bool((eval(value, props) == Value::Null) != *negated),
        Expr::Exists(p) => Value::Bool(match p {
            PropRef::User(name) => find_user_key(props, name).is_some(),
            PropRef::Sys(s) => system(props, *s) != Value::Null,
        }),
        Expr::Not(e) => match eval(e, props) {
            Value::Bool(b) => Value::Bool(!b),
            _ => Value::Null,
        },
        Expr::And(items) => {
            let mut unknown = false;
            for e in items {
                match eval(e, props) {
                    Value::Bool(false) => return Value::Bool(false),
                    Value::Bool(true) => {}
                    _ => unknown = true,
                }
            }
            if unknown { Value::Null } else { Value::Bool(true) }
        }
        Expr::Or(items) => {
            let mut unknown = false;
            for e in items {
                match eval(e, props) {
                    Value::Bool(true) => return Value::Bool(true),
                    Value::Bool(false) => {}
                    _ => unknown = true,
                }
            }
            if unknown { Value::Null } else { Value::Bool(false) }
        }
    }
}

fn negate(matched: Option<bool>, negated: bool) -> Value<'static> {
    matched.map_or(Value::Null, |m| Value::Bool(m != negated))
}

fn as_double(v: &Value<'_>) -> Option<f64> {
    match v {
        Value::Long(n) => Some(*n as f64),
        Value::Double(d) => Some(*d),
        _ => None,
    }
}

/// A comparison; unknown when either side is unknown or C# could not compare the two.
pub(crate) fn compare(op: CmpOp, l: &Value<'_>, r: &Value<'_>) -> Value<'static> {
    let ord = match (l, r) {
        (Value::Null, _) | (_, Value::Null) => return Value::Null,
        (Value::Long(a), Value::Long(b))
        | (Value::Timestamp(a), Value::Timestamp(b))
        | (Value::Duration(a), Value::Duration(b)) => a.cmp(b),
        (Value::Str(a), Value::Str(b)) => a.cmp(b),
        (Value::Bool(a), Value::Bool(b)) => match op {
            CmpOp::Eq => return Value::Bool(a == b),
            CmpOp::Ne => return Value::Bool(a != b),
            _ => return Value::Null,
        },
        _ => match (as_double(l), as_double(r)) {
            // IEEE rules, as in C#: NaN is unequal to everything, itself included.
            (Some(a), Some(b)) => {
                return Value::Bool(match op {
                    CmpOp::Eq => a == b,
                    CmpOp::Ne => a != b,
                    CmpOp::Lt => a < b,
                    CmpOp::Le => a <= b,
                    CmpOp::Gt => a > b,
                    CmpOp::Ge => a >= b,
                })
            }
            _ => return Value::Null,
        },
    };
    Value::Bool(match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    })
}

/// Arithmetic; integer overflow and division by zero give unknown where C# would throw.
fn arith<'m>(op: ArithOp, l: Value<'m>, r: Value<'m>) -> Value<'m> {
    use ArithOp::*;
    let checked = |v: Option<i64>, wrap: fn(i64) -> Value<'m>| v.map_or(Value::Null, wrap);
    match (op, &l, &r) {
        (_, Value::Null, _) | (_, _, Value::Null) => Value::Null,
        (_, Value::Long(a), Value::Long(b)) => {
            let v = match op {
                Add => a.checked_add(*b),
                Sub => a.checked_sub(*b),
                Mul => a.checked_mul(*b),
                Div => a.checked_div(*b),
                Rem => a.checked_rem(*b),
            };
            checked(v, Value::Long)
        }
        (Add, Value::Str(a), Value::Str(b)) => Value::Str(Cow::Owned(format!("{a}{b}"))),
        (Sub, Value::Timestamp(a), Value::Timestamp(b)) => checked(a.checked_sub(*b), Value::Duration),
        (Add, Value::Timestamp(t), Value::Duration(d)) | (Add, Value::Duration(d), Value::Timestamp(t)) => {
            checked(t.checked_add(*d), Value::Timestamp)
        }
        (Sub, Value::Timestamp(t), Value::Duration(d)) => checked(t.checked_sub(*d), Value::Timestamp),
        (Add, Value::Duration(a), Value::Duration(b)) => checked(a.checked_add(*b), Value::Duration),
        (Sub, Value::Duration(a), Value::Duration(b)) => checked(a.checked_sub(*b), Value::Duration),
        _ => match (as_double(&l), as_double(&r)) {
            (Some(a), Some(b)) => Value::Double(match op {
                Add => a + b,
                Sub => a - b,
                Mul => a * b,
                Div => a / b,
                Rem => a % b,
            }),
            _ => Value::Null,
        },
    }
}
