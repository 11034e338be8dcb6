//! Lapis's AMQP 1.0 endpoint (port 5672): framing, SASL, the connection / session /
//! link state machine, the CBS node, and the mapping of links to the Service Bus
//! broker in `lapis-core`. Written on fe2o3-amqp's types and framing rather than its
//! acceptor, for the reasons in `docs/design/servicebus-amqp.md`.

pub mod frame;
pub mod message;
pub mod cbs;
pub mod connection;

use std::sync::Arc;

use lapis_core::auth::sas_token::SasKeys;
use lapis_core::broker::Broker;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What the AMQP endpoint serves.
pub struct AmqpService {
    pub broker: Arc<Broker>,
    pub sas_keys: SasKeys,
}

/// Accepts connections until `shutdown` turns true; each runs in its own task.
pub async fn serve(listener: TcpListener, service: Arc<AmqpService>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "AMQP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        tokio::spawn(async move {
            if let Err(e) = connection::run(stream, &service).await {
                tracing::debug!(%peer, error = %e, "AMQP connection ended with an error");
            }
        });
    }
}
pub mod delivery;
pub mod management;
