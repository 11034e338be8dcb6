//! `music-share handler`: the independent services told of each new track — the
//! notifications sender and the search indexer. Each is an Event Grid webhook: it
//! answers the subscription validation handshake, then records every "track
//! published" event it gets once (by event id; a redelivery only counts up), and
//! answers 200 only after that record is committed, so Event Grid retries whatever a
//! handler did not take.
//!
//! In `direct` mode the API calls the same endpoint itself, once, as the original
//! design did ([`notify_directly`]); a handler that is down then misses the track.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::db::{Db, Track};
use crate::http::{request, Fault, Outcome};
use crate::messaging::eventgrid::{Published, TRACK_PUBLISHED};

/// The handlers the app has, by the name in their webhook path.
pub const HANDLERS: [&str; 2] = ["notifications", "search-index"];
const VALIDATION_EVENT: &str = "Microsoft.EventGrid.SubscriptionValidationEvent";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    id: String,
    event_type: String,
    #[serde(default)]
    data: serde_json::Value,
}

struct Handler {
    name: String,
    db: Arc<Db>,
}

/// `POST /hooks/{name}` with an Event Grid batch.
async fn receive(State(h): State<Arc<Handler>>, Path(name): Path<String>, body: Bytes) -> Response {
    if name != h.name {
        return (StatusCode::NOT_FOUND, "no such handler here").into_response();
    }
    let Ok(events) = serde_json::from_slice::<Vec<Event>>(&body) else {
        return (StatusCode::BAD_REQUEST, "expected an array of Event Grid events").into_response();
    };
    if let Some(v) = events.iter().find(|e| e.event_type == VALIDATION_EVENT) {
        let code = v.data["validationCode"].as_str().unwrap_or_default();
        return Json(json!({ "validationResponse": code })).into_response();
    }
    for e in events.iter().filter(|e| e.event_type == TRACK_PUBLISHED) {
        let Ok(track) = serde_json::from_value::<Published>(e.data.clone()) else {
            // Retrying cannot help, and refusing the batch would lose the good events
            // beside it: this one is skipped.
            tracing::warn!(event = %e.id, "a track-published event without a track; skipped");
            continue;
        };
        if let Err(err) = h.db.add_delivery(h.name.clone(), e.id.clone(), track.track_id).await {
            tracing::warn!(error = %err, "recording a delivery failed; Event Grid will retry");
            return (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response();
        }
    }
    StatusCode::OK.into_response()
}

/// Serves handler `name` on `listen` until stopped.
pub async fn serve(listen: SocketAddr, name: String, db: Arc<Db>) -> anyhow::Result<()> {
    anyhow::ensure!(HANDLERS.contains(&name.as_str()), "--name is one of {HANDLERS:?}");
    let router = Router::new().route("/hooks/{name}", post(receive)).route("/health", axum::routing::get(|| async { "ok\n" })).with_state(Arc::new(Handler { name, db }));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("music-share handler on http://{}", listener.local_addr()?);
    axum::serve(listener, router).await?;
    Ok(())
}

/// Direct mode: tells each handler URL of `track` once, in the background; a
/// handler that does not answer misses it.
pub fn notify_directly(urls: &[String], track: &Track) {
    for url in urls {
        let Some((addr, path)) = url.strip_prefix("http://").and_then(|rest| rest.split_once('/')).map(|(a, p)| (a.to_string(), format!("/{p}"))) else {
            continue;
        };
        let body = json!([{
            "id": track.upload_id, "subject": format!("tracks/{}", track.id), "eventType": TRACK_PUBLISHED,
            "eventTime": "", "dataVersion": "1.0",
            "data": Published { track_id: track.id.clone(), title: track.title.clone(), artist: track.artist.clone() },
        }]);
        let body = serde_json::to_vec(&body).unwrap_or_default();
        tokio::spawn(async move {
            let headers = [("content-type", "application/json".to_string())];
            if let Outcome::NoAnswer(why) = request(&addr, "POST", &path, &headers, &body, Duration::from_secs(2), Fault::None).await {
                tracing::warn!(%addr, %why, "a handler missed a new track");
            }
        });
    }
}
