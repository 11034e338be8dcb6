//! Direct mode: the phone calls the web API and waits for its answer, as the
//! original design did. Each upload, comment and play is one HTTP request; a fault
//! or an overloaded API fails it.

use std::time::Duration;

use super::{audio, Carrier, Item, Plan, Sent};
use crate::http::{request, Fault, Outcome};
use crate::messaging::lapis::encode;

pub struct Api {
    pub addr: String,
    pub timeout: Duration,
}

/// 2xx is done; a refusal of the request itself (400, 404, 413, 415) is final;
/// anything else (503, 504, no answer) may pass on a retry.
fn judged(outcome: Outcome) -> Sent {
    match outcome {
        Outcome::Answered { status, .. } if (200..300).contains(&status) => Sent::Done,
        Outcome::Answered { status, .. } if (400..500).contains(&status) && status != 408 && status != 429 => Sent::Refused(format!("refused with {status}")),
        Outcome::Answered { status, .. } => Sent::Failed(format!("answered {status}")),
        Outcome::NoAnswer(why) => Sent::Failed(why),
    }
}

impl Carrier for Api {
    async fn send(&self, item: &Item, fault: Fault) -> Sent {
        let json = [("content-type", "application/json".to_string())];
        let outcome = match item {
            Item::Upload { id, title, artist, audio } => {
                // Header values are ASCII: the API takes title and artist percent-encoded.
                let headers = [("x-upload-id", encode(id)), ("x-title", encode(title)), ("x-artist", encode(artist)), ("content-type", "audio/mpeg".to_string())];
                request(&self.addr, "POST", "/api/tracks", &headers, audio, self.timeout, fault).await
            }
            Item::Comment { id, track, author, body } => {
                let body = serde_json::to_vec(&serde_json::json!({"comment_id": id, "author": author, "body": body})).unwrap_or_default();
                request(&self.addr, "POST", &format!("/api/tracks/{track}/comments"), &json, &body, self.timeout, fault).await
            }
            Item::Play { id, track } => {
                let body = serde_json::to_vec(&serde_json::json!({"play_id": id})).unwrap_or_default();
                request(&self.addr, "POST", &format!("/api/tracks/{track}/plays"), &json, &body, self.timeout, fault).await
            }
        };
        judged(outcome)
    }
}

/// Uploads the catalog's tracks through the API (retrying until each is stored:
/// it is the set-up, not the experiment) and returns their ids.
pub async fn put_catalog(plan: &Plan) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for k in 0..plan.catalog.max(1) {
        let body = audio(plan.audio_bytes, usize::MAX, k);
        let headers = [("x-upload-id", format!("catalog-{}-{k}", plan.seed)), ("x-title", format!("Catalog track {k}")), ("x-artist", "music-share".to_string())];
        let mut tries = 0;
        let id = loop {
            tries += 1;
            match request(&plan.api, "POST", "/api/tracks", &headers, &body, Duration::from_secs(30), Fault::None).await {
                Outcome::Answered { status, body } if (200..300).contains(&status) => break serde_json::from_slice::<serde_json::Value>(&body)?["id"].as_str().unwrap_or_default().to_string(),
                other if tries >= 50 => anyhow::bail!("catalog track {k} was not stored: {other:?}"),
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        ids.push(id);
    }
    Ok(ids)
}
