//! Auto-forwarding and dead-letter forwarding.

use crate::clock::Clock;

use super::*;

fn forwarding_to(target: &str) -> QueueConfig {
    QueueConfig { forward_to: Some(target.into()), ..Default::default() }
}

#[tokio::test]
async fn a_forwarding_queue_passes_messages_on_and_keeps_none() {
    let (b, _) = broker();
    b.create_queue("final", QueueConfig::default()).await.unwrap();
    b.create_queue("middle", forwarding_to("final")).await.unwrap();
    b.create_queue("front", forwarding_to("middle")).await.unwrap();
    b.send("front", vec![msg("a"), msg("b")]).await.unwrap();
    for empty in ["front", "middle"] {
        assert!(b.peek(empty, SubQueue::Main, 0, 10).await.unwrap().is_empty(), "{empty} keeps nothing");
    }
    let got = b.receive("final", SubQueue::Main, ReceiveMode::PeekLock, 10).await.unwrap();
    assert_eq!(bodies(&got), ["a", "b"]);
}

#[tokio::test]
async fn forwarding_targets_must_exist_and_not_be_the_entity_itself() {
    let (b, _) = broker();
    let missing = b.create_queue("q", forwarding_to("nowhere")).await;
    assert!(matches!(missing, Err(BrokerError::InvalidOperation(m)) if m.contains("nowhere")));
    b.create_queue("q", QueueConfig::default()).await.unwrap();
    let itself = b.update_config("q", forwarding_to("Q")).await;
    assert!(matches!(itself, Err(BrokerError::InvalidOperation(_))));
    topic_with(&b, &["s"]).await;
    let to_subscription = b.update_config("q", forwarding_to("events/Subscriptions/s")).await;
    assert!(matches!(to_subscription, Err(BrokerError::InvalidOperation(_))));
}

#[tokio::test]
async fn a_subscription_forwards_its_copies_to_a_queue() {
    let (b, _) = broker();
    b.create_queue("audit", QueueConfig::default()).await.unwrap();
    topic_with(&b, &["keep", "fwd"]).await;
    b.update_config("events/Subscriptions/fwd", forwarding_to("audit")).await.unwrap();
    b.send("events", vec![msg("x")]).await.unwrap();
    assert_eq!(sub_bodies(&b, "keep").await, ["x"]);
    assert!(sub_bodies(&b, "fwd").await.is_empty());
    let got = b.receive("audit", SubQueue::Main, ReceiveMode::ReceiveAndDelete, 10).await.unwrap();
    assert_eq!(bodies(&got), ["x"]);
}

#[tokio::test]
async fn a_forwarding_loop_dead_letters_after_four_hops() {
    let (b, _) = broker();
    b.create_queue("a", QueueConfig::default()).await.unwrap();
    b.create_queue("b", forwarding_to("a")).await.unwrap();
    b.update_config("a", forwarding_to("b")).await.unwrap();
    b.send("a", vec![msg("round and round")]).await.unwrap();
    let dead: Vec<Delivery> = [b.peek("a", SubQueue::DeadLetter, 0, 10).await.unwrap(), b.peek("b", SubQueue::DeadLetter, 0, 10).await.unwrap()].concat();
    assert_eq!(bodies(&dead), ["round and round"]);
    assert_eq!(dead[0].dead_letter.as_ref().and_then(|d| d.reason.as_deref()), Some(REASON_HOPS));
}

#[tokio::test]
async fn a_session_less_message_cannot_be_forwarded_into_a_session_queue() {
    let (b, _) = broker();
    b.create_queue("sessions", QueueConfig { requires_session: true, ..Default::default() }).await.unwrap();
    b.create_queue("front", forwarding_to("sessions")).await.unwrap();
    b.send("front", vec![msg("no session")]).await.unwrap();
    let dead = b.peek("front", SubQueue::DeadLetter, 0, 10).await.unwrap();
    assert_eq!(dead[0].dead_letter.as_ref().and_then(|d| d.reason.as_deref()), Some(REASON_NO_SESSION));
}

#[tokio::test]
async fn dead_letters_move_on_to_the_dead_letter_target() {
    let (b, _) = broker();
    b.create_queue("graveyard", QueueConfig::default()).await.unwrap();
    let config = QueueConfig { forward_dead_lettered_to: Some("graveyard".into()), max_delivery_count: 1, ..Default::default() };
    b.create_queue("orders", config).await.unwrap();
    b.send("orders", vec![msg("bad"), msg("worse")]).await.unwrap();
    let got = receive(&b, SubQueue::Main, 2).await;
    let reason = Settlement::DeadLetter { reason: Some("Invalid".into()), description: Some("no price".into()), properties: BTreeMap::new() };
    b.settle("orders", SubQueue::Main, token(&got[0]), reason).await.unwrap();
    b.settle("orders", SubQueue::Main, token(&got[1]), Settlement::Abandon { properties: BTreeMap::new() }).await.unwrap();
    assert!(b.peek("orders", SubQueue::DeadLetter, 0, 10).await.unwrap().is_empty());
    let moved = b.receive("graveyard", SubQueue::Main, ReceiveMode::PeekLock, 10).await.unwrap();
    assert_eq!(bodies(&moved), ["bad", "worse"]);
    assert_eq!(moved[0].property_overrides.get("DeadLetterReason"), Some(&PropertyValue::String("Invalid".into())));
    assert_eq!(moved[1].property_overrides.get("DeadLetterReason"), Some(&PropertyValue::String(REASON_MAX_DELIVERY.into())));
    assert_eq!(moved[0].delivery_count, 0, "the moved message starts afresh");
}

#[tokio::test]
async fn expired_messages_are_forwarded_by_upkeep() {
    let (b, clock) = broker();
    b.create_queue("graveyard", QueueConfig::default()).await.unwrap();
    let config = QueueConfig { forward_dead_lettered_to: Some("graveyard".into()), default_ttl_ms: Some(1_000), dead_letter_on_expiration: true, ..Default::default() };
    b.create_queue("orders", config).await.unwrap();
    b.send("orders", vec![msg("late")]).await.unwrap();
    clock.advance(1_001);
    b.maintain().await.unwrap();
    let moved = b.peek("graveyard", SubQueue::Main, 0, 10).await.unwrap();
    assert_eq!(bodies(&moved), ["late"]);
    assert_eq!(moved[0].property_overrides.get("DeadLetterReason"), Some(&PropertyValue::String(REASON_TTL.into())));
}

#[tokio::test]
async fn a_scheduled_message_sent_to_a_topic_is_cancelled_in_every_subscription() {
    let (b, clock) = broker();
    topic_with(&b, &["one", "two"]).await;
    let later = OutgoingMessage { scheduled_enqueue_at: Some(clock.now_ms() + 60_000), ..msg("later") };
    let seqs = b.send("events", vec![later, msg("now")]).await.unwrap();
    assert_eq!(b.peek("events/Subscriptions/one", SubQueue::Main, 0, 10).await.unwrap().len(), 2);
    b.cancel_scheduled("events", &[seqs[0].unwrap()]).await.unwrap();
    for sub in ["one", "two"] {
        assert_eq!(bodies(&b.peek(&format!("events/Subscriptions/{sub}"), SubQueue::Main, 0, 10).await.unwrap()), ["now"]);
    }
    assert!(matches!(b.cancel_scheduled("events", &[seqs[1].unwrap()]).await, Err(BrokerError::MessageNotFound(_))));
}

#[tokio::test]
async fn forwarded_messages_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ShiftableClock::default());
    {
        let (b, store) = open_disk(dir.path(), clock.clone());
        b.create_queue("final", QueueConfig::default()).await.unwrap();
        b.create_queue("front", forwarding_to("final")).await.unwrap();
        b.send("front", vec![msg("kept")]).await.unwrap();
        store.close();
    }
    let (b, _) = open_disk(dir.path(), clock);
    assert_eq!(b.queue_config("front").unwrap().forward_to.as_deref(), Some("final"));
    assert_eq!(bodies(&b.peek("final", SubQueue::Main, 0, 10).await.unwrap()), ["kept"]);
}
