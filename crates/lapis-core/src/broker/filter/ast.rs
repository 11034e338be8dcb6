//! The parsed form of filter and action expressions, and the table of system
//! properties a `sys.` reference may name.
//!
//! AND/OR chains and arithmetic chains are kept flat (one node with a list) so the tree
//! is only as deep as the text's explicit nesting, which the parser bounds; evaluating
//! and dropping a tree therefore cannot overflow the stack.

use super::eval::Value;

#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Const(Value<'static>),
    Prop(PropRef),
    /// `newid()`: a fresh GUID per evaluation.
    NewId,
    /// `property(name)` / `p(name)`: a user property named at run time.
    PropertyFn(Box<Expr>),
    Neg(Box<Expr>),
    Pos(Box<Expr>),
    /// `first op1 e1 op2 e2 ...`, evaluated left to right.
    Arith { first: Box<Expr>, rest: Vec<(ArithOp, Expr)> },
    Compare { op: CmpOp, left: Box<Expr>, right: Box<Expr> },
    Like { value: Box<Expr>, pattern: Box<Expr>, escape: Option<Box<Expr>>, negated: bool },
    In { value: Box<Expr>, list: Vec<Expr>, negated: bool },
    IsNull { value: Box<Expr>, negated: bool },
    Exists(PropRef),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

impl Expr {
    /// Whether this can stand where a condition is expected. Azure's grammar takes only
    /// predicates there; TRUE and FALSE are let through as the obvious constant
    /// conditions.
    pub(crate) fn is_condition(&self) -> bool {
        match self {
            Expr::Const(v) => matches!(v, Value::Bool(_)),
            Expr::Compare { .. }
            | Expr::Like { .. }
            | Expr::In { .. }
            | Expr::IsNull { .. }
            | Expr::Exists(_)
            | Expr::Not(_)
            | Expr::And(_)
            | Expr::Or(_) => true,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PropRef {
    /// An application property (bare, `user.` or delimited name).
    User(String),
    Sys(SysProp),
}

/// A system property. The first group maps onto `RoutingProperties`; the rest exist on
/// a Service Bus message but are not known when a message is routed, so they read as
/// unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SysProp {
    MessageId,
    CorrelationId,
    To,
    ReplyTo,
    Subject,
    SessionId,
    ReplyToSessionId,
    ContentType,
    TimeToLive,
    ScheduledEnqueueTimeUtc,
    Size,
    /// Set by the broker (DeliveryCount, SequenceNumber, ...); never writable.
    BrokerOwned(&'static str),
    /// Writable in Azure (PartitionKey, ...) but not carried by Lapis.
    NotCarried(&'static str),
}

/// Every name `sys.` accepts, matched without regard to case (the docs' own examples
/// write `sys.label` and `sys.messageid`). `Label` and `Subject` are one property.
const SYSTEM_PROPERTIES: &[(&str, SysProp)] = &[
    ("MessageId", SysProp::MessageId),
    ("CorrelationId", SysProp::CorrelationId),
    ("To", SysProp::To),
    ("ReplyTo", SysProp::ReplyTo),
    ("Label", SysProp::Subject),
    ("Subject", SysProp::Subject),
    ("SessionId", SysProp::SessionId),
    ("ReplyToSessionId", SysProp::ReplyToSessionId),
    ("ContentType", SysProp::ContentType),
    ("TimeToLive", SysProp::TimeToLive),
    ("ScheduledEnqueueTimeUtc", SysProp::ScheduledEnqueueTimeUtc),
    ("Size", SysProp::Size),
    ("DeliveryCount", SysProp::BrokerOwned("DeliveryCount")),
    ("SequenceNumber", SysProp::BrokerOwned("SequenceNumber")),
    ("EnqueuedSequenceNumber", SysProp::BrokerOwned("EnqueuedSequenceNumber")),
    ("EnqueuedTimeUtc", SysProp::BrokerOwned("EnqueuedTimeUtc")),
    ("ExpiresAtUtc", SysProp::BrokerOwned("ExpiresAtUtc")),
    ("LockedUntilUtc", SysProp::BrokerOwned("LockedUntilUtc")),
    ("LockToken", SysProp::BrokerOwned("LockToken")),
    ("DeadLetterSource", SysProp::BrokerOwned("DeadLetterSource")),
    ("State", SysProp::BrokerOwned("State")),
    ("PartitionKey", SysProp::NotCarried("PartitionKey")),
    ("ViaPartitionKey", SysProp::NotCarried("ViaPartitionKey")),
    ("ForcePersistence", SysProp::NotCarried("ForcePersistence")),
];

impl SysProp {
    pub(crate) fn lookup(name: &str) -> Option<SysProp> {
        SYSTEM_PROPERTIES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, p)| *p)
    }
}

/// Words that cannot be bare property names (they still can as `[delimited]` names).
const KEYWORDS: &[&str] = &["AND", "OR", "NOT", "IS", "NULL", "LIKE", "ESCAPE", "IN", "EXISTS", "TRUE", "FALSE"];

pub(crate) fn is_keyword(word: &str) -> bool {
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word))
}
