//! The LIKE operator: `%` matches any run of characters (including none), `_` exactly
//! one, and an ESCAPE character makes the character after it literal. Matching is
//! case-sensitive and runs in O(text × pattern) time without backtracking blow-up.

use super::eval::Value;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Piece {
    AnyRun,
    AnyOne,
    Lit(char),
}

fn compile(pattern: &str, escape: Option<char>) -> Result<Vec<Piece>, &'static str> {
    let mut pieces = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        let piece = if Some(c) == escape {
            match chars.next() {
                Some(next) => Piece::Lit(next),
                None => return Err("the pattern ends with the escape character"),
            }
        } else if c == '%' {
            // Consecutive `%` mean the same as one; folding them keeps matching linear.
            if pieces.last() == Some(&Piece::AnyRun) {
                continue;
            }
            Piece::AnyRun
        } else if c == '_' {
            Piece::AnyOne
        } else {
            Piece::Lit(c)
        };
        pieces.push(piece);
    }
    Ok(pieces)
}

/// Which operand of a LIKE is malformed, and why.
pub(crate) enum Bad {
    Pattern(&'static str),
    Escape(&'static str),
}

/// Checks the operands of a LIKE that are constants, so a mistake surfaces when the
/// rule is created instead of silently never matching.
pub(crate) fn check_constants(pattern: Option<&Value<'_>>, escape: Option<&Value<'_>>) -> Result<(), Bad> {
    let escape_char = match escape {
        None | Some(Value::Null) => None,
        Some(Value::Str(e)) => {
            let mut chars = e.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Some(c),
                _ => return Err(Bad::Escape("the escape must be a single-character string")),
            }
        }
        Some(_) => return Err(Bad::Escape("the escape must be a single-character string")),
    };
    match pattern {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Str(p)) => compile(p, escape_char).map(|_| ()).map_err(Bad::Pattern),
        Some(_) => Err(Bad::Pattern("the pattern must be a string")),
    }
}

/// `Some(matched)`, or `None` (unknown) when the pattern is malformed.
pub(crate) fn like(text: &str, pattern: &str, escape: Option<char>) -> Option<bool> {
    let pieces = compile(pattern, escape).ok()?;
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // Where the last `%` was and how much text it has swallowed so far: on a mismatch
    // we let it swallow one more character and retry from just after it.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pieces.get(p) {
            Some(Piece::AnyOne) => {
                p += 1;
                t += 1;
            }
            Some(Piece::Lit(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            Some(Piece::AnyRun) => {
                star = Some((p, t));
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    star = Some((sp, st + 1));
                    p = sp + 1;
                    t = st + 1;
                }
                None => return Some(false),
            },
        }
    }
    Some(pieces.get(p..).is_some_and(|rest| rest.iter().all(|piece| *piece == Piece::AnyRun)))
}
