//! Which Storage Queue operation a request is, decided from its method, path depth and
//! query, and what each operation needs from a SAS.

use hyper::Method;
use lapis_core::auth::sas::{ResourceType, SasNeeds};

use crate::storage::{StorageError, StorageRequest};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueOp {
    ListQueues,
    GetServiceProperties,
    SetServiceProperties,
    GetServiceStats,
    CreateQueue,
    DeleteQueue,
    GetMetadata,
    SetMetadata,
    GetAcl,
    SetAcl,
    PutMessage,
    GetMessages,
    PeekMessages,
    ClearMessages,
    DeleteMessage,
    UpdateMessage,
}

impl QueueOp {
    pub fn classify(req: &StorageRequest) -> Result<QueueOp, StorageError> {
        let comp = req.param("comp");
        let restype = req.param("restype");
        let m = &req.method;
        let get = *m == Method::GET || *m == Method::HEAD;
        let op = match req.segments.len() {
            0 => match (m.clone(), restype, comp) {
                (_, _, Some("list")) if get => QueueOp::ListQueues,
                (_, Some("service"), Some("properties")) if get => QueueOp::GetServiceProperties,
                (Method::PUT, Some("service"), Some("properties")) => QueueOp::SetServiceProperties,
                (_, Some("service"), Some("stats")) if get => QueueOp::GetServiceStats,
                (Method::GET | Method::HEAD | Method::PUT, _, _) => {
                    return Err(StorageError::invalid_query_parameter("comp", comp.unwrap_or(""), "not a queue service operation"))
                }
                _ => return Err(StorageError::unsupported_verb()),
            },
            1 => match (m.clone(), comp) {
                (Method::PUT, None) => QueueOp::CreateQueue,
                (Method::DELETE, None) => QueueOp::DeleteQueue,
                (_, Some("metadata")) if get => QueueOp::GetMetadata,
                (Method::PUT, Some("metadata")) => QueueOp::SetMetadata,
                (_, Some("acl")) if get => QueueOp::GetAcl,
                (Method::PUT, Some("acl")) => QueueOp::SetAcl,
                (Method::GET | Method::HEAD | Method::PUT, Some(other)) => {
                    return Err(StorageError::invalid_query_parameter("comp", other, "not a queue operation"))
                }
                _ => return Err(StorageError::unsupported_verb()),
            },
            2 if req.segments[1] == "messages" => match m.clone() {
                Method::POST => QueueOp::PutMessage,
                Method::GET if req.param("peekonly").is_some_and(|v| v.eq_ignore_ascii_case("true")) => QueueOp::PeekMessages,
                Method::GET => QueueOp::GetMessages,
                Method::DELETE => QueueOp::ClearMessages,
                _ => return Err(StorageError::unsupported_verb()),
            },
            3 if req.segments[1] == "messages" => match m.clone() {
                Method::DELETE => QueueOp::DeleteMessage,
                Method::PUT => QueueOp::UpdateMessage,
                _ => return Err(StorageError::unsupported_verb()),
            },
            _ => return Err(StorageError::invalid_uri()),
        };
        Ok(op)
    }

    /// What a SAS must grant for this operation (Azure's account- and queue-SAS
    /// permission tables).
    pub fn sas_needs(self) -> SasNeeds {
        use QueueOp::*;
        let (resource_type, account_permissions, service_permission) = match self {
            ListQueues => (ResourceType::Service, "l", None),
            GetServiceProperties | GetServiceStats => (ResourceType::Service, "r", None),
            SetServiceProperties => (ResourceType::Service, "w", None),
            CreateQueue => (ResourceType::Container, "cw", None),
            DeleteQueue => (ResourceType::Container, "d", None),
            GetMetadata => (ResourceType::Container, "r", Some('r')),
            SetMetadata => (ResourceType::Container, "w", None),
            GetAcl => (ResourceType::Container, "r", None),
            SetAcl => (ResourceType::Container, "w", None),
            PutMessage => (ResourceType::Object, "a", Some('a')),
            GetMessages => (ResourceType::Object, "p", Some('p')),
            PeekMessages => (ResourceType::Object, "r", Some('r')),
            ClearMessages => (ResourceType::Object, "d", Some('p')),
            DeleteMessage => (ResourceType::Object, "p", Some('p')),
            UpdateMessage => (ResourceType::Object, "u", Some('u')),
        };
        SasNeeds { service: 'q', resource_type, account_permissions, service_permission }
    }
}
