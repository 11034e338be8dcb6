//! The Storage Queue service: every operation of the REST API, in domain terms.
//!
//! Each mutating operation changes the in-memory state and commits the matching store
//! ops while holding the queue's lock (so the log's order is the state's order), then
//! releases the lock and awaits durability before answering.

use std::collections::{BTreeMap, HashMap};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use lapis_store::{Commit, Op, Store};
use parking_lot::{Mutex, RwLock};
use rand::RngCore;

use super::codec::{self, MessageState, PopReceipt, QueueRecord};
use super::error::{QueueError, QueueResult};
use super::limits::{self, *};
use super::model::*;
use super::recovery::Recovery;
use super::state::{Body, InlineBudget, Message, QueueState};
use crate::clock::{Clock, Millis};
use crate::time_fmt::MAX_MS;

type QueueRef = Arc<Mutex<QueueState>>;

pub struct QueueService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    queues: RwLock<BTreeMap<(String, String), QueueRef>>,
    properties: RwLock<HashMap<String, ServiceProperties>>,
    next_queue_id: AtomicU64,
    bodies: InlineBudget,
}

fn new_pop_receipt() -> PopReceipt {
    let mut p = [0u8; codec::POP_RECEIPT_LEN];
    rand::thread_rng().fill_bytes(&mut p);
    p
}

fn render_pop_receipt(p: &PopReceipt) -> String {
    B64.encode(p)
}

fn parse_pop_receipt(text: &str) -> QueueResult<PopReceipt> {
    B64.decode(text.trim())
        .ok()
        .and_then(|v| PopReceipt::try_from(v.as_slice()).ok())
        .ok_or_else(|| QueueError::InvalidParameter { name: "popreceipt", value: text.to_string(), reason: "not a pop receipt issued by this service" })
}

fn parse_message_id(text: &str) -> QueueResult<u128> {
    uuid::Uuid::parse_str(text).map(|u| u.as_u128()).map_err(|_| QueueError::MessageNotFound)
}

fn render_message_id(id: u128) -> String {
    uuid::Uuid::from_u128(id).hyphenated().to_string()
}

fn check_text(text: &str) -> QueueResult<()> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(QueueError::MessageTooLarge { limit: MAX_MESSAGE_BYTES });
    }
    Ok(())
}

/// Parameters of Put Message, already parsed to numbers.
#[derive(Debug, Clone, Copy, Default)]
pub struct PutOptions {
    pub visibility_timeout: Option<i64>,
    /// Seconds; `-1` for never.
    pub ttl: Option<i64>,
}

impl QueueService {
    /// A service with no queues.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> QueueService {
        let recovery = Recovery::new(store.keeps_values_on_disk());
        Self::recover(store, clock, recovery)
    }

    /// A service holding what `recovery` rebuilt from the store's replay.
    pub fn recover(store: Arc<dyn Store>, clock: Arc<dyn Clock>, recovery: Recovery) -> QueueService {
        let rebuilt = recovery.finish();
        let queues = rebuilt.queues.into_iter().map(|q| {
            let key = (q.record.account.clone(), q.record.name.clone());
            (key, Arc::new(Mutex::new(q)))
        });
        QueueService {
            bodies: InlineBudget::new(store.keeps_values_on_disk(), rebuilt.inline_budget_left),
            store,
            clock,
            queues: RwLock::new(queues.collect()),
            properties: RwLock::new(rebuilt.properties),
            next_queue_id: AtomicU64::new(rebuilt.next_queue_id),
        }
    }

    /// Keeps `text` in memory if the store cannot read it back or the budget allows.
    fn hold_body(&self, text: String) -> Body {
        self.bodies.hold(text.into_bytes())
    }

    fn release_body(&self, body: &Body) {
        self.bodies.release(body)
    }

    fn queue(&self, account: &str, name: &str) -> QueueResult<QueueRef> {
        self.queues
            .read()
            .get(&(account.to_string(), name.to_string()))
            .cloned()
            .ok_or(QueueError::QueueNotFound)
    }

    fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    // ---- queues -------------------------------------------------------------------

    pub async fn create_queue(&self, account: &str, name: &str, metadata: Metadata) -> QueueResult<Created> {
        check_queue_name(name)?;
        check_metadata(&metadata)?;
        let commit = {
            let mut queues = self.queues.write();
            let key = (account.to_string(), name.to_string());
            if let Some(existing) = queues.get(&key) {
                let same = same_metadata(&existing.lock().record.metadata, &metadata);
                return if same { Ok(Created::AlreadyExisted) } else { Err(QueueError::QueueAlreadyExists) };
            }
            let record = QueueRecord {
                id: self.next_queue_id.fetch_add(1, Ordering::SeqCst),
                account: account.to_string(),
                name: name.to_string(),
                metadata,
                acl: Vec::new(),
            };
            let commit = self.store.commit(&[put_queue(&record)])?;
            queues.insert(key, Arc::new(Mutex::new(QueueState::new(record))));
            commit
        };
        commit.durable().await?;
        Ok(Created::New)
    }

    pub async fn delete_queue(&self, account: &str, name: &str) -> QueueResult<()> {
        let commit = {
            let mut queues = self.queues.write();
            let key = (account.to_string(), name.to_string());
            let q = queues.get(&key).cloned().ok_or(QueueError::QueueNotFound)?;
            let mut q = q.lock();
            let ops = [
                Op::Delete { key: codec::queue_key(account, name) },
                Op::DeletePrefix { prefix: codec::messages_prefix(q.record.id) },
            ];
            let commit = self.store.commit(&ops)?;
            q.clear().iter().for_each(|m| self.release_body(&m.body));
            queues.remove(&key);
            commit
        };
        commit.durable().await?;
        Ok(())
    }

    /// Metadata and the approximate message count.
    pub fn queue_metadata(&self, account: &str, name: &str) -> QueueResult<(Metadata, usize)> {
        let q = self.queue(account, name)?;
        let q = q.lock();
        Ok((q.record.metadata.clone(), q.len()))
    }

    pub async fn set_queue_metadata(&self, account: &str, name: &str, metadata: Metadata) -> QueueResult<()> {
        check_metadata(&metadata)?;
        self.update_record(account, name, |r| r.metadata = metadata).await
    }

    pub fn queue_acl(&self, account: &str, name: &str) -> QueueResult<Vec<SignedIdentifier>> {
        Ok(self.queue(account, name)?.lock().record.acl.clone())
    }

    pub async fn set_queue_acl(&self, account: &str, name: &str, acl: Vec<SignedIdentifier>) -> QueueResult<()> {
        limits::check_signed_identifiers(&acl)?;
        self.update_record(account, name, |r| r.acl = acl).await
    }

    async fn update_record(&self, account: &str, name: &str, change: impl FnOnce(&mut QueueRecord)) -> QueueResult<()> {
        let q = self.queue(account, name)?;
        let commit = {
            let mut q = q.lock();
            let mut record = q.record.clone();
            change(&mut record);
            let commit = self.store.commit(&[put_queue(&record)])?;
            q.record = record;
            commit
        };
        commit.durable().await?;
        Ok(())
    }

    /// Queues of `account` whose names start with `prefix`, in name order, from
    /// `marker` (the first name of the page) on.
    pub fn list_queues(&self, account: &str, prefix: &str, marker: Option<&str>, max_results: Option<i64>) -> QueueResult<QueuePage> {
        let max = max_results.unwrap_or(MAX_LIST_RESULTS);
        check_range("maxresults", max, 1, MAX_LIST_RESULTS)?;
        let queues = self.queues.read();
        let (page, next_marker) = crate::storage_rules::page(&queues, account, prefix, marker, max as usize, |name, q| QueueListing {
            name: name.to_string(),
            metadata: q.lock().record.metadata.clone(),
        });
        Ok(QueuePage { queues: page, next_marker })
    }

    // ---- messages -----------------------------------------------------------------

    pub async fn put_message(&self, account: &str, name: &str, text: String, options: PutOptions) -> QueueResult<PutReceipt> {
        let vt = options.visibility_timeout.unwrap_or(0);
        check_range("visibilitytimeout", vt, 0, MAX_VISIBILITY_SECS)?;
        let ttl = options.ttl.unwrap_or(DEFAULT_TTL_SECS);
        if ttl == 0 || ttl < -1 {
            return Err(QueueError::InvalidParameter {
                name: "messagettl",
                value: ttl.to_string(),
                reason: "Value must be greater than or equal to 1, or -1 to indicate an infinite TTL.",
            });
        }
        if ttl != -1 && options.visibility_timeout.is_some() && vt >= ttl {
            return Err(QueueError::InvalidParameter {
                name: "visibilitytimeout",
                value: vt.to_string(),
                reason: "messagettl must be greater than visibilitytimeout.",
            });
        }
        check_text(&text)?;
        let q = self.queue(account, name)?;
        let now = self.now();
        let expires = if ttl == -1 { MAX_MS } else { now.saturating_add(ttl.saturating_mul(1000)).min(MAX_MS) };
        let id = uuid::Uuid::new_v4().as_u128();
        let (receipt, commit) = {
            let mut q = q.lock();
            let state = MessageState {
                seq: q.take_seq(),
                inserted: now,
                expires,
                visible: now + vt * 1000,
                dequeue_count: 0,
                pop_receipt: new_pop_receipt(),
            };
            let queue_id = q.record.id;
            let ops = [
                Op::Put { key: codec::body_key(queue_id, id), value: text.as_bytes().to_vec() },
                Op::Put { key: codec::state_key(queue_id, id), value: state.encode() },
            ];
            let commit = self.store.commit(&ops)?;
            q.put(id, Message { state, body: self.hold_body(text) });
            let receipt = PutReceipt {
                id: render_message_id(id),
                inserted: now,
                expires,
                pop_receipt: render_pop_receipt(&state.pop_receipt),
                next_visible: state.visible,
            };
            (receipt, commit)
        };
        commit.durable().await?;
        Ok(receipt)
    }

    pub async fn get_messages(&self, account: &str, name: &str, count: Option<i64>, visibility_timeout: Option<i64>) -> QueueResult<Vec<ReceivedMessage>> {
        let n = count.unwrap_or(1);
        check_range("numofmessages", n, 1, MAX_MESSAGES_PER_GET)?;
        let vt = visibility_timeout.unwrap_or(DEFAULT_GET_VISIBILITY_SECS);
        check_range("visibilitytimeout", vt, 1, MAX_VISIBILITY_SECS)?;
        let q = self.queue(account, name)?;
        let now = self.now();
        let (taken, commit, queue_id) = {
            let mut q = q.lock();
            let (ids, expired) = q.visible(now, n as usize);
            let queue_id = q.record.id;
            let mut ops = self.purge(&mut q, &expired);
            let mut taken = Vec::with_capacity(ids.len());
            for id in ids {
                let mut m = q.get(id).expect("visible ids are present").clone();
                m.state.dequeue_count += 1;
                m.state.visible = now + vt * 1000;
                m.state.pop_receipt = new_pop_receipt();
                ops.push(Op::Put { key: codec::state_key(queue_id, id), value: m.state.encode() });
                q.put(id, m.clone());
                taken.push((id, m));
            }
            let commit = self.store.commit(&ops)?;
            (taken, commit, queue_id)
        };
        commit.durable().await?;
        self.render(queue_id, taken, true).await
    }

    pub async fn peek_messages(&self, account: &str, name: &str, count: Option<i64>) -> QueueResult<Vec<ReceivedMessage>> {
        let n = count.unwrap_or(1);
        check_range("numofmessages", n, 1, MAX_MESSAGES_PER_GET)?;
        let q = self.queue(account, name)?;
        let now = self.now();
        let (taken, queue_id) = {
            let q = q.lock();
            let (ids, _) = q.visible(now, n as usize);
            (ids.into_iter().map(|id| (id, q.get(id).expect("visible ids are present").clone())).collect(), q.record.id)
        };
        self.render(queue_id, taken, false).await
    }

    async fn render(&self, queue_id: u64, taken: Vec<(u128, Message)>, dequeued: bool) -> QueueResult<Vec<ReceivedMessage>> {
        let mut out = Vec::with_capacity(taken.len());
        for (id, m) in taken {
            let text = match &m.body {
                Body::Inline(t) => String::from_utf8_lossy(t).into_owned(),
                Body::Stored { .. } => match self.store.read(&codec::body_key(queue_id, id)).await? {
                    Some(bytes) => String::from_utf8(bytes).unwrap_or_default(),
                    // Deleted or cleared by someone else since we looked.
                    None => continue,
                },
            };
            out.push(ReceivedMessage {
                id: render_message_id(id),
                inserted: m.state.inserted,
                expires: m.state.expires,
                dequeue_count: m.state.dequeue_count,
                text,
                pop_receipt: dequeued.then(|| render_pop_receipt(&m.state.pop_receipt)),
                next_visible: dequeued.then_some(m.state.visible),
            });
        }
        Ok(out)
    }

    /// Removes expired messages from `q`, returning the store ops that record it.
    fn purge(&self, q: &mut QueueState, expired: &[u128]) -> Vec<Op> {
        let queue_id = q.record.id;
        let mut ops = Vec::with_capacity(expired.len() * 2);
        for &id in expired {
            if let Some(m) = q.remove(id) {
                self.release_body(&m.body);
                ops.push(Op::Delete { key: codec::body_key(queue_id, id) });
                ops.push(Op::Delete { key: codec::state_key(queue_id, id) });
            }
        }
        ops
    }

    /// Finds the message a client names by id and pop receipt, as Delete and Update do.
    fn check_receipt(q: &QueueState, id: u128, pop_receipt: &PopReceipt, now: Millis) -> QueueResult<Message> {
        match q.get(id) {
            Some(m) if m.state.pop_receipt == *pop_receipt && m.state.expires > now => Ok(m.clone()),
            _ => Err(QueueError::MessageNotFound),
        }
    }

    pub async fn delete_message(&self, account: &str, name: &str, message_id: &str, pop_receipt: &str) -> QueueResult<()> {
        let q = self.queue(account, name)?;
        let id = parse_message_id(message_id)?;
        let receipt = parse_pop_receipt(pop_receipt)?;
        let now = self.now();
        let commit = {
            let mut q = q.lock();
            Self::check_receipt(&q, id, &receipt, now)?;
            let ops = self.purge(&mut q, &[id]);
            self.store.commit(&ops)?
        };
        commit.durable().await?;
        Ok(())
    }

    pub async fn update_message(
        &self,
        account: &str,
        name: &str,
        message_id: &str,
        pop_receipt: &str,
        visibility_timeout: Option<i64>,
        text: Option<String>,
    ) -> QueueResult<UpdateReceipt> {
        let vt = visibility_timeout.ok_or(QueueError::InvalidParameter {
            name: "visibilitytimeout",
            value: String::new(),
            reason: "visibilitytimeout is required",
        })?;
        check_range("visibilitytimeout", vt, 0, MAX_VISIBILITY_SECS)?;
        if let Some(t) = &text {
            check_text(t)?;
        }
        let q = self.queue(account, name)?;
        let id = parse_message_id(message_id)?;
        let receipt = parse_pop_receipt(pop_receipt)?;
        let now = self.now();
        let (answer, commit) = {
            let mut q = q.lock();
            let mut m = Self::check_receipt(&q, id, &receipt, now)?;
            let queue_id = q.record.id;
            m.state.visible = now + vt * 1000;
            m.state.pop_receipt = new_pop_receipt();
            let mut ops = Vec::with_capacity(2);
            if let Some(t) = text {
                ops.push(Op::Put { key: codec::body_key(queue_id, id), value: t.as_bytes().to_vec() });
                self.release_body(&m.body);
                m.body = self.hold_body(t);
            }
            ops.push(Op::Put { key: codec::state_key(queue_id, id), value: m.state.encode() });
            let commit = self.store.commit(&ops)?;
            let answer = UpdateReceipt { pop_receipt: render_pop_receipt(&m.state.pop_receipt), next_visible: m.state.visible };
            q.put(id, m);
            (answer, commit)
        };
        commit.durable().await?;
        Ok(answer)
    }

    pub async fn clear_messages(&self, account: &str, name: &str) -> QueueResult<()> {
        let q = self.queue(account, name)?;
        let commit = {
            let mut q = q.lock();
            let commit = self.store.commit(&[Op::DeletePrefix { prefix: codec::messages_prefix(q.record.id) }])?;
            q.clear().iter().for_each(|m| self.release_body(&m.body));
            commit
        };
        commit.durable().await?;
        Ok(())
    }

    /// Deletes every expired message of every queue. Returns how many went.
    pub async fn sweep_expired(&self) -> QueueResult<usize> {
        let now = self.now();
        let queues: Vec<QueueRef> = self.queues.read().values().cloned().collect();
        let mut removed = 0;
        let mut commits: Vec<Commit> = Vec::new();
        for q in queues {
            let mut q = q.lock();
            let expired = q.expired(now);
            if expired.is_empty() {
                continue;
            }
            removed += expired.len();
            let ops = self.purge(&mut q, &expired);
            commits.push(self.store.commit(&ops)?);
        }
        for c in commits {
            c.durable().await?;
        }
        Ok(removed)
    }

    // ---- service ------------------------------------------------------------------

    pub fn service_properties(&self, account: &str) -> ServiceProperties {
        self.properties.read().get(account).cloned().unwrap_or_default()
    }

    pub async fn set_service_properties(&self, account: &str, update: ServicePropertiesUpdate) -> QueueResult<()> {
        limits::check_service_properties(&update)?;
        let commit = {
            let mut all = self.properties.write();
            let mut props = all.get(account).cloned().unwrap_or_default();
            if let Some(l) = update.logging {
                props.logging = l;
            }
            if let Some(m) = update.hour_metrics {
                props.hour_metrics = m;
            }
            if let Some(m) = update.minute_metrics {
                props.minute_metrics = m;
            }
            if let Some(c) = update.cors {
                props.cors = c;
            }
            let commit = self.store.commit(&[Op::Put { key: codec::properties_key(account), value: codec::encode_json(&props) }])?;
            all.insert(account.to_string(), props);
            commit
        };
        commit.durable().await?;
        Ok(())
    }
}

fn put_queue(record: &QueueRecord) -> Op {
    Op::Put { key: codec::queue_key(&record.account, &record.name), value: codec::encode_json(record) }
}

fn same_metadata(a: &Metadata, b: &Metadata) -> bool {
    let norm = |m: &Metadata| {
        let mut v: Vec<(String, String)> = m.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect();
        v.sort();
        v
    };
    norm(a) == norm(b)
}

