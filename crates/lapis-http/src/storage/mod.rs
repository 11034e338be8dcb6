//! What the Azure Storage REST services (queues, blobs) share: the parsed request,
//! the XML error shape with Azure's codes, Shared Key and SAS authentication, the
//! headers every response carries, and the frame of listings.

pub mod auth;
pub mod error;
pub mod listing;
pub mod request;
pub mod response;

use std::sync::Arc;

use lapis_core::auth::Accounts;
use lapis_core::Clock;

pub use error::StorageError;
pub use request::StorageRequest;

/// What a storage endpoint needs to answer requests: its service, the accounts whose
/// keys sign requests, and the clock SAS validity and request dates are checked
/// against.
pub struct StorageApi<S> {
    pub service: Arc<S>,
    pub accounts: Arc<Accounts>,
    pub auth_clock: Arc<dyn Clock>,
}
