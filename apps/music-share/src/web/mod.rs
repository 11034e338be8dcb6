//! `music-share web`: the web site. Pages are rendered here from the API's answers
//! (tracks, comments, trending, notifications); what a visitor sends goes the way
//! the run's mode says — to the API directly, or to Lapis (an upload's audio to Blob
//! with its job on the Storage Queue, a comment to Service Bus, a play to Event
//! Hubs), through the same carriers the simulated phones use. Input is checked
//! here first, so a bad upload or comment gets a clear error and nothing of it is
//! stored anywhere.

pub(crate) mod pages;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use serde_json::Value;

use crate::http::{request, Fault, Outcome};
use crate::media::{self, MAX_AUDIO_BYTES};
use crate::messaging::lapis::Lapis;
use crate::mobile::{direct, messaging, Carrier, Item, Mode, Sent};

/// How a form's item reaches the back end.
enum Front {
    Direct(direct::Api),
    Messaging(Box<messaging::Lapis>),
}

impl Front {
    async fn send(&self, item: &Item) -> Sent {
        match self {
            Front::Direct(api) => api.send(item, Fault::None).await,
            Front::Messaging(lapis) => lapis.send(item, Fault::None).await,
        }
    }
}

struct Site {
    mode: Mode,
    api: String,
    lapis: Lapis,
    front: Front,
}

const MAX_TEXT: usize = 200;
const MAX_COMMENT: usize = 2000;

/// A GET to the API: its JSON, or `None` when it is not there (404).
async fn api_get(site: &Site, path: &str) -> Result<Option<Value>, Response> {
    match request(&site.api, "GET", path, &[], b"", Duration::from_secs(10), Fault::None).await {
        Outcome::Answered { status: 200, body } => Ok(Some(serde_json::from_slice(&body).unwrap_or(Value::Null))),
        Outcome::Answered { status: 404, .. } => Ok(None),
        _ => Err(error_page(site, StatusCode::SERVICE_UNAVAILABLE, "The site cannot reach its API just now; try again in a moment.")),
    }
}

fn error_page(site: &Site, status: StatusCode, message: &str) -> Response {
    (status, Html(pages::page("Error", site.mode.name(), Some((message, false)), "<p><a href=\"/\">Back to the tracks</a></p>"))).into_response()
}

#[derive(Deserialize, Default)]
struct Flash {
    uploaded: Option<String>,
    posted: Option<String>,
}

async fn home(State(site): State<Arc<Site>>, Query(flash): Query<Flash>) -> Response {
    let tracks = match api_get(&site, "/api/tracks").await {
        Ok(v) => v.and_then(|v| v.as_array().cloned()).unwrap_or_default(),
        Err(r) => return r,
    };
    let message = flash.uploaded.map(|title| match site.mode {
        Mode::Direct => format!("“{title}” is published."),
        Mode::Messaging => format!("“{title}” is uploaded and will appear in a moment."),
    });
    let body = pages::home(&tracks, &uuid::Uuid::new_v4().to_string());
    Html(pages::page("Tracks", site.mode.name(), message.as_deref().map(|m| (m, true)), &body)).into_response()
}

async fn track(State(site): State<Arc<Site>>, Path(id): Path<String>, Query(flash): Query<Flash>) -> Response {
    let path = format!("/api/tracks/{}", crate::messaging::lapis::encode(&id));
    let t = match api_get(&site, &path).await {
        Ok(Some(t)) => t,
        Ok(None) => return error_page(&site, StatusCode::NOT_FOUND, "There is no such track."),
        Err(r) => return r,
    };
    let comments = match api_get(&site, &format!("{path}/comments")).await {
        Ok(v) => v.and_then(|v| v.as_array().cloned()).unwrap_or_default(),
        Err(r) => return r,
    };
    let message = flash.posted.map(|_| match site.mode {
        Mode::Direct => "Your comment is posted.".to_string(),
        Mode::Messaging => "Your comment is posted and will appear in a moment.".to_string(),
    });
    let body = pages::track(&t, &comments, &uuid::Uuid::new_v4().to_string());
    Html(pages::page(t["title"].as_str().unwrap_or("Track"), site.mode.name(), message.as_deref().map(|m| (m, true)), &body)).into_response()
}

const TOO_LARGE: &str = "That file is over 64 MB.";

/// The page for an upload form that could not be read: too large, or cut short.
fn broken_form(site: &Site, e: axum::extract::multipart::MultipartError) -> Response {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        error_page(site, StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE)
    } else {
        error_page(site, StatusCode::BAD_REQUEST, &format!("The upload did not arrive whole: {e}"))
    }
}

/// `POST /upload`: the upload form (upload id, title, artist, audio file).
async fn upload(State(site): State<Arc<Site>>, mut form: Multipart) -> Response {
    let (mut upload_id, mut title, mut artist, mut audio) = (String::new(), String::new(), String::new(), None);
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_string();
                let bytes = match field.bytes().await {
                    Ok(b) => b,
                    Err(e) => return broken_form(&site, e),
                };
                match name.as_str() {
                    "upload_id" => upload_id = String::from_utf8_lossy(&bytes).trim().to_string(),
                    "title" => title = String::from_utf8_lossy(&bytes).trim().to_string(),
                    "artist" => artist = String::from_utf8_lossy(&bytes).trim().to_string(),
                    "audio" => audio = Some(bytes),
                    _ => {}
                }
            }
            Ok(None) => break,
            Err(e) => return broken_form(&site, e),
        }
    }
    if title.is_empty() || artist.is_empty() || title.chars().count() > MAX_TEXT || artist.chars().count() > MAX_TEXT {
        return error_page(&site, StatusCode::BAD_REQUEST, "A track needs a title and an artist, each at most 200 characters.");
    }
    let Some(audio) = audio.filter(|a| !a.is_empty()) else { return error_page(&site, StatusCode::BAD_REQUEST, "Choose an audio file to upload.") };
    if audio.len() > MAX_AUDIO_BYTES {
        return error_page(&site, StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE);
    }
    if media::sniff(&audio).is_none() {
        return error_page(&site, StatusCode::UNSUPPORTED_MEDIA_TYPE, "That is not an audio file (MP3, WAV, Ogg, FLAC or M4A).");
    }
    if uuid::Uuid::parse_str(&upload_id).is_err() {
        upload_id = uuid::Uuid::new_v4().to_string();
    }
    let item = Item::Upload { id: format!("web-{upload_id}"), title: title.clone(), artist, audio: Arc::new(audio.to_vec()) };
    match site.front.send(&item).await {
        Sent::Done => Redirect::to(&format!("/?uploaded={}", crate::messaging::lapis::encode(&title))).into_response(),
        Sent::Refused(why) => error_page(&site, StatusCode::BAD_REQUEST, &format!("The upload was refused: {why}")),
        Sent::Failed(why) => error_page(&site, StatusCode::SERVICE_UNAVAILABLE, &format!("The upload did not go through ({why}); your file is not stored — try again.")),
    }
}

#[derive(Deserialize)]
struct CommentForm {
    comment_id: String,
    author: String,
    body: String,
}

async fn comment(State(site): State<Arc<Site>>, Path(id): Path<String>, Form(form): Form<CommentForm>) -> Response {
    let (author, body) = (form.author.trim().to_string(), form.body.trim().to_string());
    if body.is_empty() {
        return error_page(&site, StatusCode::BAD_REQUEST, "A comment needs some text.");
    }
    if body.chars().count() > MAX_COMMENT || author.is_empty() || author.chars().count() > MAX_TEXT {
        return error_page(&site, StatusCode::BAD_REQUEST, "A comment is at most 2000 characters, and needs your name.");
    }
    match api_get(&site, &format!("/api/tracks/{}", crate::messaging::lapis::encode(&id))).await {
        Ok(Some(_)) => {}
        Ok(None) => return error_page(&site, StatusCode::NOT_FOUND, "There is no such track to comment on."),
        Err(r) => return r,
    }
    let comment_id = if uuid::Uuid::parse_str(&form.comment_id).is_ok() { form.comment_id } else { uuid::Uuid::new_v4().to_string() };
    let item = Item::Comment { id: format!("web-{comment_id}"), track: id.clone(), author, body };
    match site.front.send(&item).await {
        Sent::Done => Redirect::to(&format!("/tracks/{}?posted=1", crate::messaging::lapis::encode(&id))).into_response(),
        Sent::Refused(why) => error_page(&site, StatusCode::BAD_REQUEST, &format!("The comment was refused: {why}")),
        Sent::Failed(why) => error_page(&site, StatusCode::SERVICE_UNAVAILABLE, &format!("The comment did not go through ({why}); try again.")),
    }
}

async fn play(State(site): State<Arc<Site>>, Path(id): Path<String>) -> StatusCode {
    match site.front.send(&Item::Play { id: format!("web-{}", uuid::Uuid::new_v4()), track: id }).await {
        Sent::Done => StatusCode::NO_CONTENT,
        Sent::Refused(_) => StatusCode::NOT_FOUND,
        Sent::Failed(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn audio(State(site): State<Arc<Site>>, Path(id): Path<String>) -> Response {
    let path = format!("/api/tracks/{}/audio", crate::messaging::lapis::encode(&id));
    match request(&site.api, "GET", &path, &[], b"", Duration::from_secs(60), Fault::None).await {
        Outcome::Answered { status: 200, body } => {
            let kind = media::sniff(&body).unwrap_or("application/octet-stream");
            ([(header::CONTENT_TYPE, kind)], body).into_response()
        }
        Outcome::Answered { status: 404, .. } => StatusCode::NOT_FOUND.into_response(),
        _ => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// The live lists, as small JSON the page's script renders.
async fn live(State(site): State<Arc<Site>>, Path(which): Path<String>) -> Response {
    let (path, pick): (&str, fn(&Value) -> Value) = match which.as_str() {
        "trending" => ("/api/trending", |v| serde_json::json!({"id": v["track"]["id"], "title": v["track"]["title"], "artist": v["track"]["artist"], "plays": v["plays_last_hour"]})),
        "published" => ("/api/notifications", |v| serde_json::json!({"id": v["id"], "title": v["title"], "artist": v["artist"]})),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    match api_get(&site, path).await {
        Ok(Some(Value::Array(items))) => axum::Json(items.iter().map(pick).collect::<Vec<_>>()).into_response(),
        _ => axum::Json(Vec::<Value>::new()).into_response(),
    }
}

async fn admin(State(site): State<Arc<Site>>) -> Response {
    if site.mode == Mode::Direct {
        let body = pages::admin(&[], &[], "Direct mode has no queues: what failed was lost.");
        return Html(pages::page("Admin", site.mode.name(), None, &body)).into_response();
    }
    let dead = match crate::messaging::servicebus::ServiceBus::connect(&site.lapis, &[crate::messaging::servicebus::COMMENTS]).await {
        Ok(mut sb) => {
            let peeked = sb.peek(&format!("{}/$deadletterqueue", crate::messaging::servicebus::COMMENTS), 50).await;
            sb.close().await;
            peeked.unwrap_or_default().into_iter().map(|p| (p.message_id, p.reason, p.body)).collect()
        }
        Err(_) => Vec::new(),
    };
    let storage = crate::messaging::storage::Storage::new(&site.lapis);
    let poison = match &storage {
        Ok(s) => s.peek(crate::messaging::storage::UPLOAD_JOBS_POISON, 32).await.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let jobs = match &storage {
        Ok(s) => s.depth(crate::messaging::storage::UPLOAD_JOBS).await.unwrap_or(-1),
        Err(_) => -1,
    };
    let comments = crate::messaging::admin::queue_counts(&site.lapis, crate::messaging::servicebus::COMMENTS).await.map(|c| c.0).unwrap_or(-1);
    let backlog = format!("{jobs} upload jobs waiting; {comments} comments waiting.");
    Html(pages::page("Admin", site.mode.name(), None, &pages::admin(&dead, &poison, &backlog))).into_response()
}

/// Serves the web site on `listen` until stopped.
pub async fn serve(listen: SocketAddr, mode: Mode, api: String, lapis: Lapis) -> anyhow::Result<()> {
    let front = match mode {
        Mode::Direct => Front::Direct(direct::Api { addr: api.clone(), timeout: Duration::from_secs(60) }),
        Mode::Messaging => {
            Front::Messaging(Box::new(messaging::Lapis::connect_to(&lapis, Duration::from_secs(60)).await?))
        }
    };
    let site = Arc::new(Site { mode, api, lapis, front });
    let router = Router::new()
        .route("/", get(home))
        .route("/health", get(|| async { "ok\n" }))
        .route("/upload", post(upload))
        .route("/tracks/{id}", get(track))
        .route("/tracks/{id}/comments", post(comment))
        .route("/tracks/{id}/plays", post(play))
        .route("/tracks/{id}/audio", get(audio))
        .route("/live/{which}", get(live))
        .route("/admin", get(admin))
        // The audio and the form around it.
        .layer(DefaultBodyLimit::max(MAX_AUDIO_BYTES + (64 << 10)))
        .with_state(site);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("music-share web on http://{}", listener.local_addr()?);
    axum::serve(listener, router).await?;
    Ok(())
}
