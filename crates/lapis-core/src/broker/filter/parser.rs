//! A recursive-descent parser for Azure's SQL filter grammar, shared by filters
//! (conditions) and actions (expressions and property targets).
//!
//! Precedence, loosest first: OR, AND, NOT, the predicates (comparison, [NOT] LIKE,
//! [NOT] IN, IS [NOT] NULL, EXISTS), `+ -`, `* / %`, unary `+ -`. Every way the parser
//! can recurse passes through `enter`, which caps nesting at [`MAX_DEPTH`].

use std::borrow::Cow;

use super::ast::{is_keyword, ArithOp, CmpOp, Expr, PropRef, SysProp};
use super::error::FilterError;
use super::eval::Value;
use super::lexer::{tokenize, Tok, Token};
use super::like;

/// Azure's limit on filter and action text (Service Bus quotas: 1,024 characters).
pub const MAX_TEXT_CHARS: usize = 1024;
/// Deepest nesting of parentheses, NOTs, signs and function calls accepted.
pub const MAX_DEPTH: usize = 64;

pub(crate) struct Parser {
    tokens: Vec<Token>,
    next: usize,
    text_chars: usize,
    depth: usize,
}

/// A property reference as written, with where it was written.
pub(crate) struct Target {
    pub prop: PropRef,
    pub name: String,
    pub pos: usize,
}

impl Parser {
    /// Checks the size limits and tokenizes `text`.
    pub(crate) fn new(text: &str) -> Result<Parser, FilterError> {
        let text_chars = text.chars().count();
        if text_chars > MAX_TEXT_CHARS {
            return Err(FilterError::TooLong { len: text_chars, max: MAX_TEXT_CHARS });
        }
        if text.trim().is_empty() {
            return Err(FilterError::Empty);
        }
        Ok(Parser { tokens: tokenize(text)?, next: 0, text_chars, depth: 0 })
    }

    pub(crate) fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.next).map(|t| &t.tok)
    }

    fn peek_at(&self, ahead: usize) -> Option<&Tok> {
        self.tokens.get(self.next + ahead).map(|t| &t.tok)
    }

    /// Position of the next token, or the end of the text.
    pub(crate) fn pos(&self) -> usize {
        self.tokens.get(self.next).map_or(self.text_chars, |t| t.pos)
    }

    pub(crate) fn at_end(&self) -> bool {
        self.next >= self.tokens.len()
    }

    pub(crate) fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek() == Some(tok) {
            self.next += 1;
            return true;
        }
        false
    }

    fn keyword_at(&self, ahead: usize, kw: &str) -> bool {
        matches!(self.peek_at(ahead), Some(Tok::Ident(w)) if w.eq_ignore_ascii_case(kw))
    }

    pub(crate) fn peek_keyword(&self, kw: &str) -> bool {
        self.keyword_at(0, kw)
    }

    pub(crate) fn eat_keyword(&mut self, kw: &str) -> bool {
        if self.peek_keyword(kw) {
            self.next += 1;
            return true;
        }
        false
    }

    pub(crate) fn unexpected(&self, expected: &'static str) -> FilterError {
        let found = self.peek().map_or_else(|| "end of expression".to_string(), Tok::describe);
        FilterError::Unexpected { expected, found, position: self.pos() }
    }

    pub(crate) fn expect(&mut self, tok: &Tok, expected: &'static str) -> Result<(), FilterError> {
        if self.eat(tok) {
            return Ok(());
        }
        Err(self.unexpected(expected))
    }

    fn enter(&mut self, pos: usize) -> Result<(), FilterError> {
        if self.depth >= MAX_DEPTH {
            return Err(FilterError::TooDeep { position: pos, max: MAX_DEPTH });
        }
        self.depth += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// A whole condition: OR of ANDs of predicates.
    pub(crate) fn condition(&mut self) -> Result<Expr, FilterError> {
        let pos = self.pos();
        let e = self.or()?;
        require_condition(&e, pos)?;
        Ok(e)
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        self.chain("OR", Self::and, Expr::Or)
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        self.chain("AND", Self::not, Expr::And)
    }

    /// `item (kw item)*`, flattened into one node when there is more than one item.
    fn chain(
        &mut self,
        kw: &str,
        item: fn(&mut Self) -> Result<Expr, FilterError>,
        node: fn(Vec<Expr>) -> Expr,
    ) -> Result<Expr, FilterError> {
        let first_pos = self.pos();
        let first = item(self)?;
        if !self.peek_keyword(kw) {
            return Ok(first);
        }
        require_condition(&first, first_pos)?;
        let mut items = vec![first];
        while self.eat_keyword(kw) {
            let pos = self.pos();
            let e = item(self)?;
            require_condition(&e, pos)?;
            items.push(e);
        }
        Ok(node(items))
    }

    fn not(&mut self) -> Result<Expr, FilterError> {
        if !self.peek_keyword("NOT") {
            return self.predicate();
        }
        let pos = self.pos();
        self.next += 1;
        self.enter(pos)?;
        let operand_pos = self.pos();
        let e = self.not()?;
        require_condition(&e, operand_pos)?;
        self.leave();
        Ok(Expr::Not(Box::new(e)))
    }

    fn predicate(&mut self) -> Result<Expr, FilterError> {
        if self.peek_keyword("EXISTS") {
            self.next += 1;
            self.expect(&Tok::LParen, "'(' after EXISTS")?;
            let target = self.property()?;
            self.expect(&Tok::RParen, "')' to close EXISTS")?;
            return Ok(Expr::Exists(target.prop));
        }
        let left = self.expression()?;
        let cmp = match self.peek() {
            Some(Tok::Eq) => Some(CmpOp::Eq),
            Some(Tok::Ne) => Some(CmpOp::Ne),
            Some(Tok::Lt) => Some(CmpOp::Lt),
            Some(Tok::Le) => Some(CmpOp::Le),
            Some(Tok::Gt) => Some(CmpOp::Gt),
            Some(Tok::Ge) => Some(CmpOp::Ge),
            _ => None,
        };
        if let Some(op) = cmp {
            self.next += 1;
            let right = self.expression()?;
            return Ok(Expr::Compare { op, left: Box::new(left), right: Box::new(right) });
        }
        if self.eat_keyword("IS") {
            let negated = self.eat_keyword("NOT");
            if !self.eat_keyword("NULL") {
                return Err(self.unexpected("NULL after IS"));
            }
            return Ok(Expr::IsNull { value: Box::new(left), negated });
        }
        let negated = self.peek_keyword("NOT") && (self.keyword_at(1, "LIKE") || self.keyword_at(1, "IN"));
        if negated {
            self.next += 1;
        }
        if self.eat_keyword("LIKE") {
            return self.like(left, negated);
        }
        if self.eat_keyword("IN") {
            self.expect(&Tok::LParen, "'(' after IN")?;
            let mut list = vec![self.expression()?];
            while self.eat(&Tok::Comma) {
                list.push(self.expression()?);
            }
            self.expect(&Tok::RParen, "',' or ')' in the IN list")?;
            return Ok(Expr::In { value: Box::new(left), list, negated });
        }
        Ok(left)
    }

    fn like(&mut self, value: Expr, negated: bool) -> Result<Expr, FilterError> {
        let pattern_pos = self.pos();
        let pattern = self.expression()?;
        let mut escape = None;
        let mut escape_pos = pattern_pos;
        if self.eat_keyword("ESCAPE") {
            escape_pos = self.pos();
            escape = Some(self.expression()?);
        }
        let constant = |e: &Expr| match e {
            Expr::Const(v) => Some(v.clone()),
            _ => None,
        };
        like::check_constants(constant(&pattern).as_ref(), escape.as_ref().and_then(constant).as_ref()).map_err(|bad| match bad {
            like::Bad::Pattern(reason) => FilterError::InvalidLike { position: pattern_pos, reason },
            like::Bad::Escape(reason) => FilterError::InvalidLike { position: escape_pos, reason },
        })?;
        Ok(Expr::Like { value: Box::new(value), pattern: Box::new(pattern), escape: escape.map(Box::new), negated })
    }

    /// An arithmetic expression (no predicates outside parentheses).
    pub(crate) fn expression(&mut self) -> Result<Expr, FilterError> {
        self.arith(Self::term, |t| match t {
            Tok::Plus => Some(ArithOp::Add),
            Tok::Minus => Some(ArithOp::Sub),
            _ => None,
        })
    }

    fn term(&mut self) -> Result<Expr, FilterError> {
        self.arith(Self::unary, |t| match t {
            Tok::Star => Some(ArithOp::Mul),
            Tok::Slash => Some(ArithOp::Div),
            Tok::Percent => Some(ArithOp::Rem),
            _ => None,
        })
    }

    fn arith(
        &mut self,
        operand: fn(&mut Self) -> Result<Expr, FilterError>,
        op_of: fn(&Tok) -> Option<ArithOp>,
    ) -> Result<Expr, FilterError> {
        let first = operand(self)?;
        let mut rest = Vec::new();
        while let Some(op) = self.peek().and_then(op_of) {
            self.next += 1;
            rest.push((op, operand(self)?));
        }
        if rest.is_empty() {
            return Ok(first);
        }
        Ok(Expr::Arith { first: Box::new(first), rest })
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        let negative = match self.peek() {
            Some(Tok::Minus) => true,
            Some(Tok::Plus) => false,
            _ => return self.primary(),
        };
        let pos = self.pos();
        self.next += 1;
        // Fold a signed literal so that the smallest long, -9223372036854775808, parses.
        if let (true, Some(&Tok::Int(n))) = (negative, self.peek()) {
            if let Ok(v) = i64::try_from(-i128::from(n)) {
                self.next += 1;
                return Ok(Expr::Const(Value::Long(v)));
            }
        }
        self.enter(pos)?;
        let operand = self.unary()?;
        self.leave();
        Ok(if negative { Expr::Neg(Box::new(operand)) } else { Expr::Pos(Box::new(operand)) })
    }

    fn primary(&mut self) -> Result<Expr, FilterError> {
        let pos = self.pos();
        let Some(token) = self.tokens.get(self.next).cloned() else {
            return Err(self.unexpected("a value"));
        };
        let e = match token.tok {
            Tok::Int(n) => match i64::try_from(n) {
                Ok(v) => Expr::Const(Value::Long(v)),
                Err(_) => {
                    let reason = "out of the 64-bit integer range";
                    return Err(FilterError::InvalidNumber { text: n.to_string(), position: pos, reason });
                }
            },
            Tok::Double(d) => Expr::Const(Value::Double(d)),
            Tok::Str(s) => Expr::Const(Value::Str(Cow::Owned(s))),
            Tok::Param(name) => return Err(FilterError::UnsupportedParameter { name, position: pos }),
            Tok::LParen => {
                self.next += 1;
                self.enter(pos)?;
                let e = self.or()?;
                self.expect(&Tok::RParen, "')'")?;
                self.leave();
                return Ok(e);
            }
            Tok::Ident(w) if w.eq_ignore_ascii_case("TRUE") => Expr::Const(Value::Bool(true)),
            Tok::Ident(w) if w.eq_ignore_ascii_case("FALSE") => Expr::Const(Value::Bool(false)),
            Tok::Ident(w) if w.eq_ignore_ascii_case("NULL") => Expr::Const(Value::Null),
            Tok::Ident(w) if is_keyword(&w) => return Err(self.unexpected("a value")),
            Tok::Ident(w) if self.peek_at(1) == Some(&Tok::LParen) => {
                self.next += 1;
                return self.function(&w, pos);
            }
            Tok::Ident(_) | Tok::Delimited(_) => return Ok(Expr::Prop(self.property()?.prop)),
            _ => return Err(self.unexpected("a value")),
        };
        self.next += 1;
        Ok(e)
    }

    fn function(&mut self, name: &str, pos: usize) -> Result<Expr, FilterError> {
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "newid" => {
                self.expect(&Tok::LParen, "'('")?;
                self.expect(&Tok::RParen, "')': newid() takes no arguments")?;
                Ok(Expr::NewId)
            }
            "property" | "p" => {
                self.enter(pos)?;
                self.expect(&Tok::LParen, "'('")?;
                let arg = self.expression()?;
                self.expect(&Tok::RParen, "')' to close the property name")?;
                self.leave();
                Ok(Expr::PropertyFn(Box::new(arg)))
            }
            _ => Err(FilterError::UnknownFunction { name: name.to_string(), position: pos }),
        }
    }

    /// `name`, `[name]`, `"name"`, `user.name` or `sys.Name`.
    pub(crate) fn property(&mut self) -> Result<Target, FilterError> {
        let pos = self.pos();
        let first = match self.peek() {
            Some(Tok::Delimited(n)) => {
                let n = n.clone();
                self.next += 1;
                return Ok(Target { prop: PropRef::User(n.clone()), name: n, pos });
            }
            Some(Tok::Ident(w)) if !is_keyword(w) => w.clone(),
            Some(Tok::Ident(w)) => return Err(FilterError::ReservedKeyword { name: w.clone(), position: pos }),
            _ => return Err(self.unexpected("a property name")),
        };
        self.next += 1;
        if !self.eat(&Tok::Dot) {
            return Ok(Target { prop: PropRef::User(first.clone()), name: first, pos });
        }
        let name_pos = self.pos();
        let name = match self.peek() {
            Some(Tok::Ident(n) | Tok::Delimited(n)) => n.clone(),
            _ => return Err(self.unexpected("a property name after '.'")),
        };
        self.next += 1;
        if first.eq_ignore_ascii_case("sys") {
            match SysProp::lookup(&name) {
                Some(p) => Ok(Target { prop: PropRef::Sys(p), name, pos }),
                None => Err(FilterError::UnknownSystemProperty { name, position: name_pos }),
            }
        } else if first.eq_ignore_ascii_case("user") {
            Ok(Target { prop: PropRef::User(name.clone()), name, pos })
        } else {
            Err(FilterError::UnknownScope { scope: first, position: pos })
        }
    }
}

fn require_condition(e: &Expr, pos: usize) -> Result<(), FilterError> {
    if e.is_condition() {
        return Ok(());
    }
    Err(FilterError::NotACondition { position: pos })
}

/// Parses a complete filter condition.
pub(crate) fn parse_condition(text: &str) -> Result<Expr, FilterError> {
    let mut p = Parser::new(text)?;
    let e = p.condition()?;
    if !p.at_end() {
        return Err(p.unexpected("AND, OR or the end of the filter"));
    }
    Ok(e)
}
