//! Which Blob operation a request is, decided from its method, path and query, the
//! container and blob it addresses, and what each operation needs from a SAS.

use hyper::Method;
use lapis_core::auth::sas::{ResourceType, SasNeeds};

use crate::storage::{StorageError, StorageRequest};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOp {
    ListContainers,
    CreateContainer,
    DeleteContainer,
    /// Get Container Properties, and Get Container Metadata (a subset of it).
    GetContainerProperties,
    SetContainerMetadata,
    ListBlobs,
    PutBlob,
    GetBlob,
    /// Get Blob Properties (HEAD), and Get Blob Metadata (a subset of it).
    GetBlobProperties,
    SetBlobMetadata,
    DeleteBlob,
    PutBlock,
    PutBlockList,
    GetBlockList,
}

/// The container and blob a request's path names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    pub container: Option<String>,
    pub blob: Option<String>,
}

/// The container of a one-segment path that is not a container operation: blobs
/// addressed right under the account live in the root container.
const ROOT_CONTAINER: &str = "$root";

impl Target {
    fn of(req: &StorageRequest, container_op: bool) -> Target {
        match req.segments.as_slice() {
            [] => Target::default(),
            [container] if container_op => Target { container: Some(container.clone()), blob: None },
            [blob] => Target { container: Some(ROOT_CONTAINER.into()), blob: Some(blob.clone()) },
            // Azure reads `\` in a blob name as `/`.
            [container, rest @ ..] => Target { container: Some(container.clone()), blob: Some(rest.join("/").replace('\\', "/")) },
        }
    }
}

fn bad_comp(comp: &str, reason: &str) -> StorageError {
    StorageError::invalid_query_parameter("comp", comp, reason)
}

impl BlobOp {
    pub fn classify(req: &StorageRequest) -> Result<(BlobOp, Target), StorageError> {
        let comp = req.param("comp");
        let container_op = req.param("restype") == Some("container");
        let m = &req.method;
        let read = *m == Method::GET || *m == Method::HEAD;
        let target = Target::of(req, container_op);
        let op = match (&target.container, &target.blob) {
            (None, _) => match comp {
                Some("list") if read => BlobOp::ListContainers,
                _ if read || *m == Method::PUT => return Err(bad_comp(comp.unwrap_or(""), "not a blob service operation Lapis serves")),
                _ => return Err(StorageError::unsupported_verb()),
            },
            (Some(_), None) => match (m.clone(), comp) {
                (Method::PUT, None) => BlobOp::CreateContainer,
                (Method::DELETE, None) => BlobOp::DeleteContainer,
                (_, None | Some("metadata")) if read => BlobOp::GetContainerProperties,
                (Method::PUT, Some("metadata")) => BlobOp::SetContainerMetadata,
                (Method::GET, Some("list")) => BlobOp::ListBlobs,
                (Method::GET | Method::HEAD | Method::PUT, Some(other)) => return Err(bad_comp(other, "not a container operation Lapis serves")),
                _ => return Err(StorageError::unsupported_verb()),
            },
            (Some(_), Some(_)) => match (m.clone(), comp) {
                (Method::PUT, None) => BlobOp::PutBlob,
                (Method::GET, None) => BlobOp::GetBlob,
                (Method::HEAD, None) => BlobOp::GetBlobProperties,
                (_, Some("metadata")) if read => BlobOp::GetBlobProperties,
                (Method::PUT, Some("metadata")) => BlobOp::SetBlobMetadata,
                (Method::DELETE, None) => BlobOp::DeleteBlob,
                (Method::PUT, Some("block")) => BlobOp::PutBlock,
                (Method::PUT, Some("blocklist")) => BlobOp::PutBlockList,
                (Method::GET, Some("blocklist")) => BlobOp::GetBlockList,
                (Method::GET | Method::HEAD | Method::PUT, Some(other)) => return Err(bad_comp(other, "not a blob operation Lapis serves")),
                _ => return Err(StorageError::unsupported_verb()),
            },
        };
        Ok((op, target))
    }

    /// What a SAS must grant for this operation (Azure's account- and blob-SAS
    /// permission tables; containers are managed with account SAS only).
    pub fn sas_needs(self) -> SasNeeds {
        use BlobOp::*;
        let (resource_type, account_permissions, service_permission) = match self {
            ListContainers => (ResourceType::Service, "l", None),
            CreateContainer => (ResourceType::Container, "cw", None),
            DeleteContainer => (ResourceType::Container, "d", None),
            GetContainerProperties => (ResourceType::Container, "r", Some('r')),
            SetContainerMetadata => (ResourceType::Container, "w", Some('w')),
            ListBlobs => (ResourceType::Container, "l", Some('l')),
            PutBlob | PutBlock | PutBlockList => (ResourceType::Object, "cw", Some('w')),
            GetBlob | GetBlobProperties | GetBlockList => (ResourceType::Object, "r", Some('r')),
            SetBlobMetadata => (ResourceType::Object, "w", Some('w')),
            DeleteBlob => (ResourceType::Object, "d", Some('d')),
        };
        SasNeeds { service: 'b', resource_type, account_permissions, service_permission }
    }
}
