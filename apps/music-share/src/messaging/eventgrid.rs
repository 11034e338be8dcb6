//! Event Grid publishing: a plain HTTP POST of Event Grid schema events with the
//! topic key (no official Rust crate publishes), and the webhook side's validation
//! handshake.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::lapis::{Lapis, TOPIC_KEY};
use crate::http::{request, Fault, Outcome};

/// The topic "new track published" goes to, and its event type.
pub const TRACKS_TOPIC: &str = "tracks";
pub const TRACK_PUBLISHED: &str = "MusicShare.TrackPublished";

/// What a "track published" event carries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Published {
    pub track_id: String,
    pub title: String,
    pub artist: String,
}

/// Publishes that `track` is out. The event id is the upload id, so a worker that
/// publishes again after a crash sends the same event and handlers store it once.
pub async fn publish(lapis: &Lapis, event_id: &str, track: &Published) -> anyhow::Result<()> {
    let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let events = json!([{
        "id": event_id,
        "subject": format!("tracks/{}", track.track_id),
        "eventType": TRACK_PUBLISHED,
        "eventTime": now,
        "data": track,
        "dataVersion": "1.0",
    }]);
    let body = serde_json::to_vec(&events)?;
    let url = lapis.topic_url(TRACKS_TOPIC);
    let path = url.splitn(4, '/').nth(3).map(|p| format!("/{p}")).unwrap_or_default();
    let headers = [("content-type", "application/json".to_string()), ("aeg-sas-key", TOPIC_KEY.to_string())];
    match request(&lapis.http_addr(), "POST", &path, &headers, &body, Duration::from_secs(10), Fault::None).await {
        Outcome::Answered { status: 200, .. } => Ok(()),
        Outcome::Answered { status, body } => anyhow::bail!("Event Grid answered {status}: {}", String::from_utf8_lossy(&body)),
        Outcome::NoAnswer(why) => anyhow::bail!("Event Grid did not answer: {why}"),
    }
}
