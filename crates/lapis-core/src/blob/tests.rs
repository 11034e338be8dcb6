//! The Blob service's semantics, driven through its API: containers, Put/Get/Set
//! Metadata/Delete with their conditions, listing, limits, blocks and block lists, and
//! state after a restart.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use lapis_store::{CompactionPolicy, JournalOptions, KvLog, MemoryStore, Store};
use md5::{Digest, Md5};

use super::*;
use crate::ShiftableClock;

const A: &str = "devstoreaccount1";

fn memory() -> (BlobService, Arc<ShiftableClock>) {
    let clock = Arc::new(ShiftableClock::default());
    (BlobService::new(Arc::new(MemoryStore), clock.clone()), clock)
}

fn open_disk(dir: &std::path::Path, inline_budget: i64) -> (BlobService, Arc<KvLog>) {
    open_disk_at(dir, inline_budget, Arc::new(ShiftableClock::default()))
}

fn open_disk_at(dir: &std::path::Path, inline_budget: i64, clock: Arc<ShiftableClock>) -> (BlobService, Arc<KvLog>) {
    let mut recovery = Recovery::with_inline_budget(true, inline_budget);
    let (kv, _) = KvLog::open(dir, JournalOptions::default(), CompactionPolicy::default(), recovery.visitor()).unwrap();
    let kv = Arc::new(kv);
    let store: Arc<dyn Store> = kv.clone();
    (BlobService::recover(store, clock, recovery), kv)
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
    let big = blob(&vec![0; limits::MAX_PUT_BLOB_BYTES + 1], vec![]);
    assert!(matches!(s.put_blob(A, "ckpt", "big", big, &ANY).await, Err(BlobError::BlobTooLarge { .. })));
    assert!(s.put_blob(A, "ckpt", "max", blob(&vec![0; 4 << 20], vec![]), &ANY).await.is_ok());
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

// ---- blocks and block lists ---------------------------------------------------------

fn block(id: &str, content: &[u8]) -> NewBlock {
    NewBlock { id: id.as_bytes().to_vec(), content: content.to_vec(), transactional_md5: None }
}

fn latest(ids: &[&str]) -> NewBlockList {
    NewBlockList { blocks: ids.iter().map(|id| BlockRef::Latest(id.as_bytes().to_vec())).collect(), ..Default::default() }
}

fn ids(blocks: &[ListedBlock]) -> Vec<(String, u64)> {
    blocks.iter().map(|b| (String::from_utf8_lossy(&b.id).into_owned(), b.size)).collect()
}

async fn read(s: &BlobService, name: &str, range: Option<(u64, Option<u64>)>) -> Vec<u8> {
    let range = range.map(|(start, end)| ByteRange { start, end });
    s.get_blob(A, "box", name, &ANY, range).await.unwrap().served().to_vec()
}

#[tokio::test]
async fn staged_blocks_become_a_blob_read_in_ranges_across_blocks() {
    let (s, _) = memory();
    s.create_container(A, "box", vec![], None).await.unwrap();
    for (id, content) in [("b-1", &b"hello "[..]), ("b-0", b"block "), ("b-2", b"world")] {
        let staged = s.put_block(A, "box", "song", block(id, content)).await.unwrap();
        assert_eq!(staged.content_md5, B64.encode(Md5::digest(content)));
    }
    let listing = s.get_block_list(A, "box", "song", BlockListType::All).unwrap();
    assert!(listing.blob.is_none(), "staged blocks make no blob");
    assert_eq!(ids(&listing.uncommitted.unwrap()), [("b-1".into(), 6), ("b-0".into(), 6), ("b-2".into(), 5)], "in staging order");
    assert_eq!(listing.committed, Some(vec![]));
    assert!(matches!(s.blob_properties(A, "box", "song", &ANY), Err(BlobError::BlobNotFound)));
    assert!(s.list_blobs(A, "box", &ListBlobs::default()).unwrap().items.is_empty());

    let mut list = latest(&["b-1", "b-0", "b-2"]);
    list.settings.content_type = Some("audio/mpeg".into());
    list.metadata = meta(&[("title", "x")]);
    let info = s.put_block_list(A, "box", "song", list, &if_absent()).await.unwrap();
    assert_eq!((info.size, info.settings.content_type(), info.settings.content_md5.as_deref()), (17, "audio/mpeg", None), "no MD5 is computed for a block list");
    assert_eq!(read(&s, "song", None).await, b"hello block world");
    assert_eq!(read(&s, "song", Some((4, Some(13)))).await, b"o block wo", "a range across three blocks");
    assert_eq!(read(&s, "song", Some((12, None))).await, b"world");
    assert_eq!(read(&s, "song", Some((6, Some(6)))).await, b"b");
    let part = s.get_blob(A, "box", "song", &if_match(info.etag), Some(ByteRange { start: 16, end: Some(99) })).await.unwrap();
    assert_eq!((part.served(), part.range), (&b"d"[..], Some((16, 16))));
    assert!(matches!(s.get_blob(A, "box", "song", &ANY, Some(ByteRange { start: 17, end: None })).await, Err(BlobError::InvalidRange { size: 17 })));

    let listing = s.get_block_list(A, "box", "song", BlockListType::Committed).unwrap();
    assert_eq!(ids(&listing.committed.unwrap()), [("b-1".into(), 6), ("b-0".into(), 6), ("b-2".into(), 5)]);
    assert_eq!((listing.uncommitted, listing.blob.map(|b| b.etag)), (None, Some(info.etag)));
    let listed = s.list_blobs(A, "box", &ListBlobs::default()).unwrap();
    assert!(matches!(&listed.items[..], [Listed::Blob(b)] if b.size == 17 && b.metadata == meta(&[("title", "x")])));

    let mut with_md5 = latest(&["b-0"]);
    with_md5.settings.content_md5 = Some("XrY7u+Ae7tCTyyK7j1rNww==".into());
    let again = s.put_block_list(A, "box", "song", with_md5, &if_match(info.etag)).await.unwrap();
    assert_eq!((again.created, again.settings.content_md5.as_deref()), (info.created, Some("XrY7u+Ae7tCTyyK7j1rNww==")), "a given blob MD5 is kept");
    assert_eq!(read(&s, "song", None).await, b"block ");
    let empty = s.put_block_list(A, "box", "empty", latest(&[]), &ANY).await.unwrap();
    assert_eq!((empty.size, read(&s, "empty", None).await), (0, vec![]));
}

#[tokio::test]
async fn block_lists_take_blocks_from_where_they_say() {
    let (s, _) = memory();
    s.create_container(A, "box", vec![], None).await.unwrap();
    s.put_block(A, "box", "b", block("AA", b"a1")).await.unwrap();
    s.put_block(A, "box", "b", block("BB", b"b1")).await.unwrap();
    s.put_block_list(A, "box", "b", latest(&["AA", "BB"]), &ANY).await.unwrap();
    s.put_block(A, "box", "b", block("AA", b"a2")).await.unwrap();
    s.put_block(A, "box", "b", block("CC", b"c2")).await.unwrap();
    s.put_block(A, "box", "b", block("CC", b"c3!")).await.unwrap();
    let listing = s.get_block_list(A, "box", "b", BlockListType::All).unwrap();
    assert_eq!(ids(&listing.committed.unwrap()), [("AA".into(), 2), ("BB".into(), 2)]);
    assert_eq!(ids(&listing.uncommitted.unwrap()), [("AA".into(), 2), ("CC".into(), 3)], "staging an id again replaces its block");

    let wrong = |list: Vec<BlockRef>| NewBlockList { blocks: list, ..Default::default() };
    let id = |t: &str| t.as_bytes().to_vec();
    for bad in [vec![BlockRef::Uncommitted(id("BB"))], vec![BlockRef::Committed(id("CC"))], vec![BlockRef::Latest(id("ZZ"))]] {
        assert!(matches!(s.put_block_list(A, "box", "b", wrong(bad), &ANY).await, Err(BlockError::InvalidBlockList)));
    }
    assert_eq!(read(&s, "b", None).await, b"a1b1", "a refused list changes nothing");
    let list = vec![BlockRef::Committed(id("AA")), BlockRef::Uncommitted(id("AA")), BlockRef::Latest(id("CC")), BlockRef::Latest(id("BB")), BlockRef::Committed(id("AA"))];
    s.put_block_list(A, "box", "b", wrong(list), &ANY).await.unwrap();
    assert_eq!(read(&s, "b", None).await, b"a1a2c3!b1a1");
    let listing = s.get_block_list(A, "box", "b", BlockListType::All).unwrap();
    assert_eq!(ids(&listing.committed.unwrap()).len(), 5);
    assert_eq!(listing.uncommitted, Some(vec![]), "committing discards the uncommitted blocks");
    s.put_block_list(A, "box", "b", latest(&["CC"]), &ANY).await.unwrap();
    assert_eq!(read(&s, "b", None).await, b"c3!");
    assert!(matches!(s.put_block_list(A, "box", "b", latest(&["AA"]), &ANY).await, Err(BlockError::InvalidBlockList)), "blocks left out are gone");
}

#[tokio::test]
async fn block_rules_and_limits() {
    let (s, _) = memory();
    s.create_container(A, "box", vec![], None).await.unwrap();
    assert!(matches!(s.put_block(A, "nope", "b", block("AA", b"x")).await, Err(BlockError::Blob(BlobError::ContainerNotFound))));
    s.put_block(A, "box", "b", block("AA", b"x")).await.unwrap();
    assert!(matches!(s.put_block(A, "box", "b", block("AAA", b"x")).await, Err(BlockError::InvalidBlobOrBlock)), "one blob, one id length");
    s.put_block(A, "box", "other", block("AAA", b"x")).await.unwrap();
    for bad in [vec![], vec![1u8; limits::MAX_BLOCK_ID_BYTES + 1]] {
        let b = NewBlock { id: bad, content: b"x".to_vec(), transactional_md5: None };
        assert!(matches!(s.put_block(A, "box", "fresh", b).await, Err(BlockError::InvalidBlockId)));
    }
    let mut wrong_md5 = block("BB", b"abc");
    wrong_md5.transactional_md5 = Some("1B2M2Y8AsgTpgAmY7PhCfg==".into());
    assert!(matches!(s.put_block(A, "box", "b", wrong_md5).await, Err(BlockError::Blob(BlobError::Md5Mismatch { .. }))));
    let mut right_md5 = block("BB", b"abc");
    right_md5.transactional_md5 = Some(B64.encode(Md5::digest(b"abc")));
    s.put_block(A, "box", "b", right_md5).await.unwrap();
    let too_big = NewBlock { id: b"CC".to_vec(), content: vec![0; limits::MAX_BLOCK_BYTES + 1], transactional_md5: None };
    assert!(matches!(s.put_block(A, "box", "b", too_big).await, Err(BlockError::Blob(BlobError::BlobTooLarge { .. }))));

    let mixed = NewBlockList { blocks: vec![BlockRef::Latest(b"AA".to_vec()), BlockRef::Latest(b"AAA".to_vec())], ..Default::default() };
    assert!(matches!(s.put_block_list(A, "box", "b", mixed, &ANY).await, Err(BlockError::InvalidBlockId)));
    let long = NewBlockList { blocks: vec![BlockRef::Latest(b"AA".to_vec()); limits::MAX_COMMITTED_BLOCKS + 1], ..Default::default() };
    assert!(matches!(s.put_block_list(A, "box", "b", long, &ANY).await, Err(BlockError::BlockListTooLong)));
    let eight_mib = vec![7u8; 8 << 20];
    s.put_block(A, "box", "huge", block("HH", &eight_mib)).await.unwrap();
    let over = (limits::MAX_BLOB_BYTES / (8 << 20)) as usize + 1;
    let huge = NewBlockList { blocks: vec![BlockRef::Latest(b"HH".to_vec()); over], ..Default::default() };
    assert!(matches!(s.put_block_list(A, "box", "huge", huge, &ANY).await, Err(BlockError::Blob(BlobError::BlobTooLarge { .. }))));
    let most = NewBlockList { blocks: vec![BlockRef::Latest(b"HH".to_vec()); over - 1], ..Default::default() };
    assert_eq!(s.put_block_list(A, "box", "huge", most, &ANY).await.unwrap().size, limits::MAX_BLOB_BYTES);
    assert_eq!(read(&s, "huge", Some((limits::MAX_BLOB_BYTES - 3, None))).await, [7, 7, 7], "a block listed many times reads at each place");

    let info = s.put_block_list(A, "box", "b", latest(&["AA"]), &ANY).await.unwrap();
    s.put_block(A, "box", "b", block("AA", b"y")).await.unwrap();
    assert!(matches!(s.put_block_list(A, "box", "b", latest(&["AA"]), &if_absent()).await, Err(BlockError::Blob(BlobError::BlobAlreadyExists))));
    assert!(matches!(s.put_block_list(A, "box", "b", latest(&["AA"]), &if_match(Etag(1))).await, Err(BlockError::Blob(BlobError::ConditionNotMet))));
    s.put_block_list(A, "box", "b", latest(&["AA"]), &if_match(info.etag)).await.unwrap();
    let bad_meta = NewBlockList { metadata: meta(&[("no-dash", "")]), ..latest(&[]) };
    assert!(matches!(s.put_block_list(A, "box", "b", bad_meta, &ANY).await, Err(BlockError::Blob(BlobError::InvalidMetadata))));
    assert!(matches!(s.get_block_list(A, "box", "never", BlockListType::All), Err(BlobError::BlobNotFound)));
}

#[tokio::test]
async fn uncommitted_blocks_are_bounded_in_number() {
    let (s, _) = memory();
    s.create_container(A, "box", vec![], None).await.unwrap();
    for i in 0..limits::MAX_UNCOMMITTED_BLOCKS {
        s.put_block(A, "box", "b", block(&format!("{i:06}"), b"")).await.unwrap();
    }
    assert!(matches!(s.put_block(A, "box", "b", block("x00000", b"")).await, Err(BlockError::UncommittedBlockCountExceedsLimit)));
    s.put_block(A, "box", "b", block("000007", b"again")).await.unwrap();
    s.put_block_list(A, "box", "b", latest(&["000007"]), &ANY).await.unwrap();
    s.put_block(A, "box", "b", block("x00000", b"")).await.unwrap();
}

#[tokio::test]
async fn put_blob_delete_and_a_week_discard_uncommitted_blocks() {
    let (s, clock) = memory();
    s.create_container(A, "box", vec![], None).await.unwrap();
    s.put_block(A, "box", "b", block("AA", b"x")).await.unwrap();
    s.put_block_list(A, "box", "b", latest(&["AA"]), &ANY).await.unwrap();
    s.put_block(A, "box", "b", block("BB", b"y")).await.unwrap();
    s.put_blob(A, "box", "b", blob(b"whole", vec![]), &ANY).await.unwrap();
    let listing = s.get_block_list(A, "box", "b", BlockListType::All).unwrap();
    assert_eq!((listing.committed, listing.uncommitted), (Some(vec![]), Some(vec![])), "a blob written whole has no blocks");
    assert_eq!(listing.blob.unwrap().size, 5);
    s.put_block(A, "box", "b", block("CCC", b"z")).await.unwrap();
    s.delete_blob(A, "box", "b", &ANY).await.unwrap();
    assert!(matches!(s.get_block_list(A, "box", "b", BlockListType::All), Err(BlobError::BlobNotFound)));

    s.put_block(A, "box", "later", block("AA", b"x")).await.unwrap();
    clock.advance(limits::UNCOMMITTED_BLOCK_TTL_MS - 1000);
    s.put_block(A, "box", "later", block("BB", b"x")).await.unwrap();
    clock.advance(limits::UNCOMMITTED_BLOCK_TTL_MS - 1000);
    assert_eq!(ids(&s.get_block_list(A, "box", "later", BlockListType::Uncommitted).unwrap().uncommitted.unwrap()).len(), 2, "each staging restarts the week");
    clock.advance(2000);
    assert!(matches!(s.get_block_list(A, "box", "later", BlockListType::All), Err(BlobError::BlobNotFound)));
    assert!(matches!(s.put_block_list(A, "box", "later", latest(&["AA"]), &ANY).await, Err(BlockError::InvalidBlockList)));
    s.put_block(A, "box", "later", block("CCC", b"new")).await.unwrap();
    assert_eq!(ids(&s.get_block_list(A, "box", "later", BlockListType::Uncommitted).unwrap().uncommitted.unwrap()), [("CCC".into(), 3)]);
}

#[tokio::test]
async fn blocks_survive_a_restart_and_large_ones_stay_out_of_memory() {
    let dir = tempfile::tempdir().unwrap();
    let budget = 1 << 20;
    let big = vec![9u8; 2 << 20];
    {
        let (s, kv) = open_disk(dir.path(), budget);
        s.create_container(A, "box", vec![], None).await.unwrap();
        s.put_block(A, "box", "done", block("01", &big)).await.unwrap();
        assert_eq!(s.bodies.left(), budget, "a block beyond the budget is only on disk");
        s.put_block(A, "box", "done", block("02", b"small")).await.unwrap();
        assert_eq!(s.bodies.left(), budget - 5);
        s.put_block(A, "box", "done", block("03", b"dropped")).await.unwrap();
        s.put_block_list(A, "box", "done", latest(&["02", "01", "02"]), &ANY).await.unwrap();
        assert_eq!(s.bodies.left(), budget - 5, "blocks left out give their memory back");
        s.put_block(A, "box", "pending", block("p1", b"staged ")).await.unwrap();
        s.put_block(A, "box", "pending", block("p2", &big)).await.unwrap();
        s.put_block(A, "box", "replaced", block("r1", b"blocks")).await.unwrap();
        s.put_block_list(A, "box", "replaced", latest(&["r1"]), &ANY).await.unwrap();
        s.put_blob(A, "box", "replaced", blob(b"whole", vec![]), &ANY).await.unwrap();
        kv.close();
    }
    let (s, kv) = open_disk(dir.path(), budget);
    assert_eq!(s.get_blob(A, "box", "done", &ANY, None).await.unwrap().info.size, 2 * 5 + (2 << 20));
    assert_eq!(read(&s, "done", Some((0, Some(6)))).await, b"small\x09\x09");
    assert_eq!(read(&s, "done", Some((5 + (2 << 20) - 1, None))).await, b"\x09small");
    assert_eq!(ids(&s.get_block_list(A, "box", "done", BlockListType::Committed).unwrap().committed.unwrap()), [("02".into(), 5), ("01".into(), 2 << 20), ("02".into(), 5)]);
    let pending = s.get_block_list(A, "box", "pending", BlockListType::All).unwrap();
    assert_eq!(ids(&pending.uncommitted.unwrap()), [("p1".into(), 7), ("p2".into(), 2 << 20)]);
    assert!(pending.blob.is_none());
    assert!(matches!(s.put_block(A, "box", "pending", block("ppp", b"")).await, Err(BlockError::InvalidBlobOrBlock)), "id lengths are remembered");
    s.put_block_list(A, "box", "pending", latest(&["p1", "p2"]), &ANY).await.unwrap();
    assert_eq!(read(&s, "pending", Some((0, Some(8)))).await, b"staged \x09\x09");
    assert_eq!(read(&s, "replaced", None).await, b"whole");
    assert_eq!(s.get_block_list(A, "box", "replaced", BlockListType::All).unwrap().committed, Some(vec![]));
    s.put_block(A, "box", "expiring", block("e1", b"e")).await.unwrap();
    kv.close();

    let clock = Arc::new(ShiftableClock::default());
    clock.advance(limits::UNCOMMITTED_BLOCK_TTL_MS + 1000);
    let (s, kv) = open_disk_at(dir.path(), budget, clock);
    assert!(matches!(s.get_block_list(A, "box", "expiring", BlockListType::All), Err(BlobError::BlobNotFound)));
    assert_eq!(read(&s, "pending", Some(((2 << 20) + 6, None))).await, b"\x09");
    kv.close();
    let (s, kv) = open_disk(dir.path(), budget);
    assert!(matches!(s.get_block_list(A, "box", "expiring", BlockListType::All), Err(BlobError::BlobNotFound)), "expired blocks were deleted at the last start");
    kv.close();
}
