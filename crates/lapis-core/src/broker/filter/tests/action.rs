//! Rule actions: SET and REMOVE on application and system properties.

use super::{msg, order, s};
use crate::broker::filter::{FilterError, SqlAction};
use crate::broker::model::{PropertyValue, RoutingProperties};

#[track_caller]
fn action(text: &str) -> SqlAction {
    match SqlAction::parse(text) {
        Ok(a) => a,
        Err(e) => panic!("{text:?} should parse: {e}"),
    }
}

#[track_caller]
fn action_err(text: &str) -> FilterError {
    match SqlAction::parse(text) {
        Ok(a) => panic!("{text:?} should not parse, got {a:?}"),
        Err(e) => e,
    }
}

fn applied(text: &str, mut p: RoutingProperties) -> RoutingProperties {
    action(text).apply(&mut p);
    p
}

#[test]
fn set_creates_and_updates_user_properties() {
    let p = applied("SET priority = 'high'; SET quantity = quantity / 2", order());
    assert_eq!(p.application.get("priority"), Some(&s("high")));
    assert_eq!(p.application.get("quantity"), Some(&PropertyValue::Long(5)));
    assert_eq!(p.application.get("color"), Some(&s("red")), "untouched properties stay");
}

#[test]
fn set_stores_every_value_type() {
    let p = applied(
        "SET a = 1.5; SET b = TRUE; SET c = placed; SET d = 'x' + 'y'; SET e = -7; SET [f g] = 1",
        order(),
    );
    assert_eq!(p.application.get("a"), Some(&PropertyValue::Double(1.5)));
    assert_eq!(p.application.get("b"), Some(&PropertyValue::Bool(true)));
    assert_eq!(p.application.get("c"), Some(&PropertyValue::Timestamp(1_000_000)));
    assert_eq!(p.application.get("d"), Some(&s("xy")));
    assert_eq!(p.application.get("e"), Some(&PropertyValue::Long(-7)));
    assert_eq!(p.application.get("f g"), Some(&PropertyValue::Long(1)));
}

#[test]
fn statements_run_in_order_and_see_earlier_changes() {
    let p = applied("SET n = 1; SET n = n + 1; SET m = n * 10", msg(&[]));
    assert_eq!(p.application.get("n"), Some(&PropertyValue::Long(2)));
    assert_eq!(p.application.get("m"), Some(&PropertyValue::Long(20)));
}

#[test]
fn semicolons_are_optional_and_may_trail() {
    for text in ["SET a = 1 SET b = 2", "SET a = 1; SET b = 2;", "set a = 1;\nremove c; SET b = 2"] {
        let p = applied(text, msg(&[("c", s("gone"))]));
        assert_eq!(p.application.get("a"), Some(&PropertyValue::Long(1)), "{text}");
        assert_eq!(p.application.get("b"), Some(&PropertyValue::Long(2)), "{text}");
    }
}

#[test]
fn remove_deletes_user_properties_case_insensitively() {
    let p = applied("REMOVE color; REMOVE user.QUANTITY; REMOVE [my prop]; REMOVE missing", order());
    assert!(!p.application.contains_key("color"));
    assert!(!p.application.contains_key("quantity"));
    assert!(!p.application.contains_key("my prop"));
    assert!(p.application.contains_key("price"));
}

#[test]
fn set_updates_an_existing_property_whatever_its_case() {
    let p = applied("SET COLOR = 'blue'", order());
    assert_eq!(p.application.get("color"), Some(&s("blue")));
    assert!(!p.application.contains_key("COLOR"));
}

#[test]
fn a_long_assigned_to_a_double_stays_a_double() {
    let p = applied("SET price = 3", order());
    assert_eq!(p.application.get("price"), Some(&PropertyValue::Double(3.0)));
}

#[test]
fn setting_unknown_or_null_leaves_no_property() {
    let p = applied("SET color = missing; SET fresh = NULL", order());
    assert!(!p.application.contains_key("color"));
    assert!(!p.application.contains_key("fresh"));
}

#[test]
fn set_writes_system_properties() {
    let p = applied(
        "SET sys.To = 'ops'; SET sys.Label = sys.Label + '.routed'; SET sys.CorrelationId = 'low'; \
         SET sys.MessageId = newid(); SET sys.ReplyTo = 'r'; SET sys.SessionId = 's-2'; \
         SET sys.ReplyToSessionId = NULL; SET sys.contenttype = 'text/plain'; \
         SET sys.TimeToLive = shipped - placed + sys.TimeToLive; SET sys.ScheduledEnqueueTimeUtc = placed",
        order(),
    );
    assert_eq!(p.to.as_deref(), Some("ops"));
    assert_eq!(p.subject.as_deref(), Some("order.created.routed"));
    assert_eq!(p.correlation_id.as_deref(), Some("low"));
    assert_eq!(p.message_id.as_ref().map(String::len), Some(36));
    assert_ne!(p.message_id.as_deref(), Some("m-1"));
    assert_eq!(p.reply_to.as_deref(), Some("r"));
    assert_eq!(p.session_id.as_deref(), Some("s-2"));
    assert_eq!(p.reply_to_session_id, None);
    assert_eq!(p.content_type.as_deref(), Some("text/plain"));
    assert_eq!(p.time_to_live_ms, Some(120_000));
    assert_eq!(p.scheduled_enqueue_at, Some(1_000_000));
}

#[test]
fn system_properties_keep_their_value_when_given_the_wrong_type() {
    let before = order();
    let p = applied("SET sys.To = 5; SET sys.TimeToLive = 10; SET sys.ScheduledEnqueueTimeUtc = 'soon'", before.clone());
    assert_eq!(p, before);
}

#[test]
fn read_only_and_uncarried_system_properties_are_refused() {
    assert_eq!(action_err("SET sys.Size = 1"), FilterError::ReadOnlyProperty { name: "Size".into(), position: 4 });
    assert_eq!(
        action_err("SET a = 1; SET sys.deliverycount = 1"),
        FilterError::ReadOnlyProperty { name: "deliverycount".into(), position: 15 }
    );
    assert!(matches!(action_err("SET sys.PartitionKey = 'k'"), FilterError::UnsupportedProperty { .. }));
    assert_eq!(action_err("REMOVE sys.To"), FilterError::CannotRemoveSystemProperty { name: "To".into(), position: 7 });
    assert!(matches!(action_err("SET sys.Nope = 1"), FilterError::UnknownSystemProperty { position: 8, .. }));
}

#[test]
fn malformed_actions_name_the_problem() {
    assert!(matches!(action_err("UPDATE a = 1"), FilterError::Unexpected { expected: "SET or REMOVE", position: 0, .. }));
    assert!(matches!(action_err("SET a 1"), FilterError::Unexpected { expected: "'=' after the property to SET", position: 6, .. }));
    assert!(matches!(action_err("SET a = 1 b = 2"), FilterError::Unexpected { position: 10, .. }));
    assert!(matches!(action_err("SET a = 1;; SET b = 2"), FilterError::Unexpected { position: 10, .. }));
    assert!(matches!(action_err("SET a = b = c"), FilterError::Unexpected { position: 10, .. }));
    assert!(matches!(action_err("SET = 1"), FilterError::Unexpected { expected: "a property name", .. }));
    assert_eq!(action_err("REMOVE NULL"), FilterError::ReservedKeyword { name: "NULL".into(), position: 7 });
    assert_eq!(action_err(""), FilterError::Empty);
}

#[test]
fn at_most_32_statements() {
    let ok: String = (0..32).map(|i| format!("SET p{i} = {i};")).collect();
    let p = applied(&ok, msg(&[]));
    assert_eq!(p.application.len(), 32);
    let too_many = format!("{ok}SET x = 1");
    assert_eq!(action_err(&too_many), FilterError::TooManyStatements { position: ok.chars().count(), max: 32 });
}

#[test]
fn keeps_its_text_and_round_trips_through_serde() {
    let text = "SET quantity = quantity / 2; REMOVE priority;SET sys.CorrelationId = 'low';";
    let a = action(text);
    assert_eq!(a.text(), text);
    let json = serde_json::to_string(&a).unwrap();
    assert_eq!(json, serde_json::to_string(text).unwrap());
    let back: SqlAction = serde_json::from_str(&json).unwrap();
    assert_eq!(back, a);
    let mut x = order();
    let mut y = order();
    a.apply(&mut x);
    back.apply(&mut y);
    assert_eq!(x, y);
    assert!(serde_json::from_str::<SqlAction>("\"SET = 1\"").is_err());
}
