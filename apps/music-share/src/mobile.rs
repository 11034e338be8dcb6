//! `music-share mobile`: many simulated phones uploading tracks and posting comments
//! over a flaky network (requests dropped before they leave or their answers lost,
//! timeouts), each retrying a few times with backoff and then giving up, as an app
//! without an outbox does. Every phone draws its faults from its own seeded random
//! stream, so a run is repeatable. It writes a ledger of what each phone tried and
//! what it was told, for `music-share count` to compare with the database.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::http::{request, Fault, Outcome};

#[derive(Debug, Clone)]
pub struct Plan {
    pub api: String,
    pub phones: usize,
    pub uploads: usize,
    pub comments: usize,
    /// Chance that one attempt meets a network fault.
    pub drop: f64,
    pub tries: u32,
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
}

fn audio(len: usize, phone: usize, n: usize) -> Vec<u8> {
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

/// Tries `send` up to `tries` times (backoff between), each attempt under a fault
/// drawn from `rng`; acknowledged once one attempt gets a 2xx.
async fn with_retries<F, Fut>(rng: &mut StdRng, plan: &Plan, id: String, mut send: F) -> Attempt
where
    F: FnMut(Fault) -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
    let mut last_error = None;
    for attempt in 1..=plan.tries {
        let f = fault(rng, plan.drop);
        match send(f).await {
            Outcome::Answered { status, .. } if (200..300).contains(&status) => return Attempt { id, attempts: attempt, acknowledged: true, last_error: None },
            // A refusal of the request itself (400, 404, 413, 415) is final.
            Outcome::Answered { status, .. } if (400..500).contains(&status) && status != 408 && status != 429 => {
                return Attempt { id, attempts: attempt, acknowledged: false, last_error: Some(format!("refused with {status}")) };
            }
            Outcome::Answered { status, .. } => last_error = Some(format!("answered {status}")),
            Outcome::NoAnswer(why) => last_error = Some(why),
        }
        tokio::time::sleep(Duration::from_millis(20 * attempt as u64)).await;
    }
    Attempt { id, attempts: plan.tries, acknowledged: false, last_error }
}

async fn phone(plan: Arc<Plan>, n: usize, target: String, ledger: Arc<Mutex<Ledger>>) {
    let mut rng = StdRng::seed_from_u64(plan.seed.wrapping_mul(1_000_003).wrapping_add(n as u64));
    for u in 0..plan.uploads {
        let id = format!("phone{n}-upload{u}");
        let body = audio(plan.audio_bytes, n, u);
        let headers = [("x-upload-id", id.clone()), ("x-title", format!("Track {u} of phone {n}")), ("x-artist", format!("Phone {n}")), ("content-type", "audio/mpeg".to_string())];
        let attempt = with_retries(&mut rng, &plan, id, |f| request(&plan.api, "POST", "/api/tracks", &headers, &body, plan.timeout, f)).await;
        ledger.lock().uploads.push(attempt);
    }
    for c in 0..plan.comments {
        let id = format!("phone{n}-comment{c}");
        let body = serde_json::to_vec(&serde_json::json!({"comment_id": id, "author": format!("phone{n}"), "body": format!("comment {c} from phone {n}")})).expect("JSON serializes");
        let path = format!("/api/tracks/{target}/comments");
        let headers = [("content-type", "application/json".to_string())];
        let attempt = with_retries(&mut rng, &plan, id, |f| request(&plan.api, "POST", &path, &headers, &body, plan.timeout, f)).await;
        ledger.lock().comments.push(attempt);
    }
}

/// Runs every phone at once against the API; comments go to one track the simulator
/// uploads first (without faults).
pub async fn run(plan: Plan) -> anyhow::Result<Ledger> {
    let seed_track = audio(plan.audio_bytes, usize::MAX, 0);
    let headers = [("x-upload-id", format!("seed-{}", plan.seed)), ("x-title", "The track everyone comments on".to_string()), ("x-artist", "music-share".to_string())];
    let target = match request(&plan.api, "POST", "/api/tracks", &headers, &seed_track, Duration::from_secs(30), Fault::None).await {
        Outcome::Answered { status, body } if (200..300).contains(&status) => serde_json::from_slice::<serde_json::Value>(&body)?["id"].as_str().unwrap_or_default().to_string(),
        other => anyhow::bail!("the seed track was not stored: {other:?}"),
    };
    let plan = Arc::new(plan);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let phones: Vec<_> = (0..plan.phones).map(|n| tokio::spawn(phone(plan.clone(), n, target.clone(), ledger.clone()))).collect();
    for p in phones {
        p.await?;
    }
    let mut out = ledger.lock().clone();
    out.uploads.sort_by(|a, b| a.id.cmp(&b.id));
    out.comments.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}
