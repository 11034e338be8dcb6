//! SASL and the protocol header at the start of a connection: ANONYMOUS and MSSBCBS
//! (authorization comes later through CBS tokens) and PLAIN with a configured shared
//! access key name and key.

use fe2o3_amqp::frames::sasl;
use fe2o3_amqp_types::primitives::Symbol;
use fe2o3_amqp_types::sasl::{SaslCode, SaslMechanisms, SaslOutcome};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::connection::{ConnectionError, Result};
use crate::frame::{self, AMQP_HEADER, SASL_HEADER};
use crate::AmqpService;

/// How a peer authenticated in SASL.
pub enum SaslIdentity {
    /// ANONYMOUS or MSSBCBS: authorization comes later, through CBS tokens.
    Anonymous,
    /// PLAIN with a configured key name and its key: the connection may use every
    /// entity, as with a namespace-wide token.
    KeyHolder,
}

/// The outcome of SASL PLAIN: `authzid\0authcid\0password`, where the name is a
/// configured shared access key name and the password its key.
fn plain_identity(response: Option<&[u8]>, keys: &lapis_core::auth::sas_token::SasKeys) -> bool {
    let Some(response) = response else { return false };
    let mut parts = response.split(|b| *b == 0);
    let (_authz, Some(name), Some(password), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else { return false };
    let (Ok(name), Ok(password)) = (std::str::from_utf8(name), std::str::from_utf8(password)) else { return false };
    keys.get(name).is_some_and(|key| crate::cbs::constant_time_eq(key.as_bytes(), password.as_bytes()))
}

/// Negotiates SASL and the AMQP header. Returns `None` if the peer spoke something
/// else or failed SASL PLAIN.
pub async fn negotiate<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(r: &mut R, w: &mut W, service: &AmqpService) -> Result<Option<SaslIdentity>> {
    let mut header = frame::read_header(r).await?;
    let mut identity = SaslIdentity::Anonymous;
    if header == SASL_HEADER {
        w.write_all(&SASL_HEADER).await?;
        let mechanisms = ["MSSBCBS", "ANONYMOUS", "PLAIN"].map(Symbol::from).to_vec();
        frame::write_sasl(w, &sasl::Frame::Mechanisms(SaslMechanisms { sasl_server_mechanisms: mechanisms.into() })).await?;
        let init = match frame::read_sasl(r).await? {
            sasl::Frame::Init(init) => init,
            other => return Err(ConnectionError::Protocol(format!("expected sasl-init, got {other:?}"))),
        };
        let code = match init.mechanism.as_str() {
            "PLAIN" if plain_identity(init.initial_response.as_deref().map(|v| &v[..]), &service.sas_keys) => {
                identity = SaslIdentity::KeyHolder;
                SaslCode::Ok
            }
            "PLAIN" => SaslCode::Auth,
            "ANONYMOUS" | "MSSBCBS" => SaslCode::Ok,
            _ => SaslCode::Auth,
        };
        frame::write_sasl(w, &sasl::Frame::Outcome(SaslOutcome { code: code.clone(), additional_data: None })).await?;
        if code != SaslCode::Ok {
            return Ok(None);
        }
        header = frame::read_header(r).await?;
    }
    if header != AMQP_HEADER {
        // Answer with the header we speak, as the specification asks, then hang up.
        w.write_all(&SASL_HEADER).await?;
        return Ok(None);
    }
    w.write_all(&AMQP_HEADER).await?;
    Ok(Some(identity))
}
