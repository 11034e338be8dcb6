//! Event subscriptions of the Event Grid service: created (a webhook only once it
//! passes the validation handshake), listed, deleted, and each delivered by its own
//! loop once delivery has started.

use std::sync::Arc;

use lapis_store::Op;

use super::delivery::outbound::{check_options, check_validation, options_request, validation_request};
use super::delivery::state::{mark_key, retry_prefix, subscription_path};
use super::delivery::worker::{Context, Resume};
use super::delivery::{DeliveryMetrics, DeliveryTransport, HttpFailure, MetricsView};
use super::error::{EventsError, EventsResult};
use super::model::{resource_path, InputSchema};
use super::running::Running;
use super::service::{subscription_key, EventGridService, SubscriptionRecord, Topic};
use super::subscription::{check_subscription_name, Destination, SubscriptionSpec};

impl EventGridService {
    /// Adds an event subscription to a topic (409 if the name is taken). It gets the
    /// events published from now on.
    pub async fn create_subscription(&self, topic: &str, name: &str, spec: SubscriptionSpec) -> EventsResult<SubscriptionRecord> {
        check_subscription_name(name)?;
        let t = self.topic(topic)?;
        spec.check(t.record.schema)?;
        let output = spec.delivery_schema(t.record.schema)?;
        if t.subscriptions.read().contains_key(&name.to_ascii_lowercase()) {
            return Err(EventsError::SubscriptionAlreadyExists { topic: topic.to_string(), name: name.to_string() });
        }
        if let Some(transport) = self.transport.get() {
            validate_endpoint(transport.as_ref(), &t.record.name, name, &spec.destination, output, self.clock.now_ms()).await?;
        }
        let record = SubscriptionRecord { topic: t.record.name.clone(), name: name.to_string(), created_at: self.clock.now_ms(), spec };
        let path = subscription_path(&record.topic, name);
        let mark = t.log.info().last_seq + 1;
        let commit = {
            let mut subs = t.subscriptions.write();
            if subs.contains_key(&name.to_ascii_lowercase()) {
                return Err(EventsError::SubscriptionAlreadyExists { topic: topic.to_string(), name: name.to_string() });
            }
            let value = serde_json::to_vec(&record).expect("a subscription record serializes");
            let ops = [
                Op::Put { key: subscription_key(&record.topic, name), value },
                Op::DeletePrefix { prefix: retry_prefix(&path) },
                Op::Put { key: mark_key(&path), value: mark.to_string().into_bytes() },
            ];
            let commit = self.store.commit(&ops)?;
            subs.insert(name.to_ascii_lowercase(), record.clone());
            commit
        };
        commit.durable().await?;
        self.run(&t, &record, Resume { mark, retries: Vec::new() });
        Ok(record)
    }

    pub fn subscription(&self, topic: &str, name: &str) -> EventsResult<SubscriptionRecord> {
        let t = self.topic(topic)?;
        let found = t.subscriptions.read().get(&name.to_ascii_lowercase()).cloned();
        found.ok_or_else(|| EventsError::SubscriptionNotFound { topic: topic.to_string(), name: name.to_string() })
    }

    pub fn list_subscriptions(&self, topic: &str) -> EventsResult<Vec<SubscriptionRecord>> {
        Ok(self.topic(topic)?.subscriptions.read().values().cloned().collect())
    }

    /// Delivery counters of a subscription since the server started.
    pub fn delivery_metrics(&self, topic: &str, name: &str) -> EventsResult<MetricsView> {
        let t = self.topic(topic)?;
        self.subscription(topic, name)?;
        let metrics = t.running.lock().get(&name.to_ascii_lowercase()).map(|r| r.metrics.view());
        Ok(metrics.unwrap_or_else(|| DeliveryMetrics::default().view()))
    }

    /// Deletes a subscription with what its delivery still owed.
    pub async fn delete_subscription(&self, topic: &str, name: &str) -> EventsResult<()> {
        let t = self.topic(topic)?;
        let commit = {
            let mut subs = t.subscriptions.write();
            let removed = subs.remove(&name.to_ascii_lowercase()).ok_or_else(|| EventsError::SubscriptionNotFound { topic: topic.to_string(), name: name.to_string() })?;
            let path = subscription_path(&removed.topic, &removed.name);
            let ops = [Op::Delete { key: subscription_key(&removed.topic, &removed.name) }, Op::Delete { key: mark_key(&path) }, Op::DeletePrefix { prefix: retry_prefix(&path) }];
            self.store.commit(&ops)?
        };
        commit.durable().await?;
        let running = t.running.lock().remove(&name.to_ascii_lowercase());
        if let Some(r) = running {
            r.stop().await;
        }
        Ok(())
    }

    /// Starts delivering every subscription through `transport`, each from where it
    /// was (must be called within a tokio runtime, once).
    pub fn start_delivery(&self, transport: Arc<dyn DeliveryTransport>) {
        if self.transport.set(transport).is_err() {
            tracing::warn!("event grid: delivery was already started");
            return;
        }
        let topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        let mut resume = std::mem::take(&mut *self.resume.lock());
        for t in topics {
            let subs: Vec<SubscriptionRecord> = t.subscriptions.read().values().cloned().collect();
            for s in subs {
                let from = resume.remove(&subscription_path(&s.topic, &s.name)).unwrap_or(Resume { mark: 0, retries: Vec::new() });
                self.run(&t, &s, from);
            }
        }
    }

    /// Stops every delivery loop; each writes its mark first.
    pub async fn stop_delivery(&self) {
        let topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        for t in topics {
            let running: Vec<Running> = std::mem::take(&mut *t.running.lock()).into_values().collect();
            for r in running {
                r.stop().await;
            }
        }
    }

    fn run(&self, topic: &Arc<Topic>, record: &SubscriptionRecord, resume: Resume) {
        let Some(transport) = self.transport.get().cloned() else { return };
        let Ok(output) = record.spec.delivery_schema(topic.record.schema) else { return };
        let ctx = Context {
            input: topic.record.schema,
            output,
            log: topic.log.clone(),
            subscription: record.clone(),
            path: subscription_path(&record.topic, &record.name),
            store: self.store.clone(),
            clock: self.clock.clone(),
            transport,
            metrics: DeliveryMetrics::new(),
        };
        let running = Running::start(ctx, resume);
        topic.running.lock().insert(record.name.to_ascii_lowercase(), running);
    }
}

/// The handshake a webhook must pass before it gets events: the validation event
/// for Event Grid schema delivery, the CloudEvents OPTIONS request otherwise.
async fn validate_endpoint(transport: &dyn DeliveryTransport, topic: &str, name: &str, destination: &Destination, output: InputSchema, now: i64) -> EventsResult<()> {
    let Destination::WebHook { endpoint_url, .. } = destination else { return Ok(()) };
    let no_answer = |f: HttpFailure| match f {
        HttpFailure::TimedOut => "the endpoint did not answer within 30 seconds".to_string(),
        HttpFailure::Unreachable(why) | HttpFailure::BadUrl(why) => why,
    };
    let outcome = match output {
        InputSchema::EventGrid => {
            let (request, code) = validation_request(endpoint_url, name, &resource_path(topic), now);
            transport.http(request).await.map_err(no_answer).and_then(|r| check_validation(&r, &code))
        }
        InputSchema::CloudEvents => transport.http(options_request(endpoint_url)).await.map_err(no_answer).and_then(|r| check_options(&r)),
    };
    outcome.map_err(|why| EventsError::ValidationFailed { url: endpoint_url.clone(), why })
}
