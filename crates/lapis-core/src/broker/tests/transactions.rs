//! Transactions: nothing enlisted shows before commit; commit applies all, atomically;
//! rollback applies nothing.

use super::*;

/// A broker whose `orders` queue (with `config`) holds one message, locked by the
/// returned delivery, and an empty `out` queue.
async fn one_locked(config: QueueConfig) -> (Broker, Arc<ShiftableClock>, Delivery) {
    let (b, clock) = broker();
    queue(&b, config).await;
    b.create_queue("out", QueueConfig::default()).await.unwrap();
    b.send("orders", vec![msg("in")]).await.unwrap();
    let got = receive(&b, SubQueue::Main, 1).await;
    (b, clock, got.into_iter().next().expect("one message"))
}

#[tokio::test]
async fn a_committed_transaction_sends_and_settles_together() {
    let (b, _, got) = one_locked(QueueConfig::default()).await;
    let txn = b.declare_transaction().unwrap();
    b.enlist_settle(txn, "orders", SubQueue::Main, token(&got), Settlement::Complete).unwrap();
    b.enlist_send(txn, "out", vec![msg("processed")]).unwrap();
    assert!(b.peek("out", SubQueue::Main, 0, 10).await.unwrap().is_empty(), "a send in a transaction is invisible before commit");
    assert_eq!(b.peek("orders", SubQueue::Main, 0, 10).await.unwrap().len(), 1, "a settlement in a transaction waits for commit");
    b.discharge(txn, true).unwrap().durable().await.unwrap();
    assert!(b.peek("orders", SubQueue::Main, 0, 10).await.unwrap().is_empty());
    assert_eq!(bodies(&b.peek("out", SubQueue::Main, 0, 10).await.unwrap()), ["processed"]);
    assert!(matches!(b.discharge(txn, true), Err(BrokerError::UnknownTransaction(_))));
}

#[tokio::test]
async fn a_rolled_back_transaction_changes_nothing_and_the_lock_still_holds() {
    let (b, _, got) = one_locked(QueueConfig::default()).await;
    let txn = b.declare_transaction().unwrap();
    b.enlist_settle(txn, "orders", SubQueue::Main, token(&got), Settlement::Complete).unwrap();
    b.enlist_send(txn, "orders", vec![msg("never")]).unwrap();
    b.discharge(txn, false).unwrap().durable().await.unwrap();
    let seen = b.peek("orders", SubQueue::Main, 0, 10).await.unwrap();
    assert_eq!(bodies(&seen), ["in"]);
    b.settle("orders", SubQueue::Main, token(&got), Settlement::Complete).await.unwrap();
}

#[tokio::test]
async fn a_lock_lost_before_commit_rolls_everything_back() {
    let (b, clock, got) = one_locked(QueueConfig { lock_duration_ms: 5_000, ..Default::default() }).await;
    let txn = b.declare_transaction().unwrap();
    b.enlist_send(txn, "out", vec![msg("processed")]).unwrap();
    b.enlist_settle(txn, "orders", SubQueue::Main, token(&got), Settlement::Complete).unwrap();
    clock.advance(5_001);
    assert!(matches!(b.discharge(txn, true), Err(BrokerError::TransactionRolledBack(_))));
    assert!(b.peek("out", SubQueue::Main, 0, 10).await.unwrap().is_empty());
    assert_eq!(receive(&b, SubQueue::Main, 1).await[0].delivery_count, 1, "the message is back, its delivery counted");
}

#[tokio::test]
async fn transactions_are_bounded_in_size_and_time() {
    let (b, clock) = broker();
    queue(&b, QueueConfig::default()).await;
    let txn = b.declare_transaction().unwrap();
    for _ in 0..MAX_TRANSACTION_OPS {
        b.enlist_send(txn, "orders", vec![msg("m")]).unwrap();
    }
    assert!(matches!(b.enlist_send(txn, "orders", vec![msg("one too many")]), Err(BrokerError::InvalidOperation(_))));
    let slow = b.declare_transaction().unwrap();
    b.enlist_send(slow, "orders", vec![msg("slow")]).unwrap();
    clock.advance(TRANSACTION_TIMEOUT_MS);
    b.maintain().await.unwrap();
    assert!(matches!(b.discharge(slow, true), Err(BrokerError::TransactionTimedOut(_))));
    assert!(matches!(b.enlist_send(txn, "orders", vec![msg("late")]), Err(BrokerError::TransactionTimedOut(_))));
    assert!(b.peek("orders", SubQueue::Main, 0, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_message_settles_once_per_transaction() {
    let (b, _, got) = one_locked(QueueConfig::default()).await;
    let txn = b.declare_transaction().unwrap();
    b.enlist_settle(txn, "orders", SubQueue::Main, token(&got), Settlement::Complete).unwrap();
    let twice = b.enlist_settle(txn, "orders", SubQueue::Main, token(&got), Settlement::Complete);
    assert!(matches!(twice, Err(BrokerError::MessageLockLost)));
}
