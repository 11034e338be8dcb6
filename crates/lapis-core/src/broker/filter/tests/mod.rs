//! Tests of rule filters and actions, with small builders for messages.

mod action;
mod correlation;
mod eval;
mod limits;
mod parse;

use super::{FilterError, SqlFilter};
use crate::broker::model::{PropertyValue, RoutingProperties};

fn s(v: &str) -> PropertyValue {
    PropertyValue::String(v.into())
}

/// A message with the given application properties and nothing else.
fn msg(app: &[(&str, PropertyValue)]) -> RoutingProperties {
    let mut p = RoutingProperties::default();
    for (k, v) in app {
        p.application.insert((*k).to_string(), v.clone());
    }
    p
}

/// The message most evaluation tests run against.
fn order() -> RoutingProperties {
    let mut p = msg(&[
        ("color", s("red")),
        ("quantity", PropertyValue::Long(10)),
        ("price", PropertyValue::Double(2.5)),
        ("express", PropertyValue::Bool(true)),
        ("placed", PropertyValue::Timestamp(1_000_000)),
        ("shipped", PropertyValue::Timestamp(1_060_000)),
        ("my prop", s("spaced")),
        ("HR-EmployeeID", PropertyValue::Long(7)),
    ]);
    p.message_id = Some("m-1".into());
    p.correlation_id = Some("corr-9".into());
    p.to = Some("store5".into());
    p.reply_to = Some("replies".into());
    p.subject = Some("order.created".into());
    p.session_id = Some("s-1".into());
    p.reply_to_session_id = Some("rs-1".into());
    p.content_type = Some("application/json".into());
    p.time_to_live_ms = Some(60_000);
    p.scheduled_enqueue_at = Some(2_000_000);
    p.size = 512;
    p
}

#[track_caller]
fn sql(text: &str) -> SqlFilter {
    match SqlFilter::parse(text) {
        Ok(f) => f,
        Err(e) => panic!("{text:?} should parse: {e}"),
    }
}

#[track_caller]
fn matches(text: &str, props: &RoutingProperties) -> bool {
    sql(text).matches(props)
}

#[track_caller]
fn parse_err(text: &str) -> FilterError {
    match SqlFilter::parse(text) {
        Ok(f) => panic!("{text:?} should not parse, got {f:?}"),
        Err(e) => e,
    }
}
