//! The upload worker: takes an upload job from the Storage Queue (hidden from other
//! workers meanwhile), reads the audio from Blob, stores the track (idempotent by
//! upload id), publishes "track published" to Event Grid (same event id each time),
//! and only then deletes the job. A job that keeps failing, or can never succeed
//! (not audio, not a job), goes to the poison queue, as Azure Functions does.

use std::sync::Arc;

use super::{Context, BACKOFF};
use crate::db::NewTrack;
use crate::media;
use crate::messaging::eventgrid::{self, Published};
use crate::messaging::storage::{Storage, Taken, UploadJob, UPLOAD_JOBS, UPLOAD_JOBS_POISON};

/// Jobs taken at once, and how long each stays hidden while it is worked on.
const BATCH: i32 = 16;
const HIDE_SECS: i32 = 15;
/// A job seen this many times without success is poison.
const MAX_DEQUEUE: i64 = 5;

/// Why a job did not finish.
enum Failure {
    /// Try again later (the job reappears when its visibility lapses).
    Transient(String),
    /// It can never succeed.
    Poison(String),
}

pub async fn run(ctx: Arc<Context>, storage: Arc<Storage>) -> anyhow::Result<()> {
    loop {
        let jobs = match storage.take(UPLOAD_JOBS, BATCH, HIDE_SECS).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(error = %e, "taking upload jobs failed");
                tokio::time::sleep(BACKOFF).await;
                continue;
            }
        };
        if jobs.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        }
        for job in jobs {
            match handle(&ctx, &storage, &job).await {
                Ok(()) => {}
                Err(Failure::Transient(why)) if job.dequeue_count < MAX_DEQUEUE => tracing::warn!(%why, id = %job.id, "an upload job will be retried"),
                Err(Failure::Transient(why) | Failure::Poison(why)) => {
                    tracing::warn!(%why, id = %job.id, "an upload job goes to the poison queue");
                    if let Err(e) = poison(&storage, &job, &why).await {
                        tracing::warn!(error = %e, "moving a job to the poison queue failed; it will come back");
                    }
                }
            }
        }
    }
}

async fn poison(storage: &Storage, job: &Taken, why: &str) -> azure_core::Result<()> {
    let record = serde_json::json!({ "job": job.text, "reason": why, "dequeue_count": job.dequeue_count });
    storage.enqueue(UPLOAD_JOBS_POISON, record.to_string()).await?;
    storage.delete(UPLOAD_JOBS, job).await
}

async fn handle(ctx: &Context, storage: &Storage, taken: &Taken) -> Result<(), Failure> {
    let transient = |what: &str, e: &dyn std::fmt::Display| Failure::Transient(format!("{what}: {e}"));
    let job: UploadJob = serde_json::from_str(&taken.text).map_err(|e| Failure::Poison(format!("not an upload job: {e}")))?;
    let track = match ctx.db.track_by_upload(job.upload_id.clone()).await.map_err(|e| transient("reading the database", &e))? {
        Some(t) => t,
        None => {
            let audio = storage.get_audio(&job.blob).await.map_err(|e| transient("reading the audio blob", &e))?;
            let content_type = media::sniff(&audio).ok_or_else(|| Failure::Poison("the blob is not audio".into()))?;
            if audio.len() > media::MAX_AUDIO_BYTES {
                return Err(Failure::Poison(format!("the audio is over {} bytes", media::MAX_AUDIO_BYTES)));
            }
            let dir = ctx.media.clone();
            let size = audio.len() as i64;
            let path = tokio::task::spawn_blocking(move || media::store(&dir, &audio)).await.map_err(|e| transient("storing the audio", &e))?.map_err(|e| transient("storing the audio", &e))?;
            let new = NewTrack { upload_id: job.upload_id.clone(), title: job.title.clone(), artist: job.artist.clone(), content_type: content_type.into(), size_bytes: size, media_path: path.display().to_string() };
            let (track, stored) = ctx.db.add_track(new).await.map_err(|e| transient("writing the track", &e))?;
            if stored == crate::db::Stored::Already {
                let _ = std::fs::remove_file(&path);
            }
            track
        }
    };
    let published = Published { track_id: track.id.clone(), title: track.title.clone(), artist: track.artist.clone() };
    eventgrid::publish(&ctx.lapis, &job.upload_id, &published).await.map_err(|e| transient("publishing the track", &e))?;
    storage.delete(UPLOAD_JOBS, taken).await.map_err(|e| transient("deleting the job", &e))?;
    // The claim check has served; a crash before this leaves only a stray blob.
    if let Err(e) = storage.delete_audio(&job.blob).await {
        tracing::debug!(error = %e, "the upload's blob stays");
    }
    Ok(())
}
