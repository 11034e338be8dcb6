//! The upload worker: takes an upload job from the Storage Queue (hidden from other
//! workers meanwhile), reads the audio from Blob, stores the track (idempotent by
//! upload id), publishes "track published" to Event Grid (same event id each time),
//! and only then deletes the job. A job that can never succeed (not a job, not
//! audio, too large) or keeps failing before its track is stored goes to the poison
//! queue, as Azure Functions does; once the track is stored, the job is only ever
//! retried, so a stored track is always published.

use std::sync::Arc;
use std::time::Duration;

use super::{Context, BACKOFF};
use crate::media::{self, KeepError, Upload};
use crate::messaging::eventgrid::{self, Published};
use crate::messaging::storage::{Storage, Taken, UploadJob, UPLOAD_JOBS, UPLOAD_JOBS_POISON};

/// Jobs taken at once (worked one after another), and how long each stays hidden:
/// the batch must be done well within it, or another worker takes a job too.
const BATCH: i32 = 4;
const HIDE_SECS: i32 = 30;
/// A job seen this many times without its track stored is poison.
const MAX_DEQUEUE: i64 = 5;
/// The longest one storage call may take.
const CALL: Duration = Duration::from_secs(20);

/// Why a job did not finish.
enum Failure {
    /// Try again later (the job reappears when its visibility lapses); `stored`
    /// when its track is already in the database.
    Transient { why: String, stored: bool },
    /// It can never succeed.
    Poison(String),
}

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = azure_core::Result<T>>) -> Result<T, String> {
    match tokio::time::timeout(CALL, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {CALL:?}")),
    }
}

pub async fn run(ctx: Arc<Context>, storage: Arc<Storage>) -> anyhow::Result<()> {
    loop {
        let jobs = match bounded("taking upload jobs", storage.take(UPLOAD_JOBS, BATCH, HIDE_SECS)).await {
            Ok(jobs) => jobs,
            Err(why) => {
                tracing::warn!(%why, "taking upload jobs failed");
                tokio::time::sleep(BACKOFF).await;
                continue;
            }
        };
        if jobs.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        for job in jobs {
            match handle(&ctx, &storage, &job).await {
                Ok(()) => {}
                Err(Failure::Transient { why, stored }) if stored || job.dequeue_count < MAX_DEQUEUE => tracing::warn!(%why, id = %job.id, "an upload job will be retried"),
                Err(Failure::Transient { why, .. } | Failure::Poison(why)) => {
                    tracing::warn!(%why, id = %job.id, "an upload job goes to the poison queue");
                    if let Err(e) = poison(&storage, &job, &why).await {
                        tracing::warn!(error = %e, "moving a job to the poison queue failed; it will come back");
                    }
                }
            }
        }
    }
}

/// Files the job in the poison queue, then takes it off the jobs queue. (A crash
/// between the two files it twice; the admin page shows both.)
async fn poison(storage: &Storage, job: &Taken, why: &str) -> Result<(), String> {
    let record = serde_json::json!({ "job": job.text, "reason": why, "dequeue_count": job.dequeue_count });
    bounded("filing a poison job", storage.enqueue(UPLOAD_JOBS_POISON, record.to_string())).await?;
    bounded("deleting a poison job", storage.delete(UPLOAD_JOBS, job)).await
}

fn valid(job: &UploadJob) -> bool {
    let ok = |s: &str| !s.trim().is_empty() && s.chars().count() <= 200;
    ok(&job.upload_id) && ok(&job.title) && ok(&job.artist) && !job.blob.is_empty()
}

async fn handle(ctx: &Context, storage: &Storage, taken: &Taken) -> Result<(), Failure> {
    let job: UploadJob = serde_json::from_str(&taken.text).map_err(|e| Failure::Poison(format!("not an upload job: {e}")))?;
    if !valid(&job) {
        return Err(Failure::Poison("an upload job needs an id, a blob, and a title and artist of at most 200 characters".into()));
    }
    let before = |why: String| Failure::Transient { why, stored: false };
    let track = match ctx.db.track_by_upload(job.upload_id.clone()).await.map_err(|e| before(format!("reading the database: {e}")))? {
        Some(t) => t,
        None => {
            let audio = bounded("reading the audio blob", storage.get_audio(&job.blob)).await.map_err(before)?;
            let upload = Upload { upload_id: job.upload_id.clone(), title: job.title.clone(), artist: job.artist.clone() };
            match media::keep(&ctx.db, &ctx.media, upload, Arc::new(audio)).await {
                Ok((track, _)) => track,
                Err(e @ (KeepError::NotAudio | KeepError::TooLarge)) => return Err(Failure::Poison(e.to_string())),
                Err(e) => return Err(before(e.to_string())),
            }
        }
    };
    let after = |why: String| Failure::Transient { why, stored: true };
    let published = Published { track_id: track.id.clone(), title: track.title.clone(), artist: track.artist.clone() };
    eventgrid::publish(&ctx.lapis, &job.upload_id, &published).await.map_err(|e| after(format!("publishing the track: {e}")))?;
    match tokio::time::timeout(CALL, storage.delete(UPLOAD_JOBS, taken)).await {
        Ok(Ok(())) => {}
        // Its visibility lapsed and another worker holds it now (404 MessageNotFound,
        // 400 PopReceiptMismatch): that one finishes it.
        Ok(Err(e)) if matches!(e.http_status().map(u16::from), Some(404 | 400)) => tracing::debug!(error = %e, "the job is another worker's now"),
        Ok(Err(e)) => return Err(after(format!("deleting the job: {e}"))),
        Err(_) => return Err(after(format!("deleting the job: no answer within {CALL:?}"))),
    }
    // The claim check has served; a crash before this leaves only a stray blob.
    if let Err(why) = bounded("deleting the blob", storage.delete_audio(&job.blob)).await {
        tracing::debug!(%why, "the upload's blob stays");
    }
    Ok(())
}
