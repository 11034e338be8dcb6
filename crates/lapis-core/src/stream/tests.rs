//! Event Hubs semantics through the service: hubs, consumer groups, sends by
//! partition, key and round robin, readers and epochs, restart, retention.

use std::sync::Arc;

use lapis_store::partition::{DirLogs, MemoryLogs, Seek};
use lapis_store::{CompactionPolicy, JournalOptions, KvLog, MemoryStore, Store};

use super::*;
use crate::clock::ShiftableClock;

fn memory() -> (StreamService, Arc<ShiftableClock>) {
    let clock = Arc::new(ShiftableClock::default());
    let s = StreamService::open(Arc::new(MemoryStore), Arc::new(MemoryLogs), clock.clone(), StreamRecovery::default()).unwrap();
    (s, clock)
}

fn config(partitions: u32) -> HubConfig {
    HubConfig { partitions, ..Default::default() }
}

/// Sends and waits for durability; the partition and (seq, offset, time) of each event.
async fn send(s: &StreamService, hub: &str, target: SendTarget, bodies: &[&str]) -> (u32, Vec<(i64, i64, i64)>) {
    let bytes: Vec<&[u8]> = bodies.iter().map(|b| b.as_bytes()).collect();
    let sent = s.send(hub, &target, &bytes).unwrap();
    let events = sent.appended.events.clone();
    let partition = sent.partition;
    sent.appended.durable().await.unwrap();
    (partition, events)
}

async fn bodies(r: &mut Reader) -> Vec<String> {
    r.read(100, 1 << 20).await.unwrap().into_iter().map(|e| String::from_utf8(e.body).unwrap()).collect()
}

#[tokio::test]
async fn hubs_are_created_listed_and_deleted_with_their_rules() {
    let (s, _) = memory();
    s.create_hub("telemetry", config(4)).await.unwrap();
    assert!(matches!(s.create_hub("TELEMETRY", config(4)).await, Err(StreamError::HubAlreadyExists(_))));
    assert!(matches!(s.create_hub("bad name", config(4)).await, Err(StreamError::Invalid(_))));
    assert!(matches!(s.create_hub("zero", config(0)).await, Err(StreamError::Invalid(_))));
    assert_eq!(s.hub_view("Telemetry").unwrap().config.partitions, 4);
    s.add_consumer_group("telemetry", "trending").await.unwrap();
    assert!(matches!(s.add_consumer_group("telemetry", "Trending").await, Err(StreamError::ConsumerGroupAlreadyExists(_))));
    assert!(matches!(s.delete_consumer_group("telemetry", "$Default").await, Err(StreamError::Invalid(_))));
    let grown = HubConfig { partitions: 6, ..s.hub_view("telemetry").unwrap().config };
    s.update_hub("telemetry", grown).await.unwrap();
    assert!(s.partition_info("telemetry", "5").is_ok());
    assert!(matches!(s.update_hub("telemetry", config(2)).await, Err(StreamError::Invalid(_))), "partitions never shrink");
    assert!(matches!(s.partition_info("telemetry", "6"), Err(StreamError::PartitionNotFound { .. })));
    assert!(matches!(s.partition_info("telemetry", "x"), Err(StreamError::PartitionNotFound { .. })));
    s.delete_hub("telemetry").await.unwrap();
    assert!(s.list_hubs().is_empty());
    assert!(matches!(s.hub("telemetry"), Err(StreamError::HubNotFound(_))));
}

#[tokio::test]
async fn sends_go_to_the_partition_asked_for_by_id_key_or_round_robin() {
    let (s, _) = memory();
    s.create_hub("plays", config(4)).await.unwrap();
    let by_id = send(&s, "plays", SendTarget::Partition("2".into()), &["a", "b"]).await;
    assert_eq!((by_id.0, by_id.1.iter().map(|e| e.0).collect::<Vec<_>>()), (2, vec![0, 1]));
    let key = SendTarget::Key("track-42".into());
    let first = send(&s, "plays", key.clone(), &["k1"]).await.0;
    assert_eq!(send(&s, "plays", key, &["k2"]).await.0, first, "one key, one partition");
    assert_eq!(first, hash::partition_for_key("track-42", 4));
    let spread: std::collections::BTreeSet<u32> = futures_rr(&s).await;
    assert_eq!(spread.len(), 4, "round robin reaches every partition");
    let too_big = vec![0u8; MAX_EVENT_BYTES + 1];
    assert!(matches!(s.send("plays", &SendTarget::Any, &[&too_big]), Err(StreamError::EventTooLarge { .. })));
    assert!(matches!(s.send("nope", &SendTarget::Any, &[b"x".as_slice()]), Err(StreamError::HubNotFound(_))));
}

async fn futures_rr(s: &StreamService) -> std::collections::BTreeSet<u32> {
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..4 {
        seen.insert(send(s, "plays", SendTarget::Any, &["rr"]).await.0);
    }
    seen
}

#[tokio::test]
async fn consumer_groups_read_independently_from_any_position() {
    let (s, _) = memory();
    let mut c = config(1);
    c.consumer_groups.insert("audit".into());
    s.create_hub("h", c).await.unwrap();
    send(&s, "h", SendTarget::Partition("0".into()), &["e0", "e1", "e2"]).await;
    let (_, mut a) = s.open_reader("h", "$Default", "0", None, Seek::Start).unwrap();
    let (_, mut b) = s.open_reader("h", "audit", "0", None, Seek::Seq { seq: 1, inclusive: false }).unwrap();
    let (_, mut latest) = s.open_reader("h", "$default", "0", None, Seek::End).unwrap();
    assert_eq!(bodies(&mut a).await, ["e0", "e1", "e2"]);
    assert_eq!(bodies(&mut b).await, ["e2"]);
    assert!(bodies(&mut latest).await.is_empty());
    send(&s, "h", SendTarget::Partition("0".into()), &["e3"]).await;
    assert!(latest.has_events());
    assert_eq!(bodies(&mut latest).await, ["e3"]);
    assert!(matches!(s.open_reader("h", "nobody", "0", None, Seek::Start), Err(StreamError::ConsumerGroupNotFound { .. })));
}

#[tokio::test]
async fn a_higher_epoch_takes_the_partition_and_readers_are_bounded() {
    let (s, _) = memory();
    s.create_hub("h", config(2)).await.unwrap();
    let plain: Vec<_> = (0..MAX_READERS_PER_PARTITION).map(|_| s.open_reader("h", "$Default", "0", None, Seek::Start).unwrap().1).collect();
    assert!(matches!(s.open_reader("h", "$Default", "0", None, Seek::Start), Err(StreamError::TooManyReceivers(5))));
    assert!(s.open_reader("h", "$Default", "1", None, Seek::Start).is_ok(), "the bound is per partition");
    let (_, mut owner) = s.open_reader("h", "$Default", "0", Some(5), Seek::Start).unwrap();
    for mut r in plain {
        assert!(matches!(r.read(1, 1024).await, Err(StreamError::ReceiverDisconnected { .. })));
    }
    assert!(matches!(s.open_reader("h", "$Default", "0", Some(4), Seek::Start), Err(StreamError::EpochTooLow { held: 5, .. })));
    assert!(matches!(s.open_reader("h", "$Default", "0", None, Seek::Start), Err(StreamError::EpochTooLow { .. })));
    let (_, _newer) = s.open_reader("h", "$Default", "0", Some(5), Seek::Start).unwrap();
    assert!(matches!(owner.read(1, 1024).await, Err(StreamError::ReceiverDisconnected { new: 5, .. })), "an equal epoch takes it too");
    drop(owner);
}

#[tokio::test]
async fn a_reader_going_frees_its_place() {
    let (s, _) = memory();
    s.create_hub("h", config(1)).await.unwrap();
    let readers: Vec<_> = (0..MAX_READERS_PER_PARTITION).map(|_| s.open_reader("h", "$Default", "0", None, Seek::Start).unwrap()).collect();
    drop(readers);
    assert!(s.open_reader("h", "$Default", "0", None, Seek::Start).is_ok());
}

#[tokio::test]
async fn hubs_and_events_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ShiftableClock::default());
    let open = |clock: Arc<ShiftableClock>| {
        let mut recovery = StreamRecovery::default();
        let (kv, _) = KvLog::open(&dir.path().join("meta"), JournalOptions::default(), CompactionPolicy::default(), recovery.visitor()).unwrap();
        let kv: Arc<dyn Store> = Arc::new(kv);
        let logs = Arc::new(DirLogs { root: dir.path().join("logs"), options: JournalOptions::default() });
        (StreamService::open(kv.clone(), logs, clock, recovery).unwrap(), kv)
    };
    {
        let (s, kv) = open(clock.clone());
        let mut c = config(2);
        c.consumer_groups.insert("cg".into());
        s.create_hub("durable", c).await.unwrap();
        send(&s, "durable", SendTarget::Partition("1".into()), &["kept", "also kept"]).await;
        s.close();
        kv.close();
    }
    let (s, _) = open(clock);
    assert!(s.hub_view("durable").unwrap().config.has_group("cg"));
    let (_, mut r) = s.open_reader("durable", "cg", "1", None, Seek::Start).unwrap();
    assert_eq!(bodies(&mut r).await, ["kept", "also kept"]);
    let info = s.partition_info("durable", "1").unwrap();
    assert_eq!((info.begin_seq, info.last_seq), (0, 1));
}

#[tokio::test]
async fn retention_removes_old_events_by_the_clock() {
    let (s, clock) = memory();
    s.create_hub("short", HubConfig { retention_ms: 60_000, ..config(1) }).await.unwrap();
    send(&s, "short", SendTarget::Partition("0".into()), &["old"]).await;
    clock.advance(61_000);
    send(&s, "short", SendTarget::Partition("0".into()), &["new"]).await;
    assert_eq!(s.maintain().await.unwrap(), 1);
    let (_, mut r) = s.open_reader("short", "$Default", "0", None, Seek::Start).unwrap();
    assert_eq!(bodies(&mut r).await, ["new"]);
    assert_eq!(s.partition_info("short", "0").unwrap().begin_seq, 1);
}
