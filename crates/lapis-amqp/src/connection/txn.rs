//! The transaction coordinator: a link whose target is a coordinator carries
//! `declare` (answered with `declared` and a transaction id) and `discharge` (commit,
//! or roll back with `fail`). Transfers and dispositions that carry a
//! `transactional-state` are enlisted in that transaction by the broker; Lapis answers
//! them with a transactional state holding the outcome.

use fe2o3_amqp_types::definitions::{AmqpError, Error, Role};
use fe2o3_amqp_types::messaging::{Accepted, AmqpValue, Body, DeliveryState, Outcome, Rejected};
use fe2o3_amqp_types::primitives::{Binary, Value};
use fe2o3_amqp_types::transaction::{Declared, TransactionalState};
use lapis_core::broker::{BrokerError, TransactionId};
use serde_amqp::descriptor::Descriptor;

use super::{Answer, Completion, Conn};
use crate::errors::{amqp, broker_error};
use crate::message;

const DECLARE: u64 = 0x31;
const DISCHARGE: u64 = 0x32;

/// The wire form of a transaction id: its number, big-endian.
pub fn wire_id(id: TransactionId) -> Binary {
    Binary::from(id.0.to_be_bytes().to_vec())
}

/// The transaction a wire id names, if it is one of Lapis's.
pub fn id_of(raw: &[u8]) -> Option<TransactionId> {
    <[u8; 8]>::try_from(raw).ok().map(|b| TransactionId(u64::from_be_bytes(b)))
}

pub fn unknown(raw: &[u8]) -> Error {
    broker_error(&BrokerError::UnknownTransaction(id_of(raw).map(|t| t.0).unwrap_or(0)))
}

/// The answer to a transactional transfer or disposition: its outcome, inside the
/// transaction's state.
pub fn state(raw: Vec<u8>, outcome: Result<Outcome, Error>) -> DeliveryState {
    let outcome = outcome.unwrap_or_else(|e| Outcome::Rejected(Rejected { error: Some(e) }));
    DeliveryState::TransactionalState(TransactionalState { txn_id: raw.into(), outcome: Some(outcome) })
}

/// A coordinator request: the descriptor code and the fields of its list.
fn control(bytes: &[u8]) -> Result<(u64, Vec<Value>), Error> {
    let bad = |what: &str| amqp(AmqpError::DecodeError, format!("not a transaction control message: {what}"));
    let m = message::decode(bytes).map_err(|e| bad(&e.to_string()))?;
    let Body::Value(AmqpValue(Value::Described(d))) = m.body else { return Err(bad("the body is not a described value")) };
    let code = match &d.descriptor {
        Descriptor::Code(c) => *c,
        Descriptor::Name(n) if n.as_str() == "amqp:declare:list" => DECLARE,
        Descriptor::Name(n) if n.as_str() == "amqp:discharge:list" => DISCHARGE,
        Descriptor::Name(n) => return Err(bad(n.as_str())),
    };
    let fields = match d.value {
        Value::List(l) => l,
        _ => return Err(bad("the value is not a list")),
    };
    Ok((code, fields))
}

impl Conn<'_> {
    /// Declares or discharges a transaction. A commit is answered once durable.
    pub(super) fn on_coordinator_request(&mut self, channel: u16, delivery_id: u32, settled: bool, bytes: &[u8]) -> Answer {
        let rejected = |e: Error| Answer::Now(DeliveryState::Rejected(Rejected { error: Some(e) }));
        let (code, fields) = match control(bytes) {
            Ok(c) => c,
            Err(e) => return rejected(e),
        };
        match code {
            DECLARE => match self.service.broker.declare_transaction() {
                Ok(id) => {
                    self.transactions.push(id);
                    Answer::Now(DeliveryState::Declared(Declared { txn_id: wire_id(id) }))
                }
                Err(e) => rejected(broker_error(&e)),
            },
            DISCHARGE => {
                let Some(Value::Binary(raw)) = fields.first() else {
                    return rejected(amqp(AmqpError::DecodeError, "a discharge needs a txn-id"));
                };
                let fail = matches!(fields.get(1), Some(Value::Bool(true)));
                let Some(id) = id_of(raw) else { return rejected(unknown(raw)) };
                self.transactions.retain(|t| *t != id);
                match self.service.broker.discharge(id, !fail) {
                    Ok(staged) => {
                        let broker = self.service.broker.clone();
                        self.pending.push(Box::pin(async move {
                            let state = match broker.finish(staged).await {
                                Ok(()) => DeliveryState::Accepted(Accepted {}),
                                Err(e) => DeliveryState::Rejected(Rejected { error: Some(broker_error(&e)) }),
                            };
                            Completion { channel, role: Role::Receiver, delivery_id, state, reply: !settled }
                        }));
                        Answer::Later
                    }
                    Err(e) => rejected(broker_error(&e)),
                }
            }
            other => rejected(amqp(AmqpError::NotImplemented, format!("unknown transaction control 0x{other:x}"))),
        }
    }
}
