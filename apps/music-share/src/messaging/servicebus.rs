//! Service Bus through `fe2o3-amqp` (no official Rust crate reaches an emulator):
//! comments go to the `comments` queue with the comment's id as the message id
//! (duplicate detection stores a retried post once) and the track's id as the
//! session id (a track's comments are handed out in order, to one worker at a time).
//!
//! What the official SDKs do for a user is spelled out here: sign in through the
//! `$cbs` node with a SAS token, attach links, and ask for a session with the
//! `com.microsoft:session-filter` source filter.

use std::time::Duration;

use anyhow::{bail, Context};
use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::link::receiver::CreditMode;
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::definitions::{self, ReceiverSettleMode, SenderSettleMode};
use fe2o3_amqp::types::messaging::{ApplicationProperties, Body, Data, FilterSet, Message, Outcome, Properties, Source};
use fe2o3_amqp::types::primitives::{Binary, SimpleValue, Symbol, Value};
use fe2o3_amqp::{Connection, Delivery, Receiver, Sender, Session};

use super::lapis::{sas_token, Lapis};

/// The comments queue (sessions and duplicate detection on).
pub const COMMENTS: &str = "comments";
const SESSION_FILTER: &str = "com.microsoft:session-filter";
/// How long one attempt to connect, sign in or attach may take.
const STEP: Duration = Duration::from_secs(10);

pub type Body0 = Body<Value>;

/// One AMQP connection with one session, signed in for the entities it uses.
pub struct ServiceBus {
    connection: ConnectionHandle<()>,
    session: SessionHandle<()>,
}

async fn step<T, E: std::fmt::Debug>(what: &str, f: impl std::future::Future<Output = Result<T, E>>) -> anyhow::Result<T> {
    match tokio::time::timeout(STEP, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => bail!("{what}: {e:?}"),
        Err(_) => bail!("{what}: no answer within {STEP:?}"),
    }
}

/// The status code of a request's answer (`status-code`, or `statusCode` as the
/// management nodes spell it).
fn status_of(answer: &Message<Value>) -> Option<i64> {
    let props = answer.application_properties.as_ref()?;
    match props.0.get("status-code").or_else(|| props.0.get("statusCode")) {
        Some(SimpleValue::Int(c)) => Some(*c as i64),
        Some(SimpleValue::Long(c)) => Some(*c),
        _ => None,
    }
}

fn text_property(app: &ApplicationProperties, key: &str) -> Option<String> {
    match app.0.get(key) {
        Some(SimpleValue::String(s)) => Some(s.clone()),
        _ => None,
    }
}

impl ServiceBus {
    /// Connects and signs in for each of `entities`.
    pub async fn connect(lapis: &Lapis, entities: &[&str]) -> anyhow::Result<ServiceBus> {
        let url = lapis.amqp_url();
        let mut connection = step(
            "connect to Service Bus",
            Connection::builder().container_id(format!("music-share-{}", uuid::Uuid::new_v4().simple())).sasl_profile(SaslProfile::Anonymous).hostname("localhost").open(url.as_str()),
        )
        .await?;
        let session = step("begin a session", Session::begin(&mut connection)).await?;
        let mut sb = ServiceBus { connection, session };
        for entity in entities {
            sb.put_token(entity).await?;
        }
        Ok(sb)
    }

    /// One request to a node that answers on a reply link (`$cbs`, an entity's
    /// `$management`): attaches the pair, sends, reads the answer, lets both go.
    async fn request(&mut self, node: &str, what: &str, app: ApplicationProperties, body: Value) -> anyhow::Result<Message<Value>> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let reply_to = format!("reply-{id}");
        let mut sender = step(&format!("attach the {what} sender"), Sender::attach(&mut self.session, format!("request-{id}"), node)).await?;
        let mut receiver = step(&format!("attach the {what} receiver"), Receiver::builder().name(reply_to.clone()).source(node).target(reply_to.clone()).attach(&mut self.session)).await?;
        let request = Message::builder().properties(Properties::builder().message_id(id).reply_to(reply_to).build()).application_properties(app).value(body).build();
        step(&format!("send the {what} request"), sender.send(request)).await?;
        let answer: Delivery<Value> = step(&format!("read the {what} answer"), receiver.recv()).await?;
        let _ = tokio::time::timeout(STEP, receiver.accept(&answer)).await;
        let _ = tokio::time::timeout(STEP, sender.close()).await;
        let _ = tokio::time::timeout(STEP, receiver.close()).await;
        Ok(answer.into_message())
    }

    /// The claims-based security exchange for one entity.
    async fn put_token(&mut self, entity: &str) -> anyhow::Result<()> {
        let audience = format!("sb://localhost/{entity}");
        let (token, _) = sas_token(&audience, 24 * 3600);
        let app = ApplicationProperties::builder()
            .insert("operation", SimpleValue::String("put-token".into()))
            .insert("type", SimpleValue::String("servicebus.windows.net:sastoken".into()))
            .insert("name", SimpleValue::String(audience.clone()))
            .build();
        let answer = self.request("$cbs", "put-token", app, Value::String(token)).await?;
        let props = answer.application_properties.as_ref().context("the put-token answer has no properties")?;
        let code = status_of(&answer).unwrap_or(0);
        if code != 202 && code != 200 {
            bail!("Service Bus refused the token for {entity}: {code} {}", text_property(props, "status-description").unwrap_or_default());
        }
        Ok(())
    }

    pub async fn sender(&mut self, queue: &str) -> anyhow::Result<Sender> {
        step("attach a sender", Sender::attach(&mut self.session, format!("sender-{}", uuid::Uuid::new_v4().simple()), queue)).await
    }

    /// A peek-lock receiver of the next session with messages, or `None` when no
    /// session has any within `wait`.
    pub async fn next_session(&mut self, queue: &str, wait: Duration, credit: u32) -> anyhow::Result<Option<Receiver>> {
        let mut filter = FilterSet::new();
        filter.insert(Symbol::from(SESSION_FILTER), Value::Null);
        let source = Source::builder().address(queue.to_string()).filter(filter).build();
        let name = format!("comment-worker-{}", uuid::Uuid::new_v4().simple());
        let mut properties = fe2o3_amqp::types::definitions::Fields::new();
        properties.insert(Symbol::from("com.microsoft:timeout"), Value::Uint(wait.as_millis() as u32));
        let attach = Receiver::builder()
            .name(name.clone())
            .source(source)
            .target(name)
            .sender_settle_mode(SenderSettleMode::Unsettled)
            .receiver_settle_mode(ReceiverSettleMode::First)
            .credit_mode(CreditMode::Auto(credit))
            .properties(properties)
            .attach(&mut self.session);
        match tokio::time::timeout(wait + STEP, attach).await {
            Ok(Ok(receiver)) => Ok(Some(receiver)),
            // Lapis refuses a next-available request that found no session in time
            // (com.microsoft:timeout), which fe2o3 reports as a failed attach.
            Ok(Err(e)) if format!("{e:?}").contains("com.microsoft:timeout") => Ok(None),
            Ok(Err(e)) => bail!("accepting a session: {e:?}"),
            Err(_) => bail!("accepting a session: no answer within {:?}", wait + STEP),
        }
    }

    pub async fn close(mut self) {
        let _ = tokio::time::timeout(STEP, self.session.end()).await;
        let _ = tokio::time::timeout(STEP, self.connection.close()).await;
    }
}

/// Sends `body` as a data section with `message_id` and `session_id`; an error
/// unless the broker accepted it (durably: Lapis answers after its disk write).
pub async fn send(sender: &mut Sender, message_id: &str, session_id: &str, body: Vec<u8>) -> anyhow::Result<()> {
    let message = Message::builder()
        .properties(Properties::builder().message_id(message_id.to_string()).group_id(session_id.to_string()).content_type(Symbol::from("application/json")).build())
        .data(Binary::from(body))
        .build();
    match step("send a message", sender.send(message)).await? {
        Outcome::Accepted(_) => Ok(()),
        other => bail!("Service Bus did not take the message: {other:?}"),
    }
}

/// The bytes of a message's data sections (what the SDKs send), or its string value.
pub fn body_bytes(delivery: &Delivery<Body0>) -> Vec<u8> {
    match delivery.body() {
        Body::Data(batch) => batch.iter().flat_map(|d: &Data| d.0.to_vec()).collect(),
        Body::Value(v) => match &v.0 {
            Value::String(s) => s.clone().into_bytes(),
            Value::Binary(b) => b.to_vec(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

pub fn message_id(delivery: &Delivery<Body0>) -> Option<String> {
    id_of(delivery.message())
}

fn id_of(message: &Message<Body0>) -> Option<String> {
    message.properties.as_ref().and_then(|p| p.message_id.as_ref()).map(|id| match id {
        fe2o3_amqp::types::messaging::MessageId::String(s) => s.clone(),
        other => format!("{other:?}"),
    })
}

/// Completes (the message is done) after the database write has committed.
pub async fn complete(receiver: &mut Receiver, delivery: &Delivery<Body0>) -> anyhow::Result<()> {
    step("complete a message", receiver.accept(delivery)).await
}

/// Dead-letters a message that can never be stored, with a reason the admin page shows.
pub async fn dead_letter(receiver: &mut Receiver, delivery: &Delivery<Body0>, reason: &str, description: &str) -> anyhow::Result<()> {
    let mut info = fe2o3_amqp::types::definitions::Fields::new();
    info.insert(Symbol::from("DeadLetterReason"), Value::String(reason.to_string()));
    info.insert(Symbol::from("DeadLetterErrorDescription"), Value::String(description.to_string()));
    let error = definitions::Error::new(definitions::AmqpError::NotAllowed, Some(description.to_string()), Some(info));
    step("dead-letter a message", receiver.reject(delivery, error)).await
}

/// A peeked message: its id, why it was dead-lettered (if it was), and its body.
#[derive(Debug, Clone)]
pub struct Peeked {
    pub message_id: String,
    pub reason: String,
    pub body: String,
}

impl ServiceBus {
    /// Looks at up to `count` messages of `entity` (a queue, or a dead-letter queue
    /// such as `comments/$deadletterqueue`) without taking them, through the
    /// entity's `$management` node, as the SDKs' `peek_messages` does.
    pub async fn peek(&mut self, entity: &str, count: i32) -> anyhow::Result<Vec<Peeked>> {
        use fe2o3_amqp::types::messaging::message::__private::Deserializable;
        use fe2o3_amqp::types::primitives::OrderedMap;
        let mut body = OrderedMap::new();
        body.insert(Value::String("from-sequence-number".into()), Value::Long(0));
        body.insert(Value::String("message-count".into()), Value::Int(count));
        let app = ApplicationProperties::builder().insert("operation", SimpleValue::String("com.microsoft:peek-message".into())).build();
        let answer = self.request(&format!("{entity}/$management"), "peek", app, Value::Map(body)).await?;
        let status = status_of(&answer);
        if status == Some(204) {
            return Ok(Vec::new());
        }
        let Value::Map(map) = &answer.body else { bail!("the peek answer ({status:?}) has no map") };
        let Some(Value::List(items)) = map.get(&Value::String("messages".into())) else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for item in items {
            let Value::Map(m) = item else { continue };
            let Some(Value::Binary(bytes)) = m.get(&Value::String("message".into())) else { continue };
            let Ok(Deserializable(message)) = serde_amqp::from_slice::<Deserializable<Message<Body0>>>(bytes) else { continue };
            let message_id = id_of(&message);
            let reason = message.application_properties.as_ref().and_then(|a| text_property(a, "DeadLetterReason")).unwrap_or_default();
            let body = match &message.body {
                Body::Data(batch) => String::from_utf8_lossy(&batch.iter().flat_map(|d| d.0.to_vec()).collect::<Vec<u8>>()).into_owned(),
                Body::Value(v) => format!("{:?}", v.0),
                _ => String::new(),
            };
            out.push(Peeked { message_id: message_id.unwrap_or_default(), reason, body });
        }
        Ok(out)
    }
}
