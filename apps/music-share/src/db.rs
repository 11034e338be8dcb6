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
    // Messaging: plays keyed by the client's id, the trending aggregator's place in
    // each partition, and the "track published" handlers' records.
    "ALTER TABLE plays ADD COLUMN id TEXT;
    CREATE UNIQUE INDEX plays_by_id ON plays(id);
    CREATE TABLE checkpoints (
        consumer_group TEXT NOT NULL,
        partition_id TEXT NOT NULL,
        sequence_number INTEGER NOT NULL,
        PRIMARY KEY (consumer_group, partition_id)
    );
    CREATE TABLE deliveries (
        handler TEXT NOT NULL,
        event_id TEXT NOT NULL,
        track_id TEXT NOT NULL,
        received_at_ms INTEGER NOT NULL,
        times INTEGER NOT NULL,
        PRIMARY KEY (handler, event_id)
    );",
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

    /// Counts one play, once per play id when one is given; `false` when the track
    /// does not exist.
    pub async fn add_play(self: &Arc<Self>, track_id: String, play_id: Option<String>) -> DbResult<bool> {
        self.with(move |c| {
            if track_by_id(c, &track_id)?.is_none() {
                return Ok(false);
            }
            c.execute("INSERT OR IGNORE INTO plays (id, track_id, at_ms) VALUES (?1, ?2, ?3)", params![play_id, track_id, now_ms()])?;
            Ok(true)
        })
        .await
    }

    /// Where a consumer group's reading of a partition got to (the last sequence
    /// number counted), if anywhere.
    pub async fn checkpoint(self: &Arc<Self>, group: String, partition: String) -> DbResult<Option<i64>> {
        self.with(move |c| Ok(c.query_row("SELECT sequence_number FROM checkpoints WHERE consumer_group = ?1 AND partition_id = ?2", params![group, partition], |r| r.get(0)).optional()?))
            .await
    }

    /// Counts `plays` (id, track) and moves the partition's checkpoint to `last` in
    /// one transaction, so a crash counts a play either with its checkpoint or not at
    /// all. Plays of unknown tracks are skipped; a play id seen before is not counted
    /// again. Returns how many were new.
    pub async fn add_plays(self: &Arc<Self>, group: String, partition: String, plays: Vec<(String, String)>, last: i64) -> DbResult<usize> {
        self.with(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut added = 0;
            {
                let mut insert = tx.prepare_cached("INSERT OR IGNORE INTO plays (id, track_id, at_ms) SELECT ?1, id, ?3 FROM tracks WHERE id = ?2")?;
                let now = now_ms();
                for (id, track) in &plays {
                    added += insert.execute(params![id, track, now])?;
                }
            }
            tx.execute(
                "INSERT INTO checkpoints (consumer_group, partition_id, sequence_number) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (consumer_group, partition_id) DO UPDATE SET sequence_number = excluded.sequence_number",
                params![group, partition, last],
            )?;
            tx.commit()?;
            Ok(added)
        })
        .await
    }

    /// Records that `handler` got event `event_id` about `track_id`; a redelivery
    /// only counts up `times`. `Stored::New` the first time.
    pub async fn add_delivery(self: &Arc<Self>, handler: String, event_id: String, track_id: String) -> DbResult<Stored> {
        self.with(move |c| {
            let changed = c.execute(
                "INSERT INTO deliveries (handler, event_id, track_id, received_at_ms, times) VALUES (?1, ?2, ?3, ?4, 1) \
                 ON CONFLICT (handler, event_id) DO UPDATE SET times = times + 1",
                params![handler, event_id, track_id, now_ms()],
            )?;
            debug_assert_eq!(changed, 1);
            let times: i64 = c.query_row("SELECT times FROM deliveries WHERE handler = ?1 AND event_id = ?2", params![handler, event_id], |r| r.get(0))?;
            Ok(if times == 1 { Stored::New } else { Stored::Already })
        })
        .await
    }

    /// The newest tracks the notifications handler has recorded, newest first.
    pub async fn notifications(self: &Arc<Self>, limit: usize) -> DbResult<Vec<Track>> {
        self.with(move |c| {
            let mut stmt = c.prepare(&format!("{TRACK_SELECT} JOIN deliveries d ON d.track_id = t.id AND d.handler = 'notifications' ORDER BY d.received_at_ms DESC LIMIT ?1"))?;
            let rows = stmt.query_map(params![limit as i64], track_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// The tracks played most in the last `window_ms`, with their play counts.
    pub async fn trending(self: &Arc<Self>, window_ms: i64, limit: usize) -> DbResult<Vec<(Track, i64)>> {
        self.with(move |c| {
            let since = now_ms() - window_ms;
            let mut stmt = c.prepare("SELECT track_id, COUNT(*) AS n FROM plays WHERE at_ms >= ?1 GROUP BY track_id ORDER BY n DESC, track_id LIMIT ?2")?;
            let rows: Vec<(String, i64)> = stmt.query_map(params![since, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
            let mut out = Vec::with_capacity(rows.len());
            for (id, n) in rows {
                if let Some(t) = track_by_id(c, &id)? {
                    out.push((t, n));
                }
            }
            Ok(out)
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
        assert!(db.add_play(t.id.clone(), None).await.unwrap());
        let listed = db.tracks(10).await.unwrap();
        assert_eq!((listed.len(), listed[0].plays, listed[0].comments), (1, 1, 2));
        drop(db);
        let reopened = Db::open(&dir.path().join("app.db"), 1, Duration::from_secs(5)).unwrap();
        assert_eq!(reopened.tracks(10).await.unwrap().len(), 1, "migrations run once; data stays");
    }

    #[tokio::test]
    async fn plays_count_once_with_their_checkpoint_and_deliveries_once_per_handler() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("app.db"), 2, Duration::from_secs(5)).unwrap();
        let (t, _) = db.add_track(new_track("u1")).await.unwrap();
        let (g, p) = ("trending".to_string(), "0".to_string());
        assert_eq!(db.checkpoint(g.clone(), p.clone()).await.unwrap(), None);
        let plays = vec![("p1".to_string(), t.id.clone()), ("p2".to_string(), t.id.clone()), ("p3".to_string(), "no-such-track".to_string())];
        assert_eq!(db.add_plays(g.clone(), p.clone(), plays.clone(), 2).await.unwrap(), 2, "a play of an unknown track is skipped");
        assert_eq!(db.checkpoint(g.clone(), p.clone()).await.unwrap(), Some(2));
        assert_eq!(db.add_plays(g.clone(), p.clone(), plays, 5).await.unwrap(), 0, "a replay counts nothing twice");
        assert_eq!(db.checkpoint(g.clone(), p).await.unwrap(), Some(5));
        assert!(db.add_play(t.id.clone(), Some("p1".into())).await.unwrap(), "the same id from the API counts once too");
        assert_eq!(db.track(t.id.clone()).await.unwrap().unwrap().plays, 2);
        let top = db.trending(60_000, 5).await.unwrap();
        assert_eq!((top.len(), top[0].1), (1, 2));
        assert_eq!(db.add_delivery("notifications".into(), "e1".into(), t.id.clone()).await.unwrap(), Stored::New);
        assert_eq!(db.add_delivery("notifications".into(), "e1".into(), t.id.clone()).await.unwrap(), Stored::Already);
        assert_eq!(db.add_delivery("search-index".into(), "e1".into(), t.id.clone()).await.unwrap(), Stored::New, "each handler keeps its own record");
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
