//! Azure Storage's error shape: a status, an error code (also sent as
//! `x-ms-error-code`), a message, and optional detail elements — and the one mapping
//! from core errors to it.

use hyper::StatusCode;
use lapis_core::auth::sas::SasError;
use lapis_core::blob::BlobError;
use lapis_core::queue::QueueError;
use lapis_core::time_fmt::rfc1123;

#[derive(Debug, Clone)]
pub struct StorageError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra elements after `<Message>`, such as `QueryParameterName`.
    pub details: Vec<(&'static str, String)>,
    /// Extra response headers, such as `Content-Range` on a 416.
    pub headers: Vec<(&'static str, String)>,
}

impl StorageError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        StorageError { status, code, message: message.into(), details: Vec::new(), headers: Vec::new() }
    }

    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.details.push((name, value.into()));
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn out_of_range_parameter(name: &str, value: i64, min: i64, max: i64) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "OutOfRangeQueryParameterValue", "One of the query parameters specified in the request URI is outside the permissible range.")
            .with("QueryParameterName", name)
            .with("QueryParameterValue", value.to_string())
            .with("MinimumAllowed", min.to_string())
            .with("MaximumAllowed", max.to_string())
    }

    pub fn missing_header(name: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "MissingRequiredHeader", "An HTTP header that's mandatory for this request is not specified.")
            .with("HeaderName", name)
    }

    pub fn authentication_failed(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "AuthenticationFailed",
            "Server failed to authenticate the request. Make sure the value of the Authorization header is formed correctly including the signature.",
        )
        .with("AuthenticationErrorDetail", detail)
    }

    pub fn invalid_query_parameter(name: &str, value: &str, reason: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidQueryParameterValue", "Value for one of the query parameters specified in the request URI is invalid.")
            .with("QueryParameterName", name)
            .with("QueryParameterValue", value)
            .with("Reason", reason)
    }

    pub fn invalid_xml(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidXmlDocument", "XML specified is not syntactically valid.").with("Reason", detail)
    }

    pub fn invalid_input(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidInput", "One of the request inputs is not valid.").with("Reason", detail)
    }

    pub fn invalid_header(name: &str, value: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the correct format.")
            .with("HeaderName", name)
            .with("HeaderValue", value)
    }

    pub fn body_too_large(limit: usize) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "RequestBodyTooLarge", "The request body is too large and exceeds the maximum permissible limit.")
            .with("MaxLimit", limit.to_string())
    }

    pub fn request_timeout() -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, "RequestTimeout", "The client did not send the whole request in time.")
    }

    pub fn unsupported_verb() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "UnsupportedHttpVerb", "The resource doesn't support specified Http Verb.")
    }

    pub fn invalid_uri() -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidUri", "The requested URI does not represent any resource on the server.")
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "The server encountered an internal error. Please retry the request.")
    }
}

impl From<SasError> for StorageError {
    fn from(e: SasError) -> Self {
        let (code, message) = match &e {
            SasError::AuthenticationFailed(detail) => return StorageError::authentication_failed(detail.clone()),
            SasError::PermissionMismatch => ("AuthorizationPermissionMismatch", e.to_string()),
            SasError::ResourceTypeMismatch => ("AuthorizationResourceTypeMismatch", e.to_string()),
            SasError::ServiceMismatch => ("AuthorizationServiceMismatch", e.to_string()),
            SasError::ProtocolMismatch => ("AuthorizationProtocolMismatch", e.to_string()),
        };
        StorageError::new(StatusCode::FORBIDDEN, code, message)
    }
}

impl From<QueueError> for StorageError {
    fn from(e: QueueError) -> Self {
        let message = e.to_string();
        match e {
            QueueError::QueueNotFound => StorageError::new(StatusCode::NOT_FOUND, "QueueNotFound", message),
            QueueError::QueueAlreadyExists => StorageError::new(StatusCode::CONFLICT, "QueueAlreadyExists", message),
            QueueError::MessageNotFound => StorageError::new(StatusCode::NOT_FOUND, "MessageNotFound", message),
            QueueError::InvalidResourceName => StorageError::new(StatusCode::BAD_REQUEST, "InvalidResourceName", message),
            QueueError::ResourceNameLength => StorageError::new(StatusCode::BAD_REQUEST, "OutOfRangeInput", message),
            QueueError::OutOfRange { name, value, min, max } => StorageError::out_of_range_parameter(name, value, min, max),
            QueueError::InvalidParameter { name, value, reason } => StorageError::invalid_query_parameter(name, &value, reason),
            QueueError::MessageTooLarge { limit } => StorageError::body_too_large(limit),
            QueueError::InvalidXml { detail } => StorageError::invalid_xml(detail),
            QueueError::InvalidMetadata => StorageError::new(StatusCode::BAD_REQUEST, "InvalidMetadata", message),
            QueueError::Store(e) => StorageError::internal(e),
        }
    }
}

impl From<BlobError> for StorageError {
    fn from(e: BlobError) -> Self {
        let message = e.to_string();
        let bad_request = |code| StorageError::new(StatusCode::BAD_REQUEST, code, message.clone());
        match e {
            BlobError::ContainerNotFound => StorageError::new(StatusCode::NOT_FOUND, "ContainerNotFound", message),
            BlobError::ContainerAlreadyExists => StorageError::new(StatusCode::CONFLICT, "ContainerAlreadyExists", message),
            BlobError::BlobNotFound => StorageError::new(StatusCode::NOT_FOUND, "BlobNotFound", message),
            BlobError::BlobAlreadyExists => StorageError::new(StatusCode::CONFLICT, "BlobAlreadyExists", message),
            BlobError::InvalidResourceName => bad_request("InvalidResourceName"),
            BlobError::ResourceNameLength => bad_request("OutOfRangeInput"),
            BlobError::ConditionNotMet => StorageError::new(StatusCode::PRECONDITION_FAILED, "ConditionNotMet", message),
            BlobError::NotModified { etag, last_modified } => StorageError::new(StatusCode::NOT_MODIFIED, "ConditionNotMet", message)
                .with_header("etag", etag)
                .with_header("last-modified", rfc1123(last_modified)),
            BlobError::UnsatisfiableCondition => bad_request("UnsatisfiableCondition"),
            BlobError::InvalidRange { size } => StorageError::new(StatusCode::RANGE_NOT_SATISFIABLE, "InvalidRange", message)
                .with_header("content-range", format!("bytes */{size}")),
            BlobError::BlobTooLarge { limit } => StorageError::body_too_large(limit),
            BlobError::InvalidMetadata => bad_request("InvalidMetadata"),
            BlobError::MetadataTooLarge => bad_request("MetadataTooLarge"),
            BlobError::InvalidMd5 => bad_request("InvalidMd5"),
            BlobError::Md5Mismatch { given, computed } => {
                bad_request("Md5Mismatch").with("UserSpecifiedMd5", given).with("ServerCalculatedMd5", computed)
            }
            BlobError::OutOfRange { name, value, min, max } => StorageError::out_of_range_parameter(name, value, min, max),
            BlobError::Store(e) => StorageError::internal(e),
        }
    }
}
