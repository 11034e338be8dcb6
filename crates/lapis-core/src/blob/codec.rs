//! How blob state is laid out in the store: keys and value encodings.
//!
//! - `C<account>\0<container>` → container record (JSON)
//! - `B<container id: u64 BE><blob id: u64 BE>m` → blob record (JSON: name, properties,
//!   metadata, whether its content is a block list)
//! - `B<container id><blob id>d` → the content of a blob written whole (Put Blob)
//! - `B<container id><blob id>l` → the committed block list of a blob written with Put
//!   Block List: each block's id, sequence number and size ([`encode_list`])
//! - `B<container id><block seq: u64 BE>k` → one block's content, staged or committed
//! - `B<container id><block seq>u` → an uncommitted block: its blob's name, its id,
//!   size and staging time (JSON). Removed when the block is committed or discarded.
//!
//! Every write of a blob's content takes a fresh blob id, and every staged block a
//! fresh sequence number (from the same sequence), so a content key never changes
//! value: a reader that finds it gone knows the blob was replaced. Committing a block
//! moves no bytes: the new list names the block's content key. Every blob key of a
//! container shares the prefix `B<container id>`, so deleting a container is one
//! prefix delete. Names live in values, so keys stay short whatever the name.

use serde::{Deserialize, Serialize};

use super::model::{ContentSettings, Metadata};
use crate::clock::Millis;

const BLOB_KEY_LEN: usize = 18;

pub fn container_key(account: &str, container: &str) -> Vec<u8> {
    crate::storage_rules::named_key(b'C', account, container)
}

pub fn blobs_prefix(container_id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(BLOB_KEY_LEN);
    k.push(b'B');
    k.extend_from_slice(&container_id.to_be_bytes());
    k
}

fn blob_key(container_id: u64, blob_id: u64, kind: u8) -> Vec<u8> {
    let mut k = blobs_prefix(container_id);
    k.extend_from_slice(&blob_id.to_be_bytes());
    k.push(kind);
    k
}

pub fn record_key(container_id: u64, blob_id: u64) -> Vec<u8> {
    blob_key(container_id, blob_id, b'm')
}

pub fn content_key(container_id: u64, blob_id: u64) -> Vec<u8> {
    blob_key(container_id, blob_id, b'd')
}

pub fn list_key(container_id: u64, blob_id: u64) -> Vec<u8> {
    blob_key(container_id, blob_id, b'l')
}

pub fn block_key(container_id: u64, seq: u64) -> Vec<u8> {
    blob_key(container_id, seq, b'k')
}

pub fn staged_key(container_id: u64, seq: u64) -> Vec<u8> {
    blob_key(container_id, seq, b'u')
}

/// A decoded key.
#[derive(Debug, PartialEq, Eq)]
pub enum Key {
    Container,
    BlobRecord { container_id: u64, blob_id: u64 },
    BlobContent { container_id: u64, blob_id: u64 },
    BlockList { container_id: u64, blob_id: u64 },
    Block { container_id: u64, seq: u64 },
    Staged { container_id: u64, seq: u64 },
    BlobsOf { container_id: u64 },
    Unknown,
}

fn u64_at(key: &[u8], at: usize) -> Option<u64> {
    key.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes)
}

pub fn parse_key(key: &[u8]) -> Key {
    match (key.first(), key.len()) {
        (Some(b'C'), _) => Key::Container,
        (Some(b'B'), 9) => u64_at(key, 1).map_or(Key::Unknown, |container_id| Key::BlobsOf { container_id }),
        (Some(b'B'), BLOB_KEY_LEN) => match (u64_at(key, 1), u64_at(key, 9), key[17]) {
            (Some(container_id), Some(blob_id), b'm') => Key::BlobRecord { container_id, blob_id },
            (Some(container_id), Some(blob_id), b'd') => Key::BlobContent { container_id, blob_id },
            (Some(container_id), Some(blob_id), b'l') => Key::BlockList { container_id, blob_id },
            (Some(container_id), Some(seq), b'k') => Key::Block { container_id, seq },
            (Some(container_id), Some(seq), b'u') => Key::Staged { container_id, seq },
            _ => Key::Unknown,
        },
        _ => Key::Unknown,
    }
}

/// The durable description of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: u64,
    pub account: String,
    pub name: String,
    pub metadata: Metadata,
    pub etag: u64,
    pub last_modified: Millis,
    /// `container` or `blob` when anonymous reads were asked for (recorded, not served).
    pub public_access: Option<String>,
}

/// The durable description of a blob; its content is under [`content_key`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRecord {
    pub id: u64,
    pub container_id: u64,
    pub name: String,
    pub size: u64,
    pub settings: ContentSettings,
    pub metadata: Metadata,
    pub etag: u64,
    pub created: Millis,
    pub last_modified: Millis,
    /// Whether the content is a committed block list (under [`list_key`]) rather than
    /// one value (under [`content_key`]).
    #[serde(default, skip_serializing_if = "is_false")]
    pub blocks: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The durable description of an uncommitted block; its content is under
/// [`block_key`] with the same sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedRecord {
    /// The blob the block was staged for.
    pub name: String,
    /// The block id, base64.
    pub id: String,
    pub size: u64,
    pub staged: Millis,
}

/// One entry of a committed block list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    pub id: Vec<u8>,
    pub seq: u64,
    pub size: u64,
}

const LIST_VERSION: u8 = 1;

/// `[version u8][count u32 LE]` then per block `[id len u8][id][seq u64 LE][size u64 LE]`:
/// compact, since a list may hold 50,000 blocks.
pub fn encode_list<'a>(entries: impl ExactSizeIterator<Item = (&'a [u8], u64, u64)>) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + entries.len() * 33);
    out.push(LIST_VERSION);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (id, seq, size) in entries {
        // Ids are at most 64 bytes (checked before they get here); a longer one would
        // not decode, so it is cut rather than written wrong.
        let id = &id[..id.len().min(u8::MAX as usize)];
        out.push(id.len() as u8);
        out.extend_from_slice(id);
        out.extend_from_slice(&seq.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
    }
    out
}

fn le_u64(v: &[u8], at: usize) -> Option<u64> {
    v.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes)
}

pub fn decode_list(v: &[u8]) -> Option<Vec<ListEntry>> {
    let (&version, rest) = v.split_first()?;
    if version != LIST_VERSION {
        return None;
    }
    let count = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let mut at = 4;
    // Each entry takes at least 17 bytes, so a corrupt count cannot reserve much.
    let mut entries = Vec::with_capacity(count.min(rest.len() / 17));
    for _ in 0..count {
        let len = *rest.get(at)? as usize;
        let id = rest.get(at + 1..at + 1 + len)?.to_vec();
        at += 1 + len;
        let seq = le_u64(rest, at)?;
        let size = le_u64(rest, at + 8)?;
        at += 16;
        entries.push(ListEntry { id, seq, size });
    }
    (at == rest.len()).then_some(entries)
}

pub fn encode_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("blob records always serialize")
}

pub fn decode_container(v: &[u8]) -> Option<ContainerRecord> {
    serde_json::from_slice(v).ok()
}

pub fn decode_blob(v: &[u8]) -> Option<BlobRecord> {
    serde_json::from_slice(v).ok()
}

pub fn decode_staged(v: &[u8]) -> Option<StagedRecord> {
    serde_json::from_slice(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_back_and_share_the_container_prefix() {
        assert_eq!(parse_key(&container_key("acct", "c1")), Key::Container);
        assert_eq!(parse_key(&record_key(3, 9)), Key::BlobRecord { container_id: 3, blob_id: 9 });
        assert_eq!(parse_key(&content_key(3, 9)), Key::BlobContent { container_id: 3, blob_id: 9 });
        assert_eq!(parse_key(&blobs_prefix(3)), Key::BlobsOf { container_id: 3 });
        assert!(record_key(3, 9).starts_with(&blobs_prefix(3)) && content_key(3, 9).starts_with(&blobs_prefix(3)));
        assert_eq!(parse_key(b"Bshort"), Key::Unknown);
        assert_eq!(parse_key(b""), Key::Unknown);
        assert_eq!(parse_key(&list_key(3, 9)), Key::BlockList { container_id: 3, blob_id: 9 });
        assert_eq!(parse_key(&block_key(3, 10)), Key::Block { container_id: 3, seq: 10 });
        assert_eq!(parse_key(&staged_key(3, 10)), Key::Staged { container_id: 3, seq: 10 });
        assert!([list_key(3, 9), block_key(3, 10), staged_key(3, 10)].iter().all(|k| k.starts_with(&blobs_prefix(3))));
    }

    #[test]
    fn block_lists_round_trip_and_refuse_damage() {
        let entries = [(&b"id-1"[..], 7u64, 4u64 << 20), (&b"id-2"[..], 9, 0), (&b"id-1"[..], 7, 4 << 20)];
        let encoded = encode_list(entries.iter().copied());
        let decoded = decode_list(&encoded).unwrap();
        let back: Vec<_> = decoded.iter().map(|e| (e.id.as_slice(), e.seq, e.size)).collect();
        assert_eq!(back, entries);
        assert_eq!(decode_list(&encode_list(std::iter::empty())).unwrap(), vec![]);
        for cut in 0..encoded.len() {
            assert_eq!(decode_list(&encoded[..cut]), None, "cut at {cut}");
        }
        let mut longer = encoded.clone();
        longer.push(0);
        assert_eq!(decode_list(&longer), None);
    }

    #[test]
    fn records_written_before_block_lists_still_decode() {
        let old = br#"{"id":5,"container_id":1,"name":"n","size":0,"settings":{"content_type":null,"content_encoding":null,"content_language":null,"cache_control":null,"content_disposition":null,"content_md5":null},"metadata":[],"etag":1,"created":0,"last_modified":0}"#;
        let record = decode_blob(old).unwrap();
        assert!(!record.blocks);
        assert!(!String::from_utf8(encode_json(&record)).unwrap().contains("blocks"), "whole blobs are written as before");
    }
}
