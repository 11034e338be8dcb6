//! Correlation filters, the Filter enum and persistence of filters as text.

use std::collections::BTreeMap;

use super::{order, s, sql};
use crate::broker::filter::{CorrelationFilter, Filter, FilterError};
use crate::broker::model::{PropertyValue, RoutingProperties};

type Field = fn(&mut CorrelationFilter) -> &mut Option<String>;

/// Each system field, with the value `order()` carries for it.
const FIELDS: [(Field, &str); 8] = [
    (|f| &mut f.correlation_id, "corr-9"),
    (|f| &mut f.message_id, "m-1"),
    (|f| &mut f.to, "store5"),
    (|f| &mut f.reply_to, "replies"),
    (|f| &mut f.subject, "order.created"),
    (|f| &mut f.session_id, "s-1"),
    (|f| &mut f.reply_to_session_id, "rs-1"),
    (|f| &mut f.content_type, "application/json"),
];

#[test]
fn each_system_field_must_equal_exactly() {
    let p = order();
    for (i, (field, value)) in FIELDS.iter().enumerate() {
        let mut f = CorrelationFilter::default();
        *field(&mut f) = Some((*value).to_string());
        assert!(f.matches(&p), "field {i} = {value} should match");
        *field(&mut f) = Some(value.to_uppercase());
        assert!(!f.matches(&p), "field {i}: comparison is case-sensitive");
        *field(&mut f) = Some((*value).to_string());
        assert!(!f.matches(&RoutingProperties::default()), "field {i}: an absent property never matches");
    }
}

#[test]
fn all_named_fields_must_match() {
    let p = order();
    let mut f = CorrelationFilter { subject: Some("order.created".into()), correlation_id: Some("corr-9".into()), ..Default::default() };
    assert!(f.matches(&p));
    f.to = Some("elsewhere".into());
    assert!(!f.matches(&p));
}

#[test]
fn user_properties_compare_with_sql_equality() {
    let p = order();
    let with = |pairs: &[(&str, PropertyValue)]| CorrelationFilter {
        properties: pairs.iter().map(|(k, v)| ((*k).to_string(), v.clone())).collect(),
        ..Default::default()
    };
    assert!(with(&[("color", s("red")), ("quantity", PropertyValue::Long(10))]).matches(&p));
    assert!(with(&[("quantity", PropertyValue::Double(10.0))]).matches(&p), "long and double promote");
    assert!(with(&[("express", PropertyValue::Bool(true)), ("placed", PropertyValue::Timestamp(1_000_000))]).matches(&p));
    assert!(with(&[("Color", s("red"))]).matches(&p), "names are case-insensitive");
    assert!(!with(&[("color", s("Red"))]).matches(&p), "values are case-sensitive");
    assert!(!with(&[("quantity", s("10"))]).matches(&p), "no string-to-number conversion");
    assert!(!with(&[("color", s("red")), ("missing", s("x"))]).matches(&p));
}

#[test]
fn an_empty_correlation_filter_is_invalid() {
    assert_eq!(CorrelationFilter::default().validate(), Err(FilterError::EmptyCorrelationFilter));
    let mut f = CorrelationFilter::default();
    f.properties.insert("a".into(), PropertyValue::Long(1));
    assert_eq!(f.validate(), Ok(()));
    assert_eq!(CorrelationFilter { reply_to: Some(String::new()), ..Default::default() }.validate(), Ok(()));
    assert!(serde_json::from_str::<CorrelationFilter>("{}").is_err(), "a stored empty filter does not load");
}

#[test]
fn filter_enum_dispatches() {
    let p = order();
    assert!(Filter::True.matches(&p));
    assert!(!Filter::False.matches(&p));
    assert!(Filter::Sql(sql("color = 'red'")).matches(&p));
    assert!(!Filter::Sql(sql("color = 'blue'")).matches(&p));
    let c = CorrelationFilter { to: Some("store5".into()), ..Default::default() };
    assert!(Filter::Correlation(c.clone()).matches(&p));
    assert!(!Filter::Correlation(CorrelationFilter { to: Some("x".into()), ..c }).matches(&p));
}

#[test]
fn filters_round_trip_through_serde_as_text() {
    let mut props = BTreeMap::new();
    props.insert("color".to_string(), s("red"));
    props.insert("n".to_string(), PropertyValue::Long(3));
    let filters = vec![
        Filter::True,
        Filter::False,
        Filter::Sql(sql("sys.Label LIKE 'order%' AND [no prop] IS NULL")),
        Filter::Correlation(CorrelationFilter { subject: Some("x".into()), properties: props, ..Default::default() }),
    ];
    let json = serde_json::to_string(&filters).unwrap();
    assert!(json.contains("\"sys.Label LIKE 'order%' AND [no prop] IS NULL\""), "{json}");
    let back: Vec<Filter> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, filters);
    let p = order();
    for (a, b) in filters.iter().zip(&back) {
        assert_eq!(a.matches(&p), b.matches(&p));
    }
    assert!(back[2].matches(&p), "the re-parsed filter still evaluates");
}

#[test]
fn invalid_stored_sql_fails_to_load_with_the_reason() {
    let err = serde_json::from_str::<Filter>(r#"{"Sql":"color = "}"#).unwrap_err();
    assert!(err.to_string().contains("expected a value"), "{err}");
}
