//! Server-side lock loss: a peek-lock delivery settled after its lock ran out is
//! answered with `rejected{com.microsoft:message-lock-lost}` (an outcome fe2o3-amqp's
//! `Receiver` never shows its user, hence the frame-level client), and the message is
//! delivered again with a new lock token and header delivery-count 1.

use std::time::Duration;

use fe2o3_amqp::types::definitions::{ErrorCondition, ReceiverSettleMode, SenderSettleMode};
use fe2o3_amqp::types::messaging::{Accepted, DeliveryState};
use lapis_amqp_rust_test::wire::{self, Wire, FRAME_WAIT};
use lapis_amqp_rust_test::{bounded, config, sas, Server};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settling_after_the_lock_expired_is_answered_with_message_lock_lost() {
    let server = Server::start(&config(&[("brief", json!({ "LockDuration": "PT5S", "MaxDeliveryCount": 3 }))]));
    bounded(60, "lock loss", async {
        let mut w = Wire::connect(server.amqp_port, 65_536).await;
        w.begin(0).await;
        let (code, description) = w.put_token(0, "brief", &sas::token_valid_for(&sas::audience("brief"), 3600)).await;
        assert_eq!(code, 202, "put-token: {description}");
        w.attach_sender(0, 1, "brief").await;
        w.expect_credit(0, 1).await;
        let id = w.transfer(0, 1, &wire::text_message("short-lived"), false, None).await;
        let sent = w.expect_outcome(0, id).await;
        assert!(matches!(sent.state, Some(DeliveryState::Accepted(_))), "send: {sent:?}");

        w.attach_receiver(0, 2, "brief", SenderSettleMode::Unsettled, ReceiverSettleMode::Second).await;
        w.flow(0, 2, 1, false).await;
        let first = w.recv_delivery(0, 2, FRAME_WAIT).await.expect("the message is delivered");
        assert_eq!(wire::text_of(&first.message()), "short-lived");
        assert_eq!(wire::delivery_count(&first.message()), 0, "first delivery: header delivery-count");
        assert!(!first.settled && first.tag.len() == 16, "peek-lock delivery with a 16-byte lock token: {first:?}");

        w.note("waiting 6 s: the 5 s lock runs out");
        tokio::time::sleep(Duration::from_secs(6)).await;
        w.disposition(0, first.delivery_id, false, DeliveryState::Accepted(Accepted {})).await;
        let answer = w.expect_settlement(0, first.delivery_id).await;
        assert!(answer.settled, "the server settles its answer: {answer:?}");
        match &answer.state {
            Some(DeliveryState::Rejected(r)) => {
                let e = r.error.as_ref().expect("the rejection carries an error");
                assert_eq!(e.condition, ErrorCondition::Custom("com.microsoft:message-lock-lost".into()), "condition of {e:?}");
            }
            other => panic!("accepting after the lock expired answered {other:?}, expected rejected{{com.microsoft:message-lock-lost}}"),
        }

        // The message is still there: delivered again with a new lock.
        w.flow(0, 2, 1, false).await;
        let again = w.recv_delivery(0, 2, FRAME_WAIT).await.expect("the message is delivered again");
        assert_eq!(wire::text_of(&again.message()), "short-lived");
        assert_eq!(wire::delivery_count(&again.message()), 1, "redelivery: header delivery-count");
        assert_ne!(again.tag, first.tag, "the redelivery carries a new lock token");
        w.disposition(0, again.delivery_id, false, DeliveryState::Accepted(Accepted {})).await;
        let answer = w.expect_settlement(0, again.delivery_id).await;
        assert!(answer.settled && matches!(answer.state, Some(DeliveryState::Accepted(_))), "completing the redelivery: {answer:?}");
        assert_eq!(server.active_count("brief"), 0, "the message is completed");
        w.close().await;
    })
    .await;
}
