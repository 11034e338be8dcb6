//! The bounds of the Blob subset and the checks that enforce them.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use md5::{Digest, Md5};

use super::error::{BlobError, BlobResult};
use super::model::Metadata;
use crate::storage_rules::{self, MetadataError, NameError};

/// Largest request body Lapis reads for a write that carries content (Put Blob and
/// Put Block): the block size Azure allowed before version 2019-12-12. One request
/// never holds more than this (and a few copies of it while it is committed).
pub const MAX_CONTENT_BODY_BYTES: usize = 100 << 20;
/// Largest blob Put Blob stores in one request (Azure allows 5000 MiB; Lapis keeps a
/// single write within one request body).
pub const MAX_PUT_BLOB_BYTES: usize = MAX_CONTENT_BODY_BYTES;
/// Largest block Put Block accepts.
pub const MAX_BLOCK_BYTES: usize = MAX_CONTENT_BODY_BYTES;
/// Largest blob, whichever way it is written: Lapis's documented bound (Azure's is
/// about 190 TiB). A Put Block List whose blocks add up to more is refused.
pub const MAX_BLOB_BYTES: u64 = 256 << 20;
/// Most blocks a committed block list may hold, as in Azure.
pub const MAX_COMMITTED_BLOCKS: usize = 50_000;
/// Most uncommitted blocks one blob may have at a time, as in Azure.
pub const MAX_UNCOMMITTED_BLOCKS: usize = 100_000;
/// Longest block id, in bytes before base64, as in Azure.
pub const MAX_BLOCK_ID_BYTES: usize = 64;
/// Uncommitted blocks are discarded when no block was staged for their blob for this
/// long, as Azure collects them after a week.
pub const UNCOMMITTED_BLOCK_TTL_MS: i64 = 7 * 24 * 3600 * 1000;
/// Longest blob name, in characters, as Azure allows.
pub const MAX_BLOB_NAME_CHARS: usize = 1024;
/// List pages hold at most this many entries; larger `maxresults` are served this
/// many, as Azure does.
pub const MAX_LIST_RESULTS: i64 = 5000;
/// System containers, whose names break the ordinary rules.
const SYSTEM_CONTAINERS: [&str; 3] = ["$root", "$logs", "$web"];

/// Container names follow the queue-name rules; the system containers are allowed.
pub fn check_container_name(name: &str) -> BlobResult<()> {
    if SYSTEM_CONTAINERS.contains(&name) {
        return Ok(());
    }
    storage_rules::check_resource_name(name).map_err(|e| match e {
        NameError::InvalidCharacters => BlobError::InvalidResourceName,
        NameError::Length => BlobError::ResourceNameLength,
    })
}

/// Blob names: 1 to 1024 characters of any kind.
pub fn check_blob_name(name: &str) -> BlobResult<()> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_BLOB_NAME_CHARS {
        return Err(BlobError::ResourceNameLength);
    }
    Ok(())
}

pub fn check_metadata(metadata: &Metadata) -> BlobResult<()> {
    storage_rules::check_metadata(metadata).map_err(|e| match e {
        MetadataError::InvalidName => BlobError::InvalidMetadata,
        MetadataError::TooLarge => BlobError::MetadataTooLarge,
    })
}

/// `maxresults`: at least 1; more than [`MAX_LIST_RESULTS`] is served as that many.
pub fn page_size(max_results: Option<i64>) -> BlobResult<usize> {
    let max = max_results.unwrap_or(MAX_LIST_RESULTS);
    if max < 1 {
        return Err(BlobError::OutOfRange { name: "maxresults", value: max, min: 1, max: MAX_LIST_RESULTS });
    }
    Ok(max.min(MAX_LIST_RESULTS) as usize)
}

/// Why a block id is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadBlockId {
    NotBase64,
    /// Empty, or longer than [`MAX_BLOCK_ID_BYTES`] once decoded.
    Length,
}

/// A block id as clients send it (standard base64) decoded to its bytes.
pub fn decode_block_id(text: &str) -> Result<Vec<u8>, BadBlockId> {
    let bytes = B64.decode(text.trim()).map_err(|_| BadBlockId::NotBase64)?;
    check_block_id(&bytes)?;
    Ok(bytes)
}

/// Block ids and MD5s as the wire carries them: standard base64.
pub fn encode_base64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// A decoded block id: 1 to [`MAX_BLOCK_ID_BYTES`] bytes.
pub fn check_block_id(id: &[u8]) -> Result<(), BadBlockId> {
    match id.len() {
        1..=MAX_BLOCK_ID_BYTES => Ok(()),
        _ => Err(BadBlockId::Length),
    }
}

/// A base64 MD5 header value: exactly 16 bytes.
pub fn decode_md5(text: &str) -> BlobResult<[u8; 16]> {
    B64.decode(text.trim()).ok().and_then(|v| <[u8; 16]>::try_from(v.as_slice()).ok()).ok_or(BlobError::InvalidMd5)
}

/// The MD5 of `content`, which must match `transactional` (a request's `Content-MD5`)
/// when one is given.
pub fn content_md5(content: &[u8], transactional: Option<&str>) -> BlobResult<[u8; 16]> {
    let computed: [u8; 16] = Md5::digest(content).into();
    if let Some(given) = transactional {
        if decode_md5(given)? != computed {
            return Err(BlobError::Md5Mismatch { given: given.to_string(), computed: B64.encode(computed) });
        }
    }
    Ok(computed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_container_name("checkpoints-1").is_ok());
        assert!(check_container_name("$root").is_ok());
        assert!(matches!(check_container_name("Upper"), Err(BlobError::InvalidResourceName)));
        assert!(matches!(check_container_name("a--b"), Err(BlobError::InvalidResourceName)));
        assert!(matches!(check_container_name("ab"), Err(BlobError::ResourceNameLength)));
        assert!(check_blob_name("ns.servicebus.windows.net/hub/$default/ownership/0").is_ok());
        assert!(check_blob_name(&"é".repeat(MAX_BLOB_NAME_CHARS)).is_ok());
        assert!(matches!(check_blob_name(&"a".repeat(MAX_BLOB_NAME_CHARS + 1)), Err(BlobError::ResourceNameLength)));
        assert!(matches!(check_blob_name(""), Err(BlobError::ResourceNameLength)));
    }

    #[test]
    fn metadata_and_pages_and_md5() {
        assert!(matches!(check_metadata(&vec![("bad-name".into(), "v".into())]), Err(BlobError::InvalidMetadata)));
        assert!(matches!(check_metadata(&vec![("big".into(), "v".repeat(9000))]), Err(BlobError::MetadataTooLarge)));
        assert_eq!(page_size(None).unwrap(), 5000);
        assert_eq!(page_size(Some(7)).unwrap(), 7);
        assert_eq!(page_size(Some(9999)).unwrap(), 5000);
        assert!(matches!(page_size(Some(0)), Err(BlobError::OutOfRange { .. })));
        assert!(decode_md5("1B2M2Y8AsgTpgAmY7PhCfg==").is_ok());
        assert!(matches!(decode_md5("AAAA"), Err(BlobError::InvalidMd5)));
        assert!(matches!(decode_md5("not base64!"), Err(BlobError::InvalidMd5)));
    }

    #[test]
    fn block_ids() {
        assert_eq!(decode_block_id("YWJj").unwrap(), b"abc");
        assert_eq!(decode_block_id(&B64.encode([7u8; MAX_BLOCK_ID_BYTES])).unwrap(), vec![7u8; MAX_BLOCK_ID_BYTES]);
        assert_eq!(decode_block_id(&B64.encode([7u8; MAX_BLOCK_ID_BYTES + 1])), Err(BadBlockId::Length));
        assert_eq!(decode_block_id(""), Err(BadBlockId::Length));
        for bad in ["not base64!", "YWJ", "AAAA-A==", "YW Jj"] {
            assert_eq!(decode_block_id(bad), Err(BadBlockId::NotBase64), "{bad}");
        }
    }
}
