//! What the parser accepts and how it names what it refuses.

use super::{order, parse_err, sql};
use crate::broker::filter::FilterError;

#[test]
fn accepts_the_documented_examples() {
    for text in [
        "sys.Label LIKE '%bus%'",
        "sys.label LIKE '%bus%'",
        "sys.messageid = 'xxxx'",
        "sys.correlationid like 'abc-%'",
        "MessageProperty = 'A'",
        "user.SuperHero like 'SuperMan%'",
        "\"http://schemas.microsoft.com/xrm/2011/Claims/EntityLogicalName\" = 'account'",
        "MessageProperty > 2.08",
        "MessageProperty = 1 AND MessageProperty2 = 3",
        "StoreId IN('Store1', 'Store2', 'Store3')",
        "sys.To IN ('Store5','Store6','Store7') OR StoreId = 'Store8'",
        "sys.To NOT IN ('Store1','Store2') OR StoreId NOT IN ('Store1','Store2')",
        "color='blue' AND quantity=10",
        "1=1",
        "[Property With Space] = 1 AND [HR-EmployeeID] = 2",
        "property LIKE 'ABC\\%' ESCAPE '\\'",
        "EXISTS(color) AND NOT EXISTS(user.size)",
        "color IS NOT NULL AND sys.ReplyTo IS NULL",
        "x = 101.5E5 OR x = 0.5E-2 OR x = 1894.1204 OR x = -9223372036854775808",
        "p('color') = 'red' AND property('color') = 'red' AND newid() <> newid()",
    ] {
        sql(text);
    }
}

#[test]
fn keeps_its_text() {
    let text = "color = 'red'  AND  quantity > 5";
    assert_eq!(sql(text).text(), text);
    assert_eq!(sql(text).to_string(), text);
}

#[test]
fn keywords_are_case_insensitive() {
    let p = order();
    assert!(sql("color = 'red' and NOT quantity < 5 oR FaLsE").matches(&p));
    assert!(sql("color iS nOt NuLl AND color NoT lIkE 'b%' AND color In ('red')").matches(&p));
    assert!(sql("exists(color) AND true").matches(&p));
}

#[test]
fn names_unknown_system_properties() {
    assert_eq!(
        parse_err("sys.Colour = 'red'"),
        FilterError::UnknownSystemProperty { name: "Colour".into(), position: 4 }
    );
}

#[test]
fn names_unknown_scopes_and_functions() {
    assert_eq!(parse_err("app.color = 1"), FilterError::UnknownScope { scope: "app".into(), position: 0 });
    assert_eq!(parse_err("upper(color) = 'RED'"), FilterError::UnknownFunction { name: "upper".into(), position: 0 });
    assert!(matches!(parse_err("newid(1) = 'x'"), FilterError::Unexpected { position: 6, .. }));
}

#[test]
fn refuses_parameters_it_cannot_bind() {
    assert_eq!(parse_err("source = @stringParam"), FilterError::UnsupportedParameter { name: "stringParam".into(), position: 9 });
}

#[test]
fn names_lexical_errors_and_their_position() {
    assert_eq!(parse_err("color = 'red"), FilterError::Unterminated { what: "string literal", position: 8 });
    assert_eq!(parse_err("[my prop = 1"), FilterError::Unterminated { what: "[delimited identifier]", position: 0 });
    assert_eq!(parse_err("a = 1 # 2"), FilterError::UnexpectedChar { ch: '#', position: 6 });
    assert_eq!(parse_err("a ! 1"), FilterError::UnexpectedChar { ch: '!', position: 2 });
    assert!(matches!(parse_err("a = 12abc"), FilterError::InvalidNumber { position: 4, .. }));
    assert!(matches!(parse_err("a = 1e"), FilterError::InvalidNumber { position: 4, .. }));
    assert!(matches!(parse_err("a = 1.2.3"), FilterError::InvalidNumber { position: 4, .. }));
    assert!(matches!(parse_err("a = 9223372036854775808"), FilterError::InvalidNumber { position: 4, .. }));
    assert!(matches!(parse_err("a = 99999999999999999999999"), FilterError::InvalidNumber { position: 4, .. }));
}

#[test]
fn positions_count_characters_not_bytes() {
    assert_eq!(parse_err("'ÄÖÜ' = #"), FilterError::UnexpectedChar { ch: '#', position: 8 });
}

#[test]
fn names_syntax_errors_and_their_position() {
    let e = parse_err("color = 'red' quantity = 1");
    assert_eq!(e, FilterError::Unexpected { expected: "AND, OR or the end of the filter", found: "'quantity'".into(), position: 14 });
    assert!(e.to_string().contains("position 14"), "{e}");
    assert!(matches!(parse_err("color ="), FilterError::Unexpected { expected: "a value", position: 7, .. }));
    assert!(matches!(parse_err("(color = 'red'"), FilterError::Unexpected { expected: "')'", position: 14, .. }));
    assert!(matches!(parse_err("color IN ()"), FilterError::Unexpected { position: 10, .. }));
    assert!(matches!(parse_err("color IN ('a' 'b')"), FilterError::Unexpected { position: 14, .. }));
    assert!(matches!(parse_err("color IS 'red'"), FilterError::Unexpected { expected: "NULL after IS", .. }));
    assert!(matches!(parse_err("EXISTS color"), FilterError::Unexpected { expected: "'(' after EXISTS", .. }));
    assert!(matches!(parse_err("EXISTS(1)"), FilterError::Unexpected { expected: "a property name", .. }));
    assert!(matches!(parse_err("a = 1 = 1"), FilterError::Unexpected { position: 6, .. }));
    assert!(matches!(parse_err("a == 1"), FilterError::Unexpected { position: 3, .. }));
    assert!(matches!(parse_err("sys. = 1"), FilterError::Unexpected { expected: "a property name after '.'", position: 5, .. }));
}

#[test]
fn reserved_words_need_brackets() {
    assert_eq!(parse_err("EXISTS(and)"), FilterError::ReservedKeyword { name: "and".into(), position: 7 });
    assert!(matches!(parse_err("like = 1"), FilterError::Unexpected { expected: "a value", position: 0, .. }));
    let p = super::msg(&[("like", super::s("yes"))]);
    assert!(sql("[like] = 'yes'").matches(&p));
}

#[test]
fn the_whole_filter_and_each_logical_operand_must_be_a_condition() {
    assert_eq!(parse_err("color"), FilterError::NotACondition { position: 0 });
    assert_eq!(parse_err("'red'"), FilterError::NotACondition { position: 0 });
    assert_eq!(parse_err("a = 1 AND 5"), FilterError::NotACondition { position: 10 });
    assert_eq!(parse_err("quantity + 1 OR a = 1"), FilterError::NotACondition { position: 0 });
    assert_eq!(parse_err("NOT color"), FilterError::NotACondition { position: 4 });
    // Parenthesised arithmetic is still a value, not a condition.
    assert_eq!(parse_err("(quantity * 2)"), FilterError::NotACondition { position: 0 });
    sql("TRUE");
    sql("(a = 1) = TRUE");
}

#[test]
fn constant_like_patterns_and_escapes_are_checked_when_parsed() {
    assert!(matches!(parse_err("a LIKE 'x!' ESCAPE '!'"), FilterError::InvalidLike { position: 7, .. }));
    assert!(matches!(parse_err("a LIKE 'x' ESCAPE '!!'"), FilterError::InvalidLike { position: 18, .. }));
    assert!(matches!(parse_err("a LIKE 'x' ESCAPE ''"), FilterError::InvalidLike { .. }));
    assert!(matches!(parse_err("a LIKE 'x' ESCAPE 1"), FilterError::InvalidLike { .. }));
    assert!(matches!(parse_err("a LIKE 5"), FilterError::InvalidLike { position: 7, .. }));
    // Non-constant patterns are checked when evaluated instead.
    sql("a LIKE b ESCAPE c");
}

#[test]
fn empty_text_is_refused() {
    assert_eq!(parse_err(""), FilterError::Empty);
    assert_eq!(parse_err("  \n\t "), FilterError::Empty);
}
