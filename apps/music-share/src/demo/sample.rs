//! What the demo watches while it runs: every half second, how many items the
//! phones have been told are done and how many the database holds, per task, and
//! each service's backlog (upload jobs queued, comments waiting, "track published"
//! events not yet delivered, plays not yet counted). And the test of "settled":
//! every backlog empty, twice in a row.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;

use crate::db::Db;
use crate::messaging::eventhubs::{PLAYS, TRENDING_GROUP};
use crate::messaging::lapis::Lapis;
use crate::messaging::servicebus::COMMENTS;
use crate::messaging::storage::{Storage, UPLOAD_JOBS};
use crate::mobile::{Ledger, Mode, Progress};

#[derive(Debug, Clone, Default, Serialize)]
pub struct Sample {
    pub at: f64,
    pub acked: [usize; 3],
    pub stored: [usize; 3],
    /// Upload jobs, comments, undelivered events, uncounted plays.
    pub backlog: [i64; 4],
}

/// The samples and the fault notes, on one clock.
pub struct Log {
    started: std::time::Instant,
    samples: Mutex<Vec<Sample>>,
    notes: Mutex<Vec<(f64, String)>>,
}

impl Default for Log {
    fn default() -> Self {
        Log { started: std::time::Instant::now(), samples: Mutex::default(), notes: Mutex::default() }
    }
}

impl Log {
    pub fn note(&self, what: &str) {
        self.notes.lock().push((self.started.elapsed().as_secs_f64(), what.to_string()));
    }

    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().clone()
    }

    pub fn notes(&self) -> Vec<(f64, String)> {
        self.notes.lock().clone()
    }
}

/// The aggregator's checkpoint per partition.
type Checkpoints = Vec<(String, i64)>;

async fn stored(db: &Arc<Db>) -> anyhow::Result<([usize; 3], Checkpoints)> {
    let counts = [
        db.scalar("SELECT COUNT(*) FROM tracks WHERE upload_id LIKE 'phone%'".into()).await? as usize,
        db.scalar("SELECT COUNT(*) FROM comments".into()).await? as usize,
        db.scalar("SELECT COUNT(*) FROM plays WHERE id IS NOT NULL".into()).await? as usize,
    ];
    let checkpoints = db.counts(format!("SELECT partition_id, sequence_number FROM checkpoints WHERE consumer_group = '{TRENDING_GROUP}'")).await?;
    Ok((counts, checkpoints.into_iter().map(|(p, s)| (p, s as i64)).collect()))
}

/// Each service's backlog (0 where the mode does not use it).
async fn backlog(lapis: &Lapis, storage: &Storage, checkpoints: &[(String, i64)]) -> anyhow::Result<[i64; 4]> {
    let jobs = storage.depth(UPLOAD_JOBS).await?;
    let (comments, _) = crate::messaging::admin::queue_counts(lapis, COMMENTS).await?;
    let mut events = 0;
    for h in crate::handlers::HANDLERS {
        events += crate::messaging::admin::undelivered(lapis, crate::messaging::eventgrid::TRACKS_TOPIC, h).await?;
    }
    let mut plays = 0;
    for (p, last) in crate::messaging::admin::last_sequences(lapis, PLAYS).await? {
        let counted = checkpoints.iter().find(|(q, _)| *q == p).map(|(_, s)| *s).unwrap_or(-1);
        plays += (last - counted).max(0);
    }
    Ok([jobs, comments, events, plays])
}

/// One sample, or an error if it took over 10 s (a stuck call must not stall the
/// demo).
async fn one(mode: Mode, lapis: &Lapis, storage: Option<&Storage>, db: &Arc<Db>) -> anyhow::Result<([usize; 3], [i64; 4])> {
    let take = async {
        let (counts, checkpoints) = stored(db).await?;
        let backlog = match (mode, storage) {
            (Mode::Messaging, Some(storage)) => backlog(lapis, storage, &checkpoints).await?,
            _ => [0; 4],
        };
        Ok((counts, backlog))
    };
    tokio::time::timeout(Duration::from_secs(10), take).await.map_err(|_| anyhow::anyhow!("a sample took over 10 s"))?
}

pub async fn every_half_second(mode: Mode, lapis: Lapis, db: Arc<Db>, progress: Arc<Progress>, log: Arc<Log>) {
    let storage = Storage::new(&lapis).ok();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let Ok((stored, backlog)) = one(mode, &lapis, storage.as_ref(), &db).await else { continue };
        let acked = [progress.uploads.load(Ordering::Relaxed), progress.comments.load(Ordering::Relaxed), progress.plays.load(Ordering::Relaxed)];
        let at = log.started.elapsed().as_secs_f64();
        log.samples.lock().push(Sample { at, acked, stored, backlog });
    }
}

/// Waits until nothing is left in flight: in messaging mode every backlog empty and
/// every acknowledged upload heard of by both handlers, twice in a row; in direct
/// mode a moment for the API's last calls to the handlers. `false` if `limit` passed.
pub async fn settle(mode: Mode, lapis: &Lapis, db: &Arc<Db>, ledger: &Ledger, limit: Duration) -> bool {
    if mode == Mode::Direct {
        tokio::time::sleep(Duration::from_secs(3)).await;
        return true;
    }
    let Ok(storage) = Storage::new(lapis) else { return false };
    let acked_uploads = ledger.uploads.iter().filter(|a| a.acknowledged).count();
    let deadline = tokio::time::Instant::now() + limit;
    let mut quiet = 0;
    while tokio::time::Instant::now() < deadline {
        let delivered = tokio::time::timeout(Duration::from_secs(10), db.scalar("SELECT COUNT(*) FROM (SELECT event_id FROM deliveries WHERE event_id LIKE 'phone%' GROUP BY event_id HAVING COUNT(*) = 2) AS heard".into())).await;
        let heard_all = matches!(delivered, Ok(Ok(n)) if n as usize >= acked_uploads);
        match one(mode, lapis, Some(&storage), db).await {
            Ok((_, backlog)) if backlog.iter().all(|&b| b == 0) && heard_all => {
                quiet += 1;
                if quiet >= 2 {
                    return true;
                }
            }
            _ => quiet = 0,
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}
