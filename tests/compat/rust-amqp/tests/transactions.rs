//! Transactions (the AMQP coordinator): a peek-locked message completed and a new
//! message sent in one transaction. Nothing enlisted is visible before the discharge;
//! a commit applies both, a rollback neither, and a commit whose settled message lost
//! its lock meanwhile rolls everything back.
//!
//! `transaction_commit_with_the_fe2o3_api` drives this as an application would,
//! through fe2o3-amqp's `Controller` and `Transaction`. The other tests use the
//! frame-level client, which sees what that API hides: the `transactional-state` the
//! server answers each enlisted transfer and settlement with, and the outcome of a
//! discharge.

use std::time::Duration;

use fe2o3_amqp::transaction::{Controller, Transaction, TransactionDischarge, TransactionPosting, TransactionRetirement};
use fe2o3_amqp::types::definitions::{ErrorCondition, ReceiverSettleMode, Role, SenderSettleMode};
use fe2o3_amqp::types::messaging::{Accepted, DeliveryState, Message, Outcome};
use fe2o3_amqp::types::transaction::{TransactionError, TransactionalState};
use fe2o3_amqp::types::primitives::Binary;
use lapis_amqp_rust_test::wire::{self, Wire, FRAME_WAIT};
use lapis_amqp_rust_test::{bounded, client, config, sas, Server};
use serde_json::json;

/// How long a message that must not be receivable is waited for.
const ABSENT_WAIT: Duration = Duration::from_millis(1500);

fn server(lock: &str) -> Server {
    Server::start(&config(&[("orders", json!({ "LockDuration": lock, "MaxDeliveryCount": 10 })), ("shipments", json!({}))]))
}

fn txn_state(txn: &[u8], outcome: Option<Outcome>) -> DeliveryState {
    DeliveryState::TransactionalState(TransactionalState { txn_id: Binary::from(txn.to_vec()), outcome })
}

/// Asserts `state` is `transactional-state{txn-id = txn, outcome = accepted}`.
fn assert_txn_accepted(what: &str, state: &Option<DeliveryState>, txn: &[u8]) {
    match state {
        Some(DeliveryState::TransactionalState(t)) => {
            assert_eq!(t.txn_id.as_ref(), txn, "{what}: the answer names another transaction");
            assert!(matches!(t.outcome, Some(Outcome::Accepted(_))), "{what}: outcome {:?}, expected accepted", t.outcome);
        }
        other => panic!("{what}: answered with {other:?}, expected transactional-state{{accepted}}"),
    }
}

/// A frame-level connection on channel 0, authorized for both queues, holding one
/// peek-locked `order-1` (returned): handle 1 sends to `orders`, 2 receives from it
/// (peek-lock, rcv-settle-mode second), 3 is the coordinator, 4 sends to `shipments`.
async fn locked_order(server: &Server) -> (Wire, wire::RawDelivery) {
    let mut w = Wire::connect(server.amqp_port, 65_536).await;
    w.begin(0).await;
    for entity in ["orders", "shipments"] {
        let (code, description) = w.put_token(0, entity, &sas::token_valid_for(&sas::audience(entity), 3600)).await;
        assert_eq!(code, 202, "put-token {entity}: {description}");
    }
    w.attach_sender(0, 1, "orders").await;
    w.expect_credit(0, 1).await;
    let id = w.transfer(0, 1, &wire::text_message("order-1"), false, None).await;
    let d = w.expect_outcome(0, id).await;
    assert!(matches!(d.state, Some(DeliveryState::Accepted(_))), "send order-1: {d:?}");
    w.attach_receiver(0, 2, "orders", SenderSettleMode::Unsettled, ReceiverSettleMode::Second).await;
    w.flow(0, 2, 1, false).await;
    let order = w.recv_delivery(0, 2, FRAME_WAIT).await.expect("order-1 delivered");
    assert_eq!(wire::text_of(&order.message()), "order-1");
    assert!(!order.settled, "a peek-lock delivery arrives unsettled");
    assert_eq!(order.tag.len(), 16, "the delivery tag is the 16-byte lock token");
    let reply = w.attach_coordinator(0, 3).await;
    assert!(reply.target.is_some(), "coordinator attach refused: {reply:?}");
    w.expect_credit(0, 3).await;
    w.attach_sender(0, 4, "shipments").await;
    w.expect_credit(0, 4).await;
    (w, order)
}

/// Enlists the completion of `order` and the send of `shipment-1` in `txn`, and
/// checks each answer.
async fn enlist(w: &mut Wire, order: &wire::RawDelivery, txn: &[u8]) {
    w.disposition(0, order.delivery_id, false, txn_state(txn, Some(Outcome::Accepted(Accepted {})))).await;
    let answer = w.expect_settlement(0, order.delivery_id).await;
    assert!(answer.settled, "the server settles the transactional settlement: {answer:?}");
    assert_txn_accepted("transactional complete of order-1", &answer.state, txn);
    let id = w.transfer(0, 4, &wire::text_message("shipment-1"), false, Some(txn_state(txn, None))).await;
    let answer = w.expect_outcome(0, id).await;
    assert_txn_accepted("transactional send of shipment-1", &answer.state, txn);
}

/// Before the discharge nothing enlisted shows: `shipment-1` cannot be received and
/// `order-1` is still locked.
async fn assert_nothing_shows(server: &Server) {
    let seen = client::observe(server, "shipments", ABSENT_WAIT).await;
    assert_eq!(seen, None, "a message sent in an undischarged transaction was receivable");
    let seen = client::observe(server, "orders", ABSENT_WAIT).await;
    assert_eq!(seen, None, "a message completed in an undischarged transaction was delivered again (its lock was not kept)");
    assert_eq!(server.active_count("shipments"), 0, "shipments counts a message sent in an undischarged transaction");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_commit_with_the_fe2o3_api() {
    let server = server("PT30S");
    bounded(60, "transaction commit", async {
        let (conn, mut session) = client::authorized(&server, &["orders", "shipments"]).await;
        let mut to_orders = client::sender(&mut session, "orders").await;
        client::send_text(&mut to_orders, "order-1").await;
        let mut orders = client::peek_lock_receiver(&mut session, "orders", 1).await;
        let order = client::try_recv(&mut orders, FRAME_WAIT).await.expect("order-1 delivered");
        assert_eq!(client::text(&order), "order-1");

        let controller = Controller::attach(&mut session, "controller").await.expect("attach the controller");
        let txn = Transaction::declare(&controller, None).await.expect("declare a transaction");
        txn.accept(&mut orders, &order).await.expect("complete order-1 in the transaction");
        let mut to_shipments = client::sender(&mut session, "shipments").await;
        let outcome = txn.post(&mut to_shipments, Message::builder().value("shipment-1".to_string()).build()).await.expect("post shipment-1");
        assert!(matches!(outcome, Outcome::Accepted(_)), "posting shipment-1: {outcome:?}");

        assert_nothing_shows(&server).await;

        txn.commit().await.expect("commit");
        assert_eq!(server.active_count("orders"), 0, "order-1 is completed by the commit");
        assert_eq!(server.active_count("shipments"), 1, "shipment-1 is sent by the commit");
        let seen = client::observe(&server, "shipments", FRAME_WAIT).await;
        assert_eq!(seen, Some(("shipment-1".to_string(), 0)), "after the commit shipment-1 is receivable");
        assert_eq!(client::observe(&server, "orders", ABSENT_WAIT).await, None, "order-1 is gone after the commit");

        let _ = controller.close().await;
        client::close(conn).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_commit_answers_on_the_wire() {
    let server = server("PT30S");
    bounded(60, "transaction commit (frames)", async {
        let (mut w, order) = locked_order(&server).await;
        let txn = w.declare(0, 3).await;
        assert!(!txn.is_empty(), "declared carries a txn-id");
        enlist(&mut w, &order, &txn).await;

        assert_nothing_shows(&server).await;

        let answer = w.discharge(0, 3, &txn, false).await;
        assert!(matches!(answer.state, Some(DeliveryState::Accepted(_))), "commit answered {answer:?}");
        assert_eq!(server.active_count("orders"), 0, "order-1 is completed by the commit");
        assert_eq!(server.active_count("shipments"), 1, "shipment-1 is sent by the commit");
        let seen = client::observe(&server, "shipments", FRAME_WAIT).await;
        assert_eq!(seen, Some(("shipment-1".to_string(), 0)), "after the commit shipment-1 is receivable");
        assert_eq!(client::observe(&server, "orders", ABSENT_WAIT).await, None, "order-1 is gone after the commit");
        w.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_rollback_changes_nothing_and_keeps_the_lock() {
    let server = server("PT30S");
    bounded(60, "transaction rollback", async {
        let (mut w, order) = locked_order(&server).await;
        let txn = w.declare(0, 3).await;
        enlist(&mut w, &order, &txn).await;

        assert_nothing_shows(&server).await;

        let answer = w.discharge(0, 3, &txn, true).await;
        assert!(matches!(answer.state, Some(DeliveryState::Accepted(_))), "rollback answered {answer:?}");
        assert_eq!(client::observe(&server, "shipments", ABSENT_WAIT).await, None, "shipment-1 appeared although its transaction was rolled back");
        assert_eq!(server.active_count("shipments"), 0, "shipments counts a rolled-back message");

        // order-1 is still locked by this receiver, and its lock still completes it.
        w.note("completing order-1 with its lock after the rollback");
        w.disposition(0, order.delivery_id, false, DeliveryState::Accepted(Accepted {})).await;
        let answer = w.wait_disposition(0, Role::Sender, order.delivery_id, FRAME_WAIT).await;
        let answer = answer.expect("after a rollback, the server never answered the completion of the message whose settlement was rolled back");
        assert!(answer.settled && matches!(answer.state, Some(DeliveryState::Accepted(_))), "completing order-1 after the rollback: {answer:?}");
        assert_eq!(server.active_count("orders"), 0, "order-1 is completed");
        w.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_after_the_lock_expired_rolls_everything_back() {
    let server = server("PT5S");
    bounded(60, "commit after lock expiry", async {
        let (mut w, order) = locked_order(&server).await;
        let txn = w.declare(0, 3).await;
        enlist(&mut w, &order, &txn).await;

        w.note("waiting 6 s: the 5 s lock on order-1 runs out");
        tokio::time::sleep(Duration::from_secs(6)).await;

        let answer = w.discharge(0, 3, &txn, false).await;
        match &answer.state {
            Some(DeliveryState::Rejected(r)) => {
                let e = r.error.as_ref().expect("the rejected commit carries an error");
                assert_eq!(e.condition, ErrorCondition::TransactionError(TransactionError::Rollback), "commit refused with {e:?}");
            }
            other => panic!("a commit whose settled message lost its lock answered {other:?}, expected rejected{{amqp:transaction:rollback}}"),
        }
        // Nothing changed: shipment-1 never appears, order-1 is delivered again.
        assert_eq!(client::observe(&server, "shipments", ABSENT_WAIT).await, None, "shipment-1 appeared although the commit failed");
        assert_eq!(server.active_count("shipments"), 0);
        let seen = client::observe(&server, "orders", FRAME_WAIT).await;
        assert_eq!(seen, Some(("order-1".to_string(), 1)), "order-1 is delivered again, with delivery-count 1");
        w.close().await;
    })
    .await;
}
