//! Turns filter and action text into tokens: identifiers (bare, `[delimited]` and
//! `"quoted"`), string and numeric literals, punctuation and operators. Keywords stay
//! plain identifiers here because the parser decides, by position, what is a keyword.

use super::error::FilterError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A regular identifier; may be a keyword.
    Ident(String),
    /// A `[delimited]` or `"quoted"` identifier: never a keyword.
    Delimited(String),
    Str(String),
    /// Kept unsigned so that `-9223372036854775808` can be folded by the parser.
    Int(u64),
    Double(f64),
    Param(String),
    LParen,
    RParen,
    Comma,
    Dot,
    Semicolon,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Tok {
    /// How an error message shows this token.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Delimited(s) => format!("[{s}]"),
            Tok::Str(s) => format!("string '{s}'"),
            Tok::Int(n) => format!("number {n}"),
            Tok::Double(d) => format!("number {d}"),
            Tok::Param(p) => format!("'@{p}'"),
            other => format!("'{}'", other.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::Comma => ",",
            Tok::Dot => ".",
            Tok::Semicolon => ";",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Percent => "%",
            Tok::Eq => "=",
            Tok::Ne => "<>",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            _ => "?",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    /// Character offset of the token's first character.
    pub pos: usize,
}

/// Splits `text` into tokens. Iterative, so no input can exhaust the stack.
pub(crate) fn tokenize(text: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let tok = if c.is_alphabetic() {
            while i < chars.len() && (chars[i] == '_' || chars[i].is_alphanumeric()) {
                i += 1;
            }
            Tok::Ident(chars[start..i].iter().collect())
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let (tok, end) = number(&chars, start)?;
            i = end;
            tok
        } else if c == '\'' {
            let (s, end) = quoted(&chars, start, '\'', '\'', "string literal")?;
            i = end;
            Tok::Str(s)
        } else if c == '[' {
            let (s, end) = quoted(&chars, start, '[', ']', "[delimited identifier]")?;
            i = end;
            Tok::Delimited(s)
        } else if c == '"' {
            let (s, end) = quoted(&chars, start, '"', '"', "\"quoted identifier\"")?;
            i = end;
            Tok::Delimited(s)
        } else if c == '@' {
            i += 1;
            while i < chars.len() && (chars[i] == '_' || chars[i].is_alphanumeric()) {
                i += 1;
            }
            Tok::Param(chars[start + 1..i].iter().collect())
        } else {
            let next = chars.get(i + 1).copied();
            let (tok, len) = match (c, next) {
                ('<', Some('>')) | ('!', Some('=')) => (Tok::Ne, 2),
                ('<', Some('=')) => (Tok::Le, 2),
                ('>', Some('=')) => (Tok::Ge, 2),
                ('<', _) => (Tok::Lt, 1),
                ('>', _) => (Tok::Gt, 1),
                ('=', _) => (Tok::Eq, 1),
                ('(', _) => (Tok::LParen, 1),
                (')', _) => (Tok::RParen, 1),
                (',', _) => (Tok::Comma, 1),
                ('.', _) => (Tok::Dot, 1),
                (';', _) => (Tok::Semicolon, 1),
                ('+', _) => (Tok::Plus, 1),
                ('-', _) => (Tok::Minus, 1),
                ('*', _) => (Tok::Star, 1),
                ('/', _) => (Tok::Slash, 1),
                ('%', _) => (Tok::Percent, 1),
                _ => return Err(FilterError::UnexpectedChar { ch: c, position: start }),
            };
            i += len;
            tok
        };
        tokens.push(Token { tok, pos: start });
    }
    Ok(tokens)
}

/// Reads a run enclosed by `open`/`close`, where a doubled `close` stands for itself
/// (`''` in strings, `]]` in delimited identifiers, `""` in quoted ones).
fn quoted(chars: &[char], start: usize, open: char, close: char, what: &'static str) -> Result<(String, usize), FilterError> {
    debug_assert_eq!(chars[start], open);
    let mut out = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err(FilterError::Unterminated { what, position: start }),
            Some(&c) if c == close => {
                if chars.get(i + 1) == Some(&close) {
                    out.push(close);
                    i += 2;
                } else {
                    return Ok((out, i + 1));
                }
            }
            Some(&c) => {
                out.push(c);
                i += 1;
            }
        }
    }
}

/// Integer (`1894`), decimal (`1894.1204`, `.5`) or approximate (`101.5E5`, `0.5E-2`).
fn number(chars: &[char], start: usize) -> Result<(Tok, usize), FilterError> {
    let digits = |mut i: usize| {
        while chars.get(i).is_some_and(char::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let mut i = digits(start);
    let mut is_int = true;
    if chars.get(i) == Some(&'.') {
        is_int = false;
        i = digits(i + 1);
    }
    if matches!(chars.get(i), Some('e' | 'E')) {
        is_int = false;
        let mut j = i + 1;
        if matches!(chars.get(j), Some('+' | '-')) {
            j += 1;
        }
        let end = digits(j);
        if end == j {
            let text = chars[start..end].iter().collect();
            return Err(FilterError::InvalidNumber { text, position: start, reason: "the exponent has no digits" });
        }
        i = end;
    }
    // `12abc` is a typo, not a number followed by a property.
    if chars.get(i).is_some_and(|c| c.is_alphanumeric() || *c == '_' || *c == '.') {
        let mut end = i;
        while chars.get(end).is_some_and(|c| c.is_alphanumeric() || *c == '_' || *c == '.') {
            end += 1;
        }
        let text = chars[start..end].iter().collect();
        return Err(FilterError::InvalidNumber { text, position: start, reason: "a number cannot run into letters" });
    }
    let text: String = chars[start..i].iter().collect();
    let tok = if is_int {
        match text.parse::<u64>() {
            Ok(n) => Tok::Int(n),
            Err(_) => return Err(FilterError::InvalidNumber { text, position: start, reason: "out of the 64-bit integer range" }),
        }
    } else {
        match text.parse::<f64>() {
            Ok(d) => Tok::Double(d),
            Err(_) => return Err(FilterError::InvalidNumber { text, position: start, reason: "not a number" }),
        }
    };
    Ok((tok, i))
}
