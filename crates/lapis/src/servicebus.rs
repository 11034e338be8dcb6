//! Service Bus in the binary: the emulator's `UserConfig` section of the config file,
//! and opening the broker on its own store with the declared queues in place.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use lapis_core::broker::{Broker, BrokerError, BrokerRecovery, Defaults, QueueProperties};
use lapis_core::Clock;
use lapis_store::{CompactionPolicy, JournalOptions, KvLog, MemoryStore, Store};

/// `UserConfig` of the Service Bus emulator's `Config.json`, accepted as it is (its
/// `Logging` section is ignored: Lapis logs as `--log-level` says).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserConfig {
    #[serde(default)]
    pub namespaces: Vec<Namespace>,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Namespace {
    pub name: String,
    #[serde(default)]
    pub queues: Vec<QueueDecl>,
    #[serde(default)]
    pub topics: Vec<serde_json::Value>,
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
            let (kv, report) = KvLog::open(dir, options, CompactionPolicy::default(), recovery.visitor())
                .with_context(|| format!("recovering {}", dir.display()))?;
            tracing::info!(records = report.records, segments = report.segments, truncated = report.truncated_bytes, "service bus storage recovered");
            let store: Arc<dyn Store> = Arc::new(kv);
            (Broker::recover(store.clone(), clock, recovery), store)
        }
    };
    if let Some(config) = declared {
        declare(&broker, config).await?;
    }
    Ok(ServiceBus { broker: Arc::new(broker), store })
}

async fn declare(broker: &Broker, config: &UserConfig) -> anyhow::Result<()> {
    for ns in &config.namespaces {
        if !ns.topics.is_empty() {
            tracing::warn!(namespace = %ns.name, topics = ns.topics.len(), "topics in the config file are not supported by Lapis yet and were skipped");
        }
        for q in &ns.queues {
            let wanted = q.properties.to_config(Defaults::Emulator).map_err(anyhow::Error::msg).with_context(|| format!("queue {:?} in the config file", q.name))?;
            match broker.queue_config(&q.name) {
                Ok(existing) if existing == wanted => {}
                Ok(_) => broker.update_queue(&q.name, wanted).await?,
                Err(BrokerError::EntityNotFound(_)) => broker.create_queue(&q.name, wanted).await.with_context(|| format!("creating queue {:?}", q.name))?,
                Err(e) => bail!(e),
            }
        }
    }
    Ok(())
}
