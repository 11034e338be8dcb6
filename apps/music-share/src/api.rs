//! `music-share api`: the web API over the SQL database. Tracks (an upload is the
//! audio as the body, keyed by the client's upload id), comments (keyed by the
//! client's comment id, numbered per track), plays. Its limits are deliberate and
//! realistic: a bounded number of requests handled at once (the rest wait a little,
//! then get 503), a bounded connection pool, and a timeout per request — so a burst
//! against it directly fails some requests, which is what the demo's `direct` mode
//! shows.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::db::{Db, DbError, Stored};
use crate::media::{self, MAX_AUDIO_BYTES};

/// A comment's longest body.
pub const MAX_COMMENT_CHARS: usize = 2000;
const MAX_TITLE_CHARS: usize = 200;

#[derive(Debug, Clone)]
pub struct Limits {
    /// Requests handled at once.
    pub workers: usize,
    /// How long a request waits for a worker before it gets 503.
    pub queue_wait: Duration,
    /// Database connections.
    pub connections: usize,
    /// The longest a request may take.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { workers: 16, queue_wait: Duration::from_millis(500), connections: 4, timeout: Duration::from_secs(10) }
    }
}

pub struct App {
    pub db: Arc<Db>,
    pub media: PathBuf,
    workers: Semaphore,
    limits: Limits,
    /// Handlers told of each new track by a direct call (the original design; in
    /// messaging mode Event Grid does this instead).
    pub notify: Vec<String>,
}

/// An answer with a status and `{"error": "..."}`.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<DbError> for Failure {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Busy(_) => Failure(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            other => {
                tracing::error!(error = %other, "a database call failed");
                Failure(StatusCode::INTERNAL_SERVER_ERROR, "the database failed; try again".into())
            }
        }
    }
}

type Answer = Result<Response, Failure>;

/// A header's value, percent-decoded (UTF-8 titles travel percent-encoded, as
/// header values are ASCII); `None` when absent, empty or not valid.
fn header(h: &HeaderMap, name: &str) -> Option<String> {
    let raw = h.get(name)?.to_str().ok()?;
    let mut bytes = Vec::with_capacity(raw.len());
    let mut it = raw.bytes();
    while let Some(b) = it.next() {
        if b == b'%' {
            let hex = [it.next()?, it.next()?];
            bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            bytes.push(b);
        }
    }
    let text = String::from_utf8(bytes).ok()?;
    Some(text.trim().to_string()).filter(|s| !s.is_empty() && !s.chars().any(char::is_control))
}

fn bad(message: impl Into<String>) -> Failure {
    Failure(StatusCode::BAD_REQUEST, message.into())
}

/// Waits for a worker (or gives up with 503), then runs `work` within the timeout.
async fn limited(app: &App, work: impl std::future::Future<Output = Answer>) -> Answer {
    let Ok(Ok(_permit)) = tokio::time::timeout(app.limits.queue_wait, app.workers.acquire()).await else {
        return Err(Failure(StatusCode::SERVICE_UNAVAILABLE, "the server is busy; try again".into()));
    };
    tokio::time::timeout(app.limits.timeout, work).await.unwrap_or_else(|_| Err(Failure(StatusCode::GATEWAY_TIMEOUT, "the request took too long".into())))
}

/// `POST /api/tracks`: the body is the audio; `x-upload-id`, `x-title` and
/// `x-artist` (percent-encoded UTF-8) describe it. A retried upload (same id) answers with the stored track.
async fn upload(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Answer {
    limited(&app, async {
        let upload_id = header(&headers, "x-upload-id").ok_or_else(|| bad("x-upload-id is required (a fresh id per upload; retries reuse it)"))?;
        let title = header(&headers, "x-title").ok_or_else(|| bad("x-title is required"))?;
        let artist = header(&headers, "x-artist").ok_or_else(|| bad("x-artist is required"))?;
        if title.chars().count() > MAX_TITLE_CHARS || artist.chars().count() > MAX_TITLE_CHARS {
            return Err(bad(format!("title and artist are at most {MAX_TITLE_CHARS} characters")));
        }
        if let Some(existing) = app.db.track_by_upload(upload_id.clone()).await? {
            return Ok((StatusCode::OK, Json(existing)).into_response());
        }
        let upload = media::Upload { upload_id, title, artist };
        let (track, stored) = media::keep(&app.db, &app.media, upload, Arc::new(body.to_vec())).await.map_err(|e| match e {
            media::KeepError::NotAudio => Failure(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string()),
            media::KeepError::TooLarge => Failure(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
            media::KeepError::Io(_) => Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            media::KeepError::Db(e) => e.into(),
        })?;
        if stored == Stored::New {
            crate::handlers::notify_directly(&app.notify, &track);
        }
        let status = if stored == Stored::New { StatusCode::CREATED } else { StatusCode::OK };
        Ok((status, Json(track)).into_response())
    })
    .await
}

async fn list_tracks(State(app): State<Arc<App>>) -> Answer {
    limited(&app, async { Ok(Json(app.db.tracks(100).await?).into_response()) }).await
}

async fn show_track(State(app): State<Arc<App>>, Path(id): Path<String>) -> Answer {
    limited(&app, async {
        match app.db.track(id).await? {
            Some(t) => Ok(Json(t).into_response()),
            None => Err(Failure(StatusCode::NOT_FOUND, "no such track".into())),
        }
    })
    .await
}

async fn audio(State(app): State<Arc<App>>, Path(id): Path<String>) -> Answer {
    limited(&app, async {
        let track = app.db.track(id).await?.ok_or_else(|| Failure(StatusCode::NOT_FOUND, "no such track".into()))?;
        let bytes = tokio::fs::read(&track.media_path).await.map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, format!("reading the audio failed: {e}")))?;
        Ok(([(axum::http::header::CONTENT_TYPE, track.content_type)], bytes).into_response())
    })
    .await
}

#[derive(Deserialize)]
struct NewComment {
    comment_id: String,
    author: String,
    body: String,
}

/// `POST /api/tracks/{id}/comments` with `{"comment_id", "author", "body"}`: stored once
/// per comment id.
async fn comment(State(app): State<Arc<App>>, Path(id): Path<String>, body: Bytes) -> Answer {
    limited(&app, async {
        let c: NewComment = serde_json::from_slice(&body).map_err(|e| bad(format!("a comment is {{\"comment_id\", \"author\", \"body\"}}: {e}")))?;
        let text = c.body.trim().to_string();
        if text.is_empty() {
            return Err(bad("a comment needs some text"));
        }
        if text.chars().count() > MAX_COMMENT_CHARS {
            return Err(bad(format!("a comment is at most {MAX_COMMENT_CHARS} characters")));
        }
        if c.comment_id.trim().is_empty() || c.author.trim().is_empty() {
            return Err(bad("comment_id and author are required"));
        }
        match app.db.add_comment(id, c.comment_id, c.author, text).await? {
            None => Err(Failure(StatusCode::NOT_FOUND, "no such track".into())),
            Some((comment, stored)) => Ok((if stored == Stored::New { StatusCode::CREATED } else { StatusCode::OK }, Json(comment)).into_response()),
        }
    })
    .await
}

async fn comments(State(app): State<Arc<App>>, Path(id): Path<String>) -> Answer {
    limited(&app, async {
        if app.db.track(id.clone()).await?.is_none() {
            return Err(Failure(StatusCode::NOT_FOUND, "no such track".into()));
        }
        Ok(Json(app.db.comments(id).await?).into_response())
    })
    .await
}

#[derive(Deserialize, Default)]
struct NewPlay {
    play_id: Option<String>,
}

/// `POST /api/tracks/{id}/plays`, optionally with `{"play_id"}` (counted once per id).
async fn play(State(app): State<Arc<App>>, Path(id): Path<String>, body: Bytes) -> Answer {
    limited(&app, async {
        let p: NewPlay = if body.is_empty() { NewPlay::default() } else { serde_json::from_slice(&body).map_err(|e| bad(format!("a play is {{\"play_id\"}} or nothing: {e}")))? };
        match app.db.add_play(id, p.play_id).await? {
            true => Ok(StatusCode::NO_CONTENT.into_response()),
            false => Err(Failure(StatusCode::NOT_FOUND, "no such track".into())),
        }
    })
    .await
}

/// `GET /api/trending`: the tracks played most in the last hour, with their plays.
async fn trending(State(app): State<Arc<App>>) -> Answer {
    limited(&app, async {
        let top = app.db.trending(3_600_000, 10).await?;
        Ok(Json(top.into_iter().map(|(track, plays)| json!({"track": track, "plays_last_hour": plays})).collect::<Vec<_>>()).into_response())
    })
    .await
}

/// `GET /api/notifications`: the newest tracks the notifications handler has heard of.
async fn notifications(State(app): State<Arc<App>>) -> Answer {
    limited(&app, async { Ok(Json(app.db.notifications(10).await?).into_response()) }).await
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/api/tracks", post(upload).get(list_tracks))
        .route("/api/tracks/{id}", get(show_track))
        .route("/api/tracks/{id}/audio", get(audio))
        .route("/api/tracks/{id}/comments", post(comment).get(comments))
        .route("/api/tracks/{id}/plays", post(play))
        .route("/api/trending", get(trending))
        .route("/api/notifications", get(notifications))
        .layer(DefaultBodyLimit::max(MAX_AUDIO_BYTES))
        .with_state(app)
}

pub fn app(db: Arc<Db>, media: PathBuf, limits: Limits, notify: Vec<String>) -> Arc<App> {
    Arc::new(App { db, media, workers: Semaphore::new(limits.workers), limits, notify })
}

/// Serves the API on `listen` until the process is stopped.
pub async fn serve(listen: SocketAddr, app: Arc<App>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("music-share api on http://{}", listener.local_addr()?);
    axum::serve(listener, router(app)).await?;
    Ok(())
}
