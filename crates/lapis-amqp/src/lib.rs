//! Lapis's AMQP 1.0 endpoint (port 5672): framing, SASL, the connection / session /
//! link state machine, the CBS node, and the mapping of links to the Service Bus
//! broker in `lapis-core`. Written on fe2o3-amqp's types and framing rather than its
//! acceptor, for the reasons in `docs/design/servicebus-amqp.md`.

pub mod cbs;
pub mod connection;
pub mod delivery;
pub mod errors;
pub mod frame;
pub mod management;
pub mod message;
pub mod eventhubs;
pub mod rules;
pub mod sasl;
pub mod sections;
pub mod tls;

use std::sync::Arc;

use lapis_core::auth::sas_token::SasKeys;
use lapis_core::broker::Broker;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Idle time before TCP keepalive probes a silent peer, and the time between probes.
const KEEPALIVE_IDLE: std::time::Duration = std::time::Duration::from_secs(30);
const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// What the AMQP endpoint serves.
pub struct AmqpService {
    pub broker: Arc<Broker>,
    pub streams: Arc<lapis_core::stream::StreamService>,
    pub sas_keys: SasKeys,
}

impl AmqpService {
    /// Whether a put-token audience (its normalized path) names something that
    /// exists: the namespace, a `$` node, an event hub (any address under it), or a
    /// queue, topic or subscription (with its sub-queues and `$management` node).
    pub fn audience_exists(&self, path: &str) -> bool {
        if path.is_empty() || path.starts_with('$') {
            return true;
        }
        let first = path.split('/').next().unwrap_or_default();
        if self.streams.hub(first).is_ok() {
            return true;
        }
        let node = path.strip_suffix(management::SUFFIX).unwrap_or(path);
        let (entity, _) = lapis_core::broker::parse_address(node);
        self.broker.queue_config(entity).is_ok()
    }
}

/// Connections served at once; more are closed as they arrive.
pub const MAX_CONNECTIONS: usize = 10_000;

/// How long a client may take to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long open connections get, at shutdown, to finish their in-flight writes.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Accepts connections until `shutdown` turns true; each runs in its own task. With
/// `tls`, every connection is a TLS connection (`amqps`). At shutdown every
/// connection finishes what it has in flight and is closed with
/// `amqp:connection:forced`; this returns once they are all gone (or the grace time
/// has passed).
pub async fn serve(listener: TcpListener, service: Arc<AmqpService>, tls: Option<tokio_rustls::TlsAcceptor>, mut shutdown: watch::Receiver<bool>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
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
            _ = shutdown.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let _ = stream.set_nodelay(true);
        // Peers that vanish without closing are found by TCP keepalive.
        let keepalive = socket2::TcpKeepalive::new().with_time(KEEPALIVE_IDLE).with_interval(KEEPALIVE_INTERVAL);
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "AMQP connection refused: {MAX_CONNECTIONS} connections are open");
            continue;
        };
        let (service, tls, stop) = (service.clone(), tls.clone(), shutdown.clone());
        // Every log line of a connection names its peer.
        let span = tracing::debug_span!("amqp", %peer);
        connections.spawn(tracing::Instrument::instrument(async move {
            let _slot = slot;
            let ended = match tls {
                None => connection::run(stream, &service, stop).await,
                Some(acceptor) => match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls_stream)) => connection::run(tls_stream, &service, stop).await,
                    Ok(Err(e)) => Err(connection::ConnectionError::Io(e)),
                    Err(_) => Err(connection::ConnectionError::Protocol("no TLS handshake within the timeout".into())),
                },
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, "AMQP connection ended with an error");
            }
        }, span));
    }
    let open = connections.len();
    if open > 0 {
        tracing::info!(open, "closing AMQP connections");
    }
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(left = connections.len(), "AMQP connections still busy after the grace time; dropping them");
        connections.abort_all();
    }
}
