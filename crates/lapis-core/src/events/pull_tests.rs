//! Pull delivery through the service: receive under a lock, acknowledge, release with
//! a delay, reject, renew, lapsed locks, the delivery count limit, and what survives
//! a restart.

use std::sync::Arc;

use serde_json::{json, Value};

use super::delivery::pull::{LockFailure, Settle};
use super::tests::on_disk;
use super::*;
use crate::clock::ShiftableClock;

fn memory() -> (EventGridService, Arc<ShiftableClock>) {
    let clock = Arc::new(ShiftableClock::default());
    let s = EventGridService::open(Arc::new(lapis_store::MemoryStore), Arc::new(lapis_store::partition::MemoryLogs), clock.clone(), EventsRecovery::default()).unwrap();
    (s, clock)
}

fn queue_spec(extra: Value) -> SubscriptionSpec {
    let mut props = json!({"maxDeliveryCount": 2});
    props.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    serde_json::from_value(json!({"destination": {"endpointType": "Queue", "properties": props}})).unwrap()
}

async fn publish(s: &EventGridService, topic: &str, n: usize) -> String {
    let key = s.topic_view(topic).unwrap().record.keys[0].clone();
    let events: Vec<Value> = (0..n).map(|i| json!({"id": i.to_string(), "source": "/t", "type": "T", "specversion": "1.0", "data": {"i": i}})).collect();
    let p = s.publish_namespace(topic, &key, Some("application/cloudevents-batch+json"), &serde_json::to_vec(&events).unwrap()).unwrap();
    p.appended.durable().await.unwrap();
    key
}

#[tokio::test]
async fn queue_subscriptions_belong_to_namespace_topics() {
    let (s, _) = memory();
    s.create_topic("custom", InputSchema::CloudEvents).await.unwrap();
    assert!(matches!(s.create_subscription("custom", "queue-1", queue_spec(json!({}))).await, Err(EventsError::Invalid(_))));
    s.create_namespace_topic("orders", None).await.unwrap();
    let key = s.topic_view("orders").unwrap().record.keys[0].clone();
    assert!(matches!(s.publish("orders", PublishCredential::Key(&key), Some("application/cloudevents+json"), b"{}"), Err(EventsError::TopicNotFound(_))), "not at the custom endpoint");
    assert!(s.create_subscription("orders", "queue-1", queue_spec(json!({"receiveLockDurationInSeconds": 30}))).await.is_err(), "locks are 60-300 s");
    s.create_subscription("orders", "queue-1", queue_spec(json!({}))).await.unwrap();
    assert!(matches!(s.receive("orders", "queue-1", "bm9wZQ==", 1, 10).await, Err(EventsError::Unauthorized(_))));
    assert!(matches!(s.receive("orders", "queue-1", &key, 101, 10).await, Err(EventsError::Invalid(_))));
    assert!(matches!(s.receive("orders", "queue-1", &key, 1, 5).await, Err(EventsError::Invalid(_))));
    assert!(matches!(s.receive("orders", "nope", &key, 1, 10).await, Err(EventsError::SubscriptionNotFound { .. })));
}

#[tokio::test]
async fn receive_acknowledge_release_reject_and_renew() {
    let (s, clock) = memory();
    s.create_namespace_topic("orders", None).await.unwrap();
    s.create_subscription("orders", "work", queue_spec(json!({}))).await.unwrap();
    let key = publish(&s, "orders", 4).await;
    let got = s.receive("orders", "work", &key, 3, 10).await.unwrap();
    assert_eq!(got.iter().map(|r| r.event["id"].as_str().unwrap()).collect::<Vec<_>>(), ["0", "1", "2"]);
    assert!(got.iter().all(|r| r.delivery_count == 1));
    let tokens: Vec<String> = got.iter().map(|r| r.lock_token.clone()).collect();

    let acked = s.settle("orders", "work", &key, &tokens[..1], Settle::Acknowledge).await.unwrap();
    assert_eq!(acked.succeeded, tokens[..1]);
    let again = s.settle("orders", "work", &key, &tokens[..1], Settle::Acknowledge).await.unwrap();
    assert_eq!(again.failed, vec![(tokens[0].clone(), LockFailure::Lost)], "a settled token is lost");
    let odd = s.settle("orders", "work", &key, &["not-a-token".to_string()], Settle::Acknowledge).await.unwrap();
    assert_eq!(odd.failed[0].1, LockFailure::Malformed);

    s.settle("orders", "work", &key, &tokens[1..2], Settle::Release { delay_ms: 10_000 }).await.unwrap();
    s.settle("orders", "work", &key, &tokens[2..3], Settle::Reject).await.unwrap();
    let next = s.receive("orders", "work", &key, 10, 10).await.unwrap();
    assert_eq!(next.iter().map(|r| r.event["id"].as_str().unwrap()).collect::<Vec<_>>(), ["3"], "the released one waits its delay; the rejected one is gone");
    clock.advance(10_500);
    let released = s.receive("orders", "work", &key, 10, 10).await.unwrap();
    assert_eq!((released[0].event["id"].as_str().unwrap(), released[0].delivery_count), ("1", 2));

    // A lock renewed keeps its event; a lapsed one gives the event out again, and a
    // second lapse (maxDeliveryCount 2) dead-letters it.
    let renewed = s.settle("orders", "work", &key, &[next[0].lock_token.clone()], Settle::RenewLock).await.unwrap();
    assert_eq!(renewed.succeeded.len(), 1);
    clock.advance(61_000);
    let after = s.receive("orders", "work", &key, 10, 10).await.unwrap();
    let mut ids: Vec<(&str, u32)> = after.iter().map(|r| (r.event["id"].as_str().unwrap(), r.delivery_count)).collect();
    ids.sort();
    assert_eq!(ids, [("3", 2)], "event 1 was received twice already: dead-lettered, not given out a third time");
    let lapsed = s.settle("orders", "work", &key, &[next[0].lock_token.clone()], Settle::Acknowledge).await.unwrap();
    assert_eq!(lapsed.failed.len(), 1, "a lapsed lock's token is lost");
    let m = s.delivery_metrics("orders", "work").unwrap();
    assert_eq!((m.delivered_events, m.dropped_events), (1, 2), "one acknowledged; one rejected and one over its count, both dropped (no container)");
}

/// A namespace topic `orders` with queue subscription `work`, and a receive of it
/// (up to 5 events, waiting up to `wait_seconds`) already waiting.
async fn waiting_receive(wait_seconds: u64) -> (Arc<EventGridService>, String, tokio::task::JoinHandle<EventsResult<Vec<super::delivery::pull::Received>>>) {
    let (s, _) = memory();
    s.create_namespace_topic("orders", None).await.unwrap();
    s.create_subscription("orders", "work", queue_spec(json!({}))).await.unwrap();
    let key = s.topic_view("orders").unwrap().record.keys[0].clone();
    let s = Arc::new(s);
    let waiting = {
        let (s, key) = (s.clone(), key.clone());
        tokio::spawn(async move { s.receive("orders", "work", &key, 5, wait_seconds).await })
    };
    (s, key, waiting)
}

#[tokio::test]
async fn a_receive_waits_for_the_first_event() {
    let (s, _, waiting) = waiting_receive(10).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    publish(&s, "orders", 1).await;
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await.unwrap().unwrap().unwrap();
    assert_eq!(got.len(), 1);
}

#[tokio::test]
async fn acknowledged_events_stay_gone_and_unfinished_ones_come_back_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ShiftableClock::default());
    let key;
    {
        let (s, kv) = on_disk(dir.path(), clock.clone());
        s.create_namespace_topic("orders", None).await.unwrap();
        s.create_subscription("orders", "work", queue_spec(json!({}))).await.unwrap();
        key = publish(&s, "orders", 4).await;
        let got = s.receive("orders", "work", &key, 3, 10).await.unwrap();
        // The oldest stays unfinished; the two after it are acknowledged.
        let done: Vec<String> = got[1..].iter().map(|r| r.lock_token.clone()).collect();
        assert_eq!(s.settle("orders", "work", &key, &done, Settle::Acknowledge).await.unwrap().succeeded.len(), 2);
        s.close();
        kv.close();
    }
    let (s, _kv) = on_disk(dir.path(), clock);
    let got = s.receive("orders", "work", &key, 10, 10).await.unwrap();
    let ids: Vec<(&str, u32)> = got.iter().map(|r| (r.event["id"].as_str().unwrap(), r.delivery_count)).collect();
    assert_eq!(ids, [("0", 2), ("3", 1)], "the acknowledged ones never return; the held one comes back counted, once");
    let tokens: Vec<String> = got.iter().map(|r| r.lock_token.clone()).collect();
    let acked = s.settle("orders", "work", &key, &tokens, Settle::Acknowledge).await.unwrap();
    assert_eq!((acked.succeeded.len(), acked.failed.len()), (2, 0), "their tokens are the ones handed out");
    assert_eq!(s.delivery_metrics("orders", "work").unwrap().retrying_events, 0);
}

#[tokio::test]
async fn a_deleted_queue_ends_waiting_receives_and_a_new_one_starts_clean() {
    let (s, key, waiting) = waiting_receive(60).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    s.delete_subscription("orders", "work").await.unwrap();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await.expect("the receive ended").unwrap();
    assert!(matches!(ended, Err(EventsError::SubscriptionNotFound { .. })), "{ended:?}");
    s.create_subscription("orders", "work", queue_spec(json!({}))).await.unwrap();
    publish(&s, "orders", 1).await;
    let got = s.receive("orders", "work", &key, 5, 10).await.unwrap();
    assert_eq!(got.len(), 1);
}
