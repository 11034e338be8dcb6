//! How blob state is laid out in the store: keys and value encodings.
//!
//! - `C<account>\0<container>` → container record (JSON)
//! - `B<container id: u64 BE><blob id: u64 BE>m` → blob record (JSON: name, properties,
//!   metadata)
//! - `B<container id: u64 BE><blob id: u64 BE>d` → blob content
//!
//! Every write of a blob's content takes a fresh blob id, so a content key never
//! changes value: a reader that finds it gone knows the blob was replaced. Every blob
//! key of a container shares the prefix `B<container id>`, so deleting a container is
//! one prefix delete. Names live in values, so keys stay short whatever the name.

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

/// A decoded key.
#[derive(Debug, PartialEq, Eq)]
pub enum Key {
    Container,
    BlobRecord { container_id: u64, blob_id: u64 },
    BlobContent { container_id: u64, blob_id: u64 },
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
    }
}
