//! Rule actions: `SET property = expression` and `REMOVE property`, run in order on
//! the copy of a message a subscription takes. Statements may end with `;` (optional,
//! as Azure's grammar says); at most 32 statements, as Azure's quotas allow.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ast::{Expr, PropRef, SysProp};
use super::error::FilterError;
use super::eval::{eval, find_user_key, Value};
use super::lexer::Tok;
use super::parser::Parser;
use crate::broker::model::{PropertyValue, RoutingProperties};

/// Azure's limit on the statements of one rule action.
pub const MAX_STATEMENTS: usize = 32;

/// A parsed rule action. It persists as its source text.
#[derive(Clone)]
pub struct SqlAction {
    text: String,
    statements: Vec<Statement>,
}

#[derive(Debug, Clone)]
enum Statement {
    Set { target: PropRef, value: Expr },
    Remove(String),
}

impl SqlAction {
    pub fn parse(text: &str) -> Result<SqlAction, FilterError> {
        let mut p = Parser::new(text)?;
        let mut statements = Vec::new();
        while !p.at_end() {
            if statements.len() == MAX_STATEMENTS {
                return Err(FilterError::TooManyStatements { position: p.pos(), max: MAX_STATEMENTS });
            }
            statements.push(statement(&mut p)?);
            p.eat(&Tok::Semicolon);
        }
        Ok(SqlAction { text: text.to_string(), statements })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Runs the statements in order; each sees the changes of the ones before it.
    pub fn apply(&self, props: &mut RoutingProperties) {
        for s in &self.statements {
            match s {
                Statement::Set { target, value } => {
                    let v = eval(value, props).into_owned();
                    set(props, target, v);
                }
                Statement::Remove(name) => {
                    if let Some(k) = find_user_key(props, name).map(str::to_owned) {
                        props.application.remove(&k);
                    }
                }
            }
        }
    }
}

fn statement(p: &mut Parser) -> Result<Statement, FilterError> {
    if p.eat_keyword("SET") {
        let target = p.property()?;
        if let PropRef::Sys(s) = target.prop {
            match s {
                SysProp::Size | SysProp::BrokerOwned(_) => {
                    return Err(FilterError::ReadOnlyProperty { name: target.name, position: target.pos })
                }
                SysProp::NotCarried(_) => {
                    return Err(FilterError::UnsupportedProperty { name: target.name, position: target.pos })
                }
                _ => {}
            }
        }
        p.expect(&Tok::Eq, "'=' after the property to SET")?;
        let value = p.expression()?;
        if !(p.at_end() || p.peek() == Some(&Tok::Semicolon) || p.peek_keyword("SET") || p.peek_keyword("REMOVE")) {
            return Err(p.unexpected("';', SET, REMOVE or the end of the action"));
        }
        return Ok(Statement::Set { target: target.prop, value });
    }
    if p.eat_keyword("REMOVE") {
        let target = p.property()?;
        return match target.prop {
            PropRef::User(name) => Ok(Statement::Remove(name)),
            PropRef::Sys(_) => Err(FilterError::CannotRemoveSystemProperty { name: target.name, position: target.pos }),
        };
    }
    Err(p.unexpected("SET or REMOVE"))
}

fn set(props: &mut RoutingProperties, target: &PropRef, v: Value<'static>) {
    let text = |slot: &mut Option<String>, v: Value<'static>| match v {
        Value::Str(s) => *slot = Some(s.into_owned()),
        Value::Null => *slot = None,
        // C# has no implicit conversion to string: the property stays as it was.
        _ => {}
    };
    match target {
        PropRef::User(name) => set_user(props, name, v),
        PropRef::Sys(s) => match s {
            SysProp::MessageId => text(&mut props.message_id, v),
            SysProp::CorrelationId => text(&mut props.correlation_id, v),
            SysProp::To => text(&mut props.to, v),
            SysProp::ReplyTo => text(&mut props.reply_to, v),
            SysProp::Subject => text(&mut props.subject, v),
            SysProp::SessionId => text(&mut props.session_id, v),
            SysProp::ReplyToSessionId => text(&mut props.reply_to_session_id, v),
            SysProp::ContentType => text(&mut props.content_type, v),
            SysProp::TimeToLive => match v {
                Value::Duration(d) if d > 0 => props.time_to_live_ms = Some(d),
                Value::Null => props.time_to_live_ms = None,
                _ => {}
            },
            SysProp::ScheduledEnqueueTimeUtc => match v {
                Value::Timestamp(t) => props.scheduled_enqueue_at = Some(t),
                Value::Null => props.scheduled_enqueue_at = None,
                _ => {}
            },
            // Refused at parse time.
            SysProp::Size | SysProp::BrokerOwned(_) | SysProp::NotCarried(_) => {}
        },
    }
}

fn set_user(props: &mut RoutingProperties, name: &str, v: Value<'static>) {
    // Property names are case-insensitive: SET updates the property already there.
    let key = find_user_key(props, name).map_or_else(|| name.to_string(), str::to_owned);
    let existing = props.application.get(&key);
    let new = match v {
        // PropertyValue has no null; an absent property reads the same (IS NULL holds).
        Value::Null => {
            props.application.remove(&key);
            return;
        }
        // The implicit long-to-double conversion keeps a double property a double.
        Value::Long(n) if matches!(existing, Some(PropertyValue::Double(_))) => PropertyValue::Double(n as f64),
        Value::Long(n) => PropertyValue::Long(n),
        Value::Double(d) => PropertyValue::Double(d),
        Value::Str(s) => PropertyValue::String(s.into_owned()),
        Value::Bool(b) => PropertyValue::Bool(b),
        Value::Timestamp(t) => PropertyValue::Timestamp(t),
        // A TimeSpan has no PropertyValue form; leave the property as it was.
        Value::Duration(_) => return,
    };
    props.application.insert(key, new);
}

impl fmt::Debug for SqlAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SqlAction").field(&self.text).finish()
    }
}

impl fmt::Display for SqlAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Two actions are equal when their text is: the parse is a function of the text.
impl PartialEq for SqlAction {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Serialize for SqlAction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for SqlAction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        SqlAction::parse(&text).map_err(serde::de::Error::custom)
    }
}
