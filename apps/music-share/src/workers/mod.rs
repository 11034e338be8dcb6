//! `music-share workers`: the messaging mode's back end. Each worker takes work from
//! the service that carries it and settles it only after the database write has
//! committed; every write is idempotent, so a worker killed mid-task loses nothing
//! and stores nothing twice — the message simply comes back.
//!
//! - [`uploads`]: upload jobs from the Storage Queue; audio from Blob; then "track
//!   published" to Event Grid.
//! - [`comments`]: comments from the Service Bus queue, one session (track) at a time.
//! - [`trending`]: plays from Event Hubs, counted with the checkpoint in one
//!   transaction.

pub mod comments;
pub mod trending;
pub mod uploads;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::db::Db;
use crate::messaging::lapis::Lapis;

/// What the workers share.
pub struct Context {
    pub lapis: Lapis,
    pub db: Arc<Db>,
    pub media: PathBuf,
}

/// How long a worker waits before trying again after its service or the database
/// failed.
pub const BACKOFF: Duration = Duration::from_millis(500);

/// Tries `attempt` until it succeeds, `BACKOFF` apart, saying each time what failed:
/// for the set-up a worker cannot start without (Lapis may still be starting).
pub async fn until_ok<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(what: &str, mut attempt: impl FnMut() -> F) -> T {
    loop {
        match attempt().await {
            Ok(v) => return v,
            Err(e) => {
                tracing::warn!(error = %e, "{what} failed; trying again");
                tokio::time::sleep(BACKOFF).await;
            }
        }
    }
}

/// Runs every worker until one fails for good: `uploads` upload workers and
/// `comments` comment workers, and one aggregator task per partition.
pub async fn run(ctx: Arc<Context>, uploads: usize, comments: usize) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    let storage = Arc::new(crate::messaging::storage::Storage::new(&ctx.lapis)?);
    until_ok("making the upload queues and container", || storage.ensure()).await;
    for _ in 0..uploads {
        tasks.spawn(uploads::run(ctx.clone(), storage.clone()));
    }
    for n in 0..comments {
        tasks.spawn(comments::run(ctx.clone(), n));
    }
    tasks.spawn(trending::run(ctx.clone()));
    println!("music-share workers running ({uploads} upload, {comments} comment, trending)");
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}
