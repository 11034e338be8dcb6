//! The comment worker: holds one session of the `comments` queue at a time (a
//! session is a track, so that track's comments come in the order they were sent
//! and to this worker alone), stores each comment (idempotent by comment id), and
//! completes the message only after the commit. A comment that can never be stored
//! (malformed, or on a track that does not exist) is dead-lettered with its reason;
//! one the database fails to take is left unsettled and the session let go: it
//! comes back first to the session's next receiver (its delivery counted), so the
//! track's order holds, until the queue's maximum delivery count dead-letters it.

use std::sync::Arc;
use std::time::Duration;

use fe2o3_amqp::{Delivery, Receiver};
use serde::{Deserialize, Serialize};

use super::{Context, BACKOFF};
use crate::messaging::servicebus::{self, Body0, ServiceBus, COMMENTS};

/// A comment as the clients send it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CommentMessage {
    pub comment_id: String,
    pub track_id: String,
    pub author: String,
    pub body: String,
}

/// How long a worker waits for a session with messages, and how long it keeps an
/// idle session before letting it go.
const SESSION_WAIT: Duration = Duration::from_secs(5);
const IDLE: Duration = Duration::from_millis(500);
/// A session is let go this long after it was taken, well inside its lock (10 s in
/// the demo's queue, 60 s by default), so a busy track never outlives its lock;
/// the next worker to ask takes it up where this one stopped.
const HOLD: Duration = Duration::from_secs(4);
const CREDIT: u32 = 16;

pub async fn run(ctx: Arc<Context>, n: usize) -> anyhow::Result<()> {
    loop {
        let mut sb = match ServiceBus::connect(&ctx.lapis, &[COMMENTS]).await {
            Ok(sb) => sb,
            Err(e) => {
                tracing::warn!(error = %e, worker = n, "connecting to Service Bus failed");
                tokio::time::sleep(BACKOFF).await;
                continue;
            }
        };
        if let Err(e) = sessions(&ctx, &mut sb).await {
            tracing::warn!(error = %e, worker = n, "the Service Bus connection failed; reconnecting");
            tokio::time::sleep(BACKOFF).await;
        }
        sb.close().await;
    }
}

/// Takes one session after another until the connection fails.
async fn sessions(ctx: &Context, sb: &mut ServiceBus) -> anyhow::Result<()> {
    loop {
        let Some(mut receiver) = sb.next_session(COMMENTS, SESSION_WAIT, CREDIT).await? else { continue };
        let outcome = drain(ctx, &mut receiver).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), receiver.close()).await;
        outcome?;
    }
}

/// Handles the session's messages until it has none for a moment.
async fn drain(ctx: &Context, receiver: &mut Receiver) -> anyhow::Result<()> {
    let until = tokio::time::Instant::now() + HOLD;
    while tokio::time::Instant::now() < until {
        let delivery: Delivery<Body0> = match tokio::time::timeout(IDLE, receiver.recv::<Body0>()).await {
            Err(_) => return Ok(()),
            Ok(Err(e)) => anyhow::bail!("receiving a comment: {e:?}"),
            Ok(Ok(d)) => d,
        };
        let comment = serde_json::from_slice::<CommentMessage>(&servicebus::body_bytes(&delivery));
        let comment = match comment {
            Ok(c) if valid(&c) => c,
            Ok(_) | Err(_) => {
                let id = servicebus::message_id(&delivery).unwrap_or_default();
                servicebus::dead_letter(receiver, &delivery, "MalformedComment", &format!("message {id} is not a comment")).await?;
                continue;
            }
        };
        match store(ctx, &comment).await {
            Ok(Some(_)) => servicebus::complete(receiver, &delivery).await?,
            Ok(None) => servicebus::dead_letter(receiver, &delivery, "UnknownTrack", &format!("comment {} is on track {}, which does not exist", comment.comment_id, comment.track_id)).await?,
            // Not abandoned: the session's later messages would be stored before it.
            // Letting the session go hands this one, unsettled, to the next receiver
            // first.
            Err(e) => anyhow::bail!("storing comment {} failed: {e}", comment.comment_id),
        }
    }
    Ok(())
}

/// What the API would take (the queue is a trust boundary too).
fn valid(c: &CommentMessage) -> bool {
    let body = c.body.trim();
    !body.is_empty() && body.chars().count() <= crate::api::MAX_COMMENT_CHARS && !c.comment_id.is_empty() && !c.author.trim().is_empty() && c.author.chars().count() <= 200
}

/// Stores the comment, trying again a few times (well inside the session's lock)
/// when the database is busy.
async fn store(ctx: &Context, c: &CommentMessage) -> crate::db::DbResult<Option<(crate::db::Comment, crate::db::Stored)>> {
    let mut tries = 0;
    loop {
        tries += 1;
        match ctx.db.add_comment(c.track_id.clone(), c.comment_id.clone(), c.author.trim().to_string(), c.body.trim().to_string()).await {
            Err(e) if tries < 3 => {
                tracing::warn!(error = %e, "storing a comment failed; trying again");
                tokio::time::sleep(BACKOFF).await;
            }
            other => return other,
        }
    }
}
