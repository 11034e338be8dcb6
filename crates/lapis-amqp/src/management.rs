//! The `$management` node of an entity (`<entity>/$management`): request/response
//! operations the SDKs use beside plain send and receive — renew locks, peek, schedule
//! and cancel scheduled messages, receive deferred messages by sequence number, settle
//! messages that were not received on a link, the session operations (renew the
//! session lock, get and set its state, list sessions), and a subscription's rules
//! (add, remove, enumerate; their wire form is in [`crate::rules`]).
//!
//! Requests carry `operation` in their application properties and an amqp-value map
//! with string keys as body; answers carry `statusCode` (200 on success; the Python SDK
//! accepts nothing else), `statusDescription`, `errorCondition` on failure, and a map
//! body.

use fe2o3_amqp_types::messaging::message::__private::Serializable;
use fe2o3_amqp_types::messaging::{AmqpValue, ApplicationProperties, Body, Message, Properties};
use fe2o3_amqp_types::primitives::{Array, Binary, OrderedMap, SimpleValue, Symbol, Timestamp, Uuid, Value};
use lapis_core::broker::{parse_address, Broker, BrokerError, ReceiveMode, Settlement, SubQueue};
use lapis_core::Clock;

use crate::errors::{broker_error, condition_text, status_code};
use crate::delivery;
use crate::message::{self, Decoded};

/// The suffix of management node addresses.
pub const SUFFIX: &str = "/$management";

/// At most this many items per request (sequence numbers, lock tokens, messages).
const MAX_ITEMS: usize = 5000;
/// Largest session state (Azure: bounded by the message size; Lapis: 256 KiB).
const MAX_SESSION_STATE: usize = 256 << 10;

/// A failed operation: status code, description, AMQP condition.
struct Failure(i32, String, String);

impl From<BrokerError> for Failure {
    fn from(e: BrokerError) -> Self {
        Failure(status_code(&e), e.to_string(), condition_text(&broker_error(&e)))
    }
}

fn bad(description: impl Into<String>) -> Failure {
    Failure(400, description.into(), crate::errors::ARGUMENT_ERROR.into())
}

/// The sessions the requesting connection holds: (entity path lowercase, session id,
/// lock token). Session operations act only on a session the requester holds.
#[derive(Debug, Default)]
pub struct HeldSessions(pub Vec<(String, String, uuid::Uuid)>);

impl HeldSessions {
    fn token(&self, entity: &str, session: &str) -> Result<uuid::Uuid, Failure> {
        self.0
            .iter()
            .find(|(e, id, _)| e.eq_ignore_ascii_case(entity) && id == session)
            .map(|(_, _, t)| *t)
            .ok_or_else(|| Failure::from(BrokerError::SessionLockLost))
    }
}

/// `topic/Subscriptions/name` → (`topic`, `name`).
fn split_subscription(path: &str) -> Option<(&str, &str)> {
    let lower = path.to_ascii_lowercase();
    let at = lower.find("/subscriptions/")?;
    Some((&path[..at], &path[at + "/subscriptions/".len()..]))
}

type Map = OrderedMap<Value, Value>;

fn key(k: &str) -> Value {
    Value::String(k.to_string())
}

fn field<'a>(body: &'a Map, name: &str) -> Option<&'a Value> {
    body.get(&key(name)).or_else(|| body.get(&Value::Symbol(Symbol::from(name))))
}

fn list<'a>(v: Option<&'a Value>, name: &str) -> Result<&'a [Value], Failure> {
    let items = match v {
        Some(Value::Array(a)) => &a.0[..],
        Some(Value::List(l)) => &l[..],
        _ => return Err(bad(format!("'{name}' must be an array"))),
    };
    if items.len() > MAX_ITEMS {
        return Err(bad(format!("'{name}' has more than {MAX_ITEMS} items")));
    }
    Ok(items)
}

fn long(v: &Value) -> Option<i64> {
    match v {
        Value::Long(n) => Some(*n),
        Value::Int(n) => Some(*n as i64),
        Value::Uint(n) => Some(*n as i64),
        Value::Ulong(n) => Some(*n as i64),
        _ => None,
    }
}

fn lock_tokens(body: &Map) -> Result<Vec<uuid::Uuid>, Failure> {
    list(field(body, "lock-tokens"), "lock-tokens")?
        .iter()
        .map(|v| match v {
            Value::Uuid(u) => Ok(uuid::Uuid::from_bytes(*u.as_inner())),
            _ => Err(bad("lock-tokens must be uuids")),
        })
        .collect()
}

fn sequence_numbers(body: &Map) -> Result<Vec<i64>, Failure> {
    list(field(body, "sequence-numbers"), "sequence-numbers")?.iter().map(|v| long(v).ok_or_else(|| bad("sequence-numbers must be longs"))).collect()
}

fn text(body: &Map, name: &str) -> Option<String> {
    match field(body, name) {
        Some(Value::String(s)) => Some(s.clone()).filter(|s| !s.is_empty()),
        _ => None,
    }
}

fn messages_answer(items: Vec<Value>) -> Map {
    let mut out = Map::new();
    out.insert(key("messages"), Value::List(items));
    out
}

/// Runs one request against `entity_path` (the node's entity, possibly a dead-letter
/// sub-queue) and builds the answer.
pub async fn handle(broker: &Broker, entity_path: &str, held: &HeldSessions, request: &Decoded) -> Message<Body<Value>> {
    let operation = request.application_properties.as_ref().and_then(|a| match a.0.get("operation") {
        Some(SimpleValue::String(s)) => Some(s.clone()),
        Some(SimpleValue::Symbol(s)) => Some(s.0.clone()),
        _ => None,
    });
    let body = match &request.body {
        Body::Value(AmqpValue(Value::Map(m))) => m.clone(),
        _ => Map::new(),
    };
    let (entity, sub) = parse_address(entity_path);
    let result = match operation.as_deref() {
        Some(op) => run(broker, entity, sub, held, op, &body).await,
        None => Err(bad("The request has no operation.")),
    };
    answer(request, result)
}

fn encoded_messages(deliveries: &[lapis_core::broker::Delivery], with_tokens: bool) -> Vec<Value> {
    deliveries
        .iter()
        .filter_map(|d| {
            let bytes = delivery::encode(d).ok()?;
            let mut m = Map::new();
            m.insert(key("message"), Value::Binary(bytes.into()));
            if let (true, Some(token)) = (with_tokens, d.lock_token) {
                m.insert(key("lock-token"), Value::Uuid(Uuid::from(*token.as_bytes())));
            }
            Some(Value::Map(m))
        })
        .collect()
}

fn int_field(body: &Map, name: &str, default: i64, max: i64) -> usize {
    field(body, name).and_then(long).unwrap_or(default).clamp(0, max) as usize
}

async fn run(broker: &Broker, entity: &str, sub: SubQueue, held: &HeldSessions, operation: &str, body: &Map) -> Result<(i32, Map), Failure> {
    let session_id = text(body, "session-id");
    match operation {
        "com.microsoft:renew-lock" => {
            let tokens = lock_tokens(body)?;
            let until = broker.renew_locks(entity, sub, &tokens)?;
            let mut out = Map::new();
            out.insert(key("expirations"), Value::Array(Array(until.into_iter().map(|ms| Value::Timestamp(Timestamp::from_milliseconds(ms))).collect())));
            Ok((200, out))
        }
        "com.microsoft:peek-message" => {
            let from = field(body, "from-sequence-number").and_then(long).unwrap_or(0);
            let count = field(body, "message-count").and_then(long).unwrap_or(1).clamp(1, MAX_ITEMS as i64) as usize;
            let seen = broker.peek_in(entity, sub, session_id.as_deref(), from, count).await?;
            if seen.is_empty() {
                return Ok((204, Map::new()));
            }
            Ok((200, messages_answer(encoded_messages(&seen, false))))
        }
        "com.microsoft:schedule-message" => {
            let mut outgoing = Vec::new();
            for item in list(field(body, "messages"), "messages")? {
                let Value::Map(m) = item else { return Err(bad("each scheduled message must be a map")) };
                let Some(Value::Binary(bytes)) = field(m, "message") else { return Err(bad("a scheduled message needs 'message'")) };
                let o = message::to_outgoing(bytes.to_vec()).map_err(|e| bad(e.to_string()))?;
                if o.scheduled_enqueue_at.is_none() {
                    return Err(bad("a scheduled message needs x-opt-scheduled-enqueue-time"));
                }
                outgoing.push(o);
            }
            let seqs = broker.send(entity, outgoing).await?;
            let mut out = Map::new();
            out.insert(key("sequence-numbers"), Value::Array(Array(seqs.into_iter().map(|s| Value::Long(s.unwrap_or(-1))).collect())));
            Ok((200, out))
        }
        "com.microsoft:cancel-scheduled-message" => {
            broker.cancel_scheduled(entity, &sequence_numbers(body)?).await?;
            Ok((200, Map::new()))
        }
        "com.microsoft:receive-by-sequence-number" => {
            let seqs = sequence_numbers(body)?;
            let mode = match field(body, "receiver-settle-mode").and_then(long) {
                Some(0) => ReceiveMode::ReceiveAndDelete,
                _ => ReceiveMode::PeekLock,
            };
            let got = broker.receive_deferred(entity, sub, mode, &seqs).await?;
            if let Some(s) = &session_id {
                if got.iter().any(|d| d.session_id.as_deref() != Some(s)) {
                    return Err(Failure::from(BrokerError::MessageNotFound(seqs.first().copied().unwrap_or(0))));
                }
            }
            Ok((200, messages_answer(encoded_messages(&got, true))))
        }
        "com.microsoft:update-disposition" => {
            let status = text(body, "disposition-status").ok_or_else(|| bad("disposition-status is required"))?;
            for token in lock_tokens(body)? {
                let settlement = match status.as_str() {
                    "completed" => Settlement::Complete,
                    "abandoned" => Settlement::Abandon { properties: Default::default() },
                    "defered" | "deferred" => Settlement::Defer { properties: Default::default() },
                    "suspended" => Settlement::DeadLetter {
                        reason: text(body, "deadletter-reason"),
                        description: text(body, "deadletter-description"),
                        properties: Default::default(),
                    },
                    other => return Err(bad(format!("unknown disposition-status '{other}'"))),
                };
                broker.settle(entity, sub, token, settlement).await?;
            }
            Ok((200, Map::new()))
        }
        "com.microsoft:renew-session-lock" => {
            let id = session_id.ok_or_else(|| bad("session-id is required"))?;
            let until = broker.renew_session_lock(entity, held.token(entity, &id)?)?;
            let mut out = Map::new();
            out.insert(key("expiration"), Value::Timestamp(Timestamp::from_milliseconds(until)));
            Ok((200, out))
        }
        "com.microsoft:get-session-state" => {
            let id = session_id.ok_or_else(|| bad("session-id is required"))?;
            let state = broker.session_state(entity, held.token(entity, &id)?)?;
            let mut out = Map::new();
            out.insert(key("session-state"), state.map(|b| Value::Binary(Binary::from(b))).unwrap_or(Value::Null));
            Ok((200, out))
        }
        "com.microsoft:set-session-state" => {
            let id = session_id.ok_or_else(|| bad("session-id is required"))?;
            let state = match field(body, "session-state") {
                Some(Value::Binary(b)) => Some(b.to_vec()),
                None | Some(Value::Null) => None,
                Some(_) => return Err(bad("session-state must be binary")),
            };
            if state.as_ref().is_some_and(|s| s.len() > MAX_SESSION_STATE) {
                return Err(bad(format!("session-state is larger than {MAX_SESSION_STATE} bytes")));
            }
            broker.set_session_state(entity, held.token(entity, &id)?, state).await?;
            Ok((200, Map::new()))
        }
        "com.microsoft:get-message-sessions" => {
            let skip = int_field(body, "skip", 0, i32::MAX as i64);
            let top = int_field(body, "top", 100, MAX_ITEMS as i64);
            // 253402300800000 (year 10000) means "every session with messages or state".
            let since = match field(body, "last-updated-time") {
                Some(Value::Timestamp(t)) if t.milliseconds() < 253_402_300_800_000 => Some(t.milliseconds()),
                _ => None,
            };
            let ids: Vec<Value> = broker.list_sessions_since(entity, since)?.into_iter().skip(skip).take(top).map(Value::String).collect();
            if ids.is_empty() {
                return Ok((204, Map::new()));
            }
            let mut out = Map::new();
            out.insert(key("sessions-ids"), Value::Array(Array(ids)));
            out.insert(key("skip"), Value::Int((skip + top) as i32));
            Ok((200, out))
        }
        "com.microsoft:add-rule" => {
            let (topic, subscription) = split_subscription(entity).ok_or_else(|| bad("rules belong to subscriptions"))?;
            let name = text(body, "rule-name").ok_or_else(|| bad("rule-name is required"))?;
            let Some(Value::Map(description)) = field(body, "rule-description") else { return Err(bad("rule-description must be a map")) };
            let rule = crate::rules::rule_from_request(&name, description).map_err(bad)?;
            broker.add_rule(topic, subscription, rule).await?;
            Ok((200, Map::new()))
        }
        "com.microsoft:remove-rule" => {
            let (topic, subscription) = split_subscription(entity).ok_or_else(|| bad("rules belong to subscriptions"))?;
            let name = text(body, "rule-name").ok_or_else(|| bad("rule-name is required"))?;
            broker.remove_rule(topic, subscription, &name).await.map_err(|e| match e {
                BrokerError::EntityNotFound(_) => Failure::from(BrokerError::EntityNotFound(format!("{entity}/Rules/{name}"))),
                other => Failure::from(other),
            })?;
            Ok((200, Map::new()))
        }
        "com.microsoft:enumerate-rules" => {
            let (topic, subscription) = split_subscription(entity).ok_or_else(|| bad("rules belong to subscriptions"))?;
            let skip = int_field(body, "skip", 0, i32::MAX as i64);
            let top = int_field(body, "top", 100, i32::MAX as i64);
            let now = lapis_core::SystemClock.now_ms();
            let rules: Vec<Value> = broker
                .rules(topic, subscription)?
                .iter()
                .skip(skip)
                .take(top)
                .map(|r| {
                    let mut m = Map::new();
                    m.insert(key("rule-description"), crate::rules::rule_description(r, now));
                    Value::Map(m)
                })
                .collect();
            if rules.is_empty() {
                return Ok((204, Map::new()));
            }
            let mut out = Map::new();
            out.insert(key("rules"), Value::List(rules));
            Ok((200, out))
        }
        other => Err(Failure(501, format!("The operation '{other}' is not supported by Lapis yet."), "amqp:not-implemented".into())),
    }
}

fn answer(request: &Decoded, result: Result<(i32, Map), Failure>) -> Message<Body<Value>> {
    let mut props = Properties::builder().build();
    props.correlation_id = request.properties.as_ref().and_then(|p| p.message_id.clone());
    let (status, description, condition, body) = match result {
        Ok((status, body)) => (status, "OK".to_string(), None, body),
        Err(Failure(status, description, condition)) => (status, description, Some(condition), Map::new()),
    };
    let mut app = ApplicationProperties::builder()
        .insert("statusCode", SimpleValue::Int(status))
        .insert("statusDescription", SimpleValue::String(description))
        .build();
    if let Some(c) = condition {
        app.0.insert("errorCondition".into(), SimpleValue::Symbol(Symbol::from(c)));
    }
    Message::builder().properties(props).application_properties(app).body(Body::Value(AmqpValue(Value::Map(body)))).build()
}

/// Encodes an answer for transfer.
pub fn encode(answer: Message<Body<Value>>) -> Result<Vec<u8>, String> {
    serde_amqp::to_vec(&Serializable(answer)).map_err(|e| e.to_string())
}
