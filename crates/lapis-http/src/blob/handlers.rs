//! One arm per Blob operation: read parameters and headers, call the core, encode.

use bytes::Bytes;
use hyper::{Method, StatusCode};
use lapis_core::blob::{BlobService, ListBlobs, NewBlob};

use super::headers::{self, conditions, stamped};
use super::ops::{BlobOp, Target};
use super::{blocks, xml};
use crate::server::HttpResponse;
use crate::storage::listing::ListEcho;
use crate::storage::response::{Reply, ResponseContext};
use crate::storage::{StorageError, StorageRequest};

/// What List Blobs may be asked to include. Lapis keeps no snapshots, versions, tags or
/// deleted blobs, and lists no blob that has uncommitted blocks only, so all but
/// metadata add nothing.
const LIST_INCLUDES: [&str; 11] = [
    "metadata",
    "snapshots",
    "uncommittedblobs",
    "copy",
    "deleted",
    "tags",
    "versions",
    "deletedwithversions",
    "immutabilitypolicy",
    "legalhold",
    "permissions",
];

fn check_includes(req: &StorageRequest) -> Result<(), StorageError> {
    let Some(include) = req.param("include") else { return Ok(()) };
    match include.split(',').map(str::trim).find(|i| !LIST_INCLUDES.contains(i)) {
        Some(bad) => Err(StorageError::invalid_query_parameter("include", bad, "not a List Blobs include value")),
        None => Ok(()),
    }
}

pub async fn run(service: &BlobService, op: BlobOp, target: &Target, req: &StorageRequest, ctx: &ResponseContext) -> Result<HttpResponse, StorageError> {
    let account = req.account.as_str();
    let container = target.container.as_deref().unwrap_or("");
    let blob = target.blob.as_deref().unwrap_or("");
    let reply = match op {
        BlobOp::ListContainers => {
            let echo = ListEcho::from_request(req)?;
            let page = service.list_containers(account, echo.prefix.unwrap_or(""), echo.marker, echo.max_results)?;
            Reply::status(StatusCode::OK).xml(xml::container_list(&page, &echo))
        }
        BlobOp::CreateContainer => {
            let info = service.create_container(account, container, req.metadata(), headers::public_access(req)?).await?;
            stamped(Reply::status(StatusCode::CREATED), info.etag, info.last_modified)
        }
        BlobOp::DeleteContainer => {
            service.delete_container(account, container, &conditions(req)?).await?;
            Reply::status(StatusCode::ACCEPTED)
        }
        BlobOp::GetContainerProperties => {
            headers::container_properties(Reply::status(StatusCode::OK), req, &service.container_properties(account, container)?)
        }
        BlobOp::SetContainerMetadata => {
            let info = service.set_container_metadata(account, container, req.metadata(), &conditions(req)?).await?;
            stamped(Reply::status(StatusCode::OK), info.etag, info.last_modified)
        }
        BlobOp::ListBlobs => {
            check_includes(req)?;
            let echo = ListEcho::from_request(req)?;
            let delimiter = req.param("delimiter");
            let query = ListBlobs { prefix: echo.prefix.unwrap_or(""), delimiter, marker: echo.marker, max_results: echo.max_results };
            let page = service.list_blobs(account, container, &query)?;
            Reply::status(StatusCode::OK).xml(xml::blob_list(&page, &echo, container, delimiter))
        }
        BlobOp::PutBlob => {
            headers::check_blob_type(req)?;
            headers::refuse_copy(req)?;
            let new = NewBlob {
                content: req.body.to_vec(),
                settings: headers::content_settings(req)?,
                metadata: req.metadata(),
                transactional_md5: headers::transactional_md5(req)?,
            };
            let info = service.put_blob(account, container, blob, new, &conditions(req)?).await?;
            stamped(Reply::status(StatusCode::CREATED), info.etag, info.last_modified)
                .maybe_header("content-md5", info.settings.content_md5)
                .header("x-ms-request-server-encrypted", "true")
        }
        BlobOp::GetBlob => {
            let got = service.get_blob(account, container, blob, &conditions(req)?, headers::range(req)?).await?;
            let md5 = got.info.settings.content_md5.clone();
            let reply = match got.range {
                Some((start, end)) => Reply::status(StatusCode::PARTIAL_CONTENT)
                    .header("content-range", format!("bytes {start}-{end}/{}", got.info.size))
                    .maybe_header("x-ms-blob-content-md5", md5),
                None => Reply::status(StatusCode::OK).maybe_header("content-md5", md5),
            };
            // The answer carries the bytes read, without copying them.
            let span = got.served_span();
            let body = Bytes::from_owner(got.content).slice(span);
            headers::blob_properties(reply.body(body, headers::content_type(req, &got.info)), req, &got.info)
        }
        BlobOp::GetBlobProperties => {
            let info = service.blob_properties(account, container, blob, &conditions(req)?)?;
            let reply = Reply::status(StatusCode::OK);
            // HEAD announces the length a GET of the blob would send; Get Blob Metadata
            // (GET ?comp=metadata) sends no body and says so.
            let reply = if req.method == Method::HEAD { reply.announce_length(info.size) } else { reply };
            let reply = reply
                .header("content-type", headers::content_type(req, &info))
                .maybe_header("content-md5", info.settings.content_md5.clone())
                .header("x-ms-access-tier", "Hot")
                .header("x-ms-access-tier-inferred", "true");
            headers::blob_properties(reply, req, &info)
        }
        BlobOp::SetBlobMetadata => {
            let info = service.set_blob_metadata(account, container, blob, req.metadata(), &conditions(req)?).await?;
            stamped(Reply::status(StatusCode::OK), info.etag, info.last_modified).header("x-ms-request-server-encrypted", "true")
        }
        BlobOp::DeleteBlob => {
            service.delete_blob(account, container, blob, &conditions(req)?).await?;
            Reply::status(StatusCode::ACCEPTED)
        }
        BlobOp::PutBlock => blocks::put_block(service, req, container, blob).await?,
        BlobOp::PutBlockList => blocks::put_block_list(service, req, container, blob).await?,
        BlobOp::GetBlockList => blocks::get_block_list(service, req, container, blob)?,
    };
    Ok(reply.finish(ctx))
}
