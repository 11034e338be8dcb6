//! Crash-recovery behaviour of the journal and the keyed log, driven through files on disk.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use lapis_store::{
    segment, CompactionPolicy, Faults, Journal, JournalOptions, KvLog, Op, ReplayEvent, Store, StoreError,
};

fn replay_journal(dir: &Path, options: JournalOptions) -> Result<(Vec<Vec<u8>>, lapis_store::RecoveryReport), StoreError> {
    let mut seen = Vec::new();
    let (journal, report) = Journal::open(dir, options, |_, p| {
        seen.push(p.to_vec());
        Ok(())
    })?;
    journal.close();
    Ok((seen, report))
}

async fn write_records(dir: &Path, records: &[&[u8]]) {
    let (journal, _) = Journal::open(dir, JournalOptions::default(), |_, _| Ok(())).unwrap();
    let (_, lsn) = journal.append(records).unwrap();
    journal.wait_durable(lsn).await.unwrap();
    journal.close();
}

fn only_segment(dir: &Path) -> std::path::PathBuf {
    let ids = segment::list(dir).unwrap();
    assert_eq!(ids.len(), 1);
    segment::path(dir, ids[0])
}

#[tokio::test]
async fn torn_last_record_is_truncated_and_earlier_records_survive() {
    let dir = tempfile::tempdir().unwrap();
    write_records(dir.path(), &[b"one", b"two", b"three"]).await;
    let path = only_segment(dir.path());
    let len = std::fs::metadata(&path).unwrap().len();
    OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 2).unwrap();

    let (seen, report) = replay_journal(dir.path(), JournalOptions::default()).unwrap();
    assert_eq!(seen, vec![b"one".to_vec(), b"two".to_vec()]);
    assert_eq!(report.truncated_bytes, 8 + 5 - 2);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len - 13);
}

#[tokio::test]
async fn garbage_appended_after_the_last_record_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    write_records(dir.path(), &[b"kept"]).await;
    let path = only_segment(dir.path());
    OpenOptions::new().append(true).open(&path).unwrap().write_all(&[0u8; 100]).unwrap();
    let (seen, report) = replay_journal(dir.path(), JournalOptions::default()).unwrap();
    assert_eq!(seen, vec![b"kept".to_vec()]);
    assert_eq!(report.truncated_bytes, 100);
}

#[tokio::test]
async fn flipped_bit_mid_file_is_reported_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    write_records(dir.path(), &[b"first record", b"second record", b"third record"]).await;
    let path = only_segment(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let second_payload = 8 + 12 + 8 + 3;
    bytes[second_payload] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();

    match replay_journal(dir.path(), JournalOptions::default()) {
        Err(StoreError::Corruption { offset, .. }) => assert_eq!(offset, 20),
        other => panic!("expected a corruption error, got {other:?}"),
    }
    // The file is left untouched for inspection.
    assert_eq!(std::fs::read(&path).unwrap(), bytes);

    let salvage = JournalOptions { salvage: true, ..Default::default() };
    let (seen, report) = replay_journal(dir.path(), salvage).unwrap();
    assert_eq!(seen, vec![b"first record".to_vec(), b"third record".to_vec()]);
    assert_eq!(report.salvaged.len(), 1);
}

#[tokio::test]
async fn empty_segment_file_opens_and_accepts_appends() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::File::create(segment::path(dir.path(), 1)).unwrap();
    let (seen, report) = replay_journal(dir.path(), JournalOptions::default()).unwrap();
    assert!(seen.is_empty());
    assert_eq!(report.truncated_bytes, 0);
    write_records(dir.path(), &[b"after"]).await;
    assert_eq!(replay_journal(dir.path(), JournalOptions::default()).unwrap().0, vec![b"after".to_vec()]);
}

#[tokio::test]
async fn recovery_run_twice_gives_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    write_records(dir.path(), &[b"a", b"b", b"c"]).await;
    let path = only_segment(dir.path());
    OpenOptions::new().append(true).open(&path).unwrap().write_all(&[7u8; 5]).unwrap();
    let (first, r1) = replay_journal(dir.path(), JournalOptions::default()).unwrap();
    let (second, r2) = replay_journal(dir.path(), JournalOptions::default()).unwrap();
    assert_eq!(first, second);
    assert_eq!(r1.truncated_bytes, 5);
    assert_eq!(r2.truncated_bytes, 0, "the second recovery finds nothing left to repair");
}

#[tokio::test]
async fn sync_failure_reaches_the_writer_and_stops_further_writes() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let options = JournalOptions { faults: Some(faults.clone()), ..Default::default() };
    let (journal, _) = Journal::open(dir.path(), options, |_, _| Ok(())).unwrap();
    let (_, lsn) = journal.append(&[b"durable"]).unwrap();
    journal.wait_durable(lsn).await.unwrap();

    faults.fail_next_sync.store(true, Ordering::SeqCst);
    let (_, lsn) = journal.append(&[b"lost"]).unwrap();
    let err = journal.wait_durable(lsn).await.unwrap_err();
    assert!(matches!(err, StoreError::WriteFailed(_)), "got {err:?}");
    assert!(matches!(journal.append(&[b"more"]), Err(StoreError::WriteFailed(_))));
    journal.close();
}

#[tokio::test]
async fn segments_roll_and_reads_find_records_in_any_segment() {
    let dir = tempfile::tempdir().unwrap();
    let options = JournalOptions { segment_bytes: 4096, ..Default::default() };
    let (journal, _) = Journal::open(dir.path(), options.clone(), |_, _| Ok(())).unwrap();
    let payloads: Vec<Vec<u8>> = (0..100u32).map(|i| vec![i as u8; 300]).collect();
    let (locs, lsn) = journal.append(&payloads).unwrap();
    journal.wait_durable(lsn).await.unwrap();
    assert!(journal.segments().0.len() > 5);
    for (loc, payload) in locs.iter().zip(&payloads) {
        assert_eq!(&journal.read(*loc).await.unwrap(), payload);
    }
    journal.close();
    drop(journal);
    let (seen, _) = replay_journal(dir.path(), options).unwrap();
    assert_eq!(seen, payloads);
}

#[tokio::test]
async fn concurrent_writers_share_syncs_and_all_become_durable() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = Journal::open(dir.path(), JournalOptions::default(), |_, _| Ok(())).unwrap();
    let journal = Arc::new(journal);
    let mut tasks = Vec::new();
    for t in 0..8u8 {
        let journal = journal.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50u8 {
                let (_, lsn) = journal.append(&[[t, i]]).unwrap();
                journal.wait_durable(lsn).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    journal.close();
    let (seen, _) = replay_journal(dir.path(), JournalOptions::default()).unwrap();
    assert_eq!(seen.len(), 400);
}

fn kv_state(dir: &Path, policy: CompactionPolicy) -> (KvLog, std::collections::BTreeMap<Vec<u8>, Vec<u8>>) {
    let mut state = std::collections::BTreeMap::new();
    let options = JournalOptions { segment_bytes: 4096, ..Default::default() };
    let (kv, _) = KvLog::open(dir, options, policy, |event| {
        match event {
            ReplayEvent::Put { key, value } => {
                state.insert(key.to_vec(), value.to_vec());
            }
            ReplayEvent::Delete { key } => {
                state.remove(key);
            }
            ReplayEvent::DeletePrefix { prefix } => state.retain(|k, _| !k.starts_with(prefix)),
        }
        Ok(())
    })
    .unwrap();
    (kv, state)
}

#[tokio::test]
async fn keyed_log_replays_puts_deletes_and_prefix_deletes() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (kv, _) = kv_state(dir.path(), CompactionPolicy::default());
        let ops = vec![
            Op::Put { key: b"q/a/1".to_vec(), value: b"x".to_vec() },
            Op::Put { key: b"q/a/2".to_vec(), value: b"y".to_vec() },
            Op::Put { key: b"q/b/1".to_vec(), value: b"z".to_vec() },
            Op::Put { key: b"q/a/1".to_vec(), value: b"x2".to_vec() },
            Op::Delete { key: b"q/b/1".to_vec() },
        ];
        kv.commit(&ops).unwrap().durable().await.unwrap();
        assert_eq!(kv.read(b"q/a/1").await.unwrap(), Some(b"x2".to_vec()));
        kv.commit(&[Op::DeletePrefix { prefix: b"q/a/".to_vec() }, Op::Put { key: b"q/c".to_vec(), value: b"w".to_vec() }])
            .unwrap()
            .durable()
            .await
            .unwrap();
        assert_eq!(kv.read(b"q/a/2").await.unwrap(), None);
        kv.close();
    }
    let (kv, state) = kv_state(dir.path(), CompactionPolicy::default());
    assert_eq!(state.into_iter().collect::<Vec<_>>(), vec![(b"q/c".to_vec(), b"w".to_vec())]);
    assert_eq!(kv.len(), 1);
}

#[tokio::test]
async fn compaction_reclaims_segments_and_preserves_live_state() {
    let dir = tempfile::tempdir().unwrap();
    let policy = CompactionPolicy { min_total_bytes: 8192, max_garbage_ratio: 0.5 };
    let mut expected = std::collections::BTreeMap::new();
    {
        let (kv, _) = kv_state(dir.path(), policy);
        for round in 0..20u32 {
            for k in 0..20u32 {
                let key = format!("k{k:03}").into_bytes();
                if k % 7 == 0 && round == 19 {
                    kv.commit(&[Op::Delete { key: key.clone() }]).unwrap().durable().await.unwrap();
                    expected.remove(&key);
                } else {
                    let value = format!("v{round}-{k}").repeat(10).into_bytes();
                    kv.commit(&[Op::Put { key: key.clone(), value: value.clone() }]).unwrap().durable().await.unwrap();
                    expected.insert(key, value);
                }
            }
        }
        let before = segment::list(dir.path()).unwrap().len();
        let mut rounds = 0;
        while kv.compact_once().await.unwrap() {
            rounds += 1;
            assert!(rounds < 1000);
        }
        let after = segment::list(dir.path()).unwrap().len();
        assert!(rounds > 0 && after < before, "compaction ran {rounds} times: {before} -> {after} segments");
        for (k, v) in &expected {
            assert_eq!(kv.read(k).await.unwrap().as_ref(), Some(v));
        }
        kv.close();
    }
    let (_, state) = kv_state(dir.path(), policy);
    assert_eq!(state, expected);
}

#[tokio::test]
async fn a_torn_multi_op_commit_applies_none_of_its_ops() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (kv, _) = kv_state(dir.path(), CompactionPolicy::default());
        kv.commit(&[Op::Put { key: b"kept".to_vec(), value: b"1".to_vec() }]).unwrap().durable().await.unwrap();
        let pair = [Op::Put { key: b"body".to_vec(), value: vec![7; 200] }, Op::Put { key: b"state".to_vec(), value: b"s".to_vec() }];
        kv.commit(&pair).unwrap().durable().await.unwrap();
        kv.close();
    }
    let ids = segment::list(dir.path()).unwrap();
    let path = segment::path(dir.path(), *ids.last().unwrap());
    let len = std::fs::metadata(&path).unwrap().len();
    // Cut inside the second op of the last commit: the first op's bytes are intact.
    OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 5).unwrap();
    let (_, state) = kv_state(dir.path(), CompactionPolicy::default());
    assert_eq!(state.keys().cloned().collect::<Vec<_>>(), vec![b"kept".to_vec()]);
}

#[tokio::test]
async fn relaxed_durability_acknowledges_writes_that_survive_a_clean_close() {
    let dir = tempfile::tempdir().unwrap();
    let relaxed = JournalOptions {
        durability: lapis_store::Durability::Relaxed { interval: std::time::Duration::from_millis(20) },
        ..Default::default()
    };
    let (journal, _) = Journal::open(dir.path(), relaxed.clone(), |_, _| Ok(())).unwrap();
    for i in 0..100u8 {
        let (_, lsn) = journal.append(&[[i]]).unwrap();
        journal.wait_durable(lsn).await.unwrap();
    }
    // Give the interval sync a chance, then close (which syncs whatever is left).
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    journal.close();
    drop(journal);
    let (seen, _) = replay_journal(dir.path(), relaxed).unwrap();
    assert_eq!(seen.len(), 100);
}

#[tokio::test]
async fn an_append_with_an_oversized_record_lands_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = Journal::open(dir.path(), JournalOptions::default(), |_, _| Ok(())).unwrap();
    // Two parts of 64 MiB + 1 make one record over the 128 MiB bound (never touched).
    let half = vec![0u8; (64 << 20) + 1];
    let refused = journal.append_parts([[b"fine".as_slice(), b""], [b"ok".as_slice(), b""], [&half[..], &half[..]]].into_iter());
    assert!(matches!(refused, Err(StoreError::Malformed { .. })), "{:?}", refused.map(|(_, lsn)| lsn));
    let (locs, lsn) = journal.append(&[b"after"]).unwrap();
    assert_eq!(locs[0].offset, 0, "the refused append left nothing behind");
    journal.wait_durable(lsn).await.unwrap();
    journal.close();
    let (seen, _) = replay_journal(dir.path(), JournalOptions::default()).unwrap();
    assert_eq!(seen, vec![b"after".to_vec()]);
}
