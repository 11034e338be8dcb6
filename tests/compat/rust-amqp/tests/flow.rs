//! Flow control: the server sends a receiver exactly as many messages as it has
//! credit for, no more until it grants more; a drain makes the server use up the
//! credit (with messages while it has them) and hand the rest back in a flow with
//! `drain` set, `link-credit` 0 and the delivery-count advanced past it.

use std::time::Duration;

use fe2o3_amqp::frames::amqp::FrameBody;
use fe2o3_amqp::types::definitions::{Handle, ReceiverSettleMode, SenderSettleMode};
use fe2o3_amqp::types::performatives::Flow;
use lapis_amqp_rust_test::wire::{self, Wire, FRAME_WAIT};
use lapis_amqp_rust_test::{bounded, client, config, sas, Server};
use serde_json::json;

/// How long the test waits to be sure no further message comes.
const QUIET: Duration = Duration::from_millis(1500);

async fn fill(server: &Server, queue: &str, n: usize) {
    let (conn, mut session) = client::authorized(server, &[queue]).await;
    let mut s = client::sender(&mut session, queue).await;
    for i in 0..n {
        client::send_text(&mut s, &format!("m{i}")).await;
    }
    client::close(conn).await;
}

/// Receives exactly `n` deliveries on channel 0 handle 1 (failing if fewer come), then
/// checks that no further one comes within [`QUIET`]. Returns their bodies.
async fn exactly(w: &mut Wire, n: usize, what: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    for i in 0..n {
        let d = w.recv_delivery(0, 1, FRAME_WAIT).await.unwrap_or_else(|| panic!("{what}: only {i} of {n} messages arrived"));
        bodies.push(wire::text_of(&d.message()));
    }
    if let Some(extra) = w.recv_delivery(0, 1, QUIET).await {
        panic!("{what}: a message beyond the credit arrived: {} (delivery {})", wire::text_of(&extra.message()), extra.delivery_id);
    }
    bodies
}

async fn drain_answer(w: &mut Wire) -> Flow {
    let f = w.expect("the flow answering the drain", |f| f.channel == 0 && matches!(&f.body, FrameBody::Flow(fl) if fl.handle == Some(Handle(1)) && fl.drain)).await;
    match f.body {
        FrameBody::Flow(fl) => fl,
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_bounds_deliveries_and_drain_returns_the_rest() {
    let server = Server::start(&config(&[("q1", json!({ "LockDuration": "PT1M" }))]));
    bounded(90, "flow control", async {
        fill(&server, "q1", 10).await;
        let mut w = Wire::connect(server.amqp_port, 65_536).await;
        w.begin(0).await;
        let (code, description) = w.put_token(0, "q1", &sas::token_valid_for(&sas::audience("q1"), 3600)).await;
        assert_eq!(code, 202, "put-token: {description}");
        w.attach_receiver(0, 1, "q1", SenderSettleMode::Unsettled, ReceiverSettleMode::Second).await;

        // No credit, no messages.
        assert!(w.recv_delivery(0, 1, QUIET).await.is_none(), "a message arrived before any credit was granted");

        w.flow(0, 1, 3, false).await;
        let mut got = exactly(&mut w, 3, "credit 3").await;
        w.flow(0, 1, 4, false).await;
        got.extend(exactly(&mut w, 4, "credit 4 more").await);
        assert_eq!(w.delivery_count(0, 1), 7);

        // Drain with credit 5: the last 3 messages, then the 2 credits left come back.
        w.flow(0, 1, 5, true).await;
        for _ in 0..3 {
            let d = w.recv_delivery(0, 1, FRAME_WAIT).await.expect("the messages left, sent under the drain");
            got.push(wire::text_of(&d.message()));
        }
        let answer = drain_answer(&mut w).await;
        assert_eq!(answer.link_credit, Some(0), "drain answer: link-credit {answer:?}");
        assert_eq!(answer.delivery_count, Some(12), "drain answer: delivery-count advanced past the unused credit {answer:?}");
        assert!(w.recv_delivery(0, 1, QUIET).await.is_none(), "a message arrived after the drain");
        let expected: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
        assert_eq!(got, expected, "every message once, in order");

        // A drain with nothing left hands all of the credit back at once. (The
        // receiver takes its delivery-count from the server's drain answer.)
        w.set_delivery_count(0, 1, 12);
        w.flow(0, 1, 2, true).await;
        let answer = drain_answer(&mut w).await;
        assert_eq!((answer.delivery_count, answer.link_credit), (Some(14), Some(0)), "drain with no messages: {answer:?}");
        assert!(w.recv_delivery(0, 1, QUIET).await.is_none(), "a message arrived after the second drain");
        w.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_fe2o3_receiver_with_manual_credit_gets_what_it_asked_for() {
    let server = Server::start(&config(&[("q1", json!({ "LockDuration": "PT1M" }))]));
    bounded(60, "manual credit (fe2o3)", async {
        fill(&server, "q1", 10).await;
        let (conn, mut session) = client::authorized(&server, &["q1"]).await;
        let mut r = client::peek_lock_receiver(&mut session, "q1", 3).await;
        let mut got = Vec::new();
        for _ in 0..3 {
            let d = client::try_recv(&mut r, FRAME_WAIT).await.expect("a message under credit 3");
            got.push(client::text(&d));
            r.accept(&d).await.expect("accept");
        }
        assert!(client::try_recv(&mut r, QUIET).await.is_none(), "a 4th message arrived under credit 3");
        r.set_credit(7).await.expect("grant 7");
        for _ in 0..7 {
            let d = client::try_recv(&mut r, FRAME_WAIT).await.expect("a message under credit 7");
            got.push(client::text(&d));
            r.accept(&d).await.expect("accept");
        }
        let expected: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
        assert_eq!(got, expected);
        let _ = r.close().await;
        client::close(conn).await;
        // All ten were completed.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(server.active_count("q1"), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_window_bounds_transfers_whatever_the_credit() {
    let server = Server::start(&config(&[("q1", json!({ "LockDuration": "PT1M" }))]));
    bounded(90, "session window", async {
        fill(&server, "q1", 6).await;
        let mut w = Wire::connect(server.amqp_port, 65_536).await;
        // Each flow says: three more transfer frames from the next one on.
        w.incoming_window = 3;
        w.begin(0).await;
        let (code, description) = w.put_token(0, "q1", &sas::token_valid_for(&sas::audience("q1"), 3600)).await;
        assert_eq!(code, 202, "put-token: {description}");
        w.attach_receiver(0, 1, "q1", SenderSettleMode::Unsettled, ReceiverSettleMode::Second).await;
        w.flow(0, 1, 10, false).await;
        assert_eq!(exactly(&mut w, 3, "credit 10 in a window of 3").await, ["m0", "m1", "m2"]);
        // Moving the window on (a flow with the new next-incoming-id) lets the rest come.
        w.incoming_window = 100;
        w.flow(0, 1, 7, false).await;
        assert_eq!(exactly(&mut w, 3, "an open window").await, ["m3", "m4", "m5"]);
    })
    .await;
}
