//! The app's SQL database: every query the API, the workers and the handlers make,
//! on SQLite (one file, the default) or PostgreSQL (`--database-url postgres://…`) —
//! the same schema ([`schema`]) and the same queries ([`sql`] is the one place that
//! knows which database it talks to). A bounded pool of connections, each used on a
//! blocking thread, so a burst waits for a connection (up to a timeout) instead of
//! opening more.
//!
//! Writes are idempotent: a track is keyed by its upload id, a comment by its
//! client-made id, a play by its id, a handler's delivery by the event id, so a
//! retried request or a redelivered message stores nothing twice.

mod schema;
pub mod sql;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::Semaphore;

pub use sql::Target;
use sql::{Cell, Conn, Dialect, Row};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("no database connection was free within {0:?}")]
    Busy(Duration),
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("database: {0}")]
    Postgres(String),
    #[error("database task: {0}")]
    Task(String),
}

pub type DbResult<T> = Result<T, DbError>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Track {
    pub id: String,
    pub upload_id: String,
    pub title: String,
    pub artist: String,
    pub content_type: String,
    pub size_bytes: i64,
    #[serde(skip)]
    pub media_path: String,
    pub created_at_ms: i64,
    pub plays: i64,
    pub comments: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comment {
    pub id: String,
    pub track_id: String,
    pub author: String,
    pub body: String,
    pub seq: i64,
    pub created_at_ms: i64,
}

/// A new track as an upload describes it.
pub struct NewTrack {
    pub upload_id: String,
    pub title: String,
    pub artist: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub media_path: String,
}

/// Whether a write stored something new or found it already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    New,
    Already,
}

pub struct Db {
    pool: Mutex<Vec<Conn>>,
    /// One permit per connection in `pool`; a permit goes back only with its
    /// connection, even when the request that took it was cancelled.
    free: Arc<Semaphore>,
    wait: Duration,
}

impl Drop for Db {
    /// A PostgreSQL client closes by blocking on its own runtime, which it may not do
    /// on a thread that drives async tasks: the connections are closed on a thread
    /// of their own.
    fn drop(&mut self) {
        let conns = std::mem::take(&mut *self.pool.lock());
        if conns.iter().any(|c| c.dialect() == Dialect::Postgres) {
            let _ = std::thread::spawn(move || drop(conns)).join();
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

const TRACK_SELECT: &str = "SELECT t.id, t.upload_id, t.title, t.artist, t.content_type, t.size_bytes, t.media_path, t.created_at_ms, \
    (SELECT COUNT(*) FROM plays p WHERE p.track_id = t.id), (SELECT COUNT(*) FROM comments c WHERE c.track_id = t.id) FROM tracks t";
const COMMENT_SELECT: &str = "SELECT id, track_id, author, body, seq, created_at_ms FROM comments";

fn track_of(r: &Row) -> Track {
    Track {
        id: r[0].text(),
        upload_id: r[1].text(),
        title: r[2].text(),
        artist: r[3].text(),
        content_type: r[4].text(),
        size_bytes: r[5].int(),
        media_path: r[6].text(),
        created_at_ms: r[7].int(),
        plays: r[8].int(),
        comments: r[9].int(),
    }
}

fn comment_of(r: &Row) -> Comment {
    Comment { id: r[0].text(), track_id: r[1].text(), author: r[2].text(), body: r[3].text(), seq: r[4].int(), created_at_ms: r[5].int() }
}

fn track_by_id(c: &mut Conn, id: &str) -> DbResult<Option<Track>> {
    Ok(c.query_one(&format!("{TRACK_SELECT} WHERE t.id = $1"), &[id.into()])?.as_ref().map(track_of))
}

fn comment_by_id(c: &mut Conn, id: &str) -> DbResult<Option<Comment>> {
    Ok(c.query_one(&format!("{COMMENT_SELECT} WHERE id = $1"), &[id.into()])?.as_ref().map(comment_of))
}

impl Db {
    /// Opens (creating and migrating) the database at `target` with `connections`
    /// connections; a query waits up to `wait` for one.
    /// (On a blocking thread: the PostgreSQL client blocks, and may not be opened
    /// on a thread that drives async tasks.)
    pub async fn open(target: &Target, connections: usize, wait: Duration) -> DbResult<Arc<Db>> {
        assert!(connections > 0, "a pool needs a connection");
        let target = target.clone();
        let pool = tokio::task::spawn_blocking(move || -> DbResult<Vec<Conn>> {
            let mut first = Conn::open(&target)?;
            schema::migrate(&mut first)?;
            let mut pool = vec![first];
            for _ in 1..connections {
                pool.push(Conn::open(&target)?);
            }
            Ok(pool)
        })
        .await
        .map_err(|e| DbError::Task(e.to_string()))??;
        Ok(Arc::new(Db { pool: Mutex::new(pool), free: Arc::new(Semaphore::new(connections)), wait }))
    }

    /// Drops the app's tables at `target` (a demo's fresh start).
    pub async fn reset(target: &Target) -> DbResult<()> {
        let target = target.clone();
        tokio::task::spawn_blocking(move || schema::drop_all(&mut Conn::open(&target)?)).await.map_err(|e| DbError::Task(e.to_string()))?
    }

    /// Runs `f` on a connection, on a blocking thread.
    async fn with<T: Send + 'static>(self: &Arc<Self>, f: impl FnOnce(&mut Conn) -> DbResult<T> + Send + 'static) -> DbResult<T> {
        let permit = tokio::time::timeout(self.wait, self.free.clone().acquire_owned()).await.map_err(|_| DbError::Busy(self.wait))?.map_err(|e| DbError::Task(e.to_string()))?;
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = db.pool.lock().pop().expect("a permit means a free connection");
            let out = f(&mut conn);
            db.pool.lock().push(conn);
            drop(permit);
            out
        })
        .await
        .map_err(|e| DbError::Task(e.to_string()))?
    }

    /// Stores a track once per upload id; a retried upload gets the stored one.
    pub async fn add_track(self: &Arc<Self>, t: NewTrack) -> DbResult<(Track, Stored)> {
        self.with(move |c| {
            c.write(|c| {
                let id = uuid::Uuid::new_v4().to_string();
                let inserted = c.execute(
                    "INSERT INTO tracks (id, upload_id, title, artist, content_type, size_bytes, media_path, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (upload_id) DO NOTHING",
                    &[id.into(), t.upload_id.clone().into(), t.title.into(), t.artist.into(), t.content_type.into(), t.size_bytes.into(), t.media_path.into(), now_ms().into()],
                )?;
                let stored = if inserted == 1 { Stored::New } else { Stored::Already };
                let track = c.query_one(&format!("{TRACK_SELECT} WHERE t.upload_id = $1"), &[t.upload_id.into()])?.as_ref().map(track_of).expect("the track was just found or stored");
                Ok((track, stored))
            })
        })
        .await
    }

    pub async fn track(self: &Arc<Self>, id: String) -> DbResult<Option<Track>> {
        self.with(move |c| track_by_id(c, &id)).await
    }

    pub async fn track_by_upload(self: &Arc<Self>, upload_id: String) -> DbResult<Option<Track>> {
        self.with(move |c| Ok(c.query_one(&format!("{TRACK_SELECT} WHERE t.upload_id = $1"), &[upload_id.into()])?.as_ref().map(track_of))).await
    }

    /// The newest tracks first.
    pub async fn tracks(self: &Arc<Self>, limit: usize) -> DbResult<Vec<Track>> {
        self.with(move |c| Ok(c.query(&format!("{TRACK_SELECT} ORDER BY t.created_at_ms DESC, t.id LIMIT $1"), &[(limit as i64).into()])?.iter().map(track_of).collect())).await
    }

    /// Stores a comment once per comment id, numbered in arrival order within its
    /// track. `None` when the track does not exist.
    pub async fn add_comment(self: &Arc<Self>, track_id: String, comment_id: String, author: String, body: String) -> DbResult<Option<(Comment, Stored)>> {
        self.with(move |c| {
            c.write(|c| {
                // The track's row is the lock that numbers its comments one at a time
                // (SQLite's write transaction already is one).
                let lock = match c.dialect() {
                    Dialect::Sqlite => "SELECT id FROM tracks WHERE id = $1",
                    Dialect::Postgres => "SELECT id FROM tracks WHERE id = $1 FOR UPDATE",
                };
                if c.query_one(lock, &[(&track_id).into()])?.is_none() {
                    return Ok(None);
                }
                let stored = match comment_by_id(c, &comment_id)? {
                    Some(_) => Stored::Already,
                    None => {
                        let seq = c.query_one("SELECT COALESCE(MAX(seq), 0) + 1 FROM comments WHERE track_id = $1", &[(&track_id).into()])?.map(|r| r[0].int()).unwrap_or(1);
                        c.execute(
                            "INSERT INTO comments (id, track_id, author, body, seq, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
                            &[(&comment_id).into(), (&track_id).into(), author.into(), body.into(), seq.into(), now_ms().into()],
                        )?;
                        Stored::New
                    }
                };
                let comment = comment_by_id(c, &comment_id)?.expect("the comment was just found or stored");
                Ok(Some((comment, stored)))
            })
        })
        .await
    }

    pub async fn comments(self: &Arc<Self>, track_id: String) -> DbResult<Vec<Comment>> {
        self.with(move |c| Ok(c.query(&format!("{COMMENT_SELECT} WHERE track_id = $1 ORDER BY seq"), &[track_id.into()])?.iter().map(comment_of).collect())).await
    }

    /// Counts one play, once per play id when one is given; `false` when the track
    /// does not exist.
    pub async fn add_play(self: &Arc<Self>, track_id: String, play_id: Option<String>) -> DbResult<bool> {
        self.with(move |c| {
            if track_by_id(c, &track_id)?.is_none() {
                return Ok(false);
            }
            c.execute("INSERT INTO plays (id, track_id, at_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", &[play_id.into(), track_id.into(), now_ms().into()])?;
            Ok(true)
        })
        .await
    }

    /// Where a consumer group's reading of a partition got to (the last sequence
    /// number counted), if anywhere.
    pub async fn checkpoint(self: &Arc<Self>, group: String, partition: String) -> DbResult<Option<i64>> {
        self.with(move |c| Ok(c.query_one("SELECT sequence_number FROM checkpoints WHERE consumer_group = $1 AND partition_id = $2", &[group.into(), partition.into()])?.map(|r| r[0].int())))
            .await
    }

    /// Counts `plays` (id, track) and moves the partition's checkpoint to `last` in
    /// one transaction, so a crash counts a play either with its checkpoint or not at
    /// all. Plays of unknown tracks are skipped; a play id seen before is not counted
    /// again. Returns how many were new.
    pub async fn add_plays(self: &Arc<Self>, group: String, partition: String, plays: Vec<(String, String)>, last: i64) -> DbResult<usize> {
        self.with(move |c| {
            c.write(|c| {
                let now = now_ms();
                let mut added = 0;
                for (id, track) in &plays {
                    added += c.execute("INSERT INTO plays (id, track_id, at_ms) SELECT CAST($1 AS TEXT), id, CAST($2 AS BIGINT) FROM tracks WHERE id = $3 ON CONFLICT DO NOTHING", &[id.into(), now.into(), track.into()])?;
                }
                c.execute(
                    "INSERT INTO checkpoints (consumer_group, partition_id, sequence_number) VALUES ($1, $2, $3) \
                     ON CONFLICT (consumer_group, partition_id) DO UPDATE SET sequence_number = excluded.sequence_number",
                    &[group.into(), partition.into(), last.into()],
                )?;
                Ok(added as usize)
            })
        })
        .await
    }

    /// Records that `handler` got event `event_id` about `track_id`; a redelivery
    /// only counts up `times`. `Stored::New` the first time.
    pub async fn add_delivery(self: &Arc<Self>, handler: String, event_id: String, track_id: String) -> DbResult<Stored> {
        self.with(move |c| {
            c.write(|c| {
                c.execute(
                    "INSERT INTO deliveries (handler, event_id, track_id, received_at_ms, times) VALUES ($1, $2, $3, $4, 1) \
                     ON CONFLICT (handler, event_id) DO UPDATE SET times = deliveries.times + 1",
                    &[(&handler).into(), (&event_id).into(), track_id.into(), now_ms().into()],
                )?;
                let times = c.query_one("SELECT times FROM deliveries WHERE handler = $1 AND event_id = $2", &[handler.into(), event_id.into()])?.map(|r| r[0].int()).unwrap_or(0);
                Ok(if times == 1 { Stored::New } else { Stored::Already })
            })
        })
        .await
    }

    /// The newest tracks the notifications handler has recorded, newest first.
    pub async fn notifications(self: &Arc<Self>, limit: usize) -> DbResult<Vec<Track>> {
        self.with(move |c| {
            let sql = format!("{TRACK_SELECT} JOIN deliveries d ON d.track_id = t.id AND d.handler = 'notifications' ORDER BY d.received_at_ms DESC LIMIT $1");
            Ok(c.query(&sql, &[(limit as i64).into()])?.iter().map(track_of).collect())
        })
        .await
    }

    /// The tracks played most in the last `window_ms`, with their play counts.
    pub async fn trending(self: &Arc<Self>, window_ms: i64, limit: usize) -> DbResult<Vec<(Track, i64)>> {
        self.with(move |c| {
            let since = now_ms() - window_ms;
            let rows = c.query("SELECT track_id, COUNT(*) AS n FROM plays WHERE at_ms >= $1 GROUP BY track_id ORDER BY n DESC, track_id LIMIT $2", &[since.into(), (limit as i64).into()])?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                if let Some(t) = track_by_id(c, &r[0].text())? {
                    out.push((t, r[1].int()));
                }
            }
            Ok(out)
        })
        .await
    }

    /// For the count and the demo's samples: `sql` returning (key, number) rows.
    pub async fn counts(self: &Arc<Self>, sql: String) -> DbResult<BTreeMap<String, usize>> {
        self.with(move |c| Ok(c.query(&sql, &[])?.iter().map(|r| (r[0].text(), r[1].int().max(0) as usize)).collect())).await
    }

    /// For the count and the demo's samples: the rows `sql` returns.
    pub async fn rows(self: &Arc<Self>, sql: String) -> DbResult<Vec<Vec<String>>> {
        self.with(move |c| Ok(c.query(&sql, &[])?.iter().map(|r| r.iter().map(Cell::text).collect()).collect())).await
    }

    /// For the count and the demo's samples: the one number `sql` returns.
    pub async fn scalar(self: &Arc<Self>, sql: String) -> DbResult<i64> {
        self.with(move |c| Ok(c.query_one(&sql, &[])?.map(|r| r[0].int()).unwrap_or(0))).await
    }
}
