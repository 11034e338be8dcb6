//! Helpers on fe2o3-amqp's connection/session/link API, used as an application
//! would: connect with SASL ANONYMOUS, authorize entities through `$cbs`, send and
//! receive.

use std::time::Duration;

use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::link::receiver::CreditMode;
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::definitions::{ReceiverSettleMode, SenderSettleMode};
use fe2o3_amqp::types::messaging::{ApplicationProperties, Message, Outcome, Properties};
use fe2o3_amqp::types::primitives::{SimpleValue, Value};
use fe2o3_amqp::{Connection, Delivery, Receiver, Sender, Session};

use crate::{sas, Server};

pub type Conn = ConnectionHandle<()>;
pub type Sess = SessionHandle<()>;

/// A connection (SASL ANONYMOUS) announcing `max_frame` when given.
pub async fn connect_with(server: &Server, max_frame: Option<u32>) -> Conn {
    let mut b = Connection::builder()
        .container_id(format!("rust-amqp-{}", uuid::Uuid::new_v4().simple()))
        .sasl_profile(SaslProfile::Anonymous)
        .hostname("localhost")
        .channel_max(1024u16);
    if let Some(m) = max_frame {
        b = b.max_frame_size(m);
    }
    let url = server.amqp_url();
    crate::bounded(10, "open a connection", b.open(url.as_str())).await.expect("open connection")
}

pub async fn connect(server: &Server) -> Conn {
    connect_with(server, None).await
}

pub async fn begin(conn: &mut Conn) -> Sess {
    crate::bounded(10, "begin a session", Session::begin(conn)).await.expect("begin session")
}

/// Puts `token` on `$cbs` for `entity` over a fresh `$cbs` link pair on `session`;
/// returns the answer's status-code and status-description.
pub async fn put_token(session: &mut Sess, entity: &str, token: &str) -> (i32, String) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let reply_to = format!("cbs-{id}");
    let mut sender = crate::bounded(10, "attach the $cbs sender", Sender::attach(session, format!("cbs-sender-{id}"), "$cbs")).await.expect("attach $cbs sender");
    let mut receiver = crate::bounded(
        10,
        "attach the $cbs receiver",
        Receiver::builder().name(reply_to.clone()).source("$cbs").target(reply_to.clone()).attach(session),
    )
    .await
    .expect("attach $cbs receiver");
    let app = ApplicationProperties::builder()
        .insert("operation", SimpleValue::String("put-token".into()))
        .insert("type", SimpleValue::String("servicebus.windows.net:sastoken".into()))
        .insert("name", SimpleValue::String(sas::audience(entity)))
        .build();
    let message = Message::builder()
        .properties(Properties::builder().message_id(id.clone()).reply_to(reply_to).build())
        .application_properties(app)
        .value(token.to_string())
        .build();
    let outcome = crate::bounded(10, "send the put-token request", sender.send(message)).await.expect("send put-token");
    assert!(matches!(outcome, Outcome::Accepted(_)), "put-token transfer outcome {outcome:?}");
    let answer: Delivery<Value> = crate::bounded(10, "receive the put-token answer", receiver.recv()).await.expect("put-token answer");
    receiver.accept(&answer).await.expect("accept CBS answer");
    let props = answer.message().application_properties.as_ref().expect("CBS answer has application properties");
    let code = match props.0.get("status-code") {
        Some(SimpleValue::Int(c)) => *c,
        Some(SimpleValue::Long(c)) => *c as i32,
        other => panic!("CBS status-code {other:?}"),
    };
    let description = match props.0.get("status-description") {
        Some(SimpleValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    let _ = crate::bounded(10, "close the $cbs sender", sender.close()).await;
    let _ = crate::bounded(10, "close the $cbs receiver", receiver.close()).await;
    (code, description)
}

/// Authorizes the connection of `session` for each entity with a token valid an hour.
pub async fn authorize(session: &mut Sess, entities: &[&str]) {
    for entity in entities {
        let token = sas::token_valid_for(&sas::audience(entity), 3600);
        let (code, description) = put_token(session, entity, &token).await;
        assert_eq!(code, 202, "put-token for {entity}: {description}");
    }
}

/// A connection and session authorized for `entities`.
pub async fn authorized(server: &Server, entities: &[&str]) -> (Conn, Sess) {
    let mut conn = connect(server).await;
    let mut session = begin(&mut conn).await;
    authorize(&mut session, entities).await;
    (conn, session)
}

pub async fn sender(session: &mut Sess, queue: &str) -> Sender {
    let name = format!("sender-{queue}-{}", uuid::Uuid::new_v4().simple());
    crate::bounded(10, "attach a sender", Sender::attach(session, name, queue)).await.unwrap_or_else(|e| panic!("attach sender to {queue}: {e:?}"))
}

/// A peek-lock receiver (snd-settle-mode unsettled, rcv-settle-mode first) granting
/// `credit` by hand.
pub async fn peek_lock_receiver(session: &mut Sess, queue: &str, credit: u32) -> Receiver {
    let name = format!("receiver-{}", uuid::Uuid::new_v4().simple());
    let mut r = crate::bounded(
        10,
        "attach a receiver",
        Receiver::builder()
            .name(name.clone())
            .source(queue)
            .target(name)
            .sender_settle_mode(SenderSettleMode::Unsettled)
            .receiver_settle_mode(ReceiverSettleMode::First)
            .credit_mode(CreditMode::Manual)
            .attach(session),
    )
    .await
    .unwrap_or_else(|e| panic!("attach receiver to {queue}: {e:?}"));
    if credit > 0 {
        r.set_credit(credit).await.expect("set credit");
    }
    r
}

/// Sends a string message and asserts it was accepted.
pub async fn send_text(sender: &mut Sender, body: &str) {
    let message = Message::builder().properties(Properties::builder().message_id(uuid::Uuid::new_v4().to_string()).build()).value(body.to_string()).build();
    let outcome = crate::bounded(10, "send a message", sender.send(message)).await.expect("send");
    assert!(matches!(outcome, Outcome::Accepted(_)), "send outcome {outcome:?}");
}

/// The next message on `receiver` within `wait`, if any.
pub async fn try_recv(receiver: &mut Receiver, wait: Duration) -> Option<Delivery<Value>> {
    match tokio::time::timeout(wait, receiver.recv::<Value>()).await {
        Err(_) => None,
        Ok(r) => Some(r.expect("receive")),
    }
}

pub fn text(d: &Delivery<Value>) -> String {
    match d.body() {
        Value::String(s) => s.clone(),
        other => panic!("expected a string body, got {other:?}"),
    }
}

/// Closes a connection, bounded.
pub async fn close(mut conn: Conn) {
    let _ = crate::bounded(10, "close the connection", conn.close()).await;
}

/// What a second, independent client sees on `queue` within `wait`: the first
/// message (its string body and header delivery-count), which it completes, or
/// nothing.
pub async fn observe(server: &Server, queue: &str, wait: Duration) -> Option<(String, u32)> {
    let (conn, mut session) = authorized(server, &[queue]).await;
    let mut r = peek_lock_receiver(&mut session, queue, 1).await;
    let got = try_recv(&mut r, wait).await.map(|d| {
        let count = d.message().header.as_ref().map(|h| h.delivery_count).unwrap_or(0);
        (d, count)
    });
    let seen = match got {
        Some((d, count)) => {
            crate::bounded(10, "complete the observed message", r.accept(&d)).await.expect("accept");
            Some((text(&d), count))
        }
        None => None,
    };
    let _ = crate::bounded(10, "close the observer's receiver", r.close()).await;
    close(conn).await;
    seen
}
