//! Event subscriptions of the Event Grid service: created (a webhook only once it
//! passes the validation handshake), listed, deleted; push subscriptions each
//! delivered by their own loop once delivery has started, queue subscriptions of
//! namespace topics received from by clients.

use std::sync::Arc;

use lapis_store::Op;

use super::delivery::outbound::{check_options, check_validation, options_request, validation_code, validation_request, Validation, MANUAL_VALIDATION_MS};
use super::delivery::pull::{pull_prefix, LockResults, PullParts, PullQueue, Received, Settle, SettleError, MAX_LOCK_TOKENS, MAX_RECEIVE_EVENTS, MAX_WAIT_SECONDS, MIN_WAIT_SECONDS, RELEASE_DELAYS};
use super::delivery::state::{mark_key, put_mark, retry_prefix, subscription_path};
use super::delivery::worker::{Context, Resume};
use super::delivery::{DeliveryMetrics, DeliveryTransport, HttpFailure, MetricsView};
use super::error::{EventsError, EventsResult};
use super::model::{resource_path, InputSchema, TopicKind};
use crate::auth::eventgrid_sas::check_key;
use super::running::Running;
use super::service::{put_subscription, subscription_key, EventGridService, ManualValidation, SubscriptionRecord, Topic};
use super::subscription::{check_subscription_name, Destination, SubscriptionSpec};

impl EventGridService {
    /// Adds an event subscription to a topic (409 if the name is taken). It gets the
    /// events published from now on.
    pub async fn create_subscription(&self, topic: &str, name: &str, spec: SubscriptionSpec) -> EventsResult<SubscriptionRecord> {
        check_subscription_name(name)?;
        let t = self.topic(topic)?;
        spec.check(t.record.schema)?;
        let output = spec.delivery_schema(t.record.schema)?;
        let pull = matches!(spec.destination, Destination::Queue { .. });
        if pull && t.record.kind != TopicKind::Namespace {
            return Err(EventsError::Invalid("Queue (pull) delivery is for namespace topics; create the topic as a namespace topic.".into()));
        }
        if t.subscriptions.read().contains_key(&name.to_ascii_lowercase()) {
            return Err(EventsError::SubscriptionAlreadyExists { topic: topic.to_string(), name: name.to_string() });
        }
        let mut awaiting_validation = None;
        if let Some(transport) = self.transport.get() {
            let code = validation_code();
            let url = format!(
                "{}/eventgrid/validate?topic={}&subscription={}&code={code}",
                self.public_base.get().map(String::as_str).unwrap_or("http://127.0.0.1:5300"),
                t.record.name,
                name
            );
            let now = self.clock.now_ms();
            if validate_endpoint(transport.as_ref(), &t.record.name, name, &spec.destination, output, now, &code, &url).await? == Validation::Manual {
                awaiting_validation = Some(ManualValidation { code, url, until: now + MANUAL_VALIDATION_MS });
            }
        }
        let record = SubscriptionRecord { topic: t.record.name.clone(), name: name.to_string(), created_at: self.clock.now_ms(), spec, awaiting_validation };
        let path = subscription_path(&record.topic, name);
        let mark = t.log.info().last_seq + 1;
        let commit = {
            let mut subs = t.subscriptions.write();
            if subs.contains_key(&name.to_ascii_lowercase()) {
                return Err(EventsError::SubscriptionAlreadyExists { topic: topic.to_string(), name: name.to_string() });
            }
            let ops = [put_subscription(&record), Op::DeletePrefix { prefix: retry_prefix(&path) }, Op::DeletePrefix { prefix: pull_prefix(&path) }, put_mark(&path, mark)];
            let commit = self.store.commit(&ops)?;
            subs.insert(name.to_ascii_lowercase(), record.clone());
            commit
        };
        commit.durable().await?;
        let from = Resume { mark, ..Resume::default() };
        if pull {
            self.open_pull_queue(&t, &record, from);
        } else {
            self.run(&t, &record, from);
        }
        Ok(record)
    }

    pub fn subscription(&self, topic: &str, name: &str) -> EventsResult<SubscriptionRecord> {
        let t = self.topic(topic)?;
        let found = t.subscriptions.read().get(&name.to_ascii_lowercase()).cloned();
        found.ok_or_else(|| EventsError::subscription_not_found(topic, name))
    }

    pub fn list_subscriptions(&self, topic: &str) -> EventsResult<Vec<SubscriptionRecord>> {
        Ok(self.topic(topic)?.subscriptions.read().values().cloned().collect())
    }

    /// Delivery counters of a subscription since the server started.
    pub fn delivery_metrics(&self, topic: &str, name: &str) -> EventsResult<MetricsView> {
        let t = self.topic(topic)?;
        self.subscription(topic, name)?;
        let key = name.to_ascii_lowercase();
        let metrics = t.running.lock().get(&key).map(|r| r.metrics.view()).or_else(|| t.pulls.lock().get(&key).map(|q| q.metrics.view()));
        Ok(metrics.unwrap_or_else(|| DeliveryMetrics::default().view()))
    }

    /// Deletes a subscription with what its delivery still owed. Its delivery stops
    /// first, so nothing it writes afterwards brings its state back.
    pub async fn delete_subscription(&self, topic: &str, name: &str) -> EventsResult<()> {
        let t = self.topic(topic)?;
        let key = name.to_ascii_lowercase();
        if !t.subscriptions.read().contains_key(&key) {
            return Err(EventsError::subscription_not_found(topic, name));
        }
        stop_delivery_of(&t, &key).await;
        let commit = {
            let mut subs = t.subscriptions.write();
            let removed = subs.remove(&key).ok_or_else(|| EventsError::subscription_not_found(topic, name))?;
            let path = subscription_path(&removed.topic, &removed.name);
            let ops = [
                Op::Delete { key: subscription_key(&removed.topic, &removed.name) },
                Op::Delete { key: mark_key(&path) },
                Op::DeletePrefix { prefix: retry_prefix(&path) },
                Op::DeletePrefix { prefix: pull_prefix(&path) },
            ];
            self.store.commit(&ops)?
        };
        Ok(commit.durable().await?)
    }

    /// A webhook's GET of its validation URL: the subscription becomes active (from
    /// the events published after now) if the code is its own and in time.
    pub async fn validate_manually(&self, topic: &str, name: &str, code: &str) -> EventsResult<()> {
        let t = self.topic(topic)?;
        let now = self.clock.now_ms();
        let (record, mark, commit) = {
            let mut subs = t.subscriptions.write();
            let key = name.to_ascii_lowercase();
            let current = subs.get(&key).cloned().ok_or_else(|| EventsError::subscription_not_found(topic, name))?;
            match &current.awaiting_validation {
                None => return Ok(()),
                Some(v) if !v.code.eq_ignore_ascii_case(code) => return Err(EventsError::Invalid("The validation code is not this subscription's.".into())),
                Some(v) if now > v.until => return Err(EventsError::Invalid("The validation URL has expired; delete the event subscription and create it again.".into())),
                Some(_) => {}
            }
            let record = SubscriptionRecord { awaiting_validation: None, ..current };
            let path = subscription_path(&record.topic, &record.name);
            let mark = t.log.info().last_seq + 1;
            let commit = self.store.commit(&[put_subscription(&record), put_mark(&path, mark)])?;
            subs.insert(key, record.clone());
            (record, mark, commit)
        };
        commit.durable().await?;
        self.run(&t, &record, Resume { mark, ..Resume::default() });
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
                let from = resume.remove(&subscription_path(&s.topic, &s.name)).unwrap_or_default();
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

    /// Opens every recovered queue subscription (they need no transport to be
    /// received from).
    pub(super) fn open_pull_queues(&self) {
        let topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        for t in topics {
            let subs: Vec<SubscriptionRecord> = t.subscriptions.read().values().filter(|s| matches!(s.spec.destination, Destination::Queue { .. })).cloned().collect();
            for s in subs {
                let from = self.resume.lock().remove(&subscription_path(&s.topic, &s.name)).unwrap_or_default();
                self.open_pull_queue(&t, &s, from);
            }
        }
    }

    fn open_pull_queue(&self, topic: &Arc<Topic>, record: &SubscriptionRecord, from: Resume) {
        let parts = PullParts {
            log: topic.log.clone(),
            input: topic.record.schema,
            subscription: record.clone(),
            path: subscription_path(&record.topic, &record.name),
            store: self.store.clone(),
            clock: self.clock.clone(),
            transport: self.transport.clone(),
        };
        let queue = PullQueue::new(parts, from.mark, from.pulled);
        if let Some(replaced) = topic.pulls.lock().insert(record.name.to_ascii_lowercase(), Arc::new(queue)) {
            tokio::spawn(async move { replaced.close().await });
        }
    }

    /// A queue subscription of a namespace topic, for a client holding `key`.
    fn pull_queue(&self, topic: &str, name: &str, key: &str) -> EventsResult<Arc<PullQueue>> {
        let t = self.topic_of_kind(TopicKind::Namespace, topic)?;
        check_key(&t.record.keys, key)?;
        let queue = t.pulls.lock().get(&name.to_ascii_lowercase()).cloned();
        match queue {
            Some(q) => Ok(q),
            None if t.subscriptions.read().contains_key(&name.to_ascii_lowercase()) => Err(EventsError::Invalid(format!("The event subscription '{name}' is not a queue subscription; it pushes its events."))),
            None => Err(EventsError::subscription_not_found(topic, name)),
        }
    }

    /// Receives up to `max_events` (1-100) events, waiting up to `wait_seconds`
    /// (10-120) for the first.
    pub async fn receive(&self, topic: &str, name: &str, key: &str, max_events: usize, wait_seconds: u64) -> EventsResult<Vec<Received>> {
        if !(1..=MAX_RECEIVE_EVENTS).contains(&max_events) {
            return Err(EventsError::Invalid(format!("Invalid maxEvents parameter: it must be between 1 and {MAX_RECEIVE_EVENTS}, not {max_events}.")));
        }
        if !(MIN_WAIT_SECONDS..=MAX_WAIT_SECONDS).contains(&wait_seconds) {
            return Err(EventsError::Invalid(format!("Invalid maxWaitTime parameter: it must be between {MIN_WAIT_SECONDS} and {MAX_WAIT_SECONDS} seconds, not {wait_seconds}.")));
        }
        let queue = self.pull_queue(topic, name, key)?;
        queue.receive(max_events, std::time::Duration::from_secs(wait_seconds)).await.map_err(|_| EventsError::subscription_not_found(topic, name))
    }

    /// Acknowledges, releases, rejects or renews the locks of the events `tokens` name.
    pub async fn settle(&self, topic: &str, name: &str, key: &str, tokens: &[String], how: Settle) -> EventsResult<LockResults> {
        if tokens.is_empty() || tokens.len() > MAX_LOCK_TOKENS {
            return Err(EventsError::Invalid(format!("lockTokens must hold between 1 and {MAX_LOCK_TOKENS} lock tokens, not {}.", tokens.len())));
        }
        if let Settle::Release { delay_ms } = how {
            if !RELEASE_DELAYS.contains(&(delay_ms / 1000)) || delay_ms % 1000 != 0 {
                return Err(EventsError::Invalid(format!("Invalid releaseDelayInSeconds parameter: it must be one of 0, 10, 60, 600 or 3600, not {}.", delay_ms as f64 / 1000.0)));
            }
        }
        let queue = self.pull_queue(topic, name, key)?;
        queue.settle(tokens, how).await.map_err(|e| match e {
            SettleError::Closed => EventsError::subscription_not_found(topic, name),
            SettleError::Store(why) => EventsError::Store(why),
        })
    }

    fn run(&self, topic: &Arc<Topic>, record: &SubscriptionRecord, resume: Resume) {
        if matches!(record.spec.destination, Destination::Queue { .. }) || record.awaiting_validation.is_some() {
            return;
        }
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
        if let Some(replaced) = topic.running.lock().insert(record.name.to_ascii_lowercase(), running) {
            tokio::spawn(replaced.stop());
        }
    }
}

/// Stops the push loop or closes the pull queue of subscription `key` of `topic`
/// (each writes what it still had to first).
pub(super) async fn stop_delivery_of(topic: &Topic, key: &str) {
    let running = topic.running.lock().remove(key);
    if let Some(r) = running {
        r.stop().await;
    }
    let queue = topic.pulls.lock().remove(key);
    if let Some(q) = queue {
        q.close().await;
    }
}

/// The handshake a webhook must pass before it gets events: the validation event
/// for Event Grid schema delivery (answered with the code, or later by hand), the
/// CloudEvents OPTIONS request otherwise.
#[allow(clippy::too_many_arguments)]
async fn validate_endpoint(transport: &dyn DeliveryTransport, topic: &str, name: &str, destination: &Destination, output: InputSchema, now: i64, code: &str, url: &str) -> EventsResult<Validation> {
    let Destination::WebHook { endpoint_url, .. } = destination else { return Ok(Validation::Echoed) };
    let no_answer = |f: HttpFailure| match f {
        HttpFailure::TimedOut => "the endpoint did not answer within 30 seconds".to_string(),
        HttpFailure::Unreachable(why) | HttpFailure::BadUrl(why) => why,
    };
    let outcome = match output {
        InputSchema::EventGrid => {
            let request = validation_request(endpoint_url, name, &resource_path(topic), now, code, url);
            transport.http(request).await.map_err(no_answer).and_then(|r| check_validation(&r, code))
        }
        InputSchema::CloudEvents => transport.http(options_request(endpoint_url)).await.map_err(no_answer).and_then(|r| check_options(&r).map(|()| Validation::Echoed)),
    };
    outcome.map_err(|why| EventsError::ValidationFailed { url: endpoint_url.clone(), why })
}
