//! Put Block, Put Block List and Get Block List on the wire: block ids in the query
//! and in the `<BlockList>` document, the headers each answers with, and the Azure
//! errors of the block rules.

use hyper::StatusCode;
use lapis_core::blob::limits::{self, BadBlockId};
use lapis_core::blob::{BlobService, BlockError, BlockListType, BlockListing, BlockRef, ListedBlock, NewBlock, NewBlockList};

use super::headers::{self, conditions, stamped};
use crate::storage::response::Reply;
use crate::storage::{StorageError, StorageRequest};
use crate::xml;

impl From<BlockError> for StorageError {
    fn from(e: BlockError) -> Self {
        let message = e.to_string();
        let bad_request = |code| StorageError::new(StatusCode::BAD_REQUEST, code, message.clone());
        match e {
            BlockError::Blob(e) => e.into(),
            BlockError::InvalidBlobOrBlock => bad_request("InvalidBlobOrBlock"),
            BlockError::InvalidBlockId => bad_request("InvalidBlockId"),
            BlockError::InvalidBlockList => bad_request("InvalidBlockList"),
            BlockError::BlockListTooLong => bad_request("BlockListTooLong"),
            BlockError::UncommittedBlockCountExceedsLimit => StorageError::new(StatusCode::CONFLICT, "BlockCountExceedsLimit", message),
        }
    }
}

/// `blockid`: required, base64 of 1 to 64 bytes.
fn query_block_id(req: &StorageRequest) -> Result<Vec<u8>, StorageError> {
    let Some(text) = req.param("blockid") else {
        return Err(StorageError::new(StatusCode::BAD_REQUEST, "MissingRequiredQueryParameter", "A query parameter that's mandatory for this request is not specified.")
            .with("QueryParameterName", "blockid"));
    };
    limits::decode_block_id(text).map_err(|why| {
        let reason = match why {
            BadBlockId::NotBase64 => "Not a valid base64 string.",
            BadBlockId::Length => "The block id must be 1 to 64 bytes before it is encoded.",
        };
        StorageError::invalid_query_parameter("blockid", text, reason)
    })
}

/// The entries of a `<BlockList>` document, in document order.
fn parse_block_list(body: &str) -> Result<Vec<BlockRef>, StorageError> {
    let doc = xml::parse(body, "BlockList").map_err(StorageError::invalid_xml)?;
    let mut blocks = Vec::new();
    for node in doc.root_element().children().filter(|n| n.is_element()) {
        let text: String = node.children().filter_map(|t| t.text()).collect();
        let entry: fn(Vec<u8>) -> BlockRef = match node.tag_name().name() {
            "Committed" => BlockRef::Committed,
            "Uncommitted" => BlockRef::Uncommitted,
            "Latest" => BlockRef::Latest,
            other => return Err(StorageError::invalid_xml(format!("<{other}> is not a block list entry"))),
        };
        let id = limits::decode_block_id(&text).map_err(|_| StorageError::from(BlockError::InvalidBlockId))?;
        blocks.push(entry(id));
    }
    Ok(blocks)
}

pub async fn put_block(service: &BlobService, req: &StorageRequest, container: &str, blob: &str) -> Result<Reply, StorageError> {
    // Put Block From URL names its source in a header and sends no body.
    headers::refuse_copy(req)?;
    let block = NewBlock { id: query_block_id(req)?, content: req.body.to_vec(), transactional_md5: headers::transactional_md5(req)? };
    let staged = service.put_block(&req.account, container, blob, block).await?;
    Ok(Reply::status(StatusCode::CREATED).header("content-md5", staged.content_md5).header("x-ms-request-server-encrypted", "true"))
}

pub async fn put_block_list(service: &BlobService, req: &StorageRequest, container: &str, blob: &str) -> Result<Reply, StorageError> {
    let md5 = limits::content_md5(&req.body, headers::transactional_md5(req)?.as_deref())?;
    let blocks = parse_block_list(req.body_text()?)?;
    let list = NewBlockList { blocks, settings: headers::blob_settings(req)?, metadata: req.metadata() };
    let info = service.put_block_list(&req.account, container, blob, list, &conditions(req)?).await?;
    Ok(stamped(Reply::status(StatusCode::CREATED), info.etag, info.last_modified)
        .header("content-md5", limits::encode_base64(&md5))
        .header("x-ms-request-server-encrypted", "true"))
}

pub fn get_block_list(service: &BlobService, req: &StorageRequest, container: &str, blob: &str) -> Result<Reply, StorageError> {
    let which = match req.param("blocklisttype").map(str::to_ascii_lowercase).as_deref() {
        None | Some("committed") => BlockListType::Committed,
        Some("uncommitted") => BlockListType::Uncommitted,
        Some("all") => BlockListType::All,
        Some(other) => return Err(StorageError::invalid_query_parameter("blocklisttype", other, "must be committed, uncommitted or all")),
    };
    let listing = service.get_block_list(&req.account, container, blob, which)?;
    let reply = match &listing.blob {
        Some(info) => stamped(Reply::status(StatusCode::OK), info.etag, info.last_modified),
        None => Reply::status(StatusCode::OK),
    };
    let size = listing.blob.as_ref().map_or(0, |b| b.size);
    Ok(reply.header("x-ms-blob-content-length", size.to_string()).xml(block_list_xml(&listing)))
}

fn blocks_xml(s: &mut String, element: &str, blocks: &[ListedBlock]) {
    s.push_str(&format!("<{element}>"));
    for b in blocks {
        s.push_str("<Block>");
        xml::element(s, "Name", &limits::encode_base64(&b.id));
        xml::element(s, "Size", &b.size.to_string());
        s.push_str("</Block>");
    }
    s.push_str(&format!("</{element}>"));
}

/// The `<BlockList>` Get Block List answers with: the lists asked for.
fn block_list_xml(listing: &BlockListing) -> String {
    let mut s = String::from("<BlockList>");
    if let Some(committed) = &listing.committed {
        blocks_xml(&mut s, "CommittedBlocks", committed);
    }
    if let Some(uncommitted) = &listing.uncommitted {
        blocks_xml(&mut s, "UncommittedBlocks", uncommitted);
    }
    s.push_str("</BlockList>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_lists_are_read_in_document_order() {
        let body = "<?xml version='1.0' encoding='utf-8'?>\n<BlockList>\n  <Latest>QQ==</Latest><Committed> Qg== </Committed><Uncommitted>Qw==</Uncommitted><Latest>QQ==</Latest></BlockList>";
        let ids = parse_block_list(body).unwrap();
        let a = b"A".to_vec();
        assert_eq!(ids, [BlockRef::Latest(a.clone()), BlockRef::Committed(b"B".to_vec()), BlockRef::Uncommitted(b"C".to_vec()), BlockRef::Latest(a)]);
        assert_eq!(parse_block_list("<BlockList/>").unwrap(), []);
        assert_eq!(parse_block_list("<BlockList><Latest>not base64!</Latest></BlockList>").unwrap_err().code, "InvalidBlockId");
        assert_eq!(parse_block_list("<BlockList><Latest></Latest></BlockList>").unwrap_err().code, "InvalidBlockId");
        for bad in ["<BlockList><Other>QQ==</Other></BlockList>", "<Blocks/>", "<BlockList>"] {
            assert_eq!(parse_block_list(bad).unwrap_err().code, "InvalidXmlDocument", "{bad}");
        }
    }

    #[test]
    fn block_listings_are_written_as_azure_writes_them() {
        let listing = BlockListing {
            blob: None,
            committed: Some(vec![ListedBlock { id: b"A".to_vec(), size: 5 }]),
            uncommitted: Some(vec![]),
        };
        let expected = "<BlockList><CommittedBlocks><Block><Name>QQ==</Name><Size>5</Size></Block></CommittedBlocks><UncommittedBlocks></UncommittedBlocks></BlockList>";
        assert_eq!(block_list_xml(&listing), expected);
        assert_eq!(block_list_xml(&BlockListing { committed: None, ..listing }), "<BlockList><UncommittedBlocks></UncommittedBlocks></BlockList>");
    }
}
