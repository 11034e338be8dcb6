//! Evaluation: operators, types, three-valued logic, system and delimited properties.

use super::{matches, msg, order, s};
use crate::broker::model::{PropertyValue, RoutingProperties};

/// Asserts the filter is TRUE for `p`, and that its negation is FALSE (not unknown).
#[track_caller]
fn is_true(text: &str, p: &RoutingProperties) {
    assert!(matches(text, p), "{text} should be TRUE");
    assert!(!matches(&format!("NOT ({text})"), p), "NOT ({text}) should be FALSE");
}

#[track_caller]
fn is_false(text: &str, p: &RoutingProperties) {
    assert!(!matches(text, p), "{text} should be FALSE");
    assert!(matches(&format!("NOT ({text})"), p), "NOT ({text}) should be TRUE");
}

/// Unknown: neither the condition nor its negation matches.
#[track_caller]
fn is_unknown(text: &str, p: &RoutingProperties) {
    assert!(!matches(text, p), "{text} should be unknown, it matched");
    assert!(!matches(&format!("NOT ({text})"), p), "{text} should be unknown, its negation matched");
}

#[test]
fn comparison_operators() {
    let p = order();
    for t in ["quantity = 10", "quantity <> 9", "quantity != 9", "quantity > 9", "quantity >= 10", "quantity < 11", "quantity <= 10"] {
        is_true(t, &p);
    }
    for t in ["quantity = 9", "quantity <> 10", "quantity != 10", "quantity > 10", "quantity >= 11", "quantity < 10", "quantity <= 9"] {
        is_false(t, &p);
    }
}

#[test]
fn long_and_double_promote() {
    let p = order();
    is_true("quantity = 10.0", &p);
    is_true("price > 2", &p);
    is_true("price < 3", &p);
    is_true("quantity = 1E1", &p);
    is_false("price = 2", &p);
}

#[test]
fn strings_compare_ordinally_and_case_sensitively() {
    let p = order();
    is_true("color = 'red'", &p);
    is_false("color = 'RED'", &p);
    is_true("color > 'Red'", &p); // 'r' sorts after 'R'
    is_true("color < 'rede'", &p);
    is_true("'it''s' = 'it' + '''s'", &p);
}

#[test]
fn incompatible_types_are_unknown() {
    let p = order();
    is_unknown("color = 1", &p);
    is_unknown("quantity = '10'", &p);
    is_unknown("express = 1", &p);
    is_unknown("express > FALSE", &p);
    is_unknown("placed = 1000000", &p);
    is_true("express = TRUE", &p);
    is_true("express <> FALSE", &p);
}

#[test]
fn timestamps_compare_and_subtract() {
    let p = order();
    is_true("placed < shipped", &p);
    is_false("placed = shipped", &p);
    is_true("shipped - placed = sys.TimeToLive", &p); // 60 s both
    is_true("placed + sys.TimeToLive = shipped", &p);
    is_true("sys.ScheduledEnqueueTimeUtc > shipped", &p);
}

#[test]
fn arithmetic_and_precedence() {
    let p = order();
    is_true("quantity + 2 * 3 = 16", &p);
    is_true("(quantity + 2) * 3 = 36", &p);
    is_true("quantity - 4 - 3 = 3", &p); // left to right
    is_true("quantity / 4 = 2", &p); // long division truncates
    is_true("quantity / 4.0 = 2.5", &p);
    is_true("quantity % 3 = 1", &p);
    is_true("-quantity = -10", &p);
    is_true("- -quantity = +10", &p);
    is_true("-3 * -3 = 9", &p);
    is_true("price * 2 = 5", &p);
    is_true("7.5 % 2 = 1.5", &p);
    is_true("1 + 2 * 3 - 4 / 2 % 3 = 5", &p); // 1 + 6 - ((4/2) % 3)
}

#[test]
fn arithmetic_failures_are_unknown() {
    let p = order();
    is_unknown("quantity / 0 = 1", &p);
    is_unknown("quantity % 0 = 1", &p);
    is_unknown("9223372036854775807 + 1 > 0", &p);
    is_unknown("-9223372036854775808 / -1 > 0", &p);
    is_unknown("color * 2 = 1", &p);
    is_unknown("-color = 1", &p);
    is_unknown("color + 1 = 'red1'", &p);
    // Double division by zero follows IEEE, as C# does.
    is_true("price / 0 > 1E308", &p);
}

#[test]
fn logical_precedence() {
    let p = order();
    // AND binds tighter than OR.
    is_true("color = 'blue' AND quantity = 1 OR express = TRUE", &p);
    is_false("color = 'blue' AND (quantity = 1 OR express = TRUE)", &p);
    // NOT binds tighter than AND and looser than comparison.
    is_true("NOT color = 'blue' AND quantity = 10", &p);
    is_false("NOT (color = 'red' AND quantity = 10)", &p);
    is_true("NOT NOT color = 'red'", &p);
}

#[test]
fn three_valued_logic_with_missing_properties() {
    let p = order();
    is_unknown("missing = 1", &p);
    is_unknown("missing <> 1", &p);
    is_unknown("missing + 1 = 2", &p);
    is_unknown("-missing = 0", &p);
    is_unknown("color = NULL", &p);
    is_unknown("NULL = NULL", &p);
    // AND: false wins over unknown, unknown over true.
    is_false("missing = 1 AND color = 'blue'", &p);
    is_unknown("missing = 1 AND color = 'red'", &p);
    // OR: true wins over unknown, unknown over false.
    is_true("missing = 1 OR color = 'red'", &p);
    is_unknown("missing = 1 OR color = 'blue'", &p);
    is_unknown("missing = 1 OR missing = 2 OR missing = 3", &p);
}

#[test]
fn is_null_and_exists() {
    let p = order();
    is_true("missing IS NULL", &p);
    is_false("missing IS NOT NULL", &p);
    is_false("color IS NULL", &p);
    is_true("color IS NOT NULL", &p);
    is_true("EXISTS(color)", &p);
    is_false("EXISTS(missing)", &p);
    is_true("NOT EXISTS(missing)", &p);
    is_true("EXISTS([my prop]) AND EXISTS(user.quantity)", &p);
    let bare = RoutingProperties::default();
    is_true("sys.CorrelationId IS NULL", &bare);
    is_false("EXISTS(sys.CorrelationId)", &bare);
    is_true("EXISTS(sys.CorrelationId)", &p);
}

#[test]
fn like_wildcards() {
    let p = msg(&[("v", s("order.created"))]);
    for pat in ["order%", "%created", "%.%", "order_created", "%", "o%r%d", "order.created", "_rder.create_"] {
        is_true(&format!("v LIKE '{pat}'"), &p);
        is_false(&format!("v NOT LIKE '{pat}'"), &p);
    }
    for pat in ["Order%", "order", "%x%", "order_", "_", "order.created_", "%createdd"] {
        is_false(&format!("v LIKE '{pat}'"), &p);
    }
    let empty = msg(&[("v", s(""))]);
    is_true("v LIKE '%'", &empty);
    is_false("v LIKE '_'", &empty);
}

#[test]
fn like_backtracks_over_many_runs() {
    let p = msg(&[("v", s(&"a".repeat(200)))]);
    is_false(&format!("v LIKE '{}b'", "%a".repeat(40)), &p);
    is_true(&format!("v LIKE '{}'", "%a".repeat(40)), &p);
}

#[test]
fn like_escape() {
    let p = msg(&[("pct", s("ABC%")), ("plain", s("ABCD")), ("under", s("a_b"))]);
    is_true("pct LIKE 'ABC\\%' ESCAPE '\\'", &p);
    is_false("plain LIKE 'ABC\\%' ESCAPE '\\'", &p);
    is_true("plain LIKE 'ABC%'", &p);
    is_true("under LIKE 'a!_b' ESCAPE '!'", &p);
    is_false("plain LIKE 'a!_b' ESCAPE '!'", &p);
    is_true("pct LIKE 'ABC!%' ESCAPE '!' AND 'a!b' LIKE 'a!!b' ESCAPE '!'", &p);
}

#[test]
fn like_with_unknown_or_non_string_operands_is_unknown() {
    let p = msg(&[("n", PropertyValue::Long(5)), ("v", s("abc")), ("pat", s("a%")), ("bad", s("a!"))]);
    is_unknown("missing LIKE 'a%'", &p);
    is_unknown("n LIKE '5'", &p);
    is_unknown("v LIKE missing", &p);
    is_unknown("v LIKE 'a%' ESCAPE missing", &p);
    is_true("v LIKE pat", &p);
    // A malformed pattern computed at run time is unknown rather than an error.
    is_unknown("v LIKE bad ESCAPE '!'", &p);
}

#[test]
fn in_and_not_in() {
    let p = order();
    is_true("color IN ('blue', 'red')", &p);
    is_false("color IN ('blue', 'green')", &p);
    is_true("color NOT IN ('blue', 'green')", &p);
    is_false("color NOT IN ('red')", &p);
    is_true("quantity IN (1, 10.0, 'x')", &p);
    is_true("quantity IN (5 + 5)", &p);
    is_unknown("missing IN ('a', 'b')", &p);
    is_unknown("missing NOT IN ('a', 'b')", &p);
    is_true("sys.To IN ('Store5', 'store5')", &p);
}

#[test]
fn system_properties_map_onto_routing_properties() {
    let p = order();
    for t in [
        "sys.MessageId = 'm-1'",
        "sys.CorrelationId = 'corr-9'",
        "sys.To = 'store5'",
        "sys.ReplyTo = 'replies'",
        "sys.Label = 'order.created'",
        "sys.Subject = 'order.created'",
        "sys.SessionId = 's-1'",
        "sys.ReplyToSessionId = 'rs-1'",
        "sys.ContentType = 'application/json'",
        "sys.Size = 512",
        "sys.ScheduledEnqueueTimeUtc = sys.ScheduledEnqueueTimeUtc",
        "SYS.MESSAGEID = 'm-1' AND sys.[ContentType] LIKE 'application/%'",
    ] {
        is_true(t, &p);
    }
    // Known to Service Bus but not carried at routing time: unknown, not an error.
    is_unknown("sys.DeliveryCount = 0", &p);
    is_true("sys.SequenceNumber IS NULL", &p);
}

#[test]
fn user_properties_by_scope_and_delimiters() {
    let p = order();
    is_true("user.color = 'red'", &p);
    is_true("USER.color = 'red'", &p);
    is_true("[my prop] = 'spaced'", &p);
    is_true("\"my prop\" = 'spaced'", &p);
    is_true("user.[my prop] = 'spaced'", &p);
    is_true("[HR-EmployeeID] = 7", &p);
    let odd = msg(&[("a]b", s("x")), ("say \"hi\"", s("y"))]);
    is_true("[a]]b] = 'x' AND \"say \"\"hi\"\"\" = 'y'", &odd);
    // A user property named like a system one is not the system one.
    let shadow = msg(&[("MessageId", s("app"))]);
    is_true("MessageId = 'app' AND sys.MessageId IS NULL", &shadow);
}

#[test]
fn property_names_are_case_insensitive_exact_match_first() {
    let p = msg(&[("Color", s("red"))]);
    is_true("color = 'red' AND COLOR = 'red'", &p);
    let both = msg(&[("a", PropertyValue::Long(1)), ("A", PropertyValue::Long(2))]);
    is_true("a = 1 AND A = 2", &both);
}

#[test]
fn property_function_reads_user_properties_by_computed_name() {
    let p = msg(&[("color", s("red")), ("which", s("color")), ("col", s("col"))]);
    is_true("property('color') = 'red'", &p);
    is_true("p(which) = 'red'", &p);
    is_true("p(col + 'or') = 'red'", &p);
    is_unknown("p('sys.To') = 'x'", &p);
    is_unknown("p(1) = 'red'", &p);
}

#[test]
fn newid_is_a_fresh_guid_string() {
    let p = order();
    is_true("newid() LIKE '________-____-____-____-____________'", &p);
    is_false("newid() = newid()", &p);
}
