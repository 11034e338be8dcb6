//! Event Grid in the binary: the config file's `EventGrid` section (topics, since
//! Event Grid has no emulator whose format to follow), and opening the service on its
//! own store (topic records in `<dir>/meta`) and one event log per topic
//! (`<dir>/topics`), or all in memory, with the declared topics in place.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use lapis_core::events::{EventGridService, EventsRecovery, InputSchema, TopicKind};
use lapis_core::Clock;
use lapis_store::{JournalOptions, Store};

/// `"EventGrid": {"Topics": [{"Name": …, "Kind": …, "InputSchema": …, "Key1": …, "Key2": …}]}`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct EventGridConfig {
    #[serde(default)]
    pub topics: Vec<TopicDecl>,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TopicDecl {
    pub name: String,
    /// `EventGridSchema` (the default) or `CloudEventSchemaV1_0`.
    pub input_schema: Option<InputSchema>,
    /// `Custom` (the default) or `Namespace` (CloudEvents, pull delivery).
    pub kind: Option<TopicKind>,
    /// Both keys, or neither (then the topic gets fresh ones when first made).
    pub key1: Option<String>,
    pub key2: Option<String>,
}

/// The Event Grid service and the store under its topic records.
pub struct EventGrid {
    pub events: Arc<EventGridService>,
    pub store: Arc<dyn Store>,
}

/// Opens the service on `dir` (or in memory) with every recovered topic's log open.
pub async fn open(dir: Option<&Path>, options: JournalOptions, clock: Arc<dyn Clock>, declared: Option<&EventGridConfig>) -> anyhow::Result<EventGrid> {
    let mut recovery = EventsRecovery::default();
    let (store, logs) = crate::stores::open_records_and_logs(dir, options, "topics", "event grid", recovery.visitor())?;
    let events = EventGridService::open(store.clone(), logs, clock, recovery).context("opening the event grid topics' logs")?;
    if let Some(config) = declared {
        declare(&events, config).await?;
    }
    Ok(EventGrid { events: Arc::new(events), store })
}

/// Makes each declared topic exist with its schema and (when given) its keys. A
/// topic's schema cannot change, as in Azure.
async fn declare(events: &EventGridService, config: &EventGridConfig) -> anyhow::Result<()> {
    for t in &config.topics {
        let kind = t.kind.unwrap_or_default();
        let schema = match kind {
            TopicKind::Custom => t.input_schema.unwrap_or(InputSchema::EventGrid),
            TopicKind::Namespace if t.input_schema.is_some_and(|s| s != InputSchema::CloudEvents) => {
                anyhow::bail!("event grid topic {:?} in the config file: a namespace topic takes CloudEvents (CloudEventSchemaV1_0) only", t.name)
            }
            TopicKind::Namespace => InputSchema::CloudEvents,
        };
        let keys = match (&t.key1, &t.key2) {
            (Some(a), Some(b)) => Some([a.clone(), b.clone()]),
            (None, None) => None,
            _ => anyhow::bail!("event grid topic {:?} in the config file: give both Key1 and Key2, or neither", t.name),
        };
        let result = match (events.topic_view(&t.name).ok(), keys) {
            (Some(view), _) if view.record.kind != kind => {
                anyhow::bail!("event grid topic {:?} exists as a {:?} topic; the config file says {:?}, and a topic's kind cannot change", t.name, view.record.kind, kind)
            }
            (Some(view), _) if view.record.schema != schema => {
                anyhow::bail!("event grid topic {:?} exists with {:?}; the config file says {:?}, and a topic's schema cannot change", t.name, view.record.schema, schema)
            }
            (Some(view), Some(keys)) if view.record.keys != keys => events.set_keys(&t.name, keys).await.map(drop),
            (Some(_), _) => Ok(()),
            (None, keys) if kind == TopicKind::Namespace => events.create_namespace_topic(&t.name, keys).await.map(drop),
            (None, Some(keys)) => events.create_topic_with_keys(&t.name, schema, keys).await.map(drop),
            (None, None) => events.create_topic(&t.name, schema).await.map(drop),
        };
        result.with_context(|| format!("event grid topic {:?} in the config file", t.name))?;
    }
    Ok(())
}
