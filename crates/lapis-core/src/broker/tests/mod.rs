//! Broker semantics, driven through the public API with a clock the tests move.

use std::collections::BTreeMap;
use std::sync::Arc;

use lapis_store::{CompactionPolicy, JournalOptions, KvLog, MemoryStore, Store};

use super::*;
use crate::clock::ShiftableClock;

fn broker() -> (Broker, Arc<ShiftableClock>) {
    let clock = Arc::new(ShiftableClock::default());
    (Broker::new(Arc::new(MemoryStore), clock.clone()), clock)
}

fn msg(body: &str) -> OutgoingMessage {
    OutgoingMessage { body: body.as_bytes().to_vec(), ..Default::default() }
}

fn with_id(body: &str, id: &str) -> OutgoingMessage {
    OutgoingMessage { message_id: Some(id.into()), ..msg(body) }
}

fn bodies(ds: &[Delivery]) -> Vec<String> {
    ds.iter().map(|d| String::from_utf8(d.body.clone()).unwrap()).collect()
}

async fn queue(b: &Broker, config: QueueConfig) {
    b.create_queue("orders", config).await.unwrap();
}

async fn receive(b: &Broker, sub: SubQueue, n: usize) -> Vec<Delivery> {
    b.receive("orders", sub, ReceiveMode::PeekLock, n).await.unwrap()
}

fn token(d: &Delivery) -> uuid::Uuid {
    d.lock_token.expect("peek-lock deliveries carry a lock token")
}

#[tokio::test]
async fn peek_lock_then_complete_removes_the_message() {
    let (b, _) = broker();
    queue(&b, QueueConfig::default()).await;
    let seqs = b.send("orders", vec![msg("a"), msg("b")]).await.unwrap();
    assert_eq!(seqs, vec![Some(1), Some(2)]);
    let got = receive(&b, SubQueue::Main, 10).await;
    assert_eq!(bodies(&got), ["a", "b"]);
    assert_eq!(got[0].delivery_count, 0);
    assert!(got[0].locked_until.is_some());
    assert!(receive(&b, SubQueue::Main, 10).await.is_empty(), "locked messages are not handed out twice");
    b.settle("orders", SubQueue::Main, token(&got[0]), Settlement::Complete).await.unwrap();
    let again = b.settle("orders", SubQueue::Main, token(&got[0]), Settlement::Complete).await;
    assert!(matches!(again, Err(BrokerError::MessageLockLost)));
    assert_eq!(b.peek("orders", SubQueue::Main, 0, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn receive_and_delete_takes_messages_for_good() {
    let (b, _) = broker();
    queue(&b, QueueConfig::default()).await;
    b.send("orders", vec![msg("a")]).await.unwrap();
    let got = b.receive("orders", SubQueue::Main, ReceiveMode::ReceiveAndDelete, 5).await.unwrap();
    assert_eq!(bodies(&got), ["a"]);
    assert_eq!(got[0].lock_token, None);
    assert!(b.peek("orders", SubQueue::Main, 0, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn abandon_redelivers_with_a_higher_count_and_modified_properties() {
    let (b, _) = broker();
    queue(&b, QueueConfig::default()).await;
    b.send("orders", vec![msg("a")]).await.unwrap();
    let first = receive(&b, SubQueue::Main, 1).await;
    let properties = BTreeMap::from([("retry".to_string(), PropertyValue::Long(1))]);
    b.settle("orders", SubQueue::Main, token(&first[0]), Settlement::Abandon { properties }).await.unwrap();
    let second = receive(&b, SubQueue::Main, 1).await;
    assert_eq!(second[0].sequence_number, first[0].sequence_number);
    assert_eq!(second[0].delivery_count, 1);
    assert_eq!(second[0].property_overrides.get("retry"), Some(&PropertyValue::Long(1)));
    assert_ne!(token(&second[0]), token(&first[0]));
}

#[tokio::test]
async fn release_gives_a_message_back_without_counting_a_delivery() {
    let (b, _) = broker();
    queue(&b, QueueConfig::default()).await;
    b.send("orders", vec![msg("a")]).await.unwrap();
    let first = receive(&b, SubQueue::Main, 1).await;
    b.settle("orders", SubQueue::Main, token(&first[0]), Settlement::Release).await.unwrap();
    let again = receive(&b, SubQueue::Main, 1).await;
    assert_eq!((bodies(&again)[0].as_str(), again[0].delivery_count), ("a", 0));
}

#[tokio::test]
async fn an_expired_lock_is_lost_and_the_message_comes_back() {
    let (b, clock) = broker();
    queue(&b, QueueConfig { lock_duration_ms: 5_000, ..Default::default() }).await;
    b.send("orders", vec![msg("a")]).await.unwrap();
    let first = receive(&b, SubQueue::Main, 1).await;
    let renewed = b.renew_locks("orders", SubQueue::Main, &[token(&first[0])]).unwrap();
    assert!(renewed[0] >= first[0].locked_until.unwrap());
    clock.advance(5_001);
    assert!(matches!(b.renew_locks("orders", SubQueue::Main, &[token(&first[0])]), Err(BrokerError::MessageLockLost)));
    let second = receive(&b, SubQueue::Main, 1).await;
    assert_eq!((bodies(&second)[0].as_str(), second[0].delivery_count), ("a", 1));
    let stale = b.settle("orders", SubQueue::Main, token(&first[0]), Settlement::Complete).await;
    assert!(matches!(stale, Err(BrokerError::MessageLockLost)));
}

#[tokio::test]
async fn reaching_the_max_delivery_count_dead_letters() {
    let (b, _) = broker();
    queue(&b, QueueConfig { max_delivery_count: 2, ..Default::default() }).await;
    b.send("orders", vec![msg("poison")]).await.unwrap();
    for _ in 0..2 {
        let got = receive(&b, SubQueue::Main, 1).await;
        b.settle("orders", SubQueue::Main, token(&got[0]), Settlement::Abandon { properties: BTreeMap::new() }).await.unwrap();
    }
    assert!(receive(&b, SubQueue::Main, 1).await.is_empty());
    let dead = receive(&b, SubQueue::DeadLetter, 1).await;
    assert_eq!(bodies(&dead), ["poison"]);
    let reason = dead[0].dead_letter.as_ref().and_then(|d| d.reason.clone());
    assert_eq!(reason.as_deref(), Some(REASON_MAX_DELIVERY));
    b.settle("orders", SubQueue::DeadLetter, token(&dead[0]), Settlement::Complete).await.unwrap();
    assert!(b.peek("orders", SubQueue::DeadLetter, 0, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn explicit_dead_letter_keeps_reason_and_description() {
    let (b, _) = broker();
    queue(&b, QueueConfig::default()).await;
    b.send("orders", vec![msg("bad")]).await.unwrap();
    let got = receive(&b, SubQueue::Main, 1).await;
    let settlement = Settlement::DeadLetter { reason: Some("Invalid".into()), description: Some("no total".into()), properties: BTreeMap::new() };
    b.settle("orders", SubQueue::Main, token(&got[0]), settlement).await.unwrap();
    let dead = b.peek("orders", SubQueue::DeadLetter, 0, 10).await.unwrap();
    assert_eq!(dead[0].dead_letter, Some(DeadLetter { reason: Some("Invalid".into()), description: Some("no total".into()) }));
    let (_, _, active, dead_lettered) = b.list_queues().remove(0);
    assert_eq!((active, dead_lettered), (0, 1));
}

#[tokio::test]
async fn deferred_messages_are_received_only_by_sequence_number() {
    let (b, _) = broker();
    queue(&b, QueueConfig::default()).await;
    b.send("orders", vec![msg("later"), msg("now")]).await.unwrap();
    let got = receive(&b, SubQueue::Main, 1).await;
    b.settle("orders", SubQueue::Main, token(&got[0]), Settlement::Defer { properties: BTreeMap::new() }).await.unwrap();
    assert_eq!(bodies(&receive(&b, SubQueue::Main, 10).await), ["now"]);
    let seq = got[0].sequence_number;
    let deferred = b.receive_deferred("orders", SubQueue::Main, ReceiveMode::PeekLock, &[seq]).await.unwrap();
    assert_eq!((bodies(&deferred)[0].as_str(), deferred[0].state), ("later", MessageState::Deferred));
    b.settle("orders", SubQueue::Main, token(&deferred[0]), Settlement::Complete).await.unwrap();
    let missing = b.receive_deferred("orders", SubQueue::Main, ReceiveMode::PeekLock, &[seq]).await;
    assert!(matches!(missing, Err(BrokerError::MessageNotFound(s)) if s == seq));
}

#[tokio::test]
async fn expired_messages_are_dead_lettered_or_dropped_as_configured() {
    let (b, clock) = broker();
    b.create_queue("keep", QueueConfig { default_ttl_ms: Some(1_000), dead_letter_on_expiration: true, ..Default::default() }).await.unwrap();
    b.create_queue("drop", QueueConfig { default_ttl_ms: Some(60_000), ..Default::default() }).await.unwrap();
    b.send("keep", vec![msg("k")]).await.unwrap();
    b.send("drop", vec![OutgoingMessage { ttl_ms: Some(1_000), ..msg("d") }]).await.unwrap();
    clock.advance(1_001);
    assert!(b.receive("keep", SubQueue::Main, ReceiveMode::PeekLock, 1).await.unwrap().is_empty());
    let dead = b.receive("keep", SubQueue::DeadLetter, ReceiveMode::PeekLock, 1).await.unwrap();
    assert_eq!(dead[0].dead_letter.as_ref().unwrap().reason.as_deref(), Some(REASON_TTL));
    b.maintain().await.unwrap();
    assert!(b.peek("drop", SubQueue::Main, 0, 10).await.unwrap().is_empty());
    assert!(b.peek("drop", SubQueue::DeadLetter, 0, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn scheduled_messages_wait_and_can_be_cancelled() {
    let (b, clock) = broker();
    queue(&b, QueueConfig::default()).await;
    let now = crate::Clock::now_ms(&*clock);
    let later = |body| OutgoingMessage { scheduled_enqueue_at: Some(now + 10_000), ..msg(body) };
    let seqs = b.send("orders", vec![later("s1"), later("s2")]).await.unwrap();
    assert!(receive(&b, SubQueue::Main, 10).await.is_empty());
    let peeked = b.peek("orders", SubQueue::Main, 0, 10).await.unwrap();
    assert_eq!(peeked.iter().map(|d| d.state).collect::<Vec<_>>(), [MessageState::Scheduled; 2]);
    b.cancel_scheduled("orders", &[seqs[1].unwrap()]).await.unwrap();
    assert!(matches!(b.cancel_scheduled("orders", &[99]).await, Err(BrokerError::MessageNotFound(99))));
    clock.advance(10_000);
    assert_eq!(bodies(&receive(&b, SubQueue::Main, 10).await), ["s1"]);
}

#[tokio::test]
async fn duplicates_within_the_window_are_accepted_but_not_enqueued() {
    let (b, clock) = broker();
    queue(&b, QueueConfig { duplicate_detection_window_ms: Some(60_000), ..Default::default() }).await;
    assert_eq!(b.send("orders", vec![with_id("a", "m1")]).await.unwrap(), vec![Some(1)]);
    assert_eq!(b.send("orders", vec![with_id("a again", "m1"), with_id("b", "m2")]).await.unwrap(), vec![None, Some(2)]);
    clock.advance(60_001);
    b.maintain().await.unwrap();
    assert_eq!(b.send("orders", vec![with_id("a later", "m1")]).await.unwrap(), vec![Some(3)]);
    assert_eq!(bodies(&b.peek("orders", SubQueue::Main, 0, 10).await.unwrap()), ["a", "b", "a later"]);
}

#[tokio::test]
async fn limits_and_entity_errors() {
    let (b, _) = broker();
    queue(&b, QueueConfig { max_message_bytes: 4, max_size_bytes: 6, requires_session: false, ..Default::default() }).await;
    assert!(matches!(b.send("orders", vec![msg("12345")]).await, Err(BrokerError::MessageSizeExceeded { size: 5, limit: 4 })));
    b.send("orders", vec![msg("1234")]).await.unwrap();
    assert!(matches!(b.send("orders", vec![msg("123")]).await, Err(BrokerError::QuotaExceeded(_))));
    assert!(matches!(b.create_queue("ORDERS", QueueConfig::default()).await, Err(BrokerError::EntityAlreadyExists(_))));
    assert!(matches!(b.send("nope", vec![msg("x")]).await, Err(BrokerError::EntityNotFound(_))));
    assert!(matches!(b.create_queue("/bad", QueueConfig::default()).await, Err(BrokerError::InvalidEntityName(_))));
    b.create_queue("sessions", QueueConfig { requires_session: true, ..Default::default() }).await.unwrap();
    assert!(matches!(b.send("sessions", vec![msg("x")]).await, Err(BrokerError::InvalidOperation(_))));
    b.delete_queue("Orders").await.unwrap();
    assert!(matches!(b.receive("orders", SubQueue::Main, ReceiveMode::PeekLock, 1).await, Err(BrokerError::EntityNotFound(_))));
}

#[test]
fn addresses_name_the_dead_letter_sub_queue() {
    assert_eq!(parse_address("orders"), ("orders", SubQueue::Main));
    assert_eq!(parse_address("orders/$DeadLetterQueue"), ("orders", SubQueue::DeadLetter));
    assert_eq!(parse_address("orders/$deadletterqueue"), ("orders", SubQueue::DeadLetter));
    assert_eq!(parse_address("t/Subscriptions/s/$DeadLetterQueue"), ("t/Subscriptions/s", SubQueue::DeadLetter));
}

fn open_disk(dir: &std::path::Path, clock: Arc<ShiftableClock>) -> (Broker, Arc<KvLog>) {
    let mut recovery = BrokerRecovery::new(true);
    let (kv, _) = KvLog::open(dir, JournalOptions::default(), CompactionPolicy::default(), recovery.visitor()).unwrap();
    let kv = Arc::new(kv);
    let store: Arc<dyn Store> = kv.clone();
    (Broker::recover(store, clock, recovery), kv)
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ShiftableClock::default());
    {
        let (b, kv) = open_disk(dir.path(), clock.clone());
        let config = QueueConfig { duplicate_detection_window_ms: Some(600_000), ..Default::default() };
        b.create_queue("orders", config).await.unwrap();
        b.send("orders", vec![with_id("done", "m1"), with_id("dead", "m2"), with_id("later", "m3"), with_id("open", "m4")]).await.unwrap();
        let got = receive(&b, SubQueue::Main, 3).await;
        b.settle("orders", SubQueue::Main, token(&got[0]), Settlement::Complete).await.unwrap();
        let dl = Settlement::DeadLetter { reason: Some("r".into()), description: None, properties: BTreeMap::new() };
        b.settle("orders", SubQueue::Main, token(&got[1]), dl).await.unwrap();
        b.settle("orders", SubQueue::Main, token(&got[2]), Settlement::Defer { properties: BTreeMap::new() }).await.unwrap();
        kv.close();
    }
    let (b, _) = open_disk(dir.path(), clock);
    assert_eq!(bodies(&b.peek("orders", SubQueue::Main, 0, 10).await.unwrap()), ["later", "open"]);
    assert_eq!(bodies(&receive(&b, SubQueue::Main, 10).await), ["open"], "the deferred message stays deferred");
    assert_eq!(bodies(&b.peek("orders", SubQueue::DeadLetter, 0, 10).await.unwrap()), ["dead"]);
    assert_eq!(b.send("orders", vec![with_id("dup", "m1"), with_id("new", "m5")]).await.unwrap(), vec![None, Some(5)]);
    assert_eq!(b.queue_config("ORDERS").unwrap().duplicate_detection_window_ms, Some(600_000));
}

#[tokio::test]
async fn sequence_numbers_are_never_reused_after_a_restart_even_when_empty() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ShiftableClock::default());
    {
        let (b, kv) = open_disk(dir.path(), clock.clone());
        queue(&b, QueueConfig::default()).await;
        b.send("orders", vec![msg("a"), msg("b")]).await.unwrap();
        b.receive("orders", SubQueue::Main, ReceiveMode::ReceiveAndDelete, 10).await.unwrap();
        kv.close();
    }
    let (b, _) = open_disk(dir.path(), clock);
    assert_eq!(b.send("orders", vec![msg("c")]).await.unwrap(), vec![Some(3)]);
}

fn in_session(body: &str, session: &str) -> OutgoingMessage {
    OutgoingMessage { session_id: Some(session.into()), ..msg(body) }
}

async fn session_queue(b: &Broker) {
    b.create_queue("orders", QueueConfig { requires_session: true, lock_duration_ms: 10_000, ..Default::default() }).await.unwrap();
}

async fn from_session(b: &Broker, lock: &SessionLock, n: usize) -> Vec<Delivery> {
    b.receive_from_session("orders", lock.token, ReceiveMode::PeekLock, n).await.unwrap()
}

#[tokio::test]
async fn a_session_is_held_by_one_receiver_and_delivered_in_order() {
    let (b, _) = broker();
    session_queue(&b).await;
    b.send("orders", vec![in_session("a1", "A"), in_session("b1", "B"), in_session("a2", "A")]).await.unwrap();
    let a = b.accept_session("orders", Some("A")).unwrap().unwrap();
    assert!(matches!(b.accept_session("orders", Some("A")), Err(BrokerError::SessionCannotBeLocked(_))));
    let next = b.accept_session("orders", None).unwrap().unwrap();
    assert_eq!(next.session_id, "B", "the next free session with messages");
    assert_eq!(b.accept_session("orders", None).unwrap(), None, "no free session left");

    let got = from_session(&b, &a, 1).await;
    assert_eq!(bodies(&got), ["a1"]);
    b.settle("orders", SubQueue::Main, token(&got[0]), Settlement::Abandon { properties: BTreeMap::new() }).await.unwrap();
    assert_eq!(bodies(&from_session(&b, &a, 10).await), ["a1", "a2"], "an abandoned message keeps its place");
    assert_eq!(bodies(&from_session(&b, &next, 10).await), ["b1"]);
    assert_eq!(b.list_sessions("orders").unwrap(), ["A", "B"]);
}

#[tokio::test]
async fn session_and_plain_receivers_only_work_on_their_kind_of_entity() {
    let (b, _) = broker();
    session_queue(&b).await;
    b.create_queue("plain", QueueConfig::default()).await.unwrap();
    assert!(matches!(b.receive("orders", SubQueue::Main, ReceiveMode::PeekLock, 1).await, Err(BrokerError::InvalidOperation(_))));
    assert!(matches!(b.accept_session("plain", Some("A")), Err(BrokerError::InvalidOperation(_))));
}

#[tokio::test]
async fn a_lapsed_session_lock_loses_the_session_and_its_message_locks() {
    let (b, clock) = broker();
    session_queue(&b).await;
    b.send("orders", vec![in_session("a1", "A")]).await.unwrap();
    let a = b.accept_session("orders", Some("A")).unwrap().unwrap();
    let got = from_session(&b, &a, 1).await;
    assert_eq!(got[0].locked_until, Some(a.locked_until), "message locks follow the session lock");
    clock.advance(10_001);
    let late = b.settle("orders", SubQueue::Main, token(&got[0]), Settlement::Complete).await;
    assert!(matches!(late, Err(BrokerError::SessionLockLost)), "{late:?}");
    assert!(matches!(b.receive_from_session("orders", a.token, ReceiveMode::PeekLock, 1).await, Err(BrokerError::SessionLockLost)));
    assert!(matches!(b.renew_session_lock("orders", a.token), Err(BrokerError::SessionLockLost)));
    let again = b.accept_session("orders", None).unwrap().unwrap();
    let redelivered = from_session(&b, &again, 1).await;
    assert_eq!((bodies(&redelivered)[0].as_str(), redelivered[0].delivery_count), ("a1", 1));
}

#[tokio::test]
async fn a_released_session_hands_its_unsettled_messages_to_the_next_receiver_first() {
    let (b, _) = broker();
    session_queue(&b).await;
    b.send("orders", vec![in_session("a1", "A"), in_session("a2", "A"), in_session("a3", "A")]).await.unwrap();
    let first = b.accept_session("orders", None).unwrap().unwrap();
    let got = from_session(&b, &first, 2).await;
    b.settle("orders", SubQueue::Main, token(&got[0]), Settlement::Complete).await.unwrap();
    // The receiver goes away with a2 received and not settled.
    b.release_session("orders", first.token).unwrap();
    let late = b.settle("orders", SubQueue::Main, token(&got[1]), Settlement::Complete).await;
    assert!(late.is_err(), "a2's old lock went with the session: {late:?}");
    let second = b.accept_session("orders", None).unwrap().unwrap();
    let next = from_session(&b, &second, 10).await;
    assert_eq!(bodies(&next), ["a2", "a3"], "a2 keeps its place, ahead of a3");
    assert_eq!(next[0].delivery_count, 1, "the lost delivery counts");
}

#[tokio::test]
async fn renewing_the_session_lock_renews_its_message_locks() {
    let (b, clock) = broker();
    session_queue(&b).await;
    b.send("orders", vec![in_session("a1", "A")]).await.unwrap();
    let a = b.accept_session("orders", Some("A")).unwrap().unwrap();
    let got = from_session(&b, &a, 1).await;
    clock.advance(8_000);
    let until = b.renew_session_lock("orders", a.token).unwrap();
    assert!(until > a.locked_until);
    clock.advance(8_000);
    b.settle("orders", SubQueue::Main, token(&got[0]), Settlement::Complete).await.unwrap();
}

#[tokio::test]
async fn session_state_is_kept_durably() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ShiftableClock::default());
    {
        let (b, kv) = open_disk(dir.path(), clock.clone());
        session_queue(&b).await;
        let a = b.accept_session("orders", Some("A")).unwrap().unwrap();
        assert_eq!(b.session_state("orders", a.token).unwrap(), None);
        b.set_session_state("orders", a.token, Some(b"step 2".to_vec())).await.unwrap();
        b.release_session("orders", a.token).unwrap();
        assert!(matches!(b.session_state("orders", a.token), Err(BrokerError::SessionLockLost)));
        kv.close();
    }
    let (b, _) = open_disk(dir.path(), clock);
    assert_eq!(b.list_sessions("orders").unwrap(), ["A"], "a session with state is listed");
    let a = b.accept_session("orders", Some("A")).unwrap().unwrap();
    assert_eq!(b.session_state("orders", a.token).unwrap(), Some(b"step 2".to_vec()));
    b.set_session_state("orders", a.token, None).await.unwrap();
    assert!(b.list_sessions("orders").unwrap().is_empty());
}

fn routed(body: &str, subject: &str, color: &str) -> OutgoingMessage {
    let mut m = msg(body);
    m.routing.subject = Some(subject.into());
    m.routing.application.insert("color".into(), PropertyValue::String(color.into()));
    m
}

async fn topic_with(b: &Broker, subs: &[&str]) {
    b.create_topic("events", QueueConfig::default()).await.unwrap();
    for s in subs {
        b.create_subscription("events", s, QueueConfig::default()).await.unwrap();
    }
}

async fn sub_bodies(b: &Broker, sub: &str) -> Vec<String> {
    bodies(&b.peek(&subscription_path("events", sub), SubQueue::Main, 0, 100).await.unwrap())
}

#[tokio::test]
async fn a_topic_fans_out_to_every_matching_subscription_with_one_sequence_number() {
    let (b, _) = broker();
    topic_with(&b, &["all", "red", "none"]).await;
    b.remove_rule("events", "red", DEFAULT_RULE).await.unwrap();
    let red = filter::SqlFilter::parse("color = 'red' AND sys.Label LIKE 'order%'").unwrap();
    b.add_rule("events", "red", Rule { name: "reds".into(), filter: filter::Filter::Sql(red), action: None }).await.unwrap();
    b.remove_rule("events", "none", DEFAULT_RULE).await.unwrap();
    b.send("events", vec![routed("b0", "order.created", "blue")]).await.unwrap();
    let seqs = b.send("events", vec![routed("r1", "order.created", "red"), routed("b1", "order.created", "blue")]).await.unwrap();
    assert_eq!(seqs, vec![Some(2), Some(3)]);
    assert_eq!(sub_bodies(&b, "all").await, ["b0", "r1", "b1"]);
    assert_eq!(sub_bodies(&b, "red").await, ["r1"]);
    assert!(sub_bodies(&b, "none").await.is_empty(), "no rule, no messages");
    let copy = &b.peek(&subscription_path("events", "red"), SubQueue::Main, 0, 10).await.unwrap()[0];
    assert_eq!(copy.sequence_number, 1, "each subscription numbers its own copies");
}

#[tokio::test]
async fn subscriptions_are_received_and_settled_like_queues() {
    let (b, _) = broker();
    topic_with(&b, &["s1"]).await;
    b.send("events", vec![msg("e1")]).await.unwrap();
    let path = subscription_path("events", "s1");
    let got = b.receive(&path, SubQueue::Main, ReceiveMode::PeekLock, 5).await.unwrap();
    let dl = Settlement::DeadLetter { reason: Some("bad".into()), description: None, properties: BTreeMap::new() };
    b.settle(&path, SubQueue::Main, token(&got[0]), dl).await.unwrap();
    assert_eq!(bodies(&b.peek(&path, SubQueue::DeadLetter, 0, 5).await.unwrap()), ["e1"]);
    assert!(matches!(b.send(&path, vec![msg("x")]).await, Err(BrokerError::InvalidOperation(_))));
}

#[tokio::test]
async fn rule_actions_change_the_copy_and_rules_are_managed_by_name() {
    let (b, _) = broker();
    topic_with(&b, &["s1"]).await;
    let action = filter::SqlAction::parse("SET priority = 'high'; SET sys.To = 'ops'").unwrap();
    let rule = Rule { name: "tag".into(), filter: filter::Filter::Sql(filter::SqlFilter::parse("color = 'red'").unwrap()), action: Some(action) };
    b.remove_rule("events", "s1", DEFAULT_RULE).await.unwrap();
    b.add_rule("events", "s1", rule.clone()).await.unwrap();
    assert!(matches!(b.add_rule("events", "s1", rule).await, Err(BrokerError::EntityAlreadyExists(_))));
    assert!(matches!(b.remove_rule("events", "s1", "missing").await, Err(BrokerError::EntityNotFound(_))));
    let plain = filter::Filter::Sql(filter::SqlFilter::parse("color = 'red'").unwrap());
    b.add_rule("events", "s1", Rule { name: "plain".into(), filter: plain, action: None }).await.unwrap();
    b.send("events", vec![routed("r", "x", "red")]).await.unwrap();
    let copies = b.peek(&subscription_path("events", "s1"), SubQueue::Main, 0, 10).await.unwrap();
    assert_eq!(copies.len(), 2, "one copy for the rules without actions, one per rule with an action");
    assert!(copies[0].property_overrides.is_empty());
    let tagged = &copies[1];
    assert_eq!(tagged.property_overrides.get("priority"), Some(&PropertyValue::String("high".into())));
    assert_eq!(tagged.property_overrides.get("sys.To"), Some(&PropertyValue::String("ops".into())));
    assert_eq!(tagged.property_overrides.get("RuleName"), Some(&PropertyValue::String("tag".into())));
    assert_eq!(b.rules("events", "s1").unwrap().iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["tag", "plain"]);
}

#[tokio::test]
async fn correlation_filters_match_every_field_they_name() {
    let (b, _) = broker();
    topic_with(&b, &["s1"]).await;
    b.remove_rule("events", "s1", DEFAULT_RULE).await.unwrap();
    let mut correlation = filter::CorrelationFilter { subject: Some("order.created".into()), ..Default::default() };
    correlation.properties.insert("color".into(), PropertyValue::String("blue".into()));
    b.add_rule("events", "s1", Rule { name: "c".into(), filter: filter::Filter::Correlation(correlation), action: None }).await.unwrap();
    b.send("events", vec![routed("hit", "order.created", "blue"), routed("miss", "order.created", "red"), routed("miss2", "other", "blue")]).await.unwrap();
    assert_eq!(sub_bodies(&b, "s1").await, ["hit"]);
}

#[tokio::test]
async fn topics_subscriptions_and_rules_survive_a_restart_and_delete_together() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ShiftableClock::default());
    {
        let (b, kv) = open_disk(dir.path(), clock.clone());
        topic_with(&b, &["s1", "s2"]).await;
        b.add_rule("events", "s2", Rule { name: "reds".into(), filter: filter::Filter::Sql(filter::SqlFilter::parse("color = 'red'").unwrap()), action: None }).await.unwrap();
        b.send("events", vec![msg("kept")]).await.unwrap();
        kv.close();
    }
    let (b, _) = open_disk(dir.path(), clock);
    assert_eq!(b.list_topics().len(), 1);
    assert_eq!(b.list_subscriptions("events").unwrap().len(), 2);
    assert_eq!(b.rules("events", "s2").unwrap().len(), 2);
    assert_eq!(sub_bodies(&b, "s1").await, ["kept"]);
    assert_eq!(b.send("events", vec![msg("next")]).await.unwrap(), vec![Some(2)], "the topic's sequence continues");
    b.delete_topic("events").await.unwrap();
    assert!(b.list_subscriptions("events").is_err());
    assert!(b.list_queues().is_empty() && b.list_topics().is_empty());
}

mod forwarding;
mod transactions;
