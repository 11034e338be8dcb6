//! Delivery through the service with a scripted transport: handshakes, headers and
//! batches, filters, the retry schedule on the shiftable clock, dead letters, Lapis
//! destinations, and delivery resuming after a restart.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{json, Value};

use super::delivery::{BoxFuture, DeliveryTransport, HttpFailure, HttpMethod, HttpRequest, HttpResponse, ServiceDelivery, ServiceFailure};
use super::tests::on_disk;
use super::*;
use crate::clock::{Clock, ShiftableClock};

type Answer = Box<dyn Fn(&HttpRequest) -> Result<u16, HttpFailure> + Send + Sync>;

/// Answers handshakes as a well-behaved endpoint does and notifications with
/// whatever `answer` says; keeps everything it was sent.
struct Scripted {
    answer: Mutex<Answer>,
    notifications: Mutex<Vec<HttpRequest>>,
    handshakes: Mutex<Vec<HttpRequest>>,
    dead_letters: Mutex<Vec<(String, String, Value)>>,
    services: Mutex<Vec<(String, u32, Vec<Value>)>>,
}

impl Scripted {
    fn new(answer: impl Fn(&HttpRequest) -> Result<u16, HttpFailure> + Send + Sync + 'static) -> Arc<Scripted> {
        Arc::new(Scripted { answer: Mutex::new(Box::new(answer)), notifications: Mutex::default(), handshakes: Mutex::default(), dead_letters: Mutex::default(), services: Mutex::default() })
    }

    fn set(&self, answer: impl Fn(&HttpRequest) -> Result<u16, HttpFailure> + Send + Sync + 'static) {
        *self.answer.lock() = Box::new(answer);
    }

    fn delivered_ids(&self) -> Vec<String> {
        let bodies: Vec<Value> = self.notifications.lock().iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect();
        bodies.iter().flat_map(|b| match b {
            Value::Array(events) => events.iter().map(|e| e["id"].as_str().unwrap().to_string()).collect::<Vec<_>>(),
            one => vec![one["id"].as_str().unwrap().to_string()],
        }).collect()
    }
}

fn header<'a>(r: &'a HttpRequest, name: &str) -> Option<&'a str> {
    r.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
}

impl DeliveryTransport for Scripted {
    fn http(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, HttpFailure>> {
        Box::pin(async move {
            if request.method == HttpMethod::Options {
                self.handshakes.lock().push(request);
                return Ok(HttpResponse { status: 200, headers: vec![("webhook-allowed-origin".into(), "*".into())], body: vec![] });
            }
            if header(&request, "aeg-event-type") == Some("SubscriptionValidation") {
                let sent: Value = serde_json::from_slice(&request.body).unwrap();
                let code = sent[0]["data"]["validationCode"].clone();
                self.handshakes.lock().push(request);
                return Ok(HttpResponse { status: 200, headers: vec![], body: serde_json::to_vec(&json!({"validationResponse": code})).unwrap() });
            }
            let answer = (self.answer.lock())(&request);
            self.notifications.lock().push(request);
            answer.map(|status| HttpResponse { status, ..Default::default() })
        })
    }

    fn to_service<'a>(&'a self, delivery: ServiceDelivery<'a>) -> BoxFuture<'a, Result<(), ServiceFailure>> {
        Box::pin(async move {
            let name = format!("{:?}", delivery.destination);
            let events = delivery.events.iter().map(|e| serde_json::from_slice(&e.json).unwrap()).collect();
            self.services.lock().push((name, delivery.delivery_count, events));
            Ok(())
        })
    }

    fn dead_letter(&self, container: String, blob: String, body: Vec<u8>) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.dead_letters.lock().push((container, blob, serde_json::from_slice(&body).unwrap()));
            Ok(())
        })
    }
}

async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Waits until the subscription has filed `n` failed attempts: the clock may be moved
/// only after the worker took the failure's time, or the retry comes due later.
async fn filed(s: &EventGridService, topic: &str, sub: &str, n: u64) {
    until(&format!("{n} failed attempts filed"), || s.delivery_metrics(topic, sub).unwrap().failed_attempts == n).await;
}

fn memory_with(transport: Arc<Scripted>) -> (EventGridService, Arc<ShiftableClock>) {
    let clock = Arc::new(ShiftableClock::default());
    let s = EventGridService::open(Arc::new(lapis_store::MemoryStore), Arc::new(lapis_store::partition::MemoryLogs), clock.clone(), EventsRecovery::default()).unwrap();
    s.start_delivery(transport);
    (s, clock)
}

fn hook(extra: Value) -> SubscriptionSpec {
    let mut v = json!({"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": "http://127.0.0.1:9/hook"}}});
    for (k, val) in extra.as_object().unwrap() {
        if k == "properties" {
            v["destination"]["properties"].as_object_mut().unwrap().extend(val.as_object().unwrap().clone());
        } else {
            v[k] = val.clone();
        }
    }
    serde_json::from_value(v).unwrap()
}

async fn publish(s: &EventGridService, topic: &str, events: Value) {
    let key = s.topic_view(topic).unwrap().record.keys[0].clone();
    let p = s.publish(topic, PublishCredential::Key(&key), Some("application/json"), &serde_json::to_vec(&events).unwrap()).unwrap();
    p.appended.durable().await.unwrap();
}

fn grid(id: &str, subject: &str, event_type: &str) -> Value {
    json!({"id": id, "subject": subject, "eventType": event_type, "eventTime": "2026-12-01T10:00:00Z", "data": {"id": id}, "dataVersion": "2.0"})
}

#[tokio::test]
async fn a_webhook_is_validated_then_gets_filtered_events_with_the_services_headers() {
    let t = Scripted::new(|_| Ok(200));
    let (s, _) = memory_with(t.clone());
    s.create_topic("tracks", InputSchema::EventGrid).await.unwrap();
    publish(&s, "tracks", json!([grid("before", "a", "Track.Uploaded")])).await;
    s.create_subscription("tracks", "uploads", hook(json!({"filter": {"includedEventTypes": ["Track.Uploaded"], "subjectBeginsWith": "rock/"}}))).await.unwrap();
    assert_eq!(t.handshakes.lock().len(), 1, "the validation event went first");
    publish(&s, "tracks", json!([grid("1", "rock/1", "Track.Uploaded"), grid("2", "jazz/2", "Track.Uploaded"), grid("3", "rock/3", "Track.Played"), grid("4", "Rock/4", "track.uploaded")])).await;
    until("two deliveries", || t.notifications.lock().len() == 2).await;
    let mut ids = t.delivered_ids();
    ids.sort();
    assert_eq!(ids, ["1", "4"], "only matching events published after the subscription was made");
    let first = t.notifications.lock()[0].clone();
    assert_eq!(header(&first, "aeg-event-type"), Some("Notification"));
    assert_eq!(header(&first, "aeg-subscription-name"), Some("UPLOADS"));
    assert_eq!(header(&first, "aeg-delivery-count"), Some("0"));
    assert_eq!(header(&first, "aeg-data-version"), Some("2.0"));
    assert_eq!(header(&first, "aeg-metadata-version"), Some("1"));
    let m = s.delivery_metrics("tracks", "uploads").unwrap();
    assert_eq!((m.matched_events, m.delivered_events, m.failed_attempts), (2, 2, 0));
    assert!(m.latency_p99_ms.is_some());
}

#[tokio::test]
async fn a_webhook_that_fails_the_handshake_is_refused() {
    let t = Scripted::new(|_| Ok(200));
    let (s, _) = memory_with(t.clone());
    s.create_topic("tracks", InputSchema::CloudEvents).await.unwrap();
    // A CloudEvents subscription is validated with OPTIONS; the scripted endpoint
    // consents. One that cannot be reached does not.
    s.create_subscription("tracks", "ok-hook", hook(json!({}))).await.unwrap();
    assert_eq!(t.handshakes.lock()[0].method, HttpMethod::Options);

    struct Deaf;
    impl DeliveryTransport for Deaf {
        fn http(&self, _: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, HttpFailure>> {
            Box::pin(async { Ok(HttpResponse { status: 202, ..Default::default() }) })
        }
        fn to_service<'a>(&'a self, _: ServiceDelivery<'a>) -> BoxFuture<'a, Result<(), ServiceFailure>> {
            Box::pin(async { Ok(()) })
        }
        fn dead_letter(&self, _: String, _: String, _: Vec<u8>) -> BoxFuture<'_, Result<(), String>> {
            Box::pin(async { Ok(()) })
        }
    }
    let clock = Arc::new(ShiftableClock::default());
    let deaf = EventGridService::open(Arc::new(lapis_store::MemoryStore), Arc::new(lapis_store::partition::MemoryLogs), clock, EventsRecovery::default()).unwrap();
    deaf.start_delivery(Arc::new(Deaf));
    deaf.create_topic("tracks", InputSchema::EventGrid).await.unwrap();
    let refused = deaf.create_subscription("tracks", "hook", hook(json!({}))).await;
    assert!(matches!(refused, Err(EventsError::ValidationFailed { .. })), "{refused:?}");
    assert!(deaf.list_subscriptions("tracks").unwrap().is_empty());
}

#[tokio::test]
async fn batches_respect_both_limits_and_cloud_events_go_out_as_cloud_events() {
    let t = Scripted::new(|_| Ok(200));
    let (s, _) = memory_with(t.clone());
    s.create_topic("tracks", InputSchema::EventGrid).await.unwrap();
    s.create_subscription("tracks", "batched", hook(json!({"properties": {"maxEventsPerBatch": 3, "preferredBatchSizeInKilobytes": 1}, "eventDeliverySchema": "CloudEventSchemaV1_0"}))).await.unwrap();
    let events: Vec<Value> = (0..7).map(|i| grid(&i.to_string(), "s", "T")).collect();
    publish(&s, "tracks", Value::Array(events)).await;
    until("seven events", || t.delivered_ids().len() == 7).await;
    for r in t.notifications.lock().iter() {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let n = body.as_array().map(Vec::len).unwrap_or(1);
        assert!(n <= 3, "max events per batch");
        let first = if n == 1 && body.is_object() { body.clone() } else { body[0].clone() };
        assert_eq!(first["specversion"], "1.0");
        assert_eq!(first["type"], "T");
        assert!(first["source"].as_str().unwrap().ends_with("/topics/tracks"));
    }
    // A big event goes alone, and never waits for company.
    let big = json!([{"id": "big", "subject": "s", "eventType": "T", "eventTime": "2026-12-01T10:00:00Z", "data": "x".repeat(4000)}, grid("after", "s", "T")]);
    publish(&s, "tracks", big).await;
    until("the big one and the next", || t.delivered_ids().len() == 9).await;
    let last_two: Vec<Value> = t.notifications.lock().iter().rev().take(2).map(|r| serde_json::from_slice(&r.body).unwrap()).collect();
    assert!(last_two.iter().all(|b| b.is_object()), "over the preferred size, each went alone");
}

#[tokio::test]
async fn a_failing_webhook_is_retried_on_the_schedule_then_dead_lettered() {
    let t = Scripted::new(|_| Ok(500));
    let (s, clock) = memory_with(t.clone());
    s.create_topic("tracks", InputSchema::EventGrid).await.unwrap();
    s.create_subscription("tracks", "flaky", hook(json!({"retryPolicy": {"maxDeliveryAttempts": 3}, "deadLetterContainer": "dead"}))).await.unwrap();
    publish(&s, "tracks", json!([grid("1", "s", "T")])).await;
    until("the first attempt", || t.notifications.lock().len() == 1).await;
    filed(&s, "tracks", "flaky", 1).await;
    clock.advance(9_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(t.notifications.lock().len(), 1, "not retried before 10 seconds");
    clock.advance(2_100);
    until("the second attempt", || t.notifications.lock().len() == 2).await;
    assert_eq!(header(&t.notifications.lock()[1], "aeg-delivery-count"), Some("1"));
    filed(&s, "tracks", "flaky", 2).await;
    clock.advance(25_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(t.notifications.lock().len(), 2, "the second wait is 30 seconds");
    clock.advance(8_100);
    until("the third attempt", || t.notifications.lock().len() == 3).await;
    until("the dead letter", || t.dead_letters.lock().len() == 1).await;
    let (container, blob, records) = t.dead_letters.lock()[0].clone();
    assert_eq!(container, "dead");
    assert!(blob.starts_with("FLAKY/"), "{blob}");
    assert_eq!(records[0]["id"], "1");
    assert_eq!(records[0]["deadLetterReason"], "MaxDeliveryAttemptsExceeded");
    assert_eq!(records[0]["deliveryAttempts"], 3);
    assert_eq!(records[0]["lastDeliveryOutcome"], "Busy");
    assert_eq!(records[0]["lastHttpStatusCode"], 500);
    let m = s.delivery_metrics("tracks", "flaky").unwrap();
    assert_eq!((m.failed_attempts, m.dead_lettered_events, m.delivered_events, m.retrying_events), (3, 1, 0, 0));
}

#[tokio::test]
async fn a_bad_request_is_dead_lettered_at_once_and_a_recovered_endpoint_gets_its_retry() {
    let t = Scripted::new(|r| Ok(if String::from_utf8_lossy(&r.body).contains("\"poison\"") { 400 } else { 503 }));
    let (s, clock) = memory_with(t.clone());
    s.create_topic("tracks", InputSchema::EventGrid).await.unwrap();
    s.create_subscription("tracks", "mixed", hook(json!({"deadLetterContainer": "dead"}))).await.unwrap();
    publish(&s, "tracks", json!([grid("poison", "s", "T"), grid("fine", "s", "T")])).await;
    until("a dead letter", || t.dead_letters.lock().len() == 1).await;
    assert_eq!(t.dead_letters.lock()[0].2[0]["deadLetterReason"], "UndeliverableDueToHttpBadRequest");
    t.set(|_| Ok(200));
    filed(&s, "tracks", "mixed", 2).await;
    clock.advance(20_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(t.notifications.lock().len(), 2, "503 asks for at least 30 seconds");
    clock.advance(15_000);
    until("the retry", || t.notifications.lock().len() == 3).await;
    assert_eq!(s.delivery_metrics("tracks", "mixed").unwrap().delivered_events, 1);
}

#[tokio::test]
async fn events_past_their_time_to_live_are_dead_lettered_at_the_next_attempt() {
    let t = Scripted::new(|_| Err(HttpFailure::Unreachable("connection refused".into())));
    let (s, clock) = memory_with(t.clone());
    s.create_topic("tracks", InputSchema::EventGrid).await.unwrap();
    s.create_subscription("tracks", "short", hook(json!({"retryPolicy": {"eventTimeToLiveInMinutes": 1}, "deadLetterContainer": "dead"}))).await.unwrap();
    publish(&s, "tracks", json!([grid("1", "s", "T")])).await;
    until("the first attempt", || t.notifications.lock().len() == 1).await;
    filed(&s, "tracks", "short", 1).await;
    clock.advance(11_500);
    until("the second attempt", || t.notifications.lock().len() == 2).await;
    filed(&s, "tracks", "short", 2).await;
    clock.advance(120_000);
    until("the dead letter", || t.dead_letters.lock().len() == 1).await;
    assert_eq!(t.notifications.lock().len(), 2, "no attempt once the time to live is over");
    let record = t.dead_letters.lock()[0].2[0].clone();
    assert_eq!(record["deadLetterReason"], "TimeToLiveExceeded");
    assert_eq!(record["lastDeliveryOutcome"], "SocketError");
}

#[tokio::test]
async fn undeliverable_events_without_a_dead_letter_container_are_dropped_and_counted() {
    let t = Scripted::new(|_| Ok(413));
    let (s, _) = memory_with(t.clone());
    s.create_topic("tracks", InputSchema::EventGrid).await.unwrap();
    s.create_subscription("tracks", "nowhere", hook(json!({}))).await.unwrap();
    publish(&s, "tracks", json!([grid("1", "s", "T")])).await;
    until("the drop", || s.delivery_metrics("tracks", "nowhere").unwrap().dropped_events == 1).await;
    assert!(t.dead_letters.lock().is_empty());
}

#[tokio::test]
async fn events_go_to_lapis_destinations_one_message_each() {
    let t = Scripted::new(|_| Ok(200));
    let (s, _) = memory_with(t.clone());
    s.create_topic("tracks", InputSchema::EventGrid).await.unwrap();
    let spec: SubscriptionSpec = serde_json::from_value(json!({"destination": {"endpointType": "StorageQueue", "properties": {"queueName": "jobs"}}})).unwrap();
    s.create_subscription("tracks", "to-queue", spec).await.unwrap();
    assert!(t.handshakes.lock().is_empty(), "no handshake for Lapis's own services");
    publish(&s, "tracks", json!([grid("1", "s", "T"), grid("2", "s", "T")])).await;
    until("the queue delivery", || t.services.lock().iter().map(|(_, _, e)| e.len()).sum::<usize>() == 2).await;
    assert!(t.services.lock()[0].0.contains("jobs"));
}

#[tokio::test]
async fn delivery_resumes_after_a_restart_with_its_retries() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ShiftableClock::default());
    let failing = Scripted::new(|_| Ok(500));
    {
        let (s, kv) = on_disk(dir.path(), clock.clone());
        s.start_delivery(failing.clone());
        s.create_topic("tracks", InputSchema::EventGrid).await.unwrap();
        s.create_subscription("tracks", "durable", hook(json!({}))).await.unwrap();
        publish(&s, "tracks", json!([grid("retried", "s", "T")])).await;
        until("the failed attempt", || failing.notifications.lock().len() == 1).await;
        until("its retry record", || s.delivery_metrics("tracks", "durable").unwrap().retrying_events == 1).await;
        s.stop_delivery().await;
        // Published while nothing delivers: the mark stays before it.
        publish(&s, "tracks", json!([grid("waiting", "s", "T")])).await;
        s.close();
        kv.close();
    }
    let working = Scripted::new(|_| Ok(200));
    let (s, _kv) = on_disk(dir.path(), clock.clone());
    s.start_delivery(working.clone());
    until("the waiting event", || working.delivered_ids() == ["waiting"]).await;
    clock.advance(12_000);
    until("the retried event", || working.delivered_ids().len() == 2).await;
    assert_eq!(header(&working.notifications.lock()[1], "aeg-delivery-count"), Some("1"), "the attempt count survived");
    assert!(working.handshakes.lock().is_empty(), "a recovered subscription is not validated again");
}

#[tokio::test]
async fn events_owed_a_retry_at_a_restart_are_not_sent_again_as_new() {
    use super::delivery::state::{mark_key, retry_key, subscription_path, RetryRecord};
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ShiftableClock::default());
    {
        let (s, kv) = on_disk(dir.path(), clock.clone());
        s.create_topic("tracks", InputSchema::EventGrid).await.unwrap();
        s.create_subscription("tracks", "batched", hook(json!({"properties": {"maxEventsPerBatch": 5}}))).await.unwrap();
        publish(&s, "tracks", json!([grid("0", "s", "T"), grid("1", "s", "T"), grid("2", "s", "T"), grid("3", "s", "T")])).await;
        // As a crash leaves it: the first two owed a retry, the mark still before them.
        let path = subscription_path("tracks", "batched");
        let record = RetryRecord { seqs: vec![0, 1], attempts: 1, due: clock.now_ms() + 10_000, published_at: clock.now_ms(), last: None, last_attempt_at: None, dead_letter: None, dead_letter_since: None };
        kv.commit(&[
            lapis_store::Op::Put { key: retry_key(&path, 0), value: serde_json::to_vec(&record).unwrap() },
            lapis_store::Op::Put { key: mark_key(&path), value: b"0".to_vec() },
        ]).unwrap().durable().await.unwrap();
        s.close();
        kv.close();
    }
    let t = Scripted::new(|_| Ok(200));
    let (s, _kv) = on_disk(dir.path(), clock.clone());
    s.start_delivery(t.clone());
    until("the new events", || t.delivered_ids().len() == 2).await;
    assert_eq!(t.delivered_ids(), ["2", "3"], "the ones with a record wait for their retry");
    clock.advance(11_000);
    until("the retry", || t.delivered_ids().len() == 4).await;
    let mut ids = t.delivered_ids();
    ids.sort();
    assert_eq!(ids, ["0", "1", "2", "3"], "each once");
    assert_eq!(header(&t.notifications.lock()[1], "aeg-delivery-count"), Some("1"));
    assert_eq!(s.delivery_metrics("tracks", "batched").unwrap().retrying_events, 0);
}

#[tokio::test]
async fn a_deleted_subscription_leaves_nothing_behind_for_a_new_one_of_its_name() {
    let t = Scripted::new(|_| Ok(500));
    let (s, _) = memory_with(t.clone());
    s.create_topic("tracks", InputSchema::EventGrid).await.unwrap();
    s.create_subscription("tracks", "again", hook(json!({}))).await.unwrap();
    publish(&s, "tracks", json!([grid("old", "s", "T")])).await;
    until("a failed attempt", || s.delivery_metrics("tracks", "again").unwrap().retrying_events == 1).await;
    s.delete_subscription("tracks", "again").await.unwrap();
    t.set(|_| Ok(200));
    s.create_subscription("tracks", "again", hook(json!({}))).await.unwrap();
    publish(&s, "tracks", json!([grid("new", "s", "T")])).await;
    until("the new event", || t.delivered_ids().contains(&"new".to_string())).await;
    let m = s.delivery_metrics("tracks", "again").unwrap();
    assert_eq!((m.retrying_events, m.delivered_events), (0, 1), "the old subscription's retry went with it");
}
