//! Topics through the service: create, list, delete, keys and tokens, publish to
//! either schema, and topics with their events across a restart.

use std::sync::Arc;

use lapis_store::partition::{DirLogs, MemoryLogs};
use lapis_store::{CompactionPolicy, JournalOptions, KvLog, MemoryStore, Store};
use serde_json::{json, Value};

use super::*;
use crate::auth::eventgrid_sas::PublishAuthError;
use crate::clock::ShiftableClock;

fn memory() -> (EventGridService, Arc<ShiftableClock>) {
    let clock = Arc::new(ShiftableClock::default());
    (EventGridService::open(Arc::new(MemoryStore), Arc::new(MemoryLogs), clock.clone(), EventsRecovery::default()).unwrap(), clock)
}

fn grid_events(n: usize) -> Vec<u8> {
    let events: Vec<Value> = (0..n).map(|i| json!({"id": i.to_string(), "subject": "tracks", "eventType": "Track.Uploaded", "eventTime": "2026-12-01T10:00:00Z", "data": {"i": i}, "dataVersion": "1"})).collect();
    serde_json::to_vec(&events).unwrap()
}

/// The service on `dir` as a server opens it (records, then the topics' logs).
pub(super) fn on_disk(dir: &std::path::Path, clock: Arc<ShiftableClock>) -> (EventGridService, Arc<dyn Store>) {
    let mut recovery = EventsRecovery::default();
    let (kv, _) = KvLog::open(&dir.join("meta"), JournalOptions::default(), CompactionPolicy::default(), recovery.visitor()).unwrap();
    let kv: Arc<dyn Store> = Arc::new(kv);
    let logs = Arc::new(DirLogs { root: dir.join("topics"), options: JournalOptions::default() });
    (EventGridService::open(kv.clone(), logs, clock, recovery).unwrap(), kv)
}

async fn publish(s: &EventGridService, topic: &str, key: &str, body: &[u8]) -> EventsResult<usize> {
    let p = s.publish(topic, PublishCredential::Key(key), Some("application/json"), body)?;
    p.appended.durable().await?;
    Ok(p.events.len())
}

#[tokio::test]
async fn topics_are_created_listed_and_deleted() {
    let (s, _) = memory();
    let t = s.create_topic("orders", InputSchema::EventGrid).await.unwrap();
    assert_ne!(t.record.keys[0], t.record.keys[1], "two distinct keys");
    assert_eq!(t.record.keys[0].len(), 44, "32 bytes of base64");
    assert!(matches!(s.create_topic("ORDERS", InputSchema::CloudEvents).await, Err(EventsError::TopicAlreadyExists(_))));
    for bad in ["ab", "has space", &"x".repeat(51)] {
        assert!(matches!(s.create_topic(bad, InputSchema::EventGrid).await, Err(EventsError::Invalid(_))), "{bad}");
    }
    s.create_topic("uploads", InputSchema::CloudEvents).await.unwrap();
    assert_eq!(s.list_topics().iter().map(|t| t.record.name.as_str()).collect::<Vec<_>>(), ["orders", "uploads"]);
    s.delete_topic("Orders").await.unwrap();
    assert!(matches!(s.topic_view("orders"), Err(EventsError::TopicNotFound(_))));
    assert!(matches!(s.delete_topic("orders").await, Err(EventsError::TopicNotFound(_))));
}

#[tokio::test]
async fn either_key_publishes_and_a_wrong_one_does_not() {
    let (s, _) = memory();
    let keys = s.create_topic("orders", InputSchema::EventGrid).await.unwrap().record.keys;
    assert_eq!(publish(&s, "orders", &keys[0], &grid_events(2)).await, Ok(2));
    assert_eq!(publish(&s, "orders", &keys[1], &grid_events(3)).await, Ok(3));
    assert_eq!(publish(&s, "orders", "bm90IHRoZSBrZXk=", &grid_events(1)).await, Err(EventsError::Unauthorized(PublishAuthError::WrongKey)));
    assert!(matches!(publish(&s, "nosuch", &keys[0], &grid_events(1)).await, Err(EventsError::TopicNotFound(_))));
    assert_eq!(s.topic_view("orders").unwrap().published, 5, "a refused publish adds nothing");
}

#[tokio::test]
async fn a_token_signed_with_a_topic_key_publishes_until_it_expires() {
    let (s, clock) = memory();
    let key = s.create_topic("orders", InputSchema::EventGrid).await.unwrap().record.keys[1].clone();
    // Signed as the Python SDK does: the text before '&s=' under the decoded key.
    let signed = "r=http%3A%2F%2F127.0.0.1%3A5300%2Ftopics%2Forders%2Fapi%2Fevents%3FapiVersion%3D2018-01-01&e=2030-01-01%2000%3A00%3A00";
    let sig = crate::auth::sign(&base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &key).unwrap(), signed);
    let token = format!("{signed}&s={}", percent_encoding::utf8_percent_encode(&sig, percent_encoding::NON_ALPHANUMERIC));
    let p = s.publish("orders", PublishCredential::Token(&token), Some("application/json"), &grid_events(1)).unwrap();
    p.appended.durable().await.unwrap();
    clock.advance(10 * 365 * 24 * 3_600_000);
    let late = s.publish("orders", PublishCredential::Token(&token), Some("application/json"), &grid_events(1));
    assert!(matches!(late, Err(EventsError::Unauthorized(PublishAuthError::Expired(_)))));
}

#[tokio::test]
async fn events_are_kept_as_they_will_be_delivered() {
    let (s, _) = memory();
    let grid = s.create_topic("grid", InputSchema::EventGrid).await.unwrap().record.keys[0].clone();
    let cloud = s.create_topic("cloud", InputSchema::CloudEvents).await.unwrap().record.keys[0].clone();
    let p = s.publish("grid", PublishCredential::Key(&grid), Some("application/json"), &grid_events(1)).unwrap();
    assert_eq!(p.events[0].event["topic"], resource_path("grid"));
    p.appended.durable().await.unwrap();
    let body = json!([{"id": "c1", "source": "/music", "type": "Track.Played", "specversion": "1.0", "data_base64": "aGk="}]).to_string();
    let p = s.publish("cloud", PublishCredential::Key(&cloud), Some("application/cloudevents-batch+json; charset=utf-8"), body.as_bytes()).unwrap();
    p.appended.durable().await.unwrap();
    let wrong_schema = s.publish("cloud", PublishCredential::Key(&cloud), Some("application/json"), &grid_events(1));
    assert!(matches!(wrong_schema, Err(EventsError::InvalidInput(_))), "a CloudEvents topic wants CloudEvents");
}

#[tokio::test]
async fn topics_and_their_events_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ShiftableClock::default());
    let open = |clock: Arc<ShiftableClock>| on_disk(dir.path(), clock);
    let keys = {
        let (s, kv) = open(clock.clone());
        let keys = s.create_topic("durable", InputSchema::EventGrid).await.unwrap().record.keys;
        s.create_topic("gone", InputSchema::EventGrid).await.unwrap();
        s.delete_topic("gone").await.unwrap();
        assert_eq!(publish(&s, "durable", &keys[0], &grid_events(4)).await, Ok(4));
        s.close();
        kv.close();
        keys
    };
    let (s, _) = open(clock);
    let view = s.topic_view("durable").unwrap();
    assert_eq!((view.record.keys.clone(), view.published), (keys.clone(), 4));
    assert!(s.topic_view("gone").is_err());
    assert_eq!(publish(&s, "durable", &keys[1], &grid_events(1)).await, Ok(1));
    assert_eq!(s.topic_view("durable").unwrap().published, 5);
}

#[tokio::test]
async fn declared_keys_are_used_checked_and_replaceable() {
    let (s, _) = memory();
    let keys = ["a2V5IG9uZQ==".to_string(), "a2V5IHR3bw==".to_string()];
    s.create_topic_with_keys("declared", InputSchema::EventGrid, keys.clone()).await.unwrap();
    assert_eq!(publish(&s, "declared", &keys[1], &grid_events(1)).await, Ok(1));
    let bad = ["not base64!".to_string(), keys[1].clone()];
    assert!(matches!(s.create_topic_with_keys("other", InputSchema::EventGrid, bad.clone()).await, Err(EventsError::Invalid(_))));
    assert!(matches!(s.set_keys("declared", bad).await, Err(EventsError::Invalid(_))));
    let fresh = ["bmV3IG9uZQ==".to_string(), "bmV3IHR3bw==".to_string()];
    assert_eq!(s.set_keys("declared", fresh.clone()).await.unwrap().record.keys, fresh);
    assert!(matches!(publish(&s, "declared", &keys[1], &grid_events(1)).await, Err(EventsError::Unauthorized(_))), "old keys stop working");
    assert_eq!(publish(&s, "declared", &fresh[0], &grid_events(1)).await, Ok(1));
    assert_eq!(s.topic_view("declared").unwrap().published, 2, "the log is kept");
}

fn webhook(url: &str) -> SubscriptionSpec {
    serde_json::from_value(json!({"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": url}},
        "filter": {"includedEventTypes": ["Track.Uploaded"]}})).unwrap()
}

#[tokio::test]
async fn subscriptions_are_added_listed_checked_and_removed() {
    let (s, _) = memory();
    s.create_topic("orders", InputSchema::CloudEvents).await.unwrap();
    let sub = s.create_subscription("orders", "notify", webhook("http://127.0.0.1:9000/a")).await.unwrap();
    assert_eq!((sub.topic.as_str(), sub.name.as_str()), ("orders", "notify"));
    assert!(matches!(s.create_subscription("ORDERS", "NOTIFY", webhook("http://x/y")).await, Err(EventsError::SubscriptionAlreadyExists { .. })));
    assert!(matches!(s.create_subscription("orders", "ab", webhook("http://x/y")).await, Err(EventsError::Invalid(_))), "names are 3-64 characters");
    assert!(matches!(s.create_subscription("nosuch", "notify", webhook("http://x/y")).await, Err(EventsError::TopicNotFound(_))));
    let mut as_grid = webhook("http://x/y");
    as_grid.event_delivery_schema = Some(InputSchema::EventGrid);
    assert!(matches!(s.create_subscription("orders", "as-grid", as_grid).await, Err(EventsError::Invalid(_))), "CloudEvents stay CloudEvents");
    s.create_subscription("orders", "search", webhook("http://127.0.0.1:9000/b")).await.unwrap();
    let names: Vec<String> = s.list_subscriptions("orders").unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["notify", "search"]);
    s.delete_subscription("orders", "Notify").await.unwrap();
    assert!(matches!(s.subscription("orders", "notify"), Err(EventsError::SubscriptionNotFound { .. })));
    assert!(matches!(s.delete_subscription("orders", "notify").await, Err(EventsError::SubscriptionNotFound { .. })));
}

#[tokio::test]
async fn subscriptions_survive_a_restart_and_go_with_their_topic() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ShiftableClock::default());
    let open = |clock: Arc<ShiftableClock>| on_disk(dir.path(), clock);
    {
        let (s, kv) = open(clock.clone());
        s.create_topic("kept", InputSchema::EventGrid).await.unwrap();
        s.create_topic("dropped", InputSchema::EventGrid).await.unwrap();
        s.create_subscription("kept", "notify", webhook("http://127.0.0.1:9000/a")).await.unwrap();
        s.create_subscription("dropped", "notify", webhook("http://127.0.0.1:9000/b")).await.unwrap();
        s.delete_topic("dropped").await.unwrap();
        s.close();
        kv.close();
    }
    let (s, kv) = open(clock.clone());
    assert_eq!(s.subscription("kept", "notify").unwrap().spec, webhook("http://127.0.0.1:9000/a"));
    // A topic made again under the old name starts without the old subscriptions.
    s.create_topic("dropped", InputSchema::EventGrid).await.unwrap();
    assert!(s.list_subscriptions("dropped").unwrap().is_empty());
    s.close();
    kv.close();
    let (s, _) = open(clock);
    assert!(s.list_subscriptions("dropped").unwrap().is_empty(), "and so after another restart");
}
