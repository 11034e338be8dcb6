//! Rules every Azure Storage service (queues, blobs) applies alike: the names of
//! queues and containers, user metadata (`x-ms-meta-*`), and the paging of account
//! listings (List Queues, List Containers).

use std::collections::BTreeMap;

/// Name/value pairs in the case they were given; names compare case-insensitively.
pub type Metadata = Vec<(String, String)>;

/// Total size of a resource's metadata names and values.
pub const MAX_METADATA_BYTES: usize = 8 * 1024;

/// Why a queue or container name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    /// A character other than lowercase letters, digits and single inner dashes.
    InvalidCharacters,
    /// Fewer than 3 or more than 63 characters.
    Length,
}

/// Queue and container names: 3-63 characters of lowercase letters, digits and single
/// dashes, not starting or ending with a dash.
pub fn check_resource_name(name: &str) -> Result<(), NameError> {
    let valid_chars = name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid_chars || name.is_empty() {
        return Err(NameError::InvalidCharacters);
    }
    if !(3..=63).contains(&name.len()) {
        return Err(NameError::Length);
    }
    if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Err(NameError::InvalidCharacters);
    }
    Ok(())
}

/// Why metadata was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataError {
    /// A name that is not a C# identifier, or two names equal but for case.
    InvalidName,
    /// Names and values together exceed [`MAX_METADATA_BYTES`].
    TooLarge,
}

/// Metadata names must be C# identifiers, unique regardless of case, and the whole set
/// at most [`MAX_METADATA_BYTES`].
pub fn check_metadata(metadata: &Metadata) -> Result<(), MetadataError> {
    let mut seen = std::collections::BTreeSet::new();
    let mut total = 0;
    for (name, value) in metadata {
        let mut chars = name.chars();
        let ident = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ident || !seen.insert(name.to_ascii_lowercase()) {
            return Err(MetadataError::InvalidName);
        }
        total += name.len() + value.len();
    }
    if total > MAX_METADATA_BYTES {
        return Err(MetadataError::TooLarge);
    }
    Ok(())
}

/// The store key of a named resource of an account: `<tag><account>\0<name>`.
pub fn named_key(tag: u8, account: &str, name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + account.len() + name.len());
    k.push(tag);
    k.extend_from_slice(account.as_bytes());
    k.push(0);
    k.extend_from_slice(name.as_bytes());
    k
}

/// A page of `account`'s entries in `map` (keyed by account and name) whose names
/// start with `prefix`, in name order from `marker` (the first name of the page) on,
/// at most `max` of them, each made by `entry`; and the marker of the next page.
pub fn page<V, T>(
    map: &BTreeMap<(String, String), V>,
    account: &str,
    prefix: &str,
    marker: Option<&str>,
    max: usize,
    mut entry: impl FnMut(&str, &V) -> T,
) -> (Vec<T>, Option<String>) {
    let start = marker.unwrap_or("").max(prefix).to_string();
    let mut items = Vec::new();
    for ((acct, name), value) in map.range((account.to_string(), start)..) {
        if acct != account || !name.starts_with(prefix) {
            break;
        }
        if items.len() == max {
            return (items, Some(name.clone()));
        }
        items.push(entry(name, value));
    }
    (items, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names() {
        for ok in ["abc", "a-b-c", "queue1", &"a".repeat(63)] {
            assert_eq!(check_resource_name(ok), Ok(()), "{ok}");
        }
        for bad in ["Abc", "a_b", "-ab", "ab-", "a--b", "", "$root"] {
            assert_eq!(check_resource_name(bad), Err(NameError::InvalidCharacters), "{bad}");
        }
        for bad in ["ab", &"a".repeat(64)] {
            assert_eq!(check_resource_name(bad), Err(NameError::Length), "{bad}");
        }
    }

    #[test]
    fn pages_stay_in_one_account_and_prefix() {
        let map: BTreeMap<(String, String), u32> =
            [("a", "q1"), ("a", "q2"), ("a", "q3"), ("a", "r1"), ("b", "q4")].iter().map(|(a, n)| ((a.to_string(), n.to_string()), 0)).collect();
        let names = |m: Option<&str>, max| page(&map, "a", "q", m, max, |n, _| n.to_string());
        assert_eq!(names(None, 2), (vec!["q1".to_string(), "q2".into()], Some("q3".into())));
        assert_eq!(names(Some("q3"), 2), (vec!["q3".to_string()], None));
        assert_eq!(names(Some("a"), 5).0.len(), 3, "a marker before the prefix starts at the prefix");
    }

    #[test]
    fn metadata_names_and_size() {
        assert_eq!(check_metadata(&vec![("Color".into(), "red".into()), ("_x1".into(), "".into())]), Ok(()));
        assert_eq!(check_metadata(&vec![("1x".into(), "".into())]), Err(MetadataError::InvalidName));
        assert_eq!(check_metadata(&vec![("a".into(), "".into()), ("A".into(), "".into())]), Err(MetadataError::InvalidName));
        assert_eq!(check_metadata(&vec![("big".into(), "v".repeat(MAX_METADATA_BYTES))]), Err(MetadataError::TooLarge));
    }
}
