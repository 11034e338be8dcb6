//! The database's rules on SQLite (tests/postgres.rs runs the app on PostgreSQL).

use super::*;

fn new_track(upload: &str) -> NewTrack {
    NewTrack { upload_id: upload.into(), title: "Song".into(), artist: "Band".into(), content_type: "audio/mpeg".into(), size_bytes: 3, media_path: "m/1".into() }
}

#[tokio::test]
async fn writes_are_idempotent_and_comments_numbered_per_track() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&Target::Sqlite(dir.path().join("app.db")), 2, Duration::from_secs(5)).await.unwrap();
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
    let reopened = Db::open(&Target::Sqlite(dir.path().join("app.db")), 1, Duration::from_secs(5)).await.unwrap();
    assert_eq!(reopened.tracks(10).await.unwrap().len(), 1, "migrations run once; data stays");
}

#[tokio::test]
async fn plays_count_once_with_their_checkpoint_and_deliveries_once_per_handler() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&Target::Sqlite(dir.path().join("app.db")), 2, Duration::from_secs(5)).await.unwrap();
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
    let db = Db::open(&Target::Sqlite(dir.path().join("app.db")), 4, Duration::from_secs(10)).await.unwrap();
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
