//! CORS as Azure Storage applies it: the first rule whose origin, method and headers
//! all match answers a preflight; actual requests from a matching origin get the
//! rule's response headers.

use super::model::CorsRule;

/// What to send back to a browser for a matched rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsGrant {
    pub allow_origin: String,
    pub allow_credentials: bool,
    pub max_age_seconds: u32,
    pub exposed_headers: String,
}

fn list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn origin_matches(rule: &CorsRule, origin: &str) -> bool {
    list(&rule.allowed_origins).any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
}

fn method_matches(rule: &CorsRule, method: &str) -> bool {
    list(&rule.allowed_methods).any(|m| m.eq_ignore_ascii_case(method))
}

/// Allowed-header entries are names, prefixes ending in `*`, or `*`.
fn header_allowed(rule: &CorsRule, header: &str) -> bool {
    let header = header.to_ascii_lowercase();
    list(&rule.allowed_headers).any(|h| {
        let h = h.to_ascii_lowercase();
        match h.strip_suffix('*') {
            Some(prefix) => header.starts_with(prefix),
            None => h == header,
        }
    })
}

fn grant(rule: &CorsRule, origin: &str) -> CorsGrant {
    let wildcard = list(&rule.allowed_origins).any(|o| o == "*");
    CorsGrant {
        allow_origin: if wildcard { "*".to_string() } else { origin.to_string() },
        allow_credentials: !wildcard,
        max_age_seconds: rule.max_age_seconds,
        exposed_headers: rule.exposed_headers.clone(),
    }
}

/// The rule that answers a preflight for `origin`, `method` and `headers`, if any.
pub fn preflight(rules: &[CorsRule], origin: &str, method: &str, headers: &[&str]) -> Option<CorsGrant> {
    rules
        .iter()
        .find(|r| origin_matches(r, origin) && method_matches(r, method) && headers.iter().all(|h| header_allowed(r, h)))
        .map(|r| grant(r, origin))
}

/// The rule that applies to an actual request from `origin` with `method`, if any.
pub fn actual(rules: &[CorsRule], origin: &str, method: &str) -> Option<CorsGrant> {
    rules.iter().find(|r| origin_matches(r, origin) && method_matches(r, method)).map(|r| grant(r, origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &str, methods: &str, headers: &str) -> CorsRule {
        CorsRule {
            allowed_origins: origins.into(),
            allowed_methods: methods.into(),
            allowed_headers: headers.into(),
            exposed_headers: "x-ms-meta-*".into(),
            max_age_seconds: 60,
        }
    }

    #[test]
    fn first_full_match_wins() {
        let rules = [rule("http://a.com", "GET", "x-ms-meta*,content-type"), rule("*", "PUT", "*")];
        let g = preflight(&rules, "http://a.com", "GET", &["x-ms-meta-color", "Content-Type"]).unwrap();
        assert_eq!((g.allow_origin.as_str(), g.allow_credentials), ("http://a.com", true));
        assert!(preflight(&rules, "http://a.com", "GET", &["x-other"]).is_none());
        let g = preflight(&rules, "http://b.com", "PUT", &["x-other"]).unwrap();
        assert_eq!((g.allow_origin.as_str(), g.allow_credentials), ("*", false));
        assert!(preflight(&rules, "http://b.com", "GET", &[]).is_none());
        assert!(actual(&rules, "http://a.com", "GET").is_some());
        assert!(actual(&rules, "http://c.com", "GET").is_none());
    }
}
