//! The app's SQL database: the schema and its migrations, and every query the API
//! makes. SQLite in one file; a bounded pool of connections, each used on a blocking
//! thread, so a burst waits for a connection (up to a timeout) instead of opening
//! more.
//!
//! Writes are idempotent: a track is keyed by its upload id and a comment by its
//! client-made id, so a retried request stores nothing twice.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use tokio::sync::Semaphore;

/// Each migration, in order; `schema_version` says how many have run.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE tracks (
        id TEXT PRIMARY KEY,
        upload_id TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL,
        artist TEXT NOT NULL,
        content_type TEXT NOT NULL,
        size_bytes INTEGER NOT NULL,
        media_path TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL
    );
    CREATE TABLE comments (
        id TEXT PRIMARY KEY,
        track_id TEXT NOT NULL REFERENCES tracks(id),
        author TEXT NOT NULL,
        body TEXT NOT NULL,
        seq INTEGER NOT NULL,
        created_at_ms INTEGER NOT NULL
    );
    CREATE INDEX comments_by_track ON comments(track_id, seq);
    CREATE TABLE plays (
        track_id TEXT NOT NULL REFERENCES tracks(id),
        at_ms INTEGER NOT NULL
    );
    CREATE INDEX plays_by_track ON plays(track_id, at_ms);",
];

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("no database connection was free within {0:?}")]
    Busy(Duration),
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
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
    pool: Mutex<Vec<Connection>>,
    /// One permit per connection in `pool`; a permit goes back only with its
    /// connection, even when the request that took it was cancelled.
    free: Arc<Semaphore>,
    wait: Duration,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn open_one(path: &Path) -> DbResult<Connection> {
    let c = Connection::open(path)?;
    // WAL lets readers run beside the writer; the busy timeout makes writers queue
    // instead of failing at once.
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    c.busy_timeout(Duration::from_secs(5))?;
    Ok(c)
}

fn migrate(c: &mut Connection) -> DbResult<()> {
    c.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let done: i64 = c.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done as usize) {
        let tx = c.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute("INSERT INTO schema_version (version) VALUES (?1)", params![i as i64 + 1])?;
        tx.commit()?;
    }
    Ok(())
}

impl Db {
    /// Opens (creating and migrating) the database at `path` with `connections`
    /// connections; a query waits up to `wait` for one.
    pub fn open(path: &Path, connections: usize, wait: Duration) -> DbResult<Arc<Db>> {
        assert!(connections > 0, "a pool needs a connection");
        let mut first = open_one(path)?;
        migrate(&mut first)?;
        let mut pool = vec![first];
        for _ in 1..connections {
            pool.push(open_one(path)?);
        }
        Ok(Arc::new(Db { pool: Mutex::new(pool), free: Arc::new(Semaphore::new(connections)), wait }))
    }

    /// Runs `f` on a connection, on a blocking thread.
    async fn with<T: Send + 'static>(self: &Arc<Self>, f: impl FnOnce(&mut Connection) -> DbResult<T> + Send + 'static) -> DbResult<T> {
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
            // Immediate: a transaction that reads and then writes must hold the write
            // lock from the start, or a concurrent writer makes it fail (SQLITE_BUSY)
            // instead of waiting.
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let existing: Option<String> = tx.query_row("SELECT id FROM tracks WHERE upload_id = ?1", params![t.upload_id], |r| r.get(0)).optional()?;
            let (id, stored) = match existing {
                Some(id) => (id, Stored::Already),
                None => {
                    let id = uuid::Uuid::new_v4().to_string();
                    tx.execute(
                        "INSERT INTO tracks (id, upload_id, title, artist, content_type, size_bytes, media_path, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        params![id, t.upload_id, t.title, t.artist, t.content_type, t.size_bytes, t.media_path, now_ms()],
                    )?;
                    (id, Stored::New)
                }
            };
            let track = track_by_id(&tx, &id)?.expect("the track was just found or stored");
            tx.commit()?;
            Ok((track, stored))
        })
        .await
    }

    pub async fn track(self: &Arc<Self>, id: String) -> DbResult<Option<Track>> {
        self.with(move |c| track_by_id(c, &id)).await
    }

    pub async fn track_by_upload(self: &Arc<Self>, upload_id: String) -> DbResult<Option<Track>> {
        self.with(move |c| {
            let id: Option<String> = c.query_row("SELECT id FROM tracks WHERE upload_id = ?1", params![upload_id], |r| r.get(0)).optional()?;
            match id {
                Some(id) => track_by_id(c, &id),
                None => Ok(None),
            }
        })
        .await
    }

    /// The newest tracks first.
    pub async fn tracks(self: &Arc<Self>, limit: usize) -> DbResult<Vec<Track>> {
        self.with(move |c| {
            let mut stmt = c.prepare(&format!("{TRACK_SELECT} ORDER BY t.created_at_ms DESC, t.id LIMIT ?1"))?;
            let rows = stmt.query_map(params![limit as i64], track_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Stores a comment once per comment id, numbered in arrival order within its
    /// track. `None` when the track does not exist.
    pub async fn add_comment(self: &Arc<Self>, track_id: String, comment_id: String, author: String, body: String) -> DbResult<Option<(Comment, Stored)>> {
        self.with(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            if track_by_id(&tx, &track_id)?.is_none() {
                return Ok(None);
            }
            let stored = match comment_by_id(&tx, &comment_id)? {
                Some(_) => Stored::Already,
                None => {
                    let seq: i64 = tx.query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM comments WHERE track_id = ?1", params![track_id], |r| r.get(0))?;
                    tx.execute(
                        "INSERT INTO comments (id, track_id, author, body, seq, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![comment_id, track_id, author, body, seq, now_ms()],
                    )?;
                    Stored::New
                }
            };
            let comment = comment_by_id(&tx, &comment_id)?.expect("the comment was just found or stored");
            tx.commit()?;
            Ok(Some((comment, stored)))
        })
        .await
    }

    pub async fn comments(self: &Arc<Self>, track_id: String) -> DbResult<Vec<Comment>> {
        self.with(move |c| {
            let mut stmt = c.prepare("SELECT id, track_id, author, body, seq, created_at_ms FROM comments WHERE track_id = ?1 ORDER BY seq")?;
            let rows = stmt.query_map(params![track_id], comment_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Counts one play; `false` when the track does not exist.
    pub async fn add_play(self: &Arc<Self>, track_id: String) -> DbResult<bool> {
        self.with(move |c| {
            if track_by_id(c, &track_id)?.is_none() {
                return Ok(false);
            }
            c.execute("INSERT INTO plays (track_id, at_ms) VALUES (?1, ?2)", params![track_id, now_ms()])?;
            Ok(true)
        })
        .await
    }
}

const TRACK_SELECT: &str = "SELECT t.id, t.upload_id, t.title, t.artist, t.content_type, t.size_bytes, t.media_path, t.created_at_ms, \
    (SELECT COUNT(*) FROM plays p WHERE p.track_id = t.id), (SELECT COUNT(*) FROM comments c WHERE c.track_id = t.id) FROM tracks t";

fn track_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Track> {
    Ok(Track {
        id: r.get(0)?,
        upload_id: r.get(1)?,
        title: r.get(2)?,
        artist: r.get(3)?,
        content_type: r.get(4)?,
        size_bytes: r.get(5)?,
        media_path: r.get(6)?,
        created_at_ms: r.get(7)?,
        plays: r.get(8)?,
        comments: r.get(9)?,
    })
}

fn comment_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Comment> {
    Ok(Comment { id: r.get(0)?, track_id: r.get(1)?, author: r.get(2)?, body: r.get(3)?, seq: r.get(4)?, created_at_ms: r.get(5)? })
}

fn track_by_id(c: &Connection, id: &str) -> DbResult<Option<Track>> {
    Ok(c.query_row(&format!("{TRACK_SELECT} WHERE t.id = ?1"), params![id], track_row).optional()?)
}

fn comment_by_id(c: &Connection, id: &str) -> DbResult<Option<Comment>> {
    Ok(c.query_row("SELECT id, track_id, author, body, seq, created_at_ms FROM comments WHERE id = ?1", params![id], comment_row).optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_track(upload: &str) -> NewTrack {
        NewTrack { upload_id: upload.into(), title: "Song".into(), artist: "Band".into(), content_type: "audio/mpeg".into(), size_bytes: 3, media_path: "m/1".into() }
    }

    #[tokio::test]
    async fn writes_are_idempotent_and_comments_numbered_per_track() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("app.db"), 2, Duration::from_secs(5)).unwrap();
        let (t, s) = db.add_track(new_track("u1")).await.unwrap();
        assert_eq!(s, Stored::New);
        let (again, s) = db.add_track(new_track("u1")).await.unwrap();
        assert_eq!((again.id.clone(), s), (t.id.clone(), Stored::Already), "a retried upload is stored once");
        for (i, id) in ["c1", "c2", "c1"].iter().enumerate() {
            let (c, s) = db.add_comment(t.id.clone(), id.to_string(), "me".into(), format!("n{i}")).await.unwrap().unwrap();
            assert_eq!(s, if i == 2 { Stored::Already } else { Stored::New });
            assert_eq!(c.seq, if *id == "c1" { 1 } else { 2 });
        }
        assert_eq!(db.comments(t.id.clone()).await.unwrap().len(), 2);
        assert!(db.add_comment("nope".into(), "c3".into(), "me".into(), "x".into()).await.unwrap().is_none());
        assert!(db.add_play(t.id.clone()).await.unwrap());
        let listed = db.tracks(10).await.unwrap();
        assert_eq!((listed.len(), listed[0].plays, listed[0].comments), (1, 1, 2));
        drop(db);
        let reopened = Db::open(&dir.path().join("app.db"), 1, Duration::from_secs(5)).unwrap();
        assert_eq!(reopened.tracks(10).await.unwrap().len(), 1, "migrations run once; data stays");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writers_wait_for_each_other_and_cancelled_calls_return_their_connection() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("app.db"), 4, Duration::from_secs(10)).unwrap();
        let (t, _) = db.add_track(new_track("seed")).await.unwrap();
        // Callers that give up at once (a client that went away) must not keep a
        // connection's permit while its query still runs.
        for i in 0..50 {
            let _ = tokio::time::timeout(Duration::ZERO, db.add_comment(t.id.clone(), format!("gone{i}"), "a".into(), "b".into())).await;
        }
        let writers: Vec<_> = (0..64)
            .map(|i| {
                let (db, track) = (db.clone(), t.id.clone());
                tokio::spawn(async move {
                    db.add_track(new_track(&format!("u{i}"))).await.unwrap();
                    db.add_comment(track, format!("c{i}"), "me".into(), "hi".into()).await.unwrap().unwrap();
                })
            })
            .collect();
        for w in writers {
            w.await.expect("no writer failed or panicked");
        }
        assert_eq!(db.tracks(100).await.unwrap().len(), 65);
        let seqs: Vec<i64> = db.comments(t.id.clone()).await.unwrap().iter().filter(|c| c.id.starts_with('c')).map(|c| c.seq).collect();
        assert_eq!(seqs.len(), 64);
    }
}
