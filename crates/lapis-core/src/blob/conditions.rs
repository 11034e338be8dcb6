//! ETags and the HTTP conditional headers (`If-Match`, `If-None-Match`,
//! `If-Modified-Since`, `If-Unmodified-Since`) as the Blob service applies them.
//!
//! Writes that fail a condition get 412 `ConditionNotMet`. Reads that fail `If-Match`
//! or `If-Unmodified-Since` get 412; reads whose `If-None-Match` or
//! `If-Modified-Since` says the client's copy is current get 304; `If-None-Match: *`
//! can never hold for a read (400 `UnsatisfiableCondition`). Of `If-None-Match` and
//! `If-Modified-Since` only the first is evaluated when both are given, and likewise
//! `If-Match` over `If-Unmodified-Since`. Times compare at whole seconds, the
//! resolution of `Last-Modified`.

use super::error::{BlobError, BlobResult};
use crate::clock::Millis;

/// .NET ticks (100 ns since 0001-01-01) at the Unix epoch.
const TICKS_AT_UNIX_EPOCH: u64 = 621_355_968_000_000_000;

/// An entity tag. Azure's are the modification time in .NET ticks, in hex
/// (`0x8DC0A1B2C3D4E5F`); Lapis keeps them strictly increasing so that two writes in
/// one tick still differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Etag(pub u64);

impl Etag {
    /// The next tag after `last`, for a write at `now`.
    pub fn next(now: Millis, last: u64) -> Etag {
        let ticks = TICKS_AT_UNIX_EPOCH.saturating_add((now.max(0) as u64).saturating_mul(10_000));
        Etag(ticks.max(last.saturating_add(1)))
    }

    /// `0x8DC0A1B2C3D4E5F`, as List Blobs writes it.
    pub fn bare(&self) -> String {
        format!("0x{:X}", self.0)
    }

    /// `"0x8DC0A1B2C3D4E5F"`, as the `ETag` header carries it.
    pub fn quoted(&self) -> String {
        format!("\"0x{:X}\"", self.0)
    }

    /// Whether a client's tag names this one. Quotes and a weak `W/` prefix are
    /// ignored: clients send back tags both as the header gave them and as listings
    /// did.
    pub fn matches(&self, given: &str) -> bool {
        let given = given.trim();
        let given = given.strip_prefix("W/").unwrap_or(given);
        let given = given.strip_prefix('"').and_then(|g| g.strip_suffix('"')).unwrap_or(given);
        given.eq_ignore_ascii_case(&self.bare())
    }
}

fn is_wildcard(value: &str) -> bool {
    value.trim() == "*"
}

fn seconds(ms: Millis) -> Millis {
    ms.div_euclid(1000)
}

/// The conditions a request carries; dates are already parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<Millis>,
    pub if_unmodified_since: Option<Millis>,
}

/// The state of an existing resource that conditions are checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Current {
    pub etag: Etag,
    pub last_modified: Millis,
}

impl Conditions {
    /// Whether `If-None-Match: *` was given (create only if absent).
    pub fn if_absent(&self) -> bool {
        self.if_none_match.as_deref().is_some_and(is_wildcard)
    }

    /// For a write to `current` (`None`: the resource does not exist).
    pub fn check_write(&self, current: Option<Current>) -> BlobResult<()> {
        let Some(c) = current else {
            // Nothing matches a missing resource, except the wildcard.
            return match &self.if_match {
                Some(m) if !is_wildcard(m) => Err(BlobError::ConditionNotMet),
                _ => Ok(()),
            };
        };
        let modified_after = |since: Millis| seconds(c.last_modified) > seconds(since);
        let none_match_fails = match (&self.if_none_match, self.if_modified_since) {
            (Some(n), _) => is_wildcard(n) || c.etag.matches(n),
            (None, Some(since)) => !modified_after(since),
            (None, None) => false,
        };
        let match_fails = match (&self.if_match, self.if_unmodified_since) {
            (Some(m), _) => !is_wildcard(m) && !c.etag.matches(m),
            (None, Some(since)) => modified_after(since),
            (None, None) => false,
        };
        if none_match_fails || match_fails {
            return Err(BlobError::ConditionNotMet);
        }
        Ok(())
    }

    /// For a read of the existing `current`.
    pub fn check_read(&self, c: Current) -> BlobResult<()> {
        if self.if_absent() {
            return Err(BlobError::UnsatisfiableCondition);
        }
        let modified_after = |since: Millis| seconds(c.last_modified) > seconds(since);
        let precondition_fails = match (&self.if_match, self.if_unmodified_since) {
            (Some(m), _) => !is_wildcard(m) && !c.etag.matches(m),
            (None, Some(since)) => modified_after(since),
            (None, None) => false,
        };
        if precondition_fails {
            return Err(BlobError::ConditionNotMet);
        }
        let not_modified = match (&self.if_none_match, self.if_modified_since) {
            (Some(n), _) => c.etag.matches(n),
            (None, Some(since)) => !modified_after(since),
            (None, None) => false,
        };
        if not_modified {
            return Err(BlobError::NotModified { etag: c.etag.quoted(), last_modified: c.last_modified });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Millis = 1_704_067_200_000; // 2024-01-01T00:00:00Z

    fn cur() -> Current {
        Current { etag: Etag(0x8DC0A1B2C3D4E5F), last_modified: T }
    }

    fn cond(if_match: Option<&str>, if_none_match: Option<&str>) -> Conditions {
        Conditions { if_match: if_match.map(str::to_string), if_none_match: if_none_match.map(str::to_string), ..Default::default() }
    }

    #[test]
    fn etags_look_like_azures_and_always_increase() {
        let e = Etag::next(T, 0);
        assert_eq!(e.bare(), "0x8DC0A5C9900C000");
        assert_eq!(e.quoted(), "\"0x8DC0A5C9900C000\"");
        assert_eq!(Etag::next(T, e.0), Etag(e.0 + 1), "a second write in the same tick still gets a new tag");
        for given in ["0x8DC0A1B2C3D4E5F", "\"0x8DC0A1B2C3D4E5F\"", " W/\"0x8dc0a1b2c3d4e5f\" "] {
            assert!(cur().etag.matches(given), "{given}");
        }
        assert!(!cur().etag.matches("0x1"));
    }

    #[test]
    fn writes() {
        let tag = cur().etag.quoted();
        assert!(cond(Some(&tag), None).check_write(Some(cur())).is_ok());
        assert!(cond(Some("*"), None).check_write(Some(cur())).is_ok());
        assert!(matches!(cond(Some("\"0x1\""), None).check_write(Some(cur())), Err(BlobError::ConditionNotMet)));
        assert!(matches!(cond(None, Some("*")).check_write(Some(cur())), Err(BlobError::ConditionNotMet)));
        assert!(matches!(cond(None, Some(&tag)).check_write(Some(cur())), Err(BlobError::ConditionNotMet)));
        assert!(cond(None, Some("\"0x1\"")).check_write(Some(cur())).is_ok());
        // A missing resource: If-None-Match always holds, If-Match only as a wildcard.
        assert!(cond(None, Some("*")).check_write(None).is_ok());
        assert!(cond(Some("*"), None).check_write(None).is_ok());
        assert!(matches!(cond(Some(&tag), None).check_write(None), Err(BlobError::ConditionNotMet)));
        let since = |ims, ius| Conditions { if_modified_since: ims, if_unmodified_since: ius, ..Default::default() };
        assert!(since(Some(T - 1000), None).check_write(Some(cur())).is_ok());
        assert!(matches!(since(Some(T + 999), None).check_write(Some(cur())), Err(BlobError::ConditionNotMet)));
        assert!(since(None, Some(T)).check_write(Some(cur())).is_ok());
        assert!(matches!(since(None, Some(T - 1000)).check_write(Some(cur())), Err(BlobError::ConditionNotMet)));
    }

    #[test]
    fn reads() {
        let tag = cur().etag.quoted();
        assert!(cond(Some(&tag), None).check_read(cur()).is_ok());
        assert!(matches!(cond(Some("\"0x1\""), None).check_read(cur()), Err(BlobError::ConditionNotMet)));
        assert!(matches!(cond(None, Some(&tag)).check_read(cur()), Err(BlobError::NotModified { .. })));
        assert!(cond(None, Some("\"0x1\"")).check_read(cur()).is_ok());
        assert!(matches!(cond(None, Some("*")).check_read(cur()), Err(BlobError::UnsatisfiableCondition)));
        let ims = Conditions { if_modified_since: Some(T), ..Default::default() };
        assert!(matches!(ims.check_read(cur()), Err(BlobError::NotModified { .. })));
        // If-None-Match wins over If-Modified-Since.
        let both = Conditions { if_none_match: Some("\"0x1\"".into()), if_modified_since: Some(T), ..Default::default() };
        assert!(both.check_read(cur()).is_ok());
    }
}
