//! `music-share mobile`: many simulated phones uploading tracks, posting comments
//! and playing tracks over a flaky network (requests dropped before they leave or
//! their answers lost, timeouts), each drawing its faults from its own seeded
//! random stream, so a run is repeatable. It writes a ledger of what each phone
//! tried and what it was told, for `music-share count` to compare with the database.
//!
//! How a phone reaches the back end is the mode ([`direct`] or [`messaging`]); what
//! it does and how it retries is here.

pub mod direct;
pub mod messaging;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::http::Fault;

/// How the front-ends reach the back end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Synchronous calls to the web API, as the original design did.
    Direct,
    /// Each task through the Lapis service that fits it.
    Messaging,
}

impl Mode {
    /// As the `--mode` flag spells it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Direct => "direct",
            Mode::Messaging => "messaging",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub mode: Mode,
    /// The API's address (host:port): direct mode's target, and where both modes
    /// put the catalog of tracks the phones comment on and play.
    pub api: String,
    pub lapis: crate::messaging::lapis::Lapis,
    pub phones: usize,
    pub uploads: usize,
    pub comments: usize,
    pub plays: usize,
    /// Tracks put in place before the burst, for comments and plays.
    pub catalog: usize,
    /// Comments on a track that no longer exists (one each from the first phones):
    /// poison the back end cannot store, which messaging mode dead-letters.
    pub stale: usize,
    /// Chance that one attempt meets a network fault.
    pub drop: f64,
    /// Direct mode: attempts per item before the phone gives up.
    pub tries: u32,
    /// Messaging mode: how long an item may wait in the phone's outbox.
    pub outbox: Duration,
    /// One phone in ten starts the burst offline for this long, then catches up.
    pub offline: Duration,
    pub timeout: Duration,
    pub seed: u64,
    pub audio_bytes: usize,
}

/// One thing a user tried to do, and how it went from their side.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    pub id: String,
    pub attempts: u32,
    /// The app told the user it was done.
    pub acknowledged: bool,
    /// What the last failed attempt met.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Ledger {
    pub uploads: Vec<Attempt>,
    pub comments: Vec<Attempt>,
    #[serde(default)]
    pub plays: Vec<Attempt>,
    /// The comments on a deleted track (not counted as comments).
    #[serde(default)]
    pub stale: Vec<Attempt>,
    /// The tracks of the catalog.
    #[serde(default)]
    pub catalog: Vec<String>,
}

/// Acknowledgements so far, per task, for the demo's chart.
#[derive(Debug, Default)]
pub struct Progress {
    pub uploads: AtomicUsize,
    pub comments: AtomicUsize,
    pub plays: AtomicUsize,
    /// Items finished either way (acknowledged or given up on).
    pub finished: AtomicUsize,
}

/// How one attempt went.
pub enum Sent {
    Done,
    /// Refused for good (bad input): no retry helps.
    Refused(String),
    /// Failed this time.
    Failed(String),
}

/// One upload, comment or play as the phone means it.
#[derive(Debug, Clone)]
pub enum Item {
    Upload { id: String, title: String, artist: String, audio: Arc<Vec<u8>> },
    Comment { id: String, track: String, author: String, body: String },
    Play { id: String, track: String },
}

impl Item {
    pub fn id(&self) -> &str {
        match self {
            Item::Upload { id, .. } | Item::Comment { id, .. } | Item::Play { id, .. } => id,
        }
    }
}

/// What carries a phone's items: the API or Lapis.
#[allow(async_fn_in_trait)]
pub trait Carrier {
    /// Sends `item` once under `fault`.
    async fn send(&self, item: &Item, fault: Fault) -> Sent;
}

pub fn audio(len: usize, phone: usize, n: usize) -> Vec<u8> {
    let mut b = b"ID3\x04\x00\x00".to_vec();
    b.extend(format!("phone {phone} track {n}").bytes());
    b.resize(len.max(b.len()), 0x55);
    b
}

fn fault(rng: &mut StdRng, drop: f64) -> Fault {
    match rng.gen::<f64>() {
        x if x < drop / 2.0 => Fault::DropBefore,
        x if x < drop => Fault::DropAfter,
        _ => Fault::None,
    }
}

/// Tries `item` until it is acknowledged: in direct mode at most `tries` times (the
/// user sees an error and the item is gone); in messaging mode for as long as the
/// outbox keeps it, because each try is a quick durable hand-off.
async fn deliver(rng: &mut StdRng, plan: &Plan, carrier: &impl Carrier, item: &Item, offline_until: Option<tokio::time::Instant>) -> Attempt {
    let id = item.id().to_string();
    let started = tokio::time::Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let f = fault(rng, plan.drop);
        let sent = match offline_until {
            Some(until) if tokio::time::Instant::now() < until => Sent::Failed("the phone is offline".into()),
            _ => carrier.send(item, f).await,
        };
        match sent {
            Sent::Done => return Attempt { id, attempts: attempt, acknowledged: true, last_error: None },
            Sent::Refused(why) => return Attempt { id, attempts: attempt, acknowledged: false, last_error: Some(why) },
            Sent::Failed(why) => {
                let give_up = match plan.mode {
                    Mode::Direct => attempt >= plan.tries,
                    Mode::Messaging => started.elapsed() >= plan.outbox,
                };
                if give_up {
                    return Attempt { id, attempts: attempt, acknowledged: false, last_error: Some(why) };
                }
            }
        }
        let backoff = Duration::from_millis((20 * attempt as u64).min(1000));
        tokio::time::sleep(backoff).await;
    }
}

async fn phone(plan: Arc<Plan>, n: usize, catalog: Arc<Vec<String>>, carrier: Arc<impl Carrier>, ledger: Arc<Mutex<Ledger>>, progress: Arc<Progress>) {
    let mut rng = StdRng::seed_from_u64(plan.seed.wrapping_mul(1_000_003).wrapping_add(n as u64));
    let offline_until = (n % 10 == 3 && !plan.offline.is_zero()).then(|| tokio::time::Instant::now() + plan.offline);
    let uploads: Vec<Item> = (0..plan.uploads)
        .map(|u| Item::Upload { id: format!("phone{n}-upload{u}"), title: format!("Track {u} of phone {n}"), artist: format!("Phone {n}"), audio: Arc::new(audio(plan.audio_bytes, n, u)) })
        .collect();
    let comments: Vec<Item> = (0..plan.comments)
        .map(|c| Item::Comment { id: format!("phone{n}-comment{c}"), track: catalog[rng.gen_range(0..catalog.len())].clone(), author: format!("phone{n}"), body: format!("comment {c} from phone {n}") })
        .collect();
    let plays: Vec<Item> = (0..plan.plays).map(|p| Item::Play { id: format!("phone{n}-play{p}"), track: catalog[rng.gen_range(0..catalog.len())].clone() }).collect();
    if n < plan.stale {
        let item = Item::Comment { id: format!("phone{n}-stale"), track: format!("deleted-track-{n}"), author: format!("phone{n}"), body: "is this still up?".into() };
        let attempt = deliver(&mut rng, &plan, carrier.as_ref(), &item, offline_until).await;
        ledger.lock().stale.push(attempt);
    }
    // Interleaved as a user would go (an upload, a comment, a play, …), each kind in
    // its own order: a phone's comments are sent one after another.
    let longest = uploads.len().max(comments.len()).max(plays.len());
    let items = (0..longest).flat_map(|i| [uploads.get(i), comments.get(i), plays.get(i)]).flatten();
    for item in items {
        let attempt = deliver(&mut rng, &plan, carrier.as_ref(), item, offline_until).await;
        let mut l = ledger.lock();
        let (list, counter) = match item {
            Item::Upload { .. } => (&mut l.uploads, &progress.uploads),
            Item::Comment { .. } => (&mut l.comments, &progress.comments),
            Item::Play { .. } => (&mut l.plays, &progress.plays),
        };
        if attempt.acknowledged {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        progress.finished.fetch_add(1, Ordering::Relaxed);
        list.push(attempt);
    }
}

/// Puts the catalog in place through the API (no faults; it is the set-up), then
/// runs every phone at once through `carrier`.
/// The phones are tasks on one thread (a `LocalSet`): the messaging clients run on
/// a current-thread runtime (docs/design/music-share-clients.md).
pub async fn run_with(plan: Plan, carrier: Arc<impl Carrier + 'static>, progress: Arc<Progress>) -> anyhow::Result<Ledger> {
    let catalog = Arc::new(direct::put_catalog(&plan).await?);
    let plan = Arc::new(plan);
    let ledger = Arc::new(Mutex::new(Ledger { catalog: catalog.to_vec(), ..Ledger::default() }));
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let mut phones = tokio::task::JoinSet::new();
            for n in 0..plan.phones {
                phones.spawn_local(phone(plan.clone(), n, catalog.clone(), carrier.clone(), ledger.clone(), progress.clone()));
            }
            while let Some(done) = phones.join_next().await {
                done?;
            }
            anyhow::Ok(())
        })
        .await?;
    let mut out = ledger.lock().clone();
    for list in [&mut out.uploads, &mut out.comments, &mut out.plays, &mut out.stale] {
        list.sort_by(|a, b| a.id.cmp(&b.id));
    }
    Ok(out)
}

/// Runs the plan in its mode.
pub async fn run(plan: Plan, progress: Arc<Progress>) -> anyhow::Result<Ledger> {
    match plan.mode {
        Mode::Direct => {
            let carrier = Arc::new(direct::Api { addr: plan.api.clone(), timeout: plan.timeout });
            run_with(plan, carrier, progress).await
        }
        Mode::Messaging => {
            let carrier = Arc::new(messaging::Lapis::connect(&plan).await?);
            run_with(plan, carrier, progress).await
        }
    }
}
