//! Advice as `lapis choose` prints it in a terminal.

use std::fmt::Write;

use super::snippets::{connection, snippet, Endpoints};
use super::Advice;

pub fn text(a: &Advice, e: &Endpoints) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Use: {}", a.service.name());
    for (s, role) in &a.with {
        let _ = writeln!(out, "  with {}: {role}", s.name());
    }
    let _ = writeln!(out, "\nWhy:");
    for r in &a.reasons {
        let _ = writeln!(out, "  - {r}");
    }
    let _ = writeln!(out, "\nWhy not:");
    for (s, why) in &a.not {
        let _ = writeln!(out, "  - {}: {why}", s.name());
    }
    let _ = writeln!(out, "\nOn this Lapis:\n  {}", connection(a.service, e));
    let _ = writeln!(out, "\nPython:");
    for line in snippet(a.service, e).lines() {
        let _ = writeln!(out, "  {line}");
    }
    out
}
