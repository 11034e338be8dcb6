//! The Blob headers of requests and responses: conditions, content settings and
//! ranges read from a request; properties and metadata written to an answer.

use hyper::StatusCode;
use lapis_core::blob::{BlobInfo, ByteRange, Conditions, ContainerInfo, ContentSettings, Etag};
use lapis_core::clock::Millis;
use lapis_core::time_fmt::{self, rfc1123};

use crate::storage::response::Reply;
use crate::storage::{StorageError, StorageRequest};

/// A header's value; present but not visible ASCII is a 400.
fn header<'a>(req: &'a StorageRequest, name: &str) -> Result<Option<&'a str>, StorageError> {
    match req.headers.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(Some).map_err(|_| StorageError::invalid_header(name, &String::from_utf8_lossy(v.as_bytes()))),
    }
}

fn date(req: &StorageRequest, name: &str) -> Result<Option<Millis>, StorageError> {
    match header(req, name)? {
        None => Ok(None),
        Some(v) => time_fmt::parse_rfc1123(v).map(Some).ok_or_else(|| StorageError::invalid_header(name, v)),
    }
}

/// `If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since`.
pub fn conditions(req: &StorageRequest) -> Result<Conditions, StorageError> {
    Ok(Conditions {
        if_match: header(req, "if-match")?.map(str::to_string),
        if_none_match: header(req, "if-none-match")?.map(str::to_string),
        if_modified_since: date(req, "if-modified-since")?,
        if_unmodified_since: date(req, "if-unmodified-since")?,
    })
}

/// The properties Put Blob stores: each `x-ms-blob-*` header, or else the standard
/// header that describes the request body (which is the blob).
pub fn content_settings(req: &StorageRequest) -> Result<ContentSettings, StorageError> {
    settings(req, true)
}

/// The properties Put Block List stores: the `x-ms-blob-*` headers only, since the
/// standard ones describe the block list sent.
pub fn blob_settings(req: &StorageRequest) -> Result<ContentSettings, StorageError> {
    settings(req, false)
}

fn settings(req: &StorageRequest, body_is_blob: bool) -> Result<ContentSettings, StorageError> {
    let pick = |blob_header: &str, plain: Option<&str>| -> Result<Option<String>, StorageError> {
        let value = match (header(req, blob_header)?, plain.filter(|_| body_is_blob)) {
            (Some(v), _) => Some(v),
            (None, Some(p)) => header(req, p)?,
            (None, None) => None,
        };
        Ok(value.map(str::trim).filter(|v| !v.is_empty()).map(str::to_string))
    };
    Ok(ContentSettings {
        content_type: pick("x-ms-blob-content-type", Some("content-type"))?,
        content_encoding: pick("x-ms-blob-content-encoding", Some("content-encoding"))?,
        content_language: pick("x-ms-blob-content-language", Some("content-language"))?,
        cache_control: pick("x-ms-blob-cache-control", Some("cache-control"))?,
        content_disposition: pick("x-ms-blob-content-disposition", None)?,
        content_md5: pick("x-ms-blob-content-md5", None)?,
    })
}

/// `Content-MD5`: what the request body must hash to.
pub fn transactional_md5(req: &StorageRequest) -> Result<Option<String>, StorageError> {
    Ok(header(req, "content-md5")?.map(str::to_string))
}

fn parse_range(text: &str) -> Option<ByteRange> {
    let (start, end) = text.trim().strip_prefix("bytes=")?.split_once('-')?;
    let start = start.trim().parse().ok()?;
    let end = match end.trim() {
        "" => None,
        e => Some(e.parse().ok()?),
    };
    Some(ByteRange { start, end })
}

/// `x-ms-range` (which must be well formed) or else `Range` (ignored when it is not,
/// as HTTP says).
pub fn range(req: &StorageRequest) -> Result<Option<ByteRange>, StorageError> {
    if let Some(v) = header(req, "x-ms-range")? {
        return parse_range(v).map(Some).ok_or_else(|| StorageError::invalid_header("x-ms-range", v));
    }
    Ok(header(req, "range")?.and_then(parse_range))
}

/// `x-ms-blob-public-access`: `container`, `blob`, or absent.
pub fn public_access(req: &StorageRequest) -> Result<Option<String>, StorageError> {
    match header(req, "x-ms-blob-public-access")? {
        None => Ok(None),
        Some(v @ ("container" | "blob")) => Ok(Some(v.to_string())),
        Some(v) => Err(StorageError::invalid_header("x-ms-blob-public-access", v)),
    }
}

/// Put Blob serves block blobs only.
pub fn check_blob_type(req: &StorageRequest) -> Result<(), StorageError> {
    match header(req, "x-ms-blob-type")? {
        None => Err(StorageError::missing_header("x-ms-blob-type")),
        Some("BlockBlob") => Ok(()),
        Some(v) => Err(StorageError::invalid_header("x-ms-blob-type", v).with("Reason", "Lapis serves block blobs only.")),
    }
}

/// Put Blob that copies from another blob (`x-ms-copy-source`) is not served.
pub fn refuse_copy(req: &StorageRequest) -> Result<(), StorageError> {
    match req.headers.contains_key("x-ms-copy-source") {
        true => Err(StorageError::new(StatusCode::BAD_REQUEST, "UnsupportedHeader", "One of the HTTP headers specified in the request is not supported.")
            .with("HeaderName", "x-ms-copy-source")),
        false => Ok(()),
    }
}

/// `ETag` and `Last-Modified`, which every write answers with.
pub fn stamped(reply: Reply, etag: Etag, last_modified: Millis) -> Reply {
    reply.header("etag", etag.quoted()).header("last-modified", rfc1123(last_modified))
}

/// The response header overrides a blob SAS carries (`rsct` and the like).
fn override_of<'a>(req: &'a StorageRequest, param: &str) -> Option<&'a str> {
    req.param("sig").and(req.param(param))
}

/// The blob's content type, or the one its SAS asks to answer with.
pub fn content_type(req: &StorageRequest, info: &BlobInfo) -> String {
    override_of(req, "rsct").unwrap_or(info.settings.content_type()).to_string()
}

/// The headers that describe a blob on Get Blob and Get Blob Properties, but for
/// `Content-Type` (the body's, or given by the caller) and the MD5.
pub fn blob_properties(reply: Reply, req: &StorageRequest, info: &BlobInfo) -> Reply {
    let s = &info.settings;
    let mut reply = stamped(reply, info.etag, info.last_modified)
        .header("x-ms-creation-time", rfc1123(info.created))
        .header("x-ms-blob-type", "BlockBlob")
        .header("x-ms-lease-status", "unlocked")
        .header("x-ms-lease-state", "available")
        .header("accept-ranges", "bytes")
        .header("x-ms-server-encrypted", "true");
    let optional = [
        ("content-encoding", "rsce", &s.content_encoding),
        ("content-language", "rscl", &s.content_language),
        ("cache-control", "rscc", &s.cache_control),
        ("content-disposition", "rscd", &s.content_disposition),
    ];
    for (name, param, value) in optional {
        if let Some(v) = override_of(req, param).or(value.as_deref()) {
            reply = reply.header(name, v.to_string());
        }
    }
    reply.metadata(req, &info.metadata)
}

/// The headers of Get Container Properties.
pub fn container_properties(reply: Reply, req: &StorageRequest, info: &ContainerInfo) -> Reply {
    let mut reply = stamped(reply, info.etag, info.last_modified)
        .header("x-ms-lease-status", "unlocked")
        .header("x-ms-lease-state", "available")
        .header("x-ms-has-immutability-policy", "false")
        .header("x-ms-has-legal-hold", "false")
        .header("x-ms-default-encryption-scope", "$account-encryption-key")
        .header("x-ms-deny-encryption-scope-override", "false");
    if let Some(access) = &info.public_access {
        reply = reply.header("x-ms-blob-public-access", access.clone());
    }
    reply.metadata(req, &info.metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-33554431"), Some(ByteRange { start: 0, end: Some(33_554_431) }));
        assert_eq!(parse_range("bytes=5-"), Some(ByteRange { start: 5, end: None }));
        for bad in ["bytes=-5", "bytes=a-b", "5-6", "bytes=1"] {
            assert_eq!(parse_range(bad), None, "{bad}");
        }
    }
}
