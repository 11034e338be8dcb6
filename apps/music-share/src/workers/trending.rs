//! The trending aggregator: reads the `plays` hub in its own consumer group, one
//! task per partition, and counts plays in batches — each batch and the partition's
//! checkpoint (the last sequence number counted) in one database transaction, so a
//! restart resumes exactly where the counting stopped. Replaying is starting again
//! from no checkpoint; play ids keep a replay from counting anything twice.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;

use super::{Context, BACKOFF};
use crate::messaging::eventhubs::{self, TRENDING_GROUP};

/// A batch closes at this many plays or this long after its first.
const BATCH: usize = 200;
const LINGER: Duration = Duration::from_millis(100);

pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let partitions = loop {
        match partitions(&ctx).await {
            Ok(p) => break p,
            Err(e) => {
                tracing::warn!(error = %e, "reading the plays hub failed");
                tokio::time::sleep(BACKOFF).await;
            }
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    for p in partitions {
        tasks.spawn(partition(ctx.clone(), p));
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

async fn partitions(ctx: &Context) -> anyhow::Result<Vec<String>> {
    let consumer = eventhubs::consumer(&ctx.lapis).await?;
    let ids = consumer.get_eventhub_properties().await?.partition_ids;
    let _ = consumer.close().await;
    Ok(ids)
}

/// Counts one partition's plays for as long as the process runs.
async fn partition(ctx: Arc<Context>, id: String) -> anyhow::Result<()> {
    loop {
        if let Err(e) = count(&ctx, &id).await {
            tracing::warn!(error = %e, partition = %id, "reading plays failed; resuming from the checkpoint");
            tokio::time::sleep(BACKOFF).await;
        }
    }
}

async fn count(ctx: &Context, id: &str) -> anyhow::Result<()> {
    let after = ctx.db.checkpoint(TRENDING_GROUP.into(), id.into()).await?;
    let consumer = eventhubs::consumer(&ctx.lapis).await?;
    let receiver = eventhubs::receiver(&consumer, id, after).await?;
    let stream = receiver.stream_events();
    futures::pin_mut!(stream);
    loop {
        let mut batch = Vec::new();
        let mut last = None;
        // Wait as long as it takes for a first play, then a little for more.
        let first = stream.next().await.ok_or_else(|| anyhow::anyhow!("the event stream ended"))??;
        let deadline = tokio::time::Instant::now() + LINGER;
        let mut next = Some(first);
        while let Some(event) = next.take() {
            let (play, seq) = eventhubs::play_of(&event);
            last = Some(seq);
            if let Some(p) = play {
                batch.push((p.play_id, p.track_id));
            }
            if batch.len() >= BATCH {
                break;
            }
            next = match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(e)) => Some(e?),
                Ok(None) | Err(_) => None,
            };
        }
        if let Some(last) = last {
            ctx.db.add_plays(TRENDING_GROUP.into(), id.into(), batch, last).await?;
        }
    }
}
