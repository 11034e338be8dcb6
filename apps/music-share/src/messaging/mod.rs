//! The app's messaging: one module per Lapis service, each on the library a Rust
//! user would pick (docs/design/music-share-clients.md), with what each task sends.
//!
//! - [`lapis`]: where Lapis is and the signatures each library takes.
//! - [`storage`]: Blob + Storage Queue, the upload's claim check.
//! - [`servicebus`]: comments, with duplicate detection and sessions per track.
//! - [`eventgrid`]: "new track published", pushed to the handlers.
//! - [`eventhubs`]: plays, read by the trending aggregator.
//! - [`admin`]: backlog depths for the demo's chart, from Lapis's admin API.

pub mod admin;
pub mod eventgrid;
pub mod eventhubs;
pub mod lapis;
pub mod servicebus;
pub mod storage;
