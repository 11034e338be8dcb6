//! Subscription rule filters and actions: which messages a topic subscription takes and
//! how a rule changes its copy.
//!
//! - [`Filter`]: TRUE, FALSE, a [`SqlFilter`] or a [`CorrelationFilter`].
//! - [`SqlFilter`]: Azure's SQL-92 subset over `sys.` and application properties,
//!   parsed once into a tree and evaluated per message with three-valued logic.
//! - [`SqlAction`]: `SET` and `REMOVE` statements applied to a matched copy.
//!
//! SQL filters and actions persist as their text and are parsed again when loaded.
//! Text is limited to [`MAX_TEXT_CHARS`] characters and nesting to [`MAX_DEPTH`], so no
//! rule can exhaust memory or the stack.

mod action;
mod ast;
mod correlation;
mod error;
mod eval;
mod lexer;
mod like;
mod parser;

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::broker::model::RoutingProperties;

pub use action::{SqlAction, MAX_STATEMENTS};
pub use correlation::CorrelationFilter;
pub use error::FilterError;
pub use parser::{MAX_DEPTH, MAX_TEXT_CHARS};

/// A rule's filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Filter {
    True,
    False,
    Sql(SqlFilter),
    Correlation(CorrelationFilter),
}

impl Filter {
    pub fn matches(&self, props: &RoutingProperties) -> bool {
        match self {
            Filter::True => true,
            Filter::False => false,
            Filter::Sql(f) => f.matches(props),
            Filter::Correlation(f) => f.matches(props),
        }
    }
}

/// A parsed SQL filter condition.
#[derive(Clone)]
pub struct SqlFilter {
    text: String,
    condition: ast::Expr,
}

impl SqlFilter {
    pub fn parse(text: &str) -> Result<SqlFilter, FilterError> {
        let condition = parser::parse_condition(text)?;
        Ok(SqlFilter { text: text.to_string(), condition })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// True only when the condition is TRUE; FALSE and unknown both reject.
    pub fn matches(&self, props: &RoutingProperties) -> bool {
        eval::holds(&self.condition, props)
    }
}

impl fmt::Debug for SqlFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SqlFilter").field(&self.text).finish()
    }
}

impl fmt::Display for SqlFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Two filters are equal when their text is: the parse is a function of the text.
impl PartialEq for SqlFilter {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Serialize for SqlFilter {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for SqlFilter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        SqlFilter::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
