//! Why a rule filter or action was refused. Positions count characters from 0 in the
//! text the caller gave, so a management client can point at the offending spot.

/// A filter or action that cannot be accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterError {
    #[error("the expression is empty")]
    Empty,
    #[error("the expression is {len} characters long; the limit is {max}")]
    TooLong { len: usize, max: usize },
    #[error("the expression nests deeper than {max} levels at position {position}")]
    TooDeep { position: usize, max: usize },
    #[error("the action has more than {max} statements; the extra one starts at position {position}")]
    TooManyStatements { position: usize, max: usize },
    #[error("unexpected character '{ch}' at position {position}")]
    UnexpectedChar { ch: char, position: usize },
    #[error("unterminated {what} starting at position {position}")]
    Unterminated { what: &'static str, position: usize },
    #[error("invalid number '{text}' at position {position}: {reason}")]
    InvalidNumber { text: String, position: usize, reason: &'static str },
    #[error("expected {expected} at position {position}, found {found}")]
    Unexpected { expected: &'static str, found: String, position: usize },
    #[error("'{name}' at position {position} is a reserved keyword; write [{name}] to use it as a property name")]
    ReservedKeyword { name: String, position: usize },
    #[error("unknown system property 'sys.{name}' at position {position}")]
    UnknownSystemProperty { name: String, position: usize },
    #[error("unknown property scope '{scope}' at position {position}; the scopes are 'sys' and 'user'")]
    UnknownScope { scope: String, position: usize },
    #[error("unknown function '{name}' at position {position}; the functions are newid(), property(name) and p(name)")]
    UnknownFunction { name: String, position: usize },
    #[error("parameter '@{name}' at position {position}: filter parameters are not supported")]
    UnsupportedParameter { name: String, position: usize },
    #[error("expected a condition at position {position}, found a value that is not TRUE or FALSE")]
    NotACondition { position: usize },
    #[error("invalid LIKE at position {position}: {reason}")]
    InvalidLike { position: usize, reason: &'static str },
    #[error("system property 'sys.{name}' at position {position} is read-only")]
    ReadOnlyProperty { name: String, position: usize },
    #[error("system property 'sys.{name}' at position {position} cannot be set: Lapis does not carry it")]
    UnsupportedProperty { name: String, position: usize },
    #[error("system property 'sys.{name}' at position {position} cannot be removed; SET it to NULL instead")]
    CannotRemoveSystemProperty { name: String, position: usize },
    #[error("a correlation filter must name at least one property to match")]
    EmptyCorrelationFilter,
}
