//! Size and depth limits: hostile text is refused cleanly, never by a stack overflow.

use super::{msg, parse_err, s, sql};
use crate::broker::filter::{FilterError, SqlAction, MAX_DEPTH, MAX_TEXT_CHARS};

#[test]
fn text_over_1024_characters_is_refused() {
    let at_limit = format!("a = '{}'", "x".repeat(MAX_TEXT_CHARS - 6));
    assert_eq!(at_limit.chars().count(), MAX_TEXT_CHARS);
    sql(&at_limit);
    let over = format!("a = '{}'", "x".repeat(MAX_TEXT_CHARS - 5));
    assert_eq!(parse_err(&over), FilterError::TooLong { len: 1025, max: 1024 });
    assert!(matches!(SqlAction::parse(&format!("SET a = '{}'", "x".repeat(1020))), Err(FilterError::TooLong { .. })));
}

#[test]
fn the_limit_counts_characters_not_bytes() {
    let text = format!("a = '{}'", "é".repeat(MAX_TEXT_CHARS - 6));
    assert!(text.len() > MAX_TEXT_CHARS);
    sql(&text);
}

#[test]
fn ten_thousand_parentheses_are_refused_cleanly() {
    let text = format!("{}a = 1{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(matches!(parse_err(&text), FilterError::TooLong { .. }));
    let unbalanced = "(".repeat(10_000);
    assert!(matches!(parse_err(&unbalanced), FilterError::TooLong { .. }));
}

#[test]
fn nesting_deeper_than_the_limit_is_refused_within_the_length_limit() {
    let ok = format!("{}a = 1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert!(sql(&ok).matches(&msg(&[("a", crate::broker::model::PropertyValue::Long(1))])));
    let deep = format!("{}a = 1{}", "(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1));
    assert_eq!(parse_err(&deep), FilterError::TooDeep { position: MAX_DEPTH, max: MAX_DEPTH });
    let unclosed = "(".repeat(500);
    assert!(matches!(parse_err(&unclosed), FilterError::TooDeep { .. }));
}

#[test]
fn every_recursive_construct_counts_towards_depth() {
    for text in [
        "NOT ".repeat(200) + "a = 1",
        "-".repeat(500) + "1 = 1",
        "a = ".to_string() + &"p(".repeat(300) + "'x'" + &")".repeat(300),
        "a IN (".to_string() + &"(".repeat(300) + "1" + &")".repeat(300) + ")",
    ] {
        assert!(matches!(parse_err(&text), FilterError::TooDeep { .. }), "{text}");
    }
    let action = format!("SET a = {}1{}", "(".repeat(200), ")".repeat(200));
    assert!(matches!(SqlAction::parse(&action), Err(FilterError::TooDeep { .. })));
}

#[test]
fn long_flat_chains_are_fine() {
    // Chains do not nest: 120 ORs and a 300-term sum stay within the depth limit.
    let ors = (0..120).map(|i| format!("a={i}")).collect::<Vec<_>>().join(" OR ");
    assert!(ors.chars().count() <= MAX_TEXT_CHARS);
    assert!(sql(&ors).matches(&msg(&[("a", crate::broker::model::PropertyValue::Long(119))])));
    let sum = format!("{} = 300", vec!["1"; 300].join("+"));
    assert!(sql(&sum).matches(&msg(&[])));
    let strings = format!("{} = 'xxxx'", ["'x'"; 4].join(" + "));
    assert!(sql(&strings).matches(&msg(&[("unused", s("u"))])));
}
