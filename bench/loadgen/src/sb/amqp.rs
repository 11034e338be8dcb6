//! Connecting to a broker: which SASL profile and which addresses each flavour takes,
//! and the CBS put-token that Lapis (like Service Bus) wants before any entity link.
//!
//! * `lapis`: SASL ANONYMOUS, then a SAS token for `sb://127.0.0.1:<port>/<queue>` put
//!   on `$cbs`; links address the queue by its name.
//! * `rabbitmq`: SASL PLAIN guest/guest (loopback only, RabbitMQ's default user); no
//!   CBS; links address the queue as `/amq/queue/<queue>`, the 3.x AMQP 1.0 plugin's
//!   address for an existing queue (no declare, so a quorum queue stays quorum).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::link::delivery::Delivery;
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::definitions::{ReceiverSettleMode, SenderSettleMode};
use fe2o3_amqp::types::messaging::{ApplicationProperties, Body, Message, Outcome, Properties};
use fe2o3_amqp::types::primitives::{SimpleValue, Value};
use fe2o3_amqp::{Connection, Receiver, Sender, Session};

use crate::sas;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Lapis,
    RabbitMq,
}

impl Flavor {
    pub fn parse(s: &str) -> Result<Flavor, String> {
        match s {
            "lapis" => Ok(Flavor::Lapis),
            "rabbitmq" => Ok(Flavor::RabbitMq),
            other => Err(format!("unknown --flavor {other} (lapis or rabbitmq)")),
        }
    }
}

/// One broker endpoint and the queue every link uses.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub flavor: Flavor,
    pub port: u16,
    pub queue: String,
}

/// An open connection with one session; dropping it closes both.
pub struct Conn {
    pub connection: ConnectionHandle<()>,
    pub session: SessionHandle<()>,
}

/// How long a close (of a link, a session, a connection) may take before it is given up.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

impl Conn {
    /// Ends the session and closes the connection, giving up on either after
    /// `CLOSE_TIMEOUT` (dropping the handles then stops the client's engines).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.session.end()).await;
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.connection.close()).await;
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

impl Endpoint {
    /// The address senders target and receivers take from.
    pub fn address(&self) -> String {
        match self.flavor {
            Flavor::Lapis => self.queue.clone(),
            Flavor::RabbitMq => format!("/amq/queue/{}", self.queue),
        }
    }

    /// Opens a connection and a session (and, for Lapis, authorizes it for the queue).
    pub async fn connect(&self, name: &str) -> Result<Conn, String> {
        tokio::time::timeout(CONNECT_TIMEOUT, self.connect_inner(name))
            .await
            .map_err(|_| format!("connect {name}: no answer within {CONNECT_TIMEOUT:?}"))?
    }

    async fn connect_inner(&self, name: &str) -> Result<Conn, String> {
        let profile = match self.flavor {
            Flavor::Lapis => SaslProfile::Anonymous,
            Flavor::RabbitMq => SaslProfile::Plain { username: "guest".into(), password: "guest".into() },
        };
        let url = format!("amqp://127.0.0.1:{}", self.port);
        let mut connection = Connection::builder()
            .container_id(name)
            .sasl_profile(profile)
            .open(url.as_str())
            .await
            .map_err(|e| format!("open {url}: {e}"))?;
        let mut session = Session::begin(&mut connection).await.map_err(|e| format!("begin: {e}"))?;
        if self.flavor == Flavor::Lapis {
            self.put_token(&mut session, name).await?;
        }
        Ok(Conn { connection, session })
    }

    /// The CBS handshake: a put-token request on `$cbs`, answered on a `$cbs` receiver
    /// link with `status-code` 200 or 202.
    async fn put_token(&self, session: &mut SessionHandle<()>, name: &str) -> Result<(), String> {
        let resource = format!("sb://127.0.0.1:{}/{}", self.port, self.queue);
        let expiry = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) + 3600;
        let token = sas::token(&resource, sas::DEV_KEY_NAME, sas::DEV_KEY, expiry);
        let (req_name, ans_name) = (format!("{name}-cbs-requests"), format!("{name}-cbs-answers"));
        let mut requests = Sender::attach(session, req_name, "$cbs").await.map_err(|e| format!("attach $cbs sender: {e}"))?;
        let mut answers = Receiver::builder()
            .name(ans_name.clone())
            .source("$cbs")
            .target(ans_name.clone())
            .attach(session)
            .await
            .map_err(|e| format!("attach $cbs receiver: {e}"))?;
        let app = ApplicationProperties::builder()
            .insert("operation", SimpleValue::String("put-token".into()))
            .insert("type", SimpleValue::String("servicebus.windows.net:sastoken".into()))
            .insert("name", SimpleValue::String(resource.clone()))
            .build();
        let props = Properties::builder().message_id(format!("{name}-put-token")).reply_to(ans_name).build();
        let request = Message::builder().properties(props).application_properties(app).value(token).build();
        match requests.send(request).await.map_err(|e| format!("put-token send: {e}"))? {
            Outcome::Accepted(_) => {}
            other => return Err(format!("put-token request not accepted: {other:?}")),
        }
        let answer: Delivery<Body<Value>> = answers.recv().await.map_err(|e| format!("put-token answer: {e}"))?;
        let _ = answers.accept(&answer).await; // already settled by Lapis; harmless
        let status = answer
            .message()
            .application_properties
            .as_ref()
            .and_then(|a| a.0.get("status-code"))
            .and_then(|v| match v {
                SimpleValue::Int(n) => Some(*n as i64),
                SimpleValue::Long(n) => Some(*n),
                _ => None,
            });
        let _ = requests.close().await;
        let _ = answers.close().await;
        match status {
            Some(200) | Some(202) => Ok(()),
            other => {
                let description = answer.message().application_properties.as_ref().and_then(|a| a.0.get("status-description")).cloned();
                Err(format!("put-token for {resource} answered {other:?}: {description:?}"))
            }
        }
    }

    /// A sender link: unsettled, so each message waits for the broker's disposition.
    pub async fn sender(&self, conn: &mut Conn, name: &str) -> Result<Sender, String> {
        Sender::builder()
            .name(name)
            .target(self.address())
            .sender_settle_mode(SenderSettleMode::Unsettled)
            .attach(&mut conn.session)
            .await
            .map_err(|e| format!("attach sender {name}: {e}"))
    }

    /// A peek-lock receiver link: the broker sends unsettled deliveries, the receiver
    /// settles each with `accepted` (rcv-settle-mode first: its disposition is settled).
    pub async fn receiver(&self, conn: &mut Conn, name: &str, prefetch: u32) -> Result<Receiver, String> {
        Receiver::builder()
            .name(name)
            .source(self.address())
            .target(format!("{name}-local"))
            .sender_settle_mode(SenderSettleMode::Unsettled)
            .receiver_settle_mode(ReceiverSettleMode::First)
            .credit_mode(fe2o3_amqp::link::CreditMode::Auto(prefetch))
            .auto_accept(false)
            .attach(&mut conn.session)
            .await
            .map_err(|e| format!("attach receiver {name}: {e}"))
    }
}
