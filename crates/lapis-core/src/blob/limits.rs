//! The bounds of the Blob subset and the checks that enforce them.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::error::{BlobError, BlobResult};
use super::model::Metadata;
use crate::storage_rules::{self, MetadataError, NameError};

/// Largest blob content Put Blob accepts. Checkpoint and ownership blobs are empty;
/// a few MiB leaves room for other small state without letting one request hold
/// much memory.
pub const MAX_BLOB_BYTES: usize = 4 << 20;
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

/// A base64 MD5 header value: exactly 16 bytes.
pub fn decode_md5(text: &str) -> BlobResult<[u8; 16]> {
    B64.decode(text.trim()).ok().and_then(|v| <[u8; 16]>::try_from(v.as_slice()).ok()).ok_or(BlobError::InvalidMd5)
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
}
