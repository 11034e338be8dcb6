//! Connecting to Lapis's Event Hubs endpoint: SASL PLAIN with the emulator's key
//! (`RootManageSharedAccessKey` / `SAS_KEY_VALUE`, which Lapis takes as authorizing
//! everything on the connection, so no CBS put-token is needed), a max-frame-size of
//! 1 MiB (a 100-event batch then travels in one transfer frame), one session per
//! connection; sender links on `<hub>/Partitions/<id>` or `<hub>` (unsettled, so
//! Lapis answers each batch with a settled `accepted` once it is durable), receiver
//! links on `<hub>/ConsumerGroups/$Default/Partitions/<id>` with a selector filter.

use std::time::Duration;

use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::definitions::{ReceiverSettleMode, SenderSettleMode};
use fe2o3_amqp::types::messaging::Source;
use fe2o3_amqp::types::primitives::{Symbol, Value};
use fe2o3_amqp::{Connection, Receiver, Sender, Session};
use serde_amqp::described::Described;
use serde_amqp::descriptor::Descriptor;

pub const KEY_NAME: &str = "RootManageSharedAccessKey";
pub const KEY: &str = "SAS_KEY_VALUE";
/// The selector filter's name (used as key and descriptor, as azure-eventhub does).
pub const SELECTOR: &str = "apache.org:selector-filter:string";
pub const MAX_FRAME: u32 = 1 << 20;

/// An open connection with one session.
pub struct Conn {
    pub connection: ConnectionHandle<()>,
    pub session: SessionHandle<()>,
}

pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

impl Conn {
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.session.end()).await;
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.connection.close()).await;
    }
}

pub async fn connect(port: u16, name: &str) -> Result<Conn, String> {
    tokio::time::timeout(CONNECT_TIMEOUT, async {
        let url = format!("amqp://127.0.0.1:{port}");
        let mut connection = Connection::builder()
            .container_id(name)
            .max_frame_size(MAX_FRAME)
            .sasl_profile(SaslProfile::Plain { username: KEY_NAME.into(), password: KEY.into() })
            .open(url.as_str())
            .await
            .map_err(|e| format!("open {url}: {e}"))?;
        let session = Session::begin(&mut connection).await.map_err(|e| format!("begin: {e}"))?;
        Ok(Conn { connection, session })
    })
    .await
    .map_err(|_| format!("connect {name}: no answer within {CONNECT_TIMEOUT:?}"))?
}

/// A producer link: unsettled, so each batch waits for Lapis's disposition.
pub async fn sender(conn: &mut Conn, name: &str, address: &str) -> Result<Sender, String> {
    Sender::builder()
        .name(name)
        .target(address)
        .sender_settle_mode(SenderSettleMode::Unsettled)
        .attach(&mut conn.session)
        .await
        .map_err(|e| format!("attach sender {name} to {address}: {e}"))
}

/// A consumer of one partition from `position` (`@latest` or `-1`); Lapis sends its
/// deliveries pre-settled.
pub async fn receiver(conn: &mut Conn, name: &str, hub: &str, partition: u32, position: &str, prefetch: u32) -> Result<Receiver, String> {
    let address = format!("{hub}/ConsumerGroups/$Default/Partitions/{partition}");
    let expression = format!("amqp.annotation.x-opt-offset > '{position}'");
    let filter = Described { descriptor: Descriptor::Name(Symbol::from(SELECTOR)), value: Value::String(expression) };
    let source = Source::builder().address(address.clone()).add_to_filter(SELECTOR, filter).build();
    Receiver::builder()
        .name(name)
        .source(source)
        .target(format!("{name}-local"))
        .receiver_settle_mode(ReceiverSettleMode::First)
        .credit_mode(fe2o3_amqp::link::CreditMode::Auto(prefetch))
        // Deliveries are pre-settled, so "accepting" sends no disposition; fe2o3 only
        // refills Auto credit as deliveries are disposed of, which this does.
        .auto_accept(true)
        .attach(&mut conn.session)
        .await
        .map_err(|e| format!("attach receiver {name} to {address}: {e}"))
}
