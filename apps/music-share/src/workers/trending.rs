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
    let partitions = super::until_ok("reading the plays hub's partitions", || partitions(&ctx)).await;
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
    let consumer = tokio::time::timeout(OPEN, eventhubs::consumer(&ctx.lapis)).await.map_err(|_| anyhow::anyhow!("opening a consumer took over {OPEN:?}"))??;
    let ids = tokio::time::timeout(OPEN, consumer.get_eventhub_properties()).await.map_err(|_| anyhow::anyhow!("reading the hub took over {OPEN:?}"));
    let _ = tokio::time::timeout(OPEN, consumer.close()).await;
    Ok(ids??.partition_ids)
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

/// The longest opening a consumer or a receiver may take.
const OPEN: Duration = Duration::from_secs(30);

async fn count(ctx: &Context, id: &str) -> anyhow::Result<()> {
    let after = ctx.db.checkpoint(TRENDING_GROUP.into(), id.into()).await?;
    let consumer = tokio::time::timeout(OPEN, eventhubs::consumer(&ctx.lapis)).await.map_err(|_| anyhow::anyhow!("opening a consumer took over {OPEN:?}"))??;
    let counted = count_with(ctx, id, after, &consumer).await;
    let _ = tokio::time::timeout(OPEN, consumer.close()).await;
    counted
}

async fn count_with(ctx: &Context, id: &str, after: Option<i64>, consumer: &azure_messaging_eventhubs::ConsumerClient) -> anyhow::Result<()> {
    let receiver = tokio::time::timeout(OPEN, eventhubs::receiver(consumer, id, after)).await.map_err(|_| anyhow::anyhow!("opening a receiver took over {OPEN:?}"))??;
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
            // The checkpoint only moves forward (an event without a number leaves it).
            last = last.max(seq);
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

/// What a replay read: events from the hub's start, and plays among them that the
/// database had not counted.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Replayed {
    pub events: usize,
    pub new_plays: usize,
}

/// Reads every partition of the plays hub again from its first retained event to
/// its newest, counting into the database as the aggregator does: what Event Hubs'
/// retention allows (a new aggregator, or a fixed bug, starts over). Play ids keep
/// it from counting anything twice.
pub async fn replay(ctx: &Context) -> anyhow::Result<Replayed> {
    let consumer = tokio::time::timeout(OPEN, eventhubs::consumer(&ctx.lapis)).await.map_err(|_| anyhow::anyhow!("opening a consumer took over {OPEN:?}"))??;
    let replayed = replay_with(ctx, &consumer).await;
    let _ = tokio::time::timeout(OPEN, consumer.close()).await;
    replayed
}

async fn replay_with(ctx: &Context, consumer: &azure_messaging_eventhubs::ConsumerClient) -> anyhow::Result<Replayed> {
    let mut out = Replayed::default();
    let ids = tokio::time::timeout(OPEN, consumer.get_eventhub_properties()).await??.partition_ids;
    for id in ids {
        let props = tokio::time::timeout(OPEN, consumer.get_partition_properties(&id)).await??;
        if props.is_empty {
            continue;
        }
        let receiver = tokio::time::timeout(OPEN, eventhubs::receiver(consumer, &id, None)).await??;
        let stream = receiver.stream_events();
        futures::pin_mut!(stream);
        let mut batch = Vec::new();
        let mut seen = None;
        while seen < Some(props.last_enqueued_sequence_number) {
            let event = tokio::time::timeout(OPEN, stream.next()).await.map_err(|_| anyhow::anyhow!("partition {id} stopped before its newest event"))?.ok_or_else(|| anyhow::anyhow!("the event stream ended"))??;
            let (play, seq) = eventhubs::play_of(&event);
            seen = seen.max(seq);
            out.events += 1;
            if let Some(p) = play {
                batch.push((p.play_id, p.track_id));
            }
        }
        // The replay ends where the aggregator's checkpoint already is (or past it).
        let last = props.last_enqueued_sequence_number.max(ctx.db.checkpoint(TRENDING_GROUP.into(), id.clone()).await?.unwrap_or(-1));
        out.new_plays += ctx.db.add_plays(TRENDING_GROUP.into(), id.clone(), batch, last).await?;
    }
    Ok(out)
}
