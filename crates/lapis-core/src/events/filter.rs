//! Which events an event subscription gets: its subject prefix and suffix, its event
//! types, and its advanced filters, with the real service's rules — string
//! comparisons ignore case; values within one filter are ORed, filters are ANDed; a
//! missing key matches only `NumberNotIn`, `StringNotIn` and `IsNullOrUndefined`; a
//! value of the wrong type counts as missing; array values are looked into only when
//! the subscription enables it (then any element may match, and for the negative
//! operators no element may). Limits: 25 advanced filters and 25 values in all, 512
//! characters per string value. See docs/design/eventgrid-delivery.md.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{EventsError, EventsResult};
use super::publish::PublishedEvent;

pub const MAX_ADVANCED_FILTERS: usize = 25;
pub const MAX_FILTER_VALUES: usize = 25;
pub const MAX_FILTER_STRING: usize = 512;

/// One advanced filter, as the management API writes it (`operatorType`, `key`,
/// `value` or `values`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "operatorType")]
pub enum AdvancedFilter {
    NumberIn { key: String, values: Vec<f64> },
    NumberNotIn { key: String, values: Vec<f64> },
    NumberLessThan { key: String, value: f64 },
    NumberGreaterThan { key: String, value: f64 },
    NumberLessThanOrEquals { key: String, value: f64 },
    NumberGreaterThanOrEquals { key: String, value: f64 },
    NumberInRange { key: String, values: Vec<[f64; 2]> },
    NumberNotInRange { key: String, values: Vec<[f64; 2]> },
    BoolEquals { key: String, value: bool },
    StringContains { key: String, values: Vec<String> },
    StringNotContains { key: String, values: Vec<String> },
    StringBeginsWith { key: String, values: Vec<String> },
    StringNotBeginsWith { key: String, values: Vec<String> },
    StringEndsWith { key: String, values: Vec<String> },
    StringNotEndsWith { key: String, values: Vec<String> },
    StringIn { key: String, values: Vec<String> },
    StringNotIn { key: String, values: Vec<String> },
    IsNullOrUndefined { key: String },
    IsNotNull { key: String },
}

/// A subscription's filter (`filter` in the management API).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionFilter {
    pub subject_begins_with: Option<String>,
    pub subject_ends_with: Option<String>,
    #[serde(default)]
    pub is_subject_case_sensitive: bool,
    /// `None`, empty or `["All"]`: every type.
    pub included_event_types: Option<Vec<String>>,
    #[serde(default)]
    pub advanced_filters: Vec<AdvancedFilter>,
    #[serde(default)]
    pub enable_advanced_filtering_on_arrays: bool,
}

/// What a filter's values test one scalar with.
enum Test<'a> {
    Numbers(&'a dyn Fn(f64) -> bool),
    Bool(bool),
    Strings(&'a dyn Fn(&str) -> bool),
}

impl AdvancedFilter {
    fn key(&self) -> &str {
        use AdvancedFilter::*;
        match self {
            NumberIn { key, .. } | NumberNotIn { key, .. } | NumberLessThan { key, .. } | NumberGreaterThan { key, .. } | NumberLessThanOrEquals { key, .. }
            | NumberGreaterThanOrEquals { key, .. } | NumberInRange { key, .. } | NumberNotInRange { key, .. } | BoolEquals { key, .. } | StringContains { key, .. }
            | StringNotContains { key, .. } | StringBeginsWith { key, .. } | StringNotBeginsWith { key, .. } | StringEndsWith { key, .. } | StringNotEndsWith { key, .. }
            | StringIn { key, .. } | StringNotIn { key, .. } | IsNullOrUndefined { key } | IsNotNull { key } => key,
        }
    }

    /// The values it counts against the subscription's limit, and its strings.
    fn values(&self) -> (usize, Vec<&str>) {
        use AdvancedFilter::*;
        match self {
            NumberIn { values, .. } | NumberNotIn { values, .. } => (values.len(), vec![]),
            NumberInRange { values, .. } | NumberNotInRange { values, .. } => (values.len(), vec![]),
            StringContains { values, .. } | StringNotContains { values, .. } | StringBeginsWith { values, .. } | StringNotBeginsWith { values, .. }
            | StringEndsWith { values, .. } | StringNotEndsWith { values, .. } | StringIn { values, .. } | StringNotIn { values, .. } => {
                (values.len(), values.iter().map(String::as_str).collect())
            }
            NumberLessThan { .. } | NumberGreaterThan { .. } | NumberLessThanOrEquals { .. } | NumberGreaterThanOrEquals { .. } | BoolEquals { .. } => (1, vec![]),
            IsNullOrUndefined { .. } | IsNotNull { .. } => (0, vec![]),
        }
    }

    /// Whether the operator is a negation (matched when nothing matches its values).
    fn negated(&self) -> bool {
        use AdvancedFilter::*;
        matches!(self, NumberNotIn { .. } | NumberNotInRange { .. } | StringNotContains { .. } | StringNotBeginsWith { .. } | StringNotEndsWith { .. } | StringNotIn { .. })
    }

    /// Whether a missing key (or a value of the wrong type) matches.
    fn matches_missing(&self) -> bool {
        matches!(self, AdvancedFilter::NumberNotIn { .. } | AdvancedFilter::StringNotIn { .. } | AdvancedFilter::IsNullOrUndefined { .. })
    }

    /// The positive form of the test on one scalar (for a negated operator: whether
    /// the scalar hits one of its values).
    fn with_test<R>(&self, f: impl FnOnce(Test<'_>) -> R) -> Option<R> {
        use AdvancedFilter::*;
        let lower = |s: &str| s.to_lowercase();
        Some(match self {
            NumberIn { values, .. } | NumberNotIn { values, .. } => f(Test::Numbers(&|n| values.contains(&n))),
            NumberLessThan { value, .. } => f(Test::Numbers(&|n| n < *value)),
            NumberGreaterThan { value, .. } => f(Test::Numbers(&|n| n > *value)),
            NumberLessThanOrEquals { value, .. } => f(Test::Numbers(&|n| n <= *value)),
            NumberGreaterThanOrEquals { value, .. } => f(Test::Numbers(&|n| n >= *value)),
            NumberInRange { values, .. } | NumberNotInRange { values, .. } => f(Test::Numbers(&|n| values.iter().any(|[lo, hi]| *lo <= n && n <= *hi))),
            BoolEquals { value, .. } => f(Test::Bool(*value)),
            StringContains { values, .. } | StringNotContains { values, .. } => f(Test::Strings(&|s| values.iter().any(|v| lower(s).contains(&lower(v))))),
            StringBeginsWith { values, .. } | StringNotBeginsWith { values, .. } => f(Test::Strings(&|s| values.iter().any(|v| lower(s).starts_with(&lower(v))))),
            StringEndsWith { values, .. } | StringNotEndsWith { values, .. } => f(Test::Strings(&|s| values.iter().any(|v| lower(s).ends_with(&lower(v))))),
            StringIn { values, .. } | StringNotIn { values, .. } => f(Test::Strings(&|s| values.iter().any(|v| lower(s) == lower(v)))),
            IsNullOrUndefined { .. } | IsNotNull { .. } => return None,
        })
    }

    /// Whether `found` (the key's value, `None` when missing) passes.
    fn passes(&self, found: Option<&Value>, arrays: bool) -> bool {
        match (self, found) {
            (AdvancedFilter::IsNullOrUndefined { .. }, v) => matches!(v, None | Some(Value::Null)),
            (AdvancedFilter::IsNotNull { .. }, v) => !matches!(v, None | Some(Value::Null)),
            (_, None | Some(Value::Null)) => self.matches_missing(),
            (_, Some(Value::Array(items))) if arrays => {
                // Elements of another type are ignored.
                let hits: Vec<bool> = items.iter().filter_map(|item| self.hit(item)).collect();
                if hits.is_empty() {
                    self.matches_missing()
                } else if self.negated() {
                    !hits.iter().any(|h| *h)
                } else {
                    hits.iter().any(|h| *h)
                }
            }
            (_, Some(v)) => match self.hit(v) {
                None => self.matches_missing(),
                Some(hit) => hit != self.negated(),
            },
        }
    }

    /// Whether one scalar hits the filter's values; `None` if it is of another type.
    fn hit(&self, v: &Value) -> Option<bool> {
        self.with_test(|test| match (test, v) {
            (Test::Numbers(t), Value::Number(n)) => n.as_f64().map(t),
            (Test::Bool(b), Value::Bool(x)) => Some(*x == b),
            (Test::Strings(t), Value::String(s)) => Some(t(s)),
            _ => None,
        })
        .flatten()
    }
}

/// The value at a dotted key (`subject`, `data.track.id`), each segment matched
/// without regard to case.
fn lookup<'a>(event: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.').try_fold(event, |at, segment| match at {
        Value::Object(fields) => fields.get(segment).or_else(|| fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(segment)).map(|(_, v)| v)),
        _ => None,
    })
}

impl SubscriptionFilter {
    /// Refuses what the service refuses: too many filters or values, long strings,
    /// empty keys, ranges whose low end is above the high one.
    pub fn check(&self) -> EventsResult<()> {
        let invalid = |m: String| Err(EventsError::Invalid(m));
        if self.advanced_filters.len() > MAX_ADVANCED_FILTERS {
            return invalid(format!("A subscription has at most {MAX_ADVANCED_FILTERS} advanced filters, not {}.", self.advanced_filters.len()));
        }
        let total: usize = self.advanced_filters.iter().map(|f| f.values().0).sum();
        if total > MAX_FILTER_VALUES {
            return invalid(format!("A subscription's advanced filters have at most {MAX_FILTER_VALUES} values in all, not {total}."));
        }
        for f in &self.advanced_filters {
            if f.key().is_empty() {
                return invalid("An advanced filter needs a key.".into());
            }
            if let Some(long) = f.values().1.into_iter().find(|s| s.chars().count() > MAX_FILTER_STRING) {
                return invalid(format!("A filter value is at most {MAX_FILTER_STRING} characters; '{}…' is longer.", long.chars().take(20).collect::<String>()));
            }
            if let AdvancedFilter::NumberInRange { values, .. } | AdvancedFilter::NumberNotInRange { values, .. } = f {
                if values.iter().any(|[lo, hi]| lo > hi) {
                    return invalid(format!("A range of the filter on '{}' has its low end above its high end.", f.key()));
                }
            }
        }
        Ok(())
    }

    /// Whether every event passes (no subject, type or advanced filter).
    pub fn passes_everything(&self) -> bool {
        let no_subject = self.subject_begins_with.as_deref().is_none_or(str::is_empty) && self.subject_ends_with.as_deref().is_none_or(str::is_empty);
        let all_types = self.included_event_types.as_ref().is_none_or(|t| t.is_empty() || t.iter().any(|t| t.eq_ignore_ascii_case("All")));
        no_subject && all_types && self.advanced_filters.is_empty()
    }

    /// Whether the subscription gets `event`.
    pub fn matches(&self, event: &PublishedEvent) -> bool {
        self.subject_matches(event.subject.as_deref()) && self.type_matches(&event.event_type) && self.advanced_filters.iter().all(|f| f.passes(lookup(&event.event, f.key()), self.enable_advanced_filtering_on_arrays))
    }

    fn subject_matches(&self, subject: Option<&str>) -> bool {
        let (begins, ends) = (self.subject_begins_with.as_deref().filter(|s| !s.is_empty()), self.subject_ends_with.as_deref().filter(|s| !s.is_empty()));
        if begins.is_none() && ends.is_none() {
            return true;
        }
        let Some(subject) = subject else { return false };
        let fold = |s: &str| if self.is_subject_case_sensitive { s.to_string() } else { s.to_lowercase() };
        let subject = fold(subject);
        begins.is_none_or(|b| subject.starts_with(&fold(b))) && ends.is_none_or(|e| subject.ends_with(&fold(e)))
    }

    fn type_matches(&self, event_type: &str) -> bool {
        match &self.included_event_types {
            None => true,
            Some(types) if types.is_empty() || types.iter().any(|t| t.eq_ignore_ascii_case("All")) => true,
            Some(types) => types.iter().any(|t| t.eq_ignore_ascii_case(event_type)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(subject: Option<&str>, event_type: &str, event: Value) -> PublishedEvent {
        PublishedEvent { id: "1".into(), event_type: event_type.into(), subject: subject.map(str::to_string), event }
    }

    fn filter(advanced: Value) -> SubscriptionFilter {
        serde_json::from_value(json!({ "advancedFilters": advanced })).unwrap()
    }

    fn track() -> PublishedEvent {
        event(Some("/tracks/Rock/42"), "Track.Uploaded", json!({"id": "1", "subject": "/tracks/Rock/42", "eventType": "Track.Uploaded",
            "data": {"plays": 7, "genre": "Rock", "explicit": false, "tags": ["live", "Loud"], "scores": [3, 9], "nothing": null}}))
    }

    #[test]
    fn subject_and_event_type_filters() {
        let f = |v: Value| serde_json::from_value::<SubscriptionFilter>(v).unwrap().matches(&track());
        assert!(f(json!({})));
        assert!(f(json!({"subjectBeginsWith": "/TRACKS/", "subjectEndsWith": "42"})), "case-insensitive by default");
        assert!(!f(json!({"subjectBeginsWith": "/TRACKS/", "isSubjectCaseSensitive": true})));
        assert!(!f(json!({"subjectBeginsWith": "/tracks/", "subjectEndsWith": "43"})), "both must hold");
        assert!(f(json!({"includedEventTypes": ["track.uploaded", "Track.Played"]})));
        assert!(!f(json!({"includedEventTypes": ["Track.Played"]})));
        assert!(f(json!({"includedEventTypes": ["All"]})));
        let no_subject = event(None, "T", json!({}));
        assert!(!serde_json::from_value::<SubscriptionFilter>(json!({"subjectBeginsWith": "/"})).unwrap().matches(&no_subject));
    }

    #[test]
    fn every_operator_on_a_present_value() {
        let cases = [
            (json!({"operatorType": "NumberIn", "key": "data.plays", "values": [1, 7]}), true),
            (json!({"operatorType": "NumberNotIn", "key": "data.plays", "values": [1, 7]}), false),
            (json!({"operatorType": "NumberLessThan", "key": "data.plays", "value": 7}), false),
            (json!({"operatorType": "NumberLessThanOrEquals", "key": "data.plays", "value": 7}), true),
            (json!({"operatorType": "NumberGreaterThan", "key": "data.plays", "value": 6.5}), true),
            (json!({"operatorType": "NumberGreaterThanOrEquals", "key": "data.plays", "value": 8}), false),
            (json!({"operatorType": "NumberInRange", "key": "data.plays", "values": [[0, 1], [7, 10]]}), true),
            (json!({"operatorType": "NumberNotInRange", "key": "data.plays", "values": [[7, 7]]}), false),
            (json!({"operatorType": "BoolEquals", "key": "data.explicit", "value": false}), true),
            (json!({"operatorType": "StringContains", "key": "data.genre", "values": ["OC"]}), true),
            (json!({"operatorType": "StringNotContains", "key": "data.genre", "values": ["jazz"]}), true),
            (json!({"operatorType": "StringBeginsWith", "key": "subject", "values": ["/TRACKS"]}), true),
            (json!({"operatorType": "StringNotBeginsWith", "key": "subject", "values": ["/tracks"]}), false),
            (json!({"operatorType": "StringEndsWith", "key": "Subject", "values": ["/42"]}), true),
            (json!({"operatorType": "StringNotEndsWith", "key": "subject", "values": ["/43"]}), true),
            (json!({"operatorType": "StringIn", "key": "data.genre", "values": ["rock", "pop"]}), true),
            (json!({"operatorType": "StringNotIn", "key": "data.genre", "values": ["rock"]}), false),
            (json!({"operatorType": "IsNotNull", "key": "data.genre"}), true),
            (json!({"operatorType": "IsNullOrUndefined", "key": "data.nothing"}), true),
            (json!({"operatorType": "IsNullOrUndefined", "key": "data.genre"}), false),
        ];
        for (f, expected) in cases {
            assert_eq!(filter(json!([f])).matches(&track()), expected, "{f}");
        }
    }

    #[test]
    fn a_missing_key_or_a_wrong_type_matches_only_the_not_in_operators() {
        for key in ["data.missing", "data.genre.deeper"] {
            for (op, values, expected) in [("NumberNotIn", json!([1]), true), ("StringNotIn", json!(["x"]), true), ("StringNotContains", json!(["x"]), false), ("NumberIn", json!([1]), false), ("NumberNotInRange", json!([[0, 1]]), false)] {
                assert_eq!(filter(json!([{"operatorType": op, "key": key, "values": values}])).matches(&track()), expected, "{op} on {key}");
            }
        }
        assert!(!filter(json!([{"operatorType": "NumberIn", "key": "data.genre", "values": [1]}])).matches(&track()), "a string is not a number");
        assert!(filter(json!([{"operatorType": "IsNullOrUndefined", "key": "data.missing"}])).matches(&track()));
    }

    #[test]
    fn arrays_are_looked_into_only_when_enabled() {
        let on = |advanced: Value| serde_json::from_value::<SubscriptionFilter>(json!({"advancedFilters": advanced, "enableAdvancedFilteringOnArrays": true})).unwrap().matches(&track());
        assert!(on(json!([{"operatorType": "StringIn", "key": "data.tags", "values": ["loud"]}])), "any element");
        assert!(!on(json!([{"operatorType": "StringNotIn", "key": "data.tags", "values": ["live"]}])), "no element may match a negation");
        assert!(on(json!([{"operatorType": "StringNotIn", "key": "data.tags", "values": ["quiet"]}])));
        assert!(on(json!([{"operatorType": "NumberGreaterThan", "key": "data.scores", "value": 8}])));
        assert!(!on(json!([{"operatorType": "NumberIn", "key": "data.tags", "values": [1]}])), "elements of another type are ignored");
        assert!(!filter(json!([{"operatorType": "StringIn", "key": "data.tags", "values": ["loud"]}])).matches(&track()), "off by default");
    }

    #[test]
    fn filters_are_anded_and_values_ored() {
        let both = json!([{"operatorType": "StringIn", "key": "data.genre", "values": ["pop", "rock"]}, {"operatorType": "NumberGreaterThan", "key": "data.plays", "value": 5}]);
        assert!(filter(both).matches(&track()));
        let one_fails = json!([{"operatorType": "StringIn", "key": "data.genre", "values": ["rock"]}, {"operatorType": "NumberGreaterThan", "key": "data.plays", "value": 50}]);
        assert!(!filter(one_fails).matches(&track()));
    }

    #[test]
    fn the_limits_are_checked() {
        let many: Vec<Value> = (0..26).map(|_| json!({"operatorType": "IsNotNull", "key": "data.x"})).collect();
        assert!(filter(json!(many)).check().is_err());
        let values: Vec<i32> = (0..26).collect();
        assert!(filter(json!([{"operatorType": "NumberIn", "key": "data.x", "values": values}])).check().is_err());
        assert!(filter(json!([{"operatorType": "StringIn", "key": "data.x", "values": ["y".repeat(513)]}])).check().is_err());
        assert!(filter(json!([{"operatorType": "NumberInRange", "key": "data.x", "values": [[5, 1]]}])).check().is_err());
        assert!(filter(json!([{"operatorType": "StringIn", "key": "", "values": ["a"]}])).check().is_err());
        let fine: Vec<i32> = (0..25).collect();
        assert!(filter(json!([{"operatorType": "NumberIn", "key": "data.x", "values": fine}])).check().is_ok());
        assert!(serde_json::from_value::<SubscriptionFilter>(json!({"advancedFilters": [{"operatorType": "NoSuchOperator", "key": "k"}]})).is_err());
    }
}
