//! Topics and subscriptions. A topic keeps no messages: a message sent to it is
//! copied to every subscription with a matching rule. As in Azure, the matching rules
//! without actions together yield one copy, and each matching rule with an action
//! yields its own copy, changed by the action and stamped with a `RuleName`
//! property. Every subscription numbers its copies with its own sequence. The
//! fan-out is one atomic commit. Subscriptions are ordinary entities addressed
//! `<topic>/Subscriptions/<name>`, so receiving, settling and dead-lettering work on
//! them as on queues.

use std::collections::BTreeMap;

use super::codec::{self, EntityKind};
use super::error::{BrokerError, BrokerResult};
use super::filter::Filter;
use super::model::{PropertyValue, QueueConfig, RoutingProperties, Rule, DEFAULT_RULE};
use super::service::{Broker, EntityRef};
use lapis_store::Op;

/// The address of subscription `name` of `topic`.
pub fn subscription_path(topic: &str, name: &str) -> String {
    format!("{topic}/Subscriptions/{name}")
}

/// The property changes an action made, as overrides to store with the copy: changed
/// or added properties with their new values. Removals (`REMOVE prop`) are not
/// representable as overrides yet; the AMQP adapter will need a removal list.
fn overrides_from(before: &RoutingProperties, after: &RoutingProperties) -> BTreeMap<String, PropertyValue> {
    let mut out = BTreeMap::new();
    for (k, v) in &after.application {
        if before.application.get(k) != Some(v) {
            out.insert(k.clone(), v.clone());
        }
    }
    let system = [
        ("sys.To", &before.to, &after.to),
        ("sys.ReplyTo", &before.reply_to, &after.reply_to),
        ("sys.Label", &before.subject, &after.subject),
        ("sys.CorrelationId", &before.correlation_id, &after.correlation_id),
        ("sys.ContentType", &before.content_type, &after.content_type),
        ("sys.ReplyToSessionId", &before.reply_to_session_id, &after.reply_to_session_id),
    ];
    for (name, old, new) in system {
        if let (true, Some(v)) = (old != new, new) {
            out.insert(name.to_string(), PropertyValue::String(v.clone()));
        }
    }
    out
}

/// The copies a subscription's `rules` make of a message: one (unchanged) if any
/// matching rule has no action, plus one per matching rule with an action.
pub(super) fn copies_for(rules: &[Rule], routing: &RoutingProperties) -> Vec<BTreeMap<String, PropertyValue>> {
    let matching: Vec<&Rule> = rules.iter().filter(|r| r.filter.matches(routing)).collect();
    let mut copies = Vec::new();
    if matching.iter().any(|r| r.action.is_none()) {
        copies.push(BTreeMap::new());
    }
    for rule in matching {
        if let Some(action) = &rule.action {
            let mut changed = routing.clone();
            action.apply(&mut changed);
            let mut overrides = overrides_from(routing, &changed);
            overrides.insert(RULE_NAME_PROPERTY.to_string(), PropertyValue::String(rule.name.clone()));
            copies.push(overrides);
        }
    }
    copies
}

/// The application property that names the rule whose action made a copy.
pub const RULE_NAME_PROPERTY: &str = "RuleName";

impl Broker {
    pub async fn create_topic(&self, name: &str, config: QueueConfig) -> BrokerResult<()> {
        self.create_entity(name, config, EntityKind::Topic, Vec::new()).await
    }

    /// Creates a subscription with the `$Default` rule, which takes every message.
    pub async fn create_subscription(&self, topic: &str, name: &str, config: QueueConfig) -> BrokerResult<()> {
        let topic_name = self.topic(topic)?.lock().record.name.clone();
        let rules = vec![Rule { name: DEFAULT_RULE.into(), filter: Filter::True, action: None }];
        let kind = EntityKind::Subscription { topic: topic_name.clone() };
        self.create_entity(&subscription_path(&topic_name, name), config, kind, rules).await
    }

    /// Deletes a topic and every subscription of it.
    pub async fn delete_topic(&self, name: &str) -> BrokerResult<()> {
        self.topic(name)?;
        for (path, ..) in self.list_subscriptions(name)? {
            self.delete_entity(&path).await?;
        }
        self.delete_entity(name).await
    }

    pub async fn delete_subscription(&self, topic: &str, name: &str) -> BrokerResult<()> {
        self.subscription(topic, name)?;
        self.delete_entity(&subscription_path(topic, name)).await
    }

    pub fn list_topics(&self) -> Vec<(String, QueueConfig, usize, usize)> {
        self.list_entities(|kind| *kind == EntityKind::Topic)
    }

    /// Subscriptions of `topic`, by full path, with their counts.
    pub fn list_subscriptions(&self, topic: &str) -> BrokerResult<Vec<(String, QueueConfig, usize, usize)>> {
        let topic_name = self.topic(topic)?.lock().record.name.to_ascii_lowercase();
        Ok(self.list_entities(|kind| matches!(kind, EntityKind::Subscription { topic: t } if t.to_ascii_lowercase() == topic_name)))
    }

    pub fn rules(&self, topic: &str, subscription: &str) -> BrokerResult<Vec<Rule>> {
        Ok(self.subscription(topic, subscription)?.lock().record.rules.clone())
    }

    pub async fn add_rule(&self, topic: &str, subscription: &str, rule: Rule) -> BrokerResult<()> {
        let sub = self.subscription(topic, subscription)?;
        self.change_rules(&sub, |rules| {
            if rules.iter().any(|r| r.name.eq_ignore_ascii_case(&rule.name)) {
                return Err(BrokerError::EntityAlreadyExists(rule.name.clone()));
            }
            rules.push(rule);
            Ok(())
        })
        .await
    }

    pub async fn remove_rule(&self, topic: &str, subscription: &str, rule_name: &str) -> BrokerResult<()> {
        let sub = self.subscription(topic, subscription)?;
        self.change_rules(&sub, |rules| {
            let before = rules.len();
            rules.retain(|r| !r.name.eq_ignore_ascii_case(rule_name));
            if rules.len() == before {
                return Err(BrokerError::EntityNotFound(rule_name.to_string()));
            }
            Ok(())
        })
        .await
    }

    /// Makes `rules` the subscription's whole rule set.
    pub async fn replace_rules(&self, topic: &str, subscription: &str, rules: Vec<Rule>) -> BrokerResult<()> {
        let sub = self.subscription(topic, subscription)?;
        self.change_rules(&sub, |existing| {
            *existing = rules;
            Ok(())
        })
        .await
    }

    async fn change_rules(&self, sub: &EntityRef, change: impl FnOnce(&mut Vec<Rule>) -> BrokerResult<()>) -> BrokerResult<()> {
        let commit = {
            let mut e = sub.lock();
            let mut record = e.record.clone();
            change(&mut record.rules)?;
            let key = codec::entity_key(&record.name.to_ascii_lowercase());
            let commit = self.store.commit(&[Op::Put { key, value: codec::to_json(&record) }])?;
            e.record = record;
            commit
        };
        Ok(commit.durable().await?)
    }

    fn topic(&self, name: &str) -> BrokerResult<EntityRef> {
        let e = self.entity(name)?;
        let is_topic = e.lock().record.kind == EntityKind::Topic;
        if is_topic {
            Ok(e)
        } else {
            Err(BrokerError::EntityNotFound(name.to_string()))
        }
    }

    fn subscription(&self, topic: &str, name: &str) -> BrokerResult<EntityRef> {
        let path = subscription_path(topic, name);
        let e = self.entity(&path)?;
        let is_subscription = matches!(e.lock().record.kind, EntityKind::Subscription { .. });
        if is_subscription {
            Ok(e)
        } else {
            Err(BrokerError::EntityNotFound(path))
        }
    }
}
