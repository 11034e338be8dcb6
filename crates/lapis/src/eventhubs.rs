//! Event Hubs in the binary: the emulator's `UserConfig.NamespaceConfig` section of
//! the config file, and opening the stream service on its own store (hub records)
//! and partition logs, with the declared hubs in place.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use lapis_core::stream::{HubConfig, HubProperties, StreamError, StreamRecovery, StreamService};
use lapis_core::Clock;
use lapis_store::{JournalOptions, Store};

/// The Event Hubs emulator's `UserConfig`, accepted as it is (its `LoggingConfig` is
/// ignored: Lapis logs as `--log-level` says).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserConfig {
    #[serde(default)]
    pub namespace_config: Vec<Namespace>,
}

/// One namespace. Its `Name` and `Type` are not needed: Lapis serves one namespace.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Namespace {
    #[serde(default)]
    pub entities: Vec<HubDecl>,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HubDecl {
    pub name: String,
    #[serde(flatten)]
    pub properties: HubProperties,
}

/// The stream service and the store under its hub records.
pub struct EventHubs {
    pub streams: Arc<StreamService>,
    pub store: Arc<dyn Store>,
}

/// Opens the service (hub records in `<dir>/meta`, partitions under `<dir>/logs`, or
/// all in memory), allowing hubs of up to `max_partitions`, and makes the declared
/// hubs exist with the declared properties.
pub async fn open(dir: Option<&Path>, options: JournalOptions, clock: Arc<dyn Clock>, max_partitions: u32, declared: Option<&UserConfig>) -> anyhow::Result<EventHubs> {
    let mut recovery = StreamRecovery::default();
    let (store, logs) = crate::stores::open_records_and_logs(dir, options, "logs", "event hubs", recovery.visitor())?;
    let streams = StreamService::open(store.clone(), logs, clock, recovery)
        .context("opening the event hubs' partition logs")?
        .with_max_partitions(max_partitions)
        .context("--max-partitions")?;
    if let Some(config) = declared {
        declare(&streams, config).await?;
    }
    Ok(EventHubs { streams: Arc::new(streams), store })
}

async fn declare(streams: &StreamService, config: &UserConfig) -> anyhow::Result<()> {
    for hub in config.namespace_config.iter().flat_map(|ns| &ns.entities) {
        let existing = streams.hub_view(&hub.name).ok().map(|h| h.config);
        let wanted = hub.properties.to_config(existing.as_ref().unwrap_or(&HubConfig::default()));
        let result = match existing {
            Some(current) if current == wanted => Ok(()),
            Some(_) => streams.update_hub(&hub.name, wanted).await,
            None => streams.create_hub(&hub.name, wanted).await,
        };
        match result {
            Ok(()) => {}
            Err(e @ StreamError::Invalid(_)) => anyhow::bail!("event hub {:?} in the config file: {e}", hub.name),
            Err(e) => return Err(e).with_context(|| format!("declaring event hub {:?}", hub.name)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_emulators_sample_config_is_read() {
        let json = r#"{"NamespaceConfig": [{"Type": "EventHub", "Name": "emulatorNs1",
            "Entities": [{"Name": "eh1", "PartitionCount": "2", "ConsumerGroups": [{"Name": "cg1"}]}]}],
            "LoggingConfig": {"Type": "File"}}"#;
        let c: UserConfig = serde_json::from_str(json).unwrap();
        let hub = &c.namespace_config[0].entities[0];
        assert_eq!(hub.name, "eh1");
        let config = hub.properties.to_config(&HubConfig::default());
        assert_eq!(config.partitions, 2);
        assert!(config.has_group("cg1") && config.has_group("$Default"));
    }
}
