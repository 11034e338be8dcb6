//! Event Hubs through Microsoft's official Rust SDK (`azure_messaging_eventhubs`
//! 0.16.0), as an application uses it: hub and partition properties, sending single
//! events and batches (to a partition, by partition key, to the hub), reading a
//! partition from the start and from a sequence number with the event's sequence
//! number, offset, enqueued time, properties and body, and the errors a user meets
//! (an unknown hub, a wrong key).
//!
//! Every test starts its own server with the Event Hubs emulator's default
//! `Config.json` (hub `eh1`, two partitions, consumer group `cg1`), connects with
//! the emulator's connection string, and is bounded by a timeout.
//!
//! The tests run on tokio's current-thread runtime (plain `#[tokio::test]`), not the
//! multi-thread one. The SDK 0.16.0 resolves to fe2o3-amqp 0.16.2 (the newest 0.16),
//! whose sender sends a transfer and only then records it as unsettled
//! (`link/sender_link.rs` `send_payload_with_transfer`); a disposition that the
//! session handles in between finds no entry and is dropped (`link/mod.rs`
//! `LinkRelay::on_incoming_disposition`), so the send never completes. Against a
//! fast local server on a busy multi-thread runtime that happens (the wire shows
//! the request accepted, the client waits forever); fe2o3-amqp 0.18 records first.
//! On one thread the link task records the entry before the session task can
//! handle the reply.

use std::time::{Duration, SystemTime};

use azure_messaging_eventhubs::models::{AmqpSimpleValue, EventData, MessageId};
use azure_messaging_eventhubs::{EventDataBatchOptions, ProducerClient, SendEventOptions, StartLocation, StartPosition};
use lapis_eventhubs_rust_test::{body, bounded, config, consumer, consumer_with_key, error_chain, nothing_more, producer, producer_with_key, receiver, take, Server, KEY};
use serde_json::json;

fn server() -> Server {
    Server::start(&config(json!([
        { "Name": "eh1", "PartitionCount": "2", "ConsumerGroups": [{ "Name": "cg1" }] }
    ])))
}

fn earliest() -> StartPosition {
    StartPosition { location: StartLocation::Earliest, inclusive: false }
}

fn to_partition(id: &str) -> Option<SendEventOptions> {
    Some(SendEventOptions { partition_id: Some(id.to_string()) })
}

/// Sends `texts` as one batch with these options.
async fn send_batch(p: &ProducerClient, texts: &[&str], options: EventDataBatchOptions) {
    let batch = p.create_batch(Some(options)).await.unwrap_or_else(|e| panic!("create_batch: {e:?}"));
    for t in texts {
        assert!(batch.try_add_event_data(t.as_bytes().to_vec(), None).expect("try_add_event_data"), "the batch is full after {} events", batch.len());
    }
    p.send_batch(batch, None).await.unwrap_or_else(|e| panic!("send_batch: {e:?}"));
}

/// How many events partition `id` holds, from its properties.
async fn stored(p: &ProducerClient, id: &str) -> i64 {
    let props = p.get_partition_properties(id).await.unwrap_or_else(|e| panic!("get_partition_properties({id}): {e:?}"));
    if props.is_empty {
        0
    } else {
        props.last_enqueued_sequence_number - props.beginning_sequence_number + 1
    }
}

#[tokio::test]
async fn hub_properties_from_the_producer_and_the_consumer() {
    let server = server();
    bounded(60, "hub properties", async {
        let before = SystemTime::now();
        let p = producer(&server, "eh1").await;
        let hub = p.get_eventhub_properties().await.unwrap_or_else(|e| panic!("producer get_eventhub_properties: {e:?}"));
        assert_eq!(hub.name, "eh1");
        assert_eq!(hub.partition_ids, vec!["0".to_string(), "1".to_string()]);
        let created = hub.created_on.expect("created_on is set");
        assert!(created <= SystemTime::now(), "created_on {created:?} is in the future");
        assert!(created >= before - Duration::from_secs(600), "created_on {created:?} is long before the server started ({before:?})");
        p.close().await.expect("close the producer");

        // The consumer asks through its own `$management` path (…/ConsumerGroups/cg1/$management).
        let c = consumer(&server, "eh1", "cg1").await;
        let again = c.get_eventhub_properties().await.unwrap_or_else(|e| panic!("consumer get_eventhub_properties: {e:?}"));
        assert_eq!((again.name.as_str(), again.partition_ids.clone(), again.created_on), ("eh1", hub.partition_ids.clone(), hub.created_on));
        c.close().await.expect("close the consumer");
    })
    .await;
}

#[tokio::test]
async fn partition_properties_before_and_after_sending() {
    let server = server();
    bounded(60, "partition properties", async {
        let p = producer(&server, "eh1").await;
        let empty = p.get_partition_properties("1").await.unwrap_or_else(|e| panic!("get_partition_properties(1): {e:?}"));
        assert_eq!((empty.id.as_str(), empty.eventhub.as_str(), empty.is_empty), ("1", "eh1", true), "{empty:?}");
        assert_eq!(empty.last_enqueued_sequence_number, -1, "{empty:?}");

        let before = SystemTime::now();
        p.send_event("one", to_partition("1")).await.unwrap_or_else(|e| panic!("send_event: {e:?}"));
        p.send_event("two", to_partition("1")).await.unwrap_or_else(|e| panic!("send_event: {e:?}"));
        let after = SystemTime::now();

        let full = p.get_partition_properties("1").await.unwrap_or_else(|e| panic!("get_partition_properties(1): {e:?}"));
        assert_eq!((full.id.as_str(), full.is_empty), ("1", false), "{full:?}");
        assert_eq!((full.beginning_sequence_number, full.last_enqueued_sequence_number), (0, 1), "{full:?}");
        assert!(!full.last_enqueued_offset.is_empty(), "{full:?}");
        let at = full.last_enqueued_time_utc.expect("last_enqueued_time_utc is set");
        assert!(at + Duration::from_secs(2) >= before && at <= after + Duration::from_secs(2), "last_enqueued_time_utc {at:?} is not between {before:?} and {after:?}");

        // The other partition is untouched.
        let other = p.get_partition_properties("0").await.unwrap_or_else(|e| panic!("get_partition_properties(0): {e:?}"));
        assert!(other.is_empty, "{other:?}");

        // The last event's offset is the one the partition reports.
        let c = consumer(&server, "eh1", "$Default").await;
        let r = receiver(&c, "1", earliest()).await;
        let got = take(&r, 2, 20).await;
        assert_eq!(got[1].offset().as_deref(), Some(full.last_enqueued_offset.as_str()));
        assert_eq!(got[1].enqueued_time(), full.last_enqueued_time_utc);
        r.close().await.expect("close the receiver");
        c.close().await.expect("close the consumer");
        p.close().await.expect("close the producer");
    })
    .await;
}

#[tokio::test]
async fn single_events_round_trip_with_their_properties() {
    let server = server();
    bounded(60, "send_event and receive", async {
        let p = producer(&server, "eh1").await;
        let before = SystemTime::now();
        let rich = EventData::builder()
            .with_body(b"hello \x00 bytes \xff".to_vec())
            .with_content_type("application/octet-stream".to_string())
            .with_message_id("order-42")
            .with_correlation_id("conversation-7")
            .add_property("region".to_string(), "eu")
            .add_property("attempt".to_string(), 3i32)
            .add_property("weight".to_string(), 2.5f64)
            .add_property("big".to_string(), 1i64 << 40)
            .add_property("urgent".to_string(), true)
            .build();
        p.send_event(rich, to_partition("0")).await.unwrap_or_else(|e| panic!("send_event: {e:?}"));
        p.send_event("second", to_partition("0")).await.unwrap_or_else(|e| panic!("send_event: {e:?}"));
        p.send_event(b"third".to_vec(), to_partition("0")).await.unwrap_or_else(|e| panic!("send_event: {e:?}"));
        let after = SystemTime::now();

        let c = consumer(&server, "eh1", "$Default").await;
        let r = receiver(&c, "0", earliest()).await;
        let got = take(&r, 3, 20).await;

        let seqs: Vec<Option<i64>> = got.iter().map(|e| e.sequence_number()).collect();
        assert_eq!(seqs, vec![Some(0), Some(1), Some(2)]);
        let offsets: Vec<String> = got.iter().map(|e| e.offset().clone().expect("every event has an x-opt-offset string")).collect();
        assert!(offsets[0] != offsets[1] && offsets[1] != offsets[2] && offsets[0] != offsets[2], "offsets are not distinct: {offsets:?}");
        for e in &got {
            let at = e.enqueued_time().expect("every event has an x-opt-enqueued-time timestamp");
            assert!(at + Duration::from_secs(2) >= before && at <= after + Duration::from_secs(2), "enqueued time {at:?} is not between {before:?} and {after:?}");
            assert_eq!(e.partition_key(), &None, "no partition key was given");
        }

        let first = got[0].event_data();
        assert_eq!(first.body(), Some(&b"hello \x00 bytes \xff"[..]));
        assert_eq!(first.content_type(), Some("application/octet-stream"));
        assert!(matches!(first.message_id(), Some(MessageId::String(id)) if id == "order-42"), "message id {:?}", first.message_id());
        assert!(matches!(first.correlation_id(), Some(MessageId::String(id)) if id == "conversation-7"), "correlation id {:?}", first.correlation_id());
        let props = first.properties().expect("application properties");
        assert_eq!(props.get("region"), Some(&AmqpSimpleValue::String("eu".into())));
        assert_eq!(props.get("attempt"), Some(&AmqpSimpleValue::Int(3)));
        assert_eq!(props.get("weight"), Some(&AmqpSimpleValue::Double(2.5)));
        assert_eq!(props.get("big"), Some(&AmqpSimpleValue::Long(1 << 40)));
        assert_eq!(props.get("urgent"), Some(&AmqpSimpleValue::Boolean(true)));
        assert_eq!(props.len(), 5, "{props:?}");
        assert_eq!((body(&got[1]), body(&got[2])), ("second".to_string(), "third".to_string()));
        // send_event gives an event without a message id one (a uuid).
        assert!(matches!(got[1].event_data().message_id(), Some(MessageId::Uuid(_))), "{:?}", got[1].event_data().message_id());

        if let Some(extra) = nothing_more(&r, 500).await {
            panic!("after the three events the receiver got {extra}");
        }
        r.close().await.expect("close the receiver");
        c.close().await.expect("close the consumer");
        p.close().await.expect("close the producer");
    })
    .await;
}

#[tokio::test]
async fn a_batch_to_a_partition_arrives_in_order() {
    let server = server();
    bounded(60, "send_batch to a partition", async {
        let p = producer(&server, "eh1").await;
        let texts = ["b0", "b1", "b2", "b3", "b4"];
        send_batch(&p, &texts, EventDataBatchOptions { partition_id: Some("1".into()), ..Default::default() }).await;
        send_batch(&p, &["b5"], EventDataBatchOptions { partition_id: Some("1".into()), ..Default::default() }).await;
        assert_eq!((stored(&p, "0").await, stored(&p, "1").await), (0, 6));

        let c = consumer(&server, "eh1", "cg1").await;
        let r = receiver(&c, "1", earliest()).await;
        let got = take(&r, 6, 20).await;
        assert_eq!(got.iter().map(body).collect::<Vec<_>>(), vec!["b0", "b1", "b2", "b3", "b4", "b5"]);
        assert_eq!(got.iter().map(|e| e.sequence_number()).collect::<Vec<_>>(), (0..6).map(Some).collect::<Vec<_>>());
        assert!(got.iter().all(|e| e.offset().is_some() && e.enqueued_time().is_some()));
        r.close().await.expect("close the receiver");
        c.close().await.expect("close the consumer");
        p.close().await.expect("close the producer");
    })
    .await;
}

#[tokio::test]
async fn a_partition_key_keeps_events_together() {
    let server = server();
    bounded(60, "send_batch with a partition key", async {
        let p = producer(&server, "eh1").await;
        let keyed = || EventDataBatchOptions { partition_key: Some("track-42".into()), ..Default::default() };
        send_batch(&p, &["k0", "k1", "k2"], keyed()).await;
        send_batch(&p, &["k3", "k4"], keyed()).await;
        send_batch(&p, &["k5"], keyed()).await;

        let counts = (stored(&p, "0").await, stored(&p, "1").await);
        assert!(counts == (6, 0) || counts == (0, 6), "events with one partition key were spread over partitions: {counts:?}");
        let partition = if counts.0 == 6 { "0" } else { "1" };

        let c = consumer(&server, "eh1", "$Default").await;
        let r = receiver(&c, partition, earliest()).await;
        let got = take(&r, 6, 20).await;
        assert_eq!(got.iter().map(body).collect::<Vec<_>>(), vec!["k0", "k1", "k2", "k3", "k4", "k5"]);
        for e in &got {
            assert_eq!(e.partition_key().as_deref(), Some("track-42"), "seq {:?}", e.sequence_number());
        }
        r.close().await.expect("close the receiver");
        c.close().await.expect("close the consumer");
        p.close().await.expect("close the producer");
    })
    .await;
}

#[tokio::test]
async fn events_sent_to_the_hub_land_in_its_partitions() {
    let server = server();
    bounded(60, "send to the hub", async {
        let p = producer(&server, "eh1").await;
        for i in 0..4 {
            p.send_event(format!("e{i}"), None).await.unwrap_or_else(|e| panic!("send_event to the hub: {e:?}"));
        }
        send_batch(&p, &["h0", "h1"], EventDataBatchOptions::default()).await;
        let (a, b) = (stored(&p, "0").await, stored(&p, "1").await);
        assert_eq!(a + b, 6, "partition 0 holds {a}, partition 1 holds {b}");

        let c = consumer(&server, "eh1", "$Default").await;
        let mut bodies = Vec::new();
        for (id, n) in [("0", a), ("1", b)] {
            if n > 0 {
                let r = receiver(&c, id, earliest()).await;
                bodies.extend(take(&r, n as usize, 20).await.iter().map(body));
                r.close().await.expect("close the receiver");
            }
        }
        bodies.sort();
        assert_eq!(bodies, vec!["e0", "e1", "e2", "e3", "h0", "h1"]);
        c.close().await.expect("close the consumer");
        p.close().await.expect("close the producer");
    })
    .await;
}

#[tokio::test]
async fn a_receiver_starts_at_a_sequence_number() {
    let server = server();
    bounded(60, "receive from a sequence number", async {
        let p = producer(&server, "eh1").await;
        send_batch(&p, &["s0", "s1", "s2", "s3", "s4"], EventDataBatchOptions { partition_id: Some("0".into()), ..Default::default() }).await;

        let c = consumer(&server, "eh1", "cg1").await;
        let after_2 = receiver(&c, "0", StartPosition { location: StartLocation::SequenceNumber(2), inclusive: false }).await;
        let got = take(&after_2, 2, 20).await;
        assert_eq!(got.iter().map(|e| (e.sequence_number(), body(e))).collect::<Vec<_>>(), vec![(Some(3), "s3".into()), (Some(4), "s4".into())]);
        if let Some(extra) = nothing_more(&after_2, 500).await {
            panic!("exclusive start at 2: after s4 the receiver got {extra}");
        }
        after_2.close().await.expect("close the receiver");

        let from_2 = receiver(&c, "0", StartPosition { location: StartLocation::SequenceNumber(2), inclusive: true }).await;
        let got = take(&from_2, 3, 20).await;
        assert_eq!(got.iter().map(|e| (e.sequence_number(), body(e))).collect::<Vec<_>>(), vec![(Some(2), "s2".into()), (Some(3), "s3".into()), (Some(4), "s4".into())]);
        from_2.close().await.expect("close the receiver");

        // A receiver from the earliest position sees everything, in the other group too.
        let c2 = consumer(&server, "eh1", "$Default").await;
        let all = receiver(&c2, "0", earliest()).await;
        assert_eq!(take(&all, 5, 20).await.iter().map(body).collect::<Vec<_>>(), vec!["s0", "s1", "s2", "s3", "s4"]);
        all.close().await.expect("close the receiver");
        c2.close().await.expect("close the consumer");
        c.close().await.expect("close the consumer");
        p.close().await.expect("close the producer");
    })
    .await;
}

#[tokio::test]
async fn a_receiver_at_the_latest_position_sees_only_new_events() {
    let server = server();
    bounded(60, "receive from the latest position", async {
        let p = producer(&server, "eh1").await;
        p.send_event("old", to_partition("1")).await.unwrap_or_else(|e| panic!("send_event: {e:?}"));
        let c = consumer(&server, "eh1", "$Default").await;
        // The default start position is the latest.
        let r = receiver(&c, "1", StartPosition::default()).await;
        // The link attaches on the first poll; give it that poll before sending.
        if let Some(extra) = nothing_more(&r, 1000).await {
            panic!("a receiver at the latest position got {extra}");
        }
        p.send_event("new", to_partition("1")).await.unwrap_or_else(|e| panic!("send_event: {e:?}"));
        let got = take(&r, 1, 20).await;
        assert_eq!((got[0].sequence_number(), body(&got[0])), (Some(1), "new".to_string()));
        r.close().await.expect("close the receiver");
        c.close().await.expect("close the consumer");
        p.close().await.expect("close the producer");
    })
    .await;
}

/// The error a call returned, with every error under it; panics if it succeeded.
fn failure<T: std::fmt::Debug>(what: &str, result: azure_messaging_eventhubs::Result<T>) -> String {
    match result {
        Ok(v) => panic!("{what} succeeded: {v:?}"),
        Err(e) => {
            let text = error_chain(&e);
            eprintln!("{what}: {text}");
            text
        }
    }
}

#[tokio::test]
async fn an_unknown_hub_fails() {
    let server = server();
    bounded(60, "unknown hub", async {
        // Opening only connects; the hub is first named by the CBS token, which Azure
        // (and Lapis) refuse for an entity that does not exist: 404.
        let p = producer_with_key(&server, "nohub", KEY).await.unwrap_or_else(|e| panic!("open a producer for nohub: {e:?}"));
        let sent = failure("send_event to an unknown hub", p.send_event("lost", None).await);
        assert!(sent.contains("404") && sent.contains("/nohub' could not be found"), "send_event: not a 404 for the hub's token: {sent}");
        let read = failure("get_eventhub_properties of an unknown hub", p.get_eventhub_properties().await);
        // The SDK authorizes `nohub/$management` first: the same 404.
        assert!(read.contains("404") && read.contains("/nohub/$management' could not be found"), "get_eventhub_properties: not a 404 for the hub: {read}");
        let _ = p.close().await;

        // A receiver on an unknown hub fails on its first receive.
        let c = consumer_with_key(&server, "nohub", "$Default", KEY).await.unwrap_or_else(|e| panic!("open a consumer for nohub: {e:?}"));
        let r = receiver(&c, "0", earliest()).await;
        let got = nothing_more(&r, 10_000).await.expect("a receiver on an unknown hub neither failed nor got anything in 10 s");
        assert!(
            got.contains("receive error") && got.contains("404") && got.contains("/nohub/ConsumerGroups/$Default/Partitions/0' could not be found"),
            "receiver on an unknown hub: not a 404 for the partition's token: {got}"
        );
        let _ = c.close().await;

        // An unknown partition of a real hub fails too.
        let p = producer(&server, "eh1").await;
        let sent = failure("send_event to partition 7 of a 2-partition hub", p.send_event("lost", to_partition("7")).await);
        assert!(sent.contains("'7'"), "send_event to partition 7: {sent}");
        let read = failure("get_partition_properties(7)", p.get_partition_properties("7").await);
        assert!(read.contains("404"), "get_partition_properties(7): {read}");
        // The server is still fine for the real hub.
        p.send_event("ok", to_partition("0")).await.unwrap_or_else(|e| panic!("send_event to eh1 after the failures: {e:?}"));
        assert_eq!(stored(&p, "0").await, 1);
        p.close().await.expect("close the producer");
    })
    .await;
}

#[tokio::test]
async fn a_wrong_key_fails() {
    let server = server();
    bounded(60, "wrong key", async {
        let p = producer_with_key(&server, "eh1", "not-the-key").await.unwrap_or_else(|e| panic!("open a producer: {e:?}"));
        let sent = failure("send_event with a wrong key", p.send_event("forged", to_partition("0")).await);
        assert!(sent.contains("401"), "send_event with a wrong key: not a 401 put-token answer: {sent}");
        let read = failure("get_eventhub_properties with a wrong key", p.get_eventhub_properties().await);
        assert!(read.contains("401"), "get_eventhub_properties with a wrong key: not a 401 put-token answer: {read}");
        let _ = p.close().await;

        let c = consumer_with_key(&server, "eh1", "$Default", "not-the-key").await.unwrap_or_else(|e| panic!("open a consumer: {e:?}"));
        let r = receiver(&c, "0", earliest()).await;
        let got = nothing_more(&r, 10_000).await.expect("a receiver with a wrong key neither failed nor got anything in 10 s");
        assert!(got.contains("receive error") && got.contains("401"), "receiver with a wrong key: {got}");
        let _ = c.close().await;

        // Nothing was stored.
        let p = producer(&server, "eh1").await;
        assert_eq!(stored(&p, "0").await, 0, "an event sent with a wrong key was stored");
        p.close().await.expect("close the producer");
    })
    .await;
}
