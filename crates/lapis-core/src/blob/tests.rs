//! The Blob service's semantics, driven through its API: containers, Put/Get/Set
//! Metadata/Delete with their conditions, listing, limits, and state after a restart.

use std::sync::Arc;

use lapis_store::{CompactionPolicy, JournalOptions, KvLog, MemoryStore, Store};

use super::*;
use crate::ShiftableClock;

const A: &str = "devstoreaccount1";

fn memory() -> (BlobService, Arc<ShiftableClock>) {
    let clock = Arc::new(ShiftableClock::default());
    (BlobService::new(Arc::new(MemoryStore), clock.clone()), clock)
}

fn open_disk(dir: &std::path::Path, inline_budget: i64) -> (BlobService, Arc<KvLog>) {
    let mut recovery = Recovery::with_inline_budget(true, inline_budget);
    let (kv, _) = KvLog::open(dir, JournalOptions::default(), CompactionPolicy::default(), recovery.visitor()).unwrap();
    let kv = Arc::new(kv);
    let store: Arc<dyn Store> = kv.clone();
    (BlobService::recover(store, Arc::new(ShiftableClock::default()), recovery), kv)
}

fn meta(pairs: &[(&str, &str)]) -> Metadata {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn blob(content: &[u8], metadata: Metadata) -> NewBlob {
    NewBlob { content: content.to_vec(), metadata, ..Default::default() }
}

fn if_match(etag: Etag) -> Conditions {
    Conditions { if_match: Some(etag.quoted()), ..Default::default() }
}

fn if_absent() -> Conditions {
    Conditions { if_none_match: Some("*".into()), ..Default::default() }
}

const ANY: Conditions = Conditions { if_match: None, if_none_match: None, if_modified_since: None, if_unmodified_since: None };

#[tokio::test]
async fn containers_are_created_once_and_deleted_with_their_blobs() {
    let (s, _) = memory();
    let c = s.create_container(A, "ckpt", meta(&[("team", "core")]), None).await.unwrap();
    assert_eq!(c.metadata, meta(&[("team", "core")]));
    assert!(matches!(s.create_container(A, "ckpt", vec![], None).await, Err(BlobError::ContainerAlreadyExists)));
    assert!(matches!(s.create_container(A, "Bad_Name", vec![], None).await, Err(BlobError::InvalidResourceName)));
    assert!(matches!(s.create_container(A, "ab", vec![], None).await, Err(BlobError::ResourceNameLength)));
    s.put_blob(A, "ckpt", "b1", blob(b"x", vec![]), &ANY).await.unwrap();

    let updated = s.set_container_metadata(A, "ckpt", meta(&[("v", "2")]), &ANY).await.unwrap();
    assert!(updated.etag > c.etag);
    assert_eq!(s.container_properties(A, "ckpt").unwrap(), updated);
    assert_eq!(s.list_containers(A, "ck", None, None).unwrap().containers, vec![updated]);

    s.delete_container(A, "ckpt", &ANY).await.unwrap();
    assert!(matches!(s.container_properties(A, "ckpt"), Err(BlobError::ContainerNotFound)));
    assert!(matches!(s.delete_container(A, "ckpt", &ANY).await, Err(BlobError::ContainerNotFound)));
    assert!(matches!(s.put_blob(A, "ckpt", "b1", blob(b"", vec![]), &ANY).await, Err(BlobError::ContainerNotFound)));
    s.create_container(A, "ckpt", vec![], None).await.unwrap();
    assert!(matches!(s.blob_properties(A, "ckpt", "b1", &ANY), Err(BlobError::BlobNotFound)), "a new container starts empty");
}

#[tokio::test]
async fn put_get_and_metadata_follow_etag_conditions() {
    let (s, clock) = memory();
    s.create_container(A, "ckpt", vec![], None).await.unwrap();
    let mut new = blob(b"hello world", meta(&[("ownerid", "a")]));
    new.settings.content_type = Some("text/plain".into());
    let first = s.put_blob(A, "ckpt", "ns/hub/$default/ownership/0", new, &if_absent()).await.unwrap();
    assert_eq!((first.size, first.settings.content_type()), (11, "text/plain"));
    assert_eq!(first.settings.content_md5.as_deref(), Some("XrY7u+Ae7tCTyyK7j1rNww=="));
    let name = "ns/hub/$default/ownership/0";
    assert!(matches!(s.put_blob(A, "ckpt", name, blob(b"", vec![]), &if_absent()).await, Err(BlobError::BlobAlreadyExists)));

    let got = s.get_blob(A, "ckpt", name, &ANY, None).await.unwrap();
    assert_eq!((got.served(), &got.info), (&b"hello world"[..], &first));
    let part = s.get_blob(A, "ckpt", name, &ANY, Some(ByteRange { start: 6, end: Some(100) })).await.unwrap();
    assert_eq!((part.served(), part.range), (&b"world"[..], Some((6, 10))));
    let beyond = s.get_blob(A, "ckpt", name, &ANY, Some(ByteRange { start: 11, end: None })).await;
    assert!(matches!(beyond, Err(BlobError::InvalidRange { size: 11 })));

    clock.advance(2000);
    let claimed = s.set_blob_metadata(A, "ckpt", name, meta(&[("ownerid", "b")]), &if_match(first.etag)).await.unwrap();
    assert!(claimed.etag > first.etag && claimed.last_modified > first.last_modified);
    assert_eq!((claimed.created, claimed.size), (first.created, 11), "metadata changes keep content and creation time");
    let stale = s.set_blob_metadata(A, "ckpt", name, meta(&[("ownerid", "c")]), &if_match(first.etag)).await;
    assert!(matches!(stale, Err(BlobError::ConditionNotMet)));
    assert!(matches!(s.set_blob_metadata(A, "ckpt", name, vec![], &if_absent()).await, Err(BlobError::ConditionNotMet)));
    assert!(matches!(s.set_blob_metadata(A, "ckpt", "missing", vec![], &if_absent()).await, Err(BlobError::BlobNotFound)));
    assert_eq!(s.blob_properties(A, "ckpt", name, &ANY).unwrap().metadata, meta(&[("ownerid", "b")]));
    let unchanged = Conditions { if_none_match: Some(claimed.etag.bare()), ..Default::default() };
    assert!(matches!(s.blob_properties(A, "ckpt", name, &unchanged), Err(BlobError::NotModified { .. })));

    let replaced = s.put_blob(A, "ckpt", name, blob(b"", vec![]), &if_match(claimed.etag)).await.unwrap();
    assert_eq!((replaced.size, replaced.created, replaced.metadata.len()), (0, first.created, 0));
    assert!(matches!(s.put_blob(A, "ckpt", "other", blob(b"", vec![]), &if_match(claimed.etag)).await, Err(BlobError::ConditionNotMet)));
    assert!(matches!(s.get_blob(A, "ckpt", name, &ANY, Some(ByteRange { start: 0, end: None })).await, Err(BlobError::InvalidRange { size: 0 })));

    assert!(matches!(s.delete_blob(A, "ckpt", name, &if_match(claimed.etag)).await, Err(BlobError::ConditionNotMet)));
    s.delete_blob(A, "ckpt", name, &if_match(replaced.etag)).await.unwrap();
    assert!(matches!(s.delete_blob(A, "ckpt", name, &ANY).await, Err(BlobError::BlobNotFound)));
}

#[tokio::test]
async fn limits_are_enforced() {
    let (s, _) = memory();
    s.create_container(A, "ckpt", vec![], None).await.unwrap();
    let big = blob(&vec![0; limits::MAX_BLOB_BYTES + 1], vec![]);
    assert!(matches!(s.put_blob(A, "ckpt", "big", big, &ANY).await, Err(BlobError::BlobTooLarge { .. })));
    assert!(s.put_blob(A, "ckpt", "max", blob(&vec![0; limits::MAX_BLOB_BYTES], vec![]), &ANY).await.is_ok());
    assert!(matches!(s.put_blob(A, "ckpt", "m", blob(b"", meta(&[("no-dash", "")])), &ANY).await, Err(BlobError::InvalidMetadata)));
    let huge = meta(&[("k", &"v".repeat(9000))]);
    assert!(matches!(s.set_blob_metadata(A, "ckpt", "max", huge, &ANY).await, Err(BlobError::MetadataTooLarge)));
    let mut wrong_md5 = blob(b"abc", vec![]);
    wrong_md5.transactional_md5 = Some("1B2M2Y8AsgTpgAmY7PhCfg==".into());
    assert!(matches!(s.put_blob(A, "ckpt", "m", wrong_md5, &ANY).await, Err(BlobError::Md5Mismatch { .. })));
    assert!(matches!(s.put_blob(A, "ckpt", &"n".repeat(1025), blob(b"", vec![]), &ANY).await, Err(BlobError::ResourceNameLength)));
    assert!(matches!(s.list_blobs(A, "ckpt", &ListBlobs { max_results: Some(0), ..Default::default() }), Err(BlobError::OutOfRange { .. })));
    assert!(matches!(s.list_blobs(A, "nope", &ListBlobs::default()), Err(BlobError::ContainerNotFound)));
}

#[tokio::test]
async fn listing_pages_through_a_prefix() {
    let (s, _) = memory();
    s.create_container(A, "ckpt", vec![], None).await.unwrap();
    for p in 0..5 {
        s.put_blob(A, "ckpt", &format!("ns/hub/cg/checkpoint/{p}"), blob(b"", meta(&[("offset", &p.to_string())])), &ANY).await.unwrap();
    }
    s.put_blob(A, "ckpt", "ns/hub/cg/ownership/0", blob(b"", vec![]), &ANY).await.unwrap();
    let mut seen = Vec::new();
    let mut marker = None;
    loop {
        let query = ListBlobs { prefix: "ns/hub/cg/checkpoint/", marker: marker.as_deref(), max_results: Some(2), ..Default::default() };
        let page = s.list_blobs(A, "ckpt", &query).unwrap();
        for item in page.items {
            let Listed::Blob(b) = item else { panic!("no delimiter, no prefixes") };
            seen.push((b.name, b.metadata[0].1.clone()));
        }
        match page.next_marker {
            Some(m) => marker = Some(m),
            None => break,
        }
    }
    let expected: Vec<_> = (0..5).map(|p| (format!("ns/hub/cg/checkpoint/{p}"), p.to_string())).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn state_survives_a_restart_with_contents_read_back_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (etag, deleted_container) = {
        let (s, kv) = open_disk(dir.path(), 0);
        s.create_container(A, "ckpt", meta(&[("k", "v")]), Some("blob".into())).await.unwrap();
        s.create_container(A, "gone", vec![], None).await.unwrap();
        s.put_blob(A, "gone", "x", blob(b"lost with its container", vec![]), &ANY).await.unwrap();
        s.delete_container(A, "gone", &ANY).await.unwrap();
        s.put_blob(A, "ckpt", "a", blob(b"first", vec![]), &ANY).await.unwrap();
        s.put_blob(A, "ckpt", "a", blob(b"second", meta(&[("n", "2")])), &ANY).await.unwrap();
        let info = s.set_blob_metadata(A, "ckpt", "a", meta(&[("n", "3")]), &ANY).await.unwrap();
        s.put_blob(A, "ckpt", "deleted", blob(b"d", vec![]), &ANY).await.unwrap();
        s.delete_blob(A, "ckpt", "deleted", &ANY).await.unwrap();
        kv.close();
        (info.etag, "gone")
    };
    let (s, kv) = open_disk(dir.path(), 0);
    let c = s.container_properties(A, "ckpt").unwrap();
    assert_eq!((c.metadata, c.public_access), (meta(&[("k", "v")]), Some("blob".into())));
    assert!(matches!(s.container_properties(A, deleted_container), Err(BlobError::ContainerNotFound)));
    let got = s.get_blob(A, "ckpt", "a", &ANY, None).await.unwrap();
    assert_eq!((got.served(), got.info.etag, &got.info.metadata), (&b"second"[..], etag, &meta(&[("n", "3")])));
    assert!(matches!(s.blob_properties(A, "ckpt", "deleted", &ANY), Err(BlobError::BlobNotFound)));
    let next = s.set_blob_metadata(A, "ckpt", "a", vec![], &if_match(etag)).await.unwrap();
    assert!(next.etag > etag, "ETags keep increasing across a restart");
    s.create_container(A, "new", vec![], None).await.unwrap();
    s.put_blob(A, "new", "b", blob(b"fresh", vec![]), &ANY).await.unwrap();
    assert_eq!(s.get_blob(A, "ckpt", "a", &ANY, None).await.unwrap().served(), b"second", "ids are not reused");
    kv.close();
}
