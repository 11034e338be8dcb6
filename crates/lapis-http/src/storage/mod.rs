//! What the Azure Storage REST services share: the parsed request, the XML error
//! shape with Azure's codes, Shared Key and SAS authentication, and the headers every
//! response carries. The Blob subset will reuse all of it.

pub mod auth;
pub mod error;
pub mod request;
pub mod response;

pub use error::StorageError;
pub use request::StorageRequest;
