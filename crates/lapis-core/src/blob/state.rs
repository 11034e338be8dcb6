//! One container's state in memory: its record, its blobs by name (in name order for
//! listing), and the uncommitted blocks staged for blob names. Callers hold the
//! container's lock while using it.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use super::codec::{BlobRecord, ContainerRecord};
use super::conditions::{Current, Etag};
use super::content::Content;
use super::model::{BlobInfo, BlobPage, ContainerInfo, ListBlobs, Listed};
use super::staging::Uncommitted;

/// A committed blob: its durable record and where its content is.
#[derive(Debug, Clone)]
pub struct BlobEntry {
    pub record: BlobRecord,
    pub content: Content,
}

impl BlobEntry {
    pub fn info(&self) -> BlobInfo {
        let r = &self.record;
        BlobInfo {
            name: r.name.clone(),
            size: r.size,
            settings: r.settings.clone(),
            metadata: r.metadata.clone(),
            etag: Etag(r.etag),
            created: r.created,
            last_modified: r.last_modified,
        }
    }

    pub fn current(&self) -> Current {
        Current { etag: Etag(self.record.etag), last_modified: self.record.last_modified }
    }
}

impl ContainerRecord {
    pub fn info(&self) -> ContainerInfo {
        ContainerInfo {
            name: self.name.clone(),
            metadata: self.metadata.clone(),
            etag: Etag(self.etag),
            last_modified: self.last_modified,
            public_access: self.public_access.clone(),
        }
    }

    pub fn current(&self) -> Current {
        Current { etag: Etag(self.etag), last_modified: self.last_modified }
    }
}

#[derive(Debug)]
pub struct ContainerState {
    pub record: ContainerRecord,
    pub blobs: BTreeMap<String, BlobEntry>,
    /// Uncommitted blocks by blob name; a name may have blocks and no blob yet.
    pub staged: HashMap<String, Uncommitted>,
    /// Set when the container is deleted, for operations that found it just before.
    pub deleted: bool,
}

impl ContainerState {
    pub fn new(record: ContainerRecord) -> Self {
        ContainerState { record, blobs: BTreeMap::new(), staged: HashMap::new(), deleted: false }
    }

    /// A page of List Blobs: names starting with the prefix, in name order, from the
    /// marker (the first name of the page) on. With a delimiter, names that continue
    /// past the prefix with it are folded into one [`Listed::Prefix`] each, which
    /// counts as one entry.
    pub fn list(&self, query: &ListBlobs<'_>, max: usize) -> BlobPage {
        let start = query.marker.filter(|m| !m.is_empty()).unwrap_or("").max(query.prefix);
        let delimiter = query.delimiter.filter(|d| !d.is_empty());
        let mut items = Vec::new();
        let mut next_marker = None;
        let range = self.blobs.range::<str, _>((Bound::Included(start), Bound::Unbounded));
        for (name, entry) in range.take_while(|(name, _)| name.starts_with(query.prefix)) {
            let folded = delimiter.and_then(|d| {
                let rest = &name[query.prefix.len()..];
                rest.find(d).map(|at| &name[..query.prefix.len() + at + d.len()])
            });
            if let (Some(p), Some(Listed::Prefix(last))) = (folded, items.last()) {
                if last == p {
                    continue;
                }
            }
            if items.len() == max {
                next_marker = Some(name.clone());
                break;
            }
            items.push(match folded {
                Some(p) => Listed::Prefix(p.to_string()),
                None => Listed::Blob(entry.info()),
            });
        }
        BlobPage { items, next_marker }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::Body;

    fn container(names: &[&str]) -> ContainerState {
        let record = ContainerRecord {
            id: 1,
            account: "a".into(),
            name: "c".into(),
            metadata: vec![],
            etag: 1,
            last_modified: 0,
            public_access: None,
        };
        let mut c = ContainerState::new(record);
        for (i, n) in names.iter().enumerate() {
            let record = BlobRecord {
                id: i as u64 + 10,
                container_id: 1,
                name: n.to_string(),
                size: 0,
                settings: Default::default(),
                metadata: vec![],
                etag: 1,
                created: 0,
                last_modified: 0,
                blocks: false,
            };
            c.blobs.insert(n.to_string(), BlobEntry { record, content: Content::Whole(Body::Inline(Vec::new().into())) });
        }
        c
    }

    fn names(page: &BlobPage) -> Vec<String> {
        page.items
            .iter()
            .map(|i| match i {
                Listed::Blob(b) => b.name.clone(),
                Listed::Prefix(p) => format!("{p}*"),
            })
            .collect()
    }

    #[test]
    fn pages_by_prefix_and_marker() {
        let c = container(&["a/1", "a/2", "a/3", "b/1", "c"]);
        let q = ListBlobs { prefix: "a/", max_results: None, ..Default::default() };
        let first = c.list(&q, 2);
        assert_eq!(names(&first), ["a/1", "a/2"]);
        assert_eq!(first.next_marker.as_deref(), Some("a/3"));
        let second = c.list(&ListBlobs { marker: first.next_marker.as_deref(), ..q }, 2);
        assert_eq!(names(&second), ["a/3"]);
        assert_eq!(second.next_marker, None);
        assert_eq!(names(&c.list(&ListBlobs::default(), 10)), ["a/1", "a/2", "a/3", "b/1", "c"]);
    }

    #[test]
    fn a_delimiter_folds_names_into_prefixes() {
        let c = container(&["a/1", "a/2", "b/x/1", "b/y", "c"]);
        let q = ListBlobs { delimiter: Some("/"), ..Default::default() };
        assert_eq!(names(&c.list(&q, 10)), ["a/*", "b/*", "c"]);
        let first = c.list(&q, 1);
        assert_eq!(names(&first), ["a/*"]);
        let rest = c.list(&ListBlobs { marker: first.next_marker.as_deref(), ..q }, 10);
        assert_eq!(names(&rest), ["b/*", "c"]);
        let inner = ListBlobs { prefix: "b/", delimiter: Some("/"), ..Default::default() };
        assert_eq!(names(&c.list(&inner, 10)), ["b/x/*", "b/y"]);
    }
}
