//! Service Bus in the binary: the emulator's `UserConfig` section of the config file,
//! and opening the broker on its own store with the declared queues in place.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use lapis_core::broker::{subscription_path, Broker, BrokerError, BrokerRecovery, Defaults, QueueProperties, RuleProperties};
use lapis_core::Clock;
use lapis_store::{JournalOptions, MemoryStore, Store};

/// `UserConfig` of the Service Bus emulator's `Config.json`, accepted as it is (its
/// `Logging` section is ignored: Lapis logs as `--log-level` says).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserConfig {
    #[serde(default)]
    pub namespaces: Vec<Namespace>,
}

/// One namespace of the emulator's config. Its `Name` is not needed: Lapis serves one
/// namespace, whatever it is called.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Namespace {
    #[serde(default)]
    pub queues: Vec<QueueDecl>,
    #[serde(default)]
    pub topics: Vec<TopicDecl>,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TopicDecl {
    pub name: String,
    #[serde(default)]
    pub properties: QueueProperties,
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionDecl>,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SubscriptionDecl {
    pub name: String,
    #[serde(default)]
    pub properties: QueueProperties,
    /// When given, the subscription's rules are exactly these; otherwise `$Default`.
    #[serde(default)]
    pub rules: Vec<RuleDecl>,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuleDecl {
    pub name: String,
    pub properties: RuleProperties,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueueDecl {
    pub name: String,
    #[serde(default)]
    pub properties: QueueProperties,
}

/// The broker and the store under it.
pub struct ServiceBus {
    pub broker: Arc<Broker>,
    pub store: Arc<dyn Store>,
}

/// Opens the broker (on `dir`, or in memory) and makes the declared queues exist with
/// the declared properties.
pub async fn open(dir: Option<&Path>, options: JournalOptions, clock: Arc<dyn Clock>, declared: Option<&UserConfig>) -> anyhow::Result<ServiceBus> {
    let (broker, store) = match dir {
        None => {
            let store: Arc<dyn Store> = Arc::new(MemoryStore);
            (Broker::new(store.clone(), clock), store)
        }
        Some(dir) => {
            let mut recovery = BrokerRecovery::new(true);
            let store = crate::stores::open_records(dir, options, "service bus", recovery.visitor())?;
            (Broker::recover(store.clone(), clock, recovery), store)
        }
    };
    if let Some(config) = declared {
        declare(&broker, config).await?;
    }
    Ok(ServiceBus { broker: Arc::new(broker), store })
}

/// What kind of entity a declaration makes.
enum Declared<'a> {
    Queue,
    Topic,
    Subscription { topic: &'a str, name: &'a str },
}

/// Which pass of the declaration: entities first (without forwarding, whose targets
/// may be declared later in the file), then every property.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    Entities,
    Properties,
}

/// Makes the entity at `path` exist with `properties` (emulator defaults).
async fn ensure(broker: &Broker, path: &str, kind: Declared<'_>, properties: &QueueProperties, pass: Pass) -> anyhow::Result<()> {
    let mut wanted = properties.to_config(Defaults::Emulator).map_err(anyhow::Error::msg).with_context(|| format!("{path:?} in the config file"))?;
    if pass == Pass::Entities {
        wanted.forward_to = None;
        wanted.forward_dead_lettered_to = None;
    }
    match broker.queue_config(path) {
        Ok(_) if pass == Pass::Entities => Ok(()),
        Ok(existing) if existing == wanted => Ok(()),
        Ok(_) => broker.update_config(path, wanted).await.with_context(|| format!("updating {path:?}")),
        Err(BrokerError::EntityNotFound(_)) => {
            let created = match kind {
                Declared::Queue => broker.create_queue(path, wanted).await,
                Declared::Topic => broker.create_topic(path, wanted).await,
                Declared::Subscription { topic, name } => broker.create_subscription(topic, name, wanted).await,
            };
            created.with_context(|| format!("creating {path:?}"))
        }
        Err(e) => bail!(e),
    }
}

async fn declare(broker: &Broker, config: &UserConfig) -> anyhow::Result<()> {
    for pass in [Pass::Entities, Pass::Properties] {
        declare_pass(broker, config, pass).await?;
    }
    Ok(())
}

async fn declare_pass(broker: &Broker, config: &UserConfig, pass: Pass) -> anyhow::Result<()> {
    for ns in &config.namespaces {
        for q in &ns.queues {
            ensure(broker, &q.name, Declared::Queue, &q.properties, pass).await?;
        }
        for t in &ns.topics {
            ensure(broker, &t.name, Declared::Topic, &t.properties, pass).await?;
            for s in &t.subscriptions {
                let path = subscription_path(&t.name, &s.name);
                ensure(broker, &path, Declared::Subscription { topic: &t.name, name: &s.name }, &s.properties, pass).await?;
                if pass == Pass::Properties && !s.rules.is_empty() {
                    let rules = s
                        .rules
                        .iter()
                        .map(|r| r.properties.to_rule(&r.name).map_err(anyhow::Error::msg).with_context(|| format!("rule {:?} of {path:?}", r.name)))
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    broker.replace_rules(&t.name, &s.name, rules).await?;
                }
            }
        }
    }
    Ok(())
}
