//! One connection carrying many sessions and links; frames sent back to back; and
//! messages larger than a frame: split by the client, put together by the server,
//! split again for a receiver with a small max-frame-size, and delivered byte for
//! byte.

use std::collections::BTreeSet;
use std::time::Duration;

use fe2o3_amqp::types::definitions::{ReceiverSettleMode, Role, SenderSettleMode};
use fe2o3_amqp::types::messaging::{Accepted, Body, Data, DeliveryState, Message, Outcome};
use fe2o3_amqp::types::primitives::{Binary, Value};
use fe2o3_amqp::Delivery;
use lapis_amqp_rust_test::wire::{self, Wire, FRAME_WAIT};
use lapis_amqp_rust_test::{bounded, client, config, sas, Server};
use serde_json::json;

const SESSIONS: usize = 20;

/// Bytes that are not all alike (an LCG), so a misplaced frame shows.
fn payload(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect()
}

fn data_of(body: &Body<Value>) -> Vec<u8> {
    match body {
        Body::Data(batch) => batch.iter().flat_map(|d| d.0.to_vec()).collect(),
        other => panic!("expected data sections, got {}", match other {
            Body::Value(_) => "an amqp-value",
            Body::Sequence(_) => "amqp-sequence sections",
            _ => "no body",
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sessions_of_three_links_on_one_connection() {
    let queues: Vec<String> = (0..SESSIONS).map(|i| format!("many{i}")).collect();
    let mut server = Server::start(&config(&queues.iter().map(|q| (q.as_str(), json!({ "LockDuration": "PT1M" }))).collect::<Vec<_>>()));
    bounded(120, "many sessions and links", async {
        let mut conn = client::connect(&server).await;
        let mut cbs_session = client::begin(&mut conn).await;
        let names: Vec<&str> = queues.iter().map(String::as_str).collect();
        client::authorize(&mut cbs_session, &names).await;

        // Each session: two senders and a receiver on its own queue.
        let mut links = Vec::new();
        for q in &queues {
            let mut session = client::begin(&mut conn).await;
            let a = client::sender(&mut session, q).await;
            let b = client::sender(&mut session, q).await;
            let r = client::peek_lock_receiver(&mut session, q, 2).await;
            links.push((session, a, b, r));
        }
        for (i, (_, a, b, _)) in links.iter_mut().enumerate() {
            client::send_text(a, &format!("s{i}-a")).await;
            client::send_text(b, &format!("s{i}-b")).await;
        }
        for (i, (_, _, _, r)) in links.iter_mut().enumerate() {
            let mut got = BTreeSet::new();
            for _ in 0..2 {
                let d = client::try_recv(r, FRAME_WAIT).await.unwrap_or_else(|| panic!("session {i}: a message is missing"));
                got.insert(client::text(&d));
                r.accept(&d).await.expect("accept");
            }
            assert_eq!(got, BTreeSet::from([format!("s{i}-a"), format!("s{i}-b")]), "session {i} received another session's messages");
            assert!(client::try_recv(r, Duration::from_millis(100)).await.is_none(), "session {i}: an extra message");
        }
        for (i, (mut session, a, b, r)) in links.into_iter().enumerate() {
            a.close().await.unwrap_or_else(|e| panic!("session {i}: close sender a: {e:?}"));
            b.close().await.unwrap_or_else(|e| panic!("session {i}: close sender b: {e:?}"));
            r.close().await.unwrap_or_else(|e| panic!("session {i}: close receiver: {e:?}"));
            session.end().await.unwrap_or_else(|e| panic!("session {i}: end: {e:?}"));
        }
        cbs_session.end().await.expect("end the CBS session");
        conn.close().await.expect("close the connection");

        // Every message was completed, and a fresh connection is served.
        for q in &queues {
            assert_eq!(server.active_count(q), 0, "{q} still holds messages");
        }
        let (conn, mut session) = client::authorized(&server, &["many0"]).await;
        let mut s = client::sender(&mut session, "many0").await;
        client::send_text(&mut s, "after").await;
        let mut r = client::peek_lock_receiver(&mut session, "many0", 1).await;
        let d = client::try_recv(&mut r, FRAME_WAIT).await.expect("a fresh connection after the many sessions is served");
        assert_eq!(client::text(&d), "after");
        r.accept(&d).await.expect("accept");
        client::close(conn).await;
    })
    .await;
    assert!(server.healthy(), "the server is healthy after the many sessions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
/// fe2o3-amqp sends in frames as large as the server allows (1 MiB); its receiver
/// allows 512-byte frames, so the server must split the delivery.
async fn a_200_kib_message_round_trips_with_an_fe2o3_receiver_allowing_512_byte_frames() {
    let server = Server::start(&config(&[("big", json!({}))]));
    bounded(60, "multi-frame message (fe2o3)", async {
        let body = payload(200 << 10);
        let mut conn = client::connect_with(&server, Some(512)).await;
        let mut session = client::begin(&mut conn).await;
        client::authorize(&mut session, &["big"]).await;
        let mut s = client::sender(&mut session, "big").await;
        let message = Message::builder().data(Binary::from(body.clone())).build();
        let outcome = bounded(20, "send 200 KiB", s.send(message)).await.expect("send 200 KiB");
        assert!(matches!(outcome, Outcome::Accepted(_)), "200 KiB send: {outcome:?}");

        let mut conn2 = client::connect_with(&server, Some(512)).await;
        let mut session2 = client::begin(&mut conn2).await;
        client::authorize(&mut session2, &["big"]).await;
        let mut r = client::peek_lock_receiver(&mut session2, "big", 1).await;
        let d: Delivery<Body<Value>> = bounded(20, "receive 200 KiB", r.recv()).await.expect("receive 200 KiB");
        let got = data_of(d.body());
        assert_eq!(got.len(), body.len(), "received length");
        assert!(got == body, "the 200 KiB body came back changed (first difference at byte {:?})", got.iter().zip(&body).position(|(a, b)| a != b));
        r.accept(&d).await.expect("accept");
        client::close(conn2).await;
        client::close(conn).await;
    })
    .await;
}

/// A frame-level connection on channel 0 authorized for `queue`, announcing
/// `max_frame`.
async fn wire_for(server: &Server, queue: &str, max_frame: u32) -> Wire {
    let mut w = Wire::connect(server.amqp_port, max_frame).await;
    w.begin(0).await;
    let (code, description) = w.put_token(0, queue, &sas::token_valid_for(&sas::audience(queue), 3600)).await;
    assert_eq!(code, 202, "put-token: {description}");
    w
}

fn big_message(body: &[u8]) -> Vec<u8> {
    wire::encode(&Message::builder().data(Data(Binary::from(body.to_vec()))).build())
}

/// Receives one message from `queue` on a fresh frame-level connection announcing
/// `max_frame` (its transport refuses any larger frame), completes it, and returns it.
async fn receive_big(server: &Server, queue: &str, max_frame: u32) -> wire::RawDelivery {
    let mut r = wire_for(server, queue, max_frame).await;
    r.attach_receiver(0, 1, queue, SenderSettleMode::Unsettled, ReceiverSettleMode::Second).await;
    r.flow(0, 1, 1, false).await;
    let d = r.recv_delivery(0, 1, Duration::from_secs(20)).await.expect("the big message is delivered");
    r.disposition(0, d.delivery_id, false, DeliveryState::Accepted(Accepted {})).await;
    let answer = r.expect_settlement(0, d.delivery_id).await;
    assert!(matches!(answer.state, Some(DeliveryState::Accepted(_))), "completing the big message: {answer:?}");
    r.close().await;
    d
}

fn assert_same(got: &[u8], body: &[u8]) {
    assert_eq!(got.len(), body.len(), "received length");
    assert!(got == body, "the body came back changed (first difference at byte {:?})", got.iter().zip(body).position(|(a, b)| a != b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_kib_message_is_delivered_intact_in_512_byte_frames() {
    let server = Server::start(&config(&[("big", json!({}))]));
    bounded(60, "multi-frame delivery (frames)", async {
        let body = payload(200 << 10);
        // Sent in one frame (the server allows 1 MiB frames) ...
        let mut w = wire_for(&server, "big", 1 << 20).await;
        w.attach_sender(0, 1, "big").await;
        w.expect_credit(0, 1).await;
        let id = w.transfer(0, 1, &big_message(&body), false, None).await;
        let answer = w.expect_outcome(0, id).await;
        assert!(matches!(answer.state, Some(DeliveryState::Accepted(_))), "a one-frame 200 KiB send: {answer:?}");
        w.close().await;
        // ... delivered in frames of at most 512 bytes.
        let d = receive_big(&server, "big", 512).await;
        assert!(d.frames >= (200 << 10) / 512, "delivered in {} frames of at most 512 bytes", d.frames);
        assert_same(&data_of(&d.message().body), &body);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_kib_message_sent_in_300_byte_frames_arrives_intact() {
    let server = Server::start(&config(&[("big", json!({}))]));
    bounded(60, "multi-frame send (frames)", async {
        let body = payload(200 << 10);
        let bytes = big_message(&body);
        let mut w = wire_for(&server, "big", 65_536).await;
        w.send_chunk = Some(300);
        w.attach_sender(0, 1, "big").await;
        w.expect_credit(0, 1).await;
        let id = w.transfer(0, 1, &bytes, false, None).await;
        let answer = w.expect_outcome(0, id).await;
        assert!(matches!(answer.state, Some(DeliveryState::Accepted(_))), "a 200 KiB message in {} transfer frames of 300 bytes: {answer:?}", bytes.len().div_ceil(300));
        w.close().await;
        let d = receive_big(&server, "big", 65_536).await;
        assert_same(&data_of(&d.message().body), &body);
    })
    .await;
}

/// Frames sent back to back, without waiting for answers, are all handled: 150
/// one-frame messages written to the socket in one go are each answered, and all
/// arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_transfers_are_all_answered() {
    const N: u32 = 150;
    let server = Server::start(&config(&[("pipe", json!({}))]));
    bounded(60, "pipelined transfers", async {
        let mut w = wire_for(&server, "pipe", 65_536).await;
        w.attach_sender(0, 1, "pipe").await;
        let credit = w.expect_credit(0, 1).await;
        assert!(credit.link_credit.unwrap_or(0) >= N, "the server grants credit for {N} messages: {credit:?}");
        let mut ids = Vec::new();
        w.batching = true;
        for i in 0..N {
            ids.push(w.transfer(0, 1, &wire::text_message(&format!("p{i}")), false, None).await);
        }
        w.flush().await;
        let mut unanswered = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            match w.wait_disposition(0, Role::Receiver, *id, Duration::from_secs(if unanswered.is_empty() { 10 } else { 1 })).await {
                Some(d) => assert!(matches!(d.state, Some(DeliveryState::Accepted(_))), "message p{i}: {d:?}"),
                None => unanswered.push(format!("p{i} (delivery {id})")),
            }
        }
        assert!(unanswered.is_empty(), "{} of {N} pipelined transfers were never answered: {unanswered:?}", unanswered.len());
        assert_eq!(server.active_count("pipe"), N as u64, "every pipelined message is in the queue");
        w.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_asks_for_an_idle_time_out_gets_heartbeats() {
    let server = Server::start(&config(&[("q1", json!({}))]));
    bounded(30, "heartbeats", async {
        let mut w = Wire::connect_idle(server.amqp_port, 65_536, Some(2_000)).await;
        // Nothing to read but heartbeats: wait for a frame that never comes.
        let none = w.wait_for(Duration::from_millis(3_500), |_| false).await;
        assert!(none.is_none());
        assert!(w.heartbeats >= 2, "{} heartbeats in 3.5 s for an idle time-out of 2 s", w.heartbeats);
        assert!(!w.closed, "the connection stays open");
    })
    .await;
}

/// Reads the detach that follows a refused attach and answers it (the server sends
/// nothing more: its detach was first).
async fn answer_refusal(w: &mut Wire, handle: u32) {
    w.wait_detach(0, handle, FRAME_WAIT).await.expect("the refusal's detach");
    let detach = fe2o3_amqp::types::performatives::Detach { handle: fe2o3_amqp::types::definitions::Handle(handle), closed: true, error: None };
    w.send(0, fe2o3_amqp::frames::amqp::FrameBody::Detach(detach)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_held_by_a_client_that_vanishes_is_free_at_once() {
    let server = Server::start(&config(&[("sq", json!({ "RequiresSession": true, "LockDuration": "PT5M" }))]));
    bounded(60, "vanished session holder", async {
        let token = sas::token_valid_for(&sas::audience("sq"), 3600);
        let mut first = Wire::connect(server.amqp_port, 65_536).await;
        first.begin(0).await;
        assert_eq!(first.put_token(0, "sq", &token).await.0, 202);
        let reply = first.attach_session_receiver(0, 1, "sq", Some("s1")).await;
        assert!(reply.source.is_some(), "the first client gets the session: {reply:?}");
        // While it is held, a second client is refused.
        let mut second = Wire::connect(server.amqp_port, 65_536).await;
        second.begin(0).await;
        assert_eq!(second.put_token(0, "sq", &token).await.0, 202);
        let refused = second.attach_session_receiver(0, 1, "sq", Some("s1")).await;
        assert!(refused.source.is_none(), "a held session is refused: {refused:?}");
        answer_refusal(&mut second, 1).await;
        // The holder vanishes without closing anything: its session is free long
        // before its five-minute lock would lapse.
        drop(first);
        let mut accepted = None;
        for _ in 0..50 {
            let reply = second.attach_session_receiver(0, 2, "sq", Some("s1")).await;
            if reply.source.is_some() {
                accepted = Some(reply);
                break;
            }
            answer_refusal(&mut second, 2).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(accepted.is_some(), "the session was still held 5 s after its holder vanished");
    })
    .await;
}
