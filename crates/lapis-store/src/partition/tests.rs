//! Event logs, file and memory, through the trait: numbering, visibility after
//! durability, seeking, chunked reads, recovery, retention.

use std::sync::Arc;

use super::*;
use crate::journal::JournalOptions;

fn small_segments() -> JournalOptions {
    JournalOptions { segment_bytes: 4096, ..Default::default() }
}

async fn append(log: &dyn EventLog, now: i64, bodies: &[&str]) -> Vec<(i64, i64, i64)> {
    let bytes: Vec<&[u8]> = bodies.iter().map(|b| b.as_bytes()).collect();
    let a = log.append(now, &bytes).unwrap();
    let events = a.events.clone();
    a.durable().await.unwrap();
    events
}

async fn read_all(log: &dyn EventLog, mut c: Cursor) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let got = log.read(&mut c, 7, 1 << 20).await.unwrap();
        if got.is_empty() {
            return out;
        }
        out.extend(got.into_iter().map(|e| String::from_utf8(e.body).unwrap()));
    }
}

fn logs(dir: &std::path::Path) -> Vec<Arc<dyn EventLog>> {
    let (file, _) = FileLog::open(dir, small_segments()).unwrap();
    vec![Arc::new(file), Arc::new(MemoryLog::default())]
}

#[tokio::test]
async fn events_are_numbered_and_readable_from_any_position() {
    let dir = tempfile::tempdir().unwrap();
    for log in logs(dir.path()) {
        let bodies: Vec<String> = (0..200).map(|i| format!("event-{i:03}-{}", "x".repeat(i % 50))).collect();
        let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
        let mut placed = Vec::new();
        for (i, chunk) in refs.chunks(13).enumerate() {
            placed.extend(append(&*log, 1_000 + i as i64, chunk).await);
        }
        assert_eq!(placed.iter().map(|p| p.0).collect::<Vec<_>>(), (0..200).collect::<Vec<_>>());
        assert!(placed.windows(2).all(|w| w[1].1 > w[0].1 && w[1].2 >= w[0].2), "offsets grow, times never go back");
        assert_eq!(read_all(&*log, log.seek(Seek::Start)).await, bodies);
        assert_eq!(read_all(&*log, log.seek(Seek::Seq { seq: 150, inclusive: true })).await, bodies[150..]);
        assert_eq!(read_all(&*log, log.seek(Seek::Seq { seq: 150, inclusive: false })).await, bodies[151..]);
        let (_, off, _) = placed[120];
        assert_eq!(read_all(&*log, log.seek(Seek::Offset { offset: off, inclusive: true })).await, bodies[120..]);
        assert_eq!(read_all(&*log, log.seek(Seek::Offset { offset: off, inclusive: false })).await, bodies[121..]);
        let t = placed[130].2;
        let from_time = read_all(&*log, log.seek(Seek::Time { ms: t, inclusive: true })).await;
        let first = placed.iter().position(|p| p.2 >= t).unwrap();
        assert_eq!(from_time, bodies[first..]);
        assert!(read_all(&*log, log.seek(Seek::End)).await.is_empty());
        let info = log.info();
        assert_eq!((info.begin_seq, info.last_seq, info.last_offset, info.is_empty), (0, 199, placed[199].1, false));
    }
}

#[tokio::test]
async fn nothing_is_visible_before_it_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(crate::journal::Faults::default());
    let (log, _) = FileLog::open(dir.path(), JournalOptions { faults: Some(faults.clone()), ..small_segments() }).unwrap();
    faults.hold_syncs.store(true, std::sync::atomic::Ordering::SeqCst);
    let a = log.append(5, &[b"first".as_slice()]).unwrap();
    let mut c = log.seek(Seek::Start);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(log.read(&mut c, 10, 1 << 20).await.unwrap().is_empty(), "not readable before durable");
    assert_eq!(log.info().last_seq, NONE);
    let mut watch = log.watch_visible();
    faults.hold_syncs.store(false, std::sync::atomic::Ordering::SeqCst);
    a.durable().await.unwrap();
    assert_eq!(watch.wait_for(|v| v.seq == 0).await.unwrap().seq, 0);
    assert_eq!(log.read(&mut c, 10, 1 << 20).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_large_event_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = FileLog::open(dir.path(), JournalOptions::default()).unwrap();
    let big = "b".repeat(700 << 10);
    append(&log, 1, &["small", &big, "after"]).await;
    assert_eq!(read_all(&log, log.seek(Seek::Start)).await, ["small".to_string(), big, "after".into()]);
}

#[tokio::test]
async fn the_index_and_numbering_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let placed = {
        let (log, _) = FileLog::open(dir.path(), small_segments()).unwrap();
        let mut p = Vec::new();
        for i in 0..200 {
            p.extend(append(&log, i, &[&format!("e{i}")]).await);
        }
        log.close();
        p
    };
    let (log, report) = FileLog::open(dir.path(), small_segments()).unwrap();
    assert!(report.segments > 1);
    assert_eq!(log.info().last_seq, 199);
    assert_eq!(read_all(&log, log.seek(Seek::Seq { seq: 195, inclusive: true })).await, ["e195", "e196", "e197", "e198", "e199"]);
    let (_, off, _) = placed[100];
    assert_eq!(read_all(&log, log.seek(Seek::Offset { offset: off, inclusive: true })).await.len(), 100);
    let next = append(&log, 300, &["after restart"]).await;
    assert_eq!(next[0].0, 200);
    assert!(next[0].1 > placed[199].1, "offsets go on where they were");
}

#[tokio::test]
async fn a_torn_tail_is_cut_and_numbering_goes_on_from_what_survived() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (log, _) = FileLog::open(dir.path(), JournalOptions::default()).unwrap();
        append(&log, 1, &["kept 1", "kept 2"]).await;
        log.close();
    }
    let seg = crate::segment::path(dir.path(), 1);
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes.extend_from_slice(&[9, 0, 0, 0, 1, 2]);
    std::fs::write(&seg, &bytes).unwrap();
    let (log, report) = FileLog::open(dir.path(), JournalOptions::default()).unwrap();
    assert!(report.truncated_bytes > 0);
    assert_eq!(read_all(&log, log.seek(Seek::Start)).await, ["kept 1", "kept 2"]);
    assert_eq!(append(&log, 2, &["next"]).await[0].0, 2);
}

#[tokio::test]
async fn retention_drops_old_segments_and_readers_move_on() {
    let dir = tempfile::tempdir().unwrap();
    for log in logs(dir.path()) {
        let body = "r".repeat(500);
        for i in 0..40 {
            append(&*log, i * 1_000, &[&body]).await;
        }
        let mut behind = log.seek(Seek::Start);
        let removed = log.retain(30_000, u64::MAX).unwrap();
        assert!(removed > 0 && removed <= 30, "removed {removed}");
        let info = log.info();
        assert_eq!(info.begin_seq, removed as i64);
        let got = log.read(&mut behind, 100, 1 << 20).await.unwrap();
        assert_eq!(got[0].seq, info.begin_seq, "a reader behind retention goes on from the oldest event");
        assert_eq!(got.last().unwrap().seq, 39);
        let before = log.info().bytes;
        log.retain(0, before / 2).unwrap();
        assert!(log.info().bytes <= before / 2 + 8192, "the size cap drops more");
        assert_eq!(log.info().last_seq, 39, "the newest event stays");
    }
}

#[tokio::test]
async fn events_past_retention_go_even_from_the_current_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = FileLog::open(dir.path(), JournalOptions::default()).unwrap();
    append(&log, 1_000, &["old 1", "old 2"]).await;
    let mut reader = log.seek(Seek::Start);
    assert_eq!(log.retain(500, u64::MAX).unwrap(), 0, "not yet past retention");
    assert_eq!(log.retain(5_000, u64::MAX).unwrap(), 2);
    let info = log.info();
    assert_eq!((info.begin_seq, info.is_empty, info.last_seq), (2, true, 1));
    assert!(log.read(&mut reader, 10, 1 << 20).await.unwrap().is_empty());
    let next = append(&log, 6_000, &["new"]).await;
    assert_eq!(next[0].0, 2, "numbering goes on");
    assert_eq!(read_all(&log, reader).await, ["new"], "a reader that was behind goes on from what is there");
    log.close();
    let (log, _) = FileLog::open(dir.path(), JournalOptions::default()).unwrap();
    assert_eq!(read_all(&log, log.seek(Seek::Start)).await, ["new"]);
}

#[tokio::test]
async fn events_become_visible_once_durable_even_if_nobody_awaits_the_append() {
    let dir = tempfile::tempdir().unwrap();
    for log in logs(dir.path()) {
        let mut visible = log.watch_visible();
        let appended = log.append(1_000, &[b"a", b"b"]).unwrap();
        let last = appended.events.last().unwrap().0;
        // The producer's side is busy elsewhere: `durable()` is not polled.
        let seen = tokio::time::timeout(std::time::Duration::from_secs(10), visible.wait_for(|v| v.seq >= last)).await;
        assert!(seen.is_ok(), "event {last} did not become visible");
        assert_eq!(read_all(&*log, log.seek(Seek::Start)).await, ["a", "b"]);
        drop(appended);
    }
}

#[tokio::test]
async fn a_reader_at_the_tail_gets_records_larger_than_its_bounded_read() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = FileLog::open(dir.path(), JournalOptions::default()).unwrap();
    let mut c = file.seek(Seek::End);
    let sizes = [100usize, 20_000, 5, 70_000, 4_090, 4_200];
    let mut got = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        append(&file, 0, &[&format!("{i}").repeat(*size)]).await;
        // Written behind it and maybe not yet durable: a read bounded by what is
        // visible must neither need it nor trip on it.
        let pending = file.append(0, &[b"next"]).unwrap();
        got.extend(file.read(&mut c, 10, 1 << 20).await.unwrap().into_iter().map(|e| e.body.len()));
        pending.durable().await.unwrap();
        got.extend(file.read(&mut c, 10, 1 << 20).await.unwrap().into_iter().map(|e| e.body.len()));
    }
    let want: Vec<usize> = sizes.iter().flat_map(|s| [*s, 4]).collect();
    assert_eq!(got, want);
}
