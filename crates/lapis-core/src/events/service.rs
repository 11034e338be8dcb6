//! The Event Grid service's topics: created and deleted at runtime and kept in the
//! store, each with its access keys, its event subscriptions and an event log that
//! holds what publishers handed over; publishing checks the credential and the body,
//! then appends every event, acknowledged once durable.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use lapis_store::partition::{Appended, EventLog, LogFactory};
use lapis_store::{Op, Store};
use parking_lot::{Mutex, RwLock};
use rand::RngCore;

use super::error::{EventsError, EventsResult};
use super::model::{check_topic_name, resource_path, InputSchema, TopicKind, TopicRecord};
use super::publish::{parse_publish, PublishedEvent};
use super::delivery::state::topic_prefixes;
use super::delivery::worker::Resume;
use super::delivery::pull::PullQueue;
use super::delivery::DeliveryTransport;
use super::recovery::EventsRecovery;
use super::running::Running;
use super::subscription::SubscriptionSpec;
use crate::auth::eventgrid_sas::{check_key, check_token};
use crate::clock::Clock;

pub(super) const TOPIC_PREFIX: u8 = b'G';
pub(super) const SUBSCRIPTION_PREFIX: u8 = b'g';
/// How long a custom topic keeps events: the longest time to live plus an hour.
const RETENTION_MS: i64 = 25 * 3600 * 1000;
/// A namespace topic keeps them 7 days (its longest retention), plus an hour.
const NAMESPACE_RETENTION_MS: i64 = (7 * 24 + 1) * 3600 * 1000;

fn topic_key(name: &str) -> Vec<u8> {
    let mut k = vec![TOPIC_PREFIX];
    k.extend_from_slice(name.to_ascii_lowercase().as_bytes());
    k
}

/// `g<topic>/<subscription>`: topic names have no '/'.
pub(super) fn subscription_key(topic: &str, name: &str) -> Vec<u8> {
    let mut k = vec![SUBSCRIPTION_PREFIX];
    k.extend_from_slice(format!("{}/{}", topic.to_ascii_lowercase(), name.to_ascii_lowercase()).as_bytes());
    k
}

fn put_topic(record: &TopicRecord) -> Op {
    Op::Put { key: topic_key(&record.name), value: serde_json::to_vec(record).expect("a topic record serializes") }
}

/// Writes a subscription's record.
pub(super) fn put_subscription(record: &SubscriptionRecord) -> Op {
    Op::Put { key: subscription_key(&record.topic, &record.name), value: serde_json::to_vec(record).expect("a subscription record serializes") }
}

/// An event subscription as it is kept in the store.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SubscriptionRecord {
    pub topic: String,
    pub name: String,
    pub created_at: crate::clock::Millis,
    pub spec: SubscriptionSpec,
    /// Set while a webhook that chose manual validation has not yet GOT its
    /// validation URL: nothing is delivered until it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting_validation: Option<ManualValidation>,
}

/// A manual validation the endpoint still owes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ManualValidation {
    pub code: String,
    pub url: String,
    /// The GET must come before this.
    pub until: crate::clock::Millis,
}

impl SubscriptionRecord {
    /// Azure's `provisioningState`: `Succeeded`, or `AwaitingManualAction` until the
    /// endpoint validates by hand (`Failed` once its time is up).
    pub fn provisioning_state(&self, now: crate::clock::Millis) -> &'static str {
        match &self.awaiting_validation {
            None => "Succeeded",
            Some(v) if now <= v.until => "AwaitingManualAction",
            Some(_) => "Failed",
        }
    }
}

pub(super) type Subscriptions = Arc<RwLock<BTreeMap<String, SubscriptionRecord>>>;

/// A fresh access key: 32 random bytes, base64, as Azure's are.
fn new_key() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    B64.encode(bytes)
}

/// Keys must be base64 (the signature key is their decoded bytes) and not empty.
fn check_keys(keys: &[String; 2]) -> EventsResult<()> {
    match keys.iter().find(|k| k.trim().is_empty() || B64.decode(k.trim()).is_err()) {
        None => Ok(()),
        Some(k) => Err(EventsError::Invalid(format!("The key '{k}' is not base64 text."))),
    }
}

/// How a publisher proves it may publish.
#[derive(Debug, Clone, Copy)]
pub enum PublishCredential<'a> {
    /// `aeg-sas-key`
    Key(&'a str),
    /// `aeg-sas-token`
    Token(&'a str),
}

pub(super) struct Topic {
    pub record: TopicRecord,
    pub log: Arc<dyn EventLog>,
    pub subscriptions: Subscriptions,
    /// The delivery loop of each push subscription, once delivery has started.
    pub running: Arc<Mutex<BTreeMap<String, Running>>>,
    /// Each queue (pull) subscription's state.
    pub pulls: Arc<Mutex<BTreeMap<String, Arc<PullQueue>>>>,
}

impl Topic {
    fn new(record: TopicRecord, log: Arc<dyn EventLog>) -> Arc<Topic> {
        Arc::new(Topic { record, log, subscriptions: Subscriptions::default(), running: Arc::default(), pulls: Arc::default() })
    }
}

/// What a topic looks like from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicView {
    pub record: TopicRecord,
    /// Events accepted since the topic was created.
    pub published: u64,
}

/// Events a publisher handed over, and the wait for their durability.
pub struct Published {
    pub events: Vec<PublishedEvent>,
    pub appended: Appended,
}

pub struct EventGridService {
    pub(super) store: Arc<dyn Store>,
    logs: Arc<dyn LogFactory>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    next_id: AtomicU64,
    /// Where deliveries go; unset until delivery starts.
    pub(super) transport: Arc<OnceLock<Arc<dyn DeliveryTransport>>>,
    /// What recovery found of each subscription's delivery, until delivery starts.
    pub(super) resume: Mutex<BTreeMap<String, Resume>>,
    /// Where this server's HTTP endpoint is, for validation URLs.
    pub(super) public_base: OnceLock<String>,
}

impl EventGridService {
    /// The service over `store` (topic records, already replayed into `recovery`) and
    /// `logs` (one log per topic), with every recovered topic's log open.
    pub fn open(store: Arc<dyn Store>, logs: Arc<dyn LogFactory>, clock: Arc<dyn Clock>, mut recovery: EventsRecovery) -> EventsResult<EventGridService> {
        let mut topics = BTreeMap::new();
        let mut next_id = 1;
        let resume = recovery.resume();
        for record in recovery.records.into_values() {
            next_id = next_id.max(record.id + 1);
            let log = logs.open(record.id, 0)?;
            topics.insert(record.name.to_ascii_lowercase(), Topic::new(record, log));
        }
        for sub in recovery.subscriptions.into_values() {
            match topics.get(&sub.topic.to_ascii_lowercase()) {
                Some(t) => {
                    t.subscriptions.write().insert(sub.name.to_ascii_lowercase(), sub);
                }
                None => tracing::warn!(topic = %sub.topic, subscription = %sub.name, "event grid recovery: a subscription of no topic; skipped"),
            }
        }
        let service = EventGridService { store, logs, clock, topics: RwLock::new(topics), next_id: AtomicU64::new(next_id), transport: Arc::default(), resume: Mutex::new(resume), public_base: OnceLock::new() };
        service.open_pull_queues();
        Ok(service)
    }

    /// Where clients reach this server's HTTP endpoint (`http://127.0.0.1:5300`): the
    /// base of the validation URLs handed to webhooks.
    pub fn set_public_endpoint(&self, base: &str) {
        let _ = self.public_base.set(base.trim_end_matches('/').to_string());
    }

    /// The service's clock (the shiftable one under test).
    pub fn now_ms(&self) -> crate::clock::Millis {
        self.clock.now_ms()
    }

    pub(super) fn topic(&self, name: &str) -> EventsResult<Arc<Topic>> {
        self.topics.read().get(&name.to_ascii_lowercase()).cloned().ok_or_else(|| EventsError::TopicNotFound(name.to_string()))
    }

    /// Creates a topic with two fresh keys.
    pub async fn create_topic(&self, name: &str, schema: InputSchema) -> EventsResult<TopicView> {
        self.create_topic_with_keys(name, schema, [new_key(), new_key()]).await
    }

    /// Creates a topic with the given keys (declared ones, say).
    pub async fn create_topic_with_keys(&self, name: &str, schema: InputSchema, keys: [String; 2]) -> EventsResult<TopicView> {
        self.create(TopicKind::Custom, name, schema, keys).await
    }

    /// Creates a namespace topic (CloudEvents, published with `:publish`, with queue
    /// subscriptions), with fresh keys unless given.
    pub async fn create_namespace_topic(&self, name: &str, keys: Option<[String; 2]>) -> EventsResult<TopicView> {
        self.create(TopicKind::Namespace, name, InputSchema::CloudEvents, keys.unwrap_or_else(|| [new_key(), new_key()])).await
    }

    async fn create(&self, kind: TopicKind, name: &str, schema: InputSchema, keys: [String; 2]) -> EventsResult<TopicView> {
        check_topic_name(name)?;
        check_keys(&keys)?;
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        // The log first: a topic is never visible without it.
        let log = self.logs.open(id, 0)?;
        let record = TopicRecord { id, kind, name: name.to_string(), created_at: self.clock.now_ms(), schema, keys };
        let commit = {
            let mut topics = self.topics.write();
            let key = name.to_ascii_lowercase();
            if topics.contains_key(&key) {
                drop(topics);
                log.close();
                self.logs.remove_hub(id)?;
                return Err(EventsError::TopicAlreadyExists(name.to_string()));
            }
            let commit = self.store.commit(&[put_topic(&record)])?;
            topics.insert(key, Topic::new(record.clone(), log));
            commit
        };
        commit.durable().await?;
        Ok(TopicView { record, published: 0 })
    }

    /// Replaces a topic's keys (as regenerating them in Azure does).
    pub async fn set_keys(&self, name: &str, keys: [String; 2]) -> EventsResult<TopicView> {
        check_keys(&keys)?;
        let commit = {
            let mut topics = self.topics.write();
            let key = name.to_ascii_lowercase();
            let old = topics.get(&key).cloned().ok_or_else(|| EventsError::TopicNotFound(name.to_string()))?;
            let record = TopicRecord { keys, ..old.record.clone() };
            let commit = self.store.commit(&[put_topic(&record)])?;
            topics.insert(key, Arc::new(Topic { record, log: old.log.clone(), subscriptions: old.subscriptions.clone(), running: old.running.clone(), pulls: old.pulls.clone() }));
            commit
        };
        commit.durable().await?;
        self.topic_view(name)
    }

    /// Deletes a topic and every event it holds. It leaves the topic map first (no
    /// publish or new subscription finds it), then its deliveries stop, then its
    /// records go.
    pub async fn delete_topic(&self, name: &str) -> EventsResult<()> {
        let topic = self.topics.write().remove(&name.to_ascii_lowercase()).ok_or_else(|| EventsError::TopicNotFound(name.to_string()))?;
        let keys: Vec<String> = topic.subscriptions.read().keys().cloned().collect();
        for key in keys {
            super::subscriptions::stop_delivery_of(&topic, &key).await;
        }
        let mut ops = vec![Op::Delete { key: topic_key(name) }];
        ops.extend(topic.subscriptions.read().values().map(|s| Op::Delete { key: subscription_key(&s.topic, &s.name) }));
        ops.extend(topic_prefixes(name).into_iter().map(|prefix| Op::DeletePrefix { prefix }));
        self.store.commit(&ops)?.durable().await?;
        let (log, id, factory) = (topic.log.clone(), topic.record.id, self.logs.clone());
        tokio::task::spawn_blocking(move || {
            log.close();
            factory.remove_hub(id)
        })
        .await
        .map_err(|e| EventsError::Store(format!("deleting the topic's log: {e}")))??;
        Ok(())
    }

    fn view(topic: &Topic) -> TopicView {
        let info = topic.log.info();
        TopicView { record: topic.record.clone(), published: (info.last_seq + 1).max(0) as u64 }
    }

    pub fn topic_view(&self, name: &str) -> EventsResult<TopicView> {
        Ok(Self::view(&*self.topic(name)?))
    }

    pub fn list_topics(&self) -> Vec<TopicView> {
        self.topics.read().values().map(|t| Self::view(t)).collect()
    }

    /// Checks the publisher's credential, then the body against the topic's schema,
    /// and appends every event (all or none). The caller answers once
    /// `appended.durable()` resolves.
    pub fn publish(&self, name: &str, credential: PublishCredential<'_>, content_type: Option<&str>, body: &[u8]) -> EventsResult<Published> {
        self.publish_to(TopicKind::Custom, name, credential, content_type, body)
    }

    /// [`EventGridService::publish`] to a namespace topic (`:publish`).
    pub fn publish_namespace(&self, name: &str, key: &str, content_type: Option<&str>, body: &[u8]) -> EventsResult<Published> {
        self.publish_to(TopicKind::Namespace, name, PublishCredential::Key(key), content_type, body)
    }

    /// A topic of `kind`: the other kind's topics are not found at that endpoint.
    pub(super) fn topic_of_kind(&self, kind: TopicKind, name: &str) -> EventsResult<Arc<Topic>> {
        let topic = self.topic(name)?;
        if topic.record.kind != kind {
            return Err(EventsError::TopicNotFound(name.to_string()));
        }
        Ok(topic)
    }

    fn publish_to(&self, kind: TopicKind, name: &str, credential: PublishCredential<'_>, content_type: Option<&str>, body: &[u8]) -> EventsResult<Published> {
        let topic = self.topic_of_kind(kind, name)?;
        let keys = &topic.record.keys;
        match credential {
            PublishCredential::Key(k) => check_key(keys, k)?,
            PublishCredential::Token(t) => {
                check_token(keys, t, self.clock.now_ms())?;
            }
        }
        let events = parse_publish(topic.record.schema, content_type, body, &resource_path(&topic.record.name))?;
        let bodies: Vec<Vec<u8>> = events.iter().map(|e| serde_json::to_vec(&e.event).expect("JSON values serialize")).collect();
        let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
        let appended = topic.log.append(self.clock.now_ms(), &refs)?;
        Ok(Published { events, appended })
    }

    /// Drops events no subscription can still deliver: older than the longest time
    /// to live (a day) and an hour of slack for retries and dead letters.
    pub fn retain(&self) -> EventsResult<u64> {
        let now = self.clock.now_ms();
        let logs: Vec<(TopicKind, Arc<dyn EventLog>)> = self.topics.read().values().map(|t| (t.record.kind, t.log.clone())).collect();
        let mut dropped = 0;
        for (kind, log) in logs {
            let keep = match kind {
                TopicKind::Custom => RETENTION_MS,
                TopicKind::Namespace => NAMESPACE_RETENTION_MS,
            };
            dropped += log.retain(now - keep, u64::MAX)?;
        }
        Ok(dropped)
    }

    /// Flushes and closes every topic's log.
    pub fn close(&self) {
        for t in self.topics.read().values() {
            t.log.close();
        }
    }
}
