//! Event hubs as the core sees them: a hub's configuration with Azure's bounds, its
//! record in the store, and what producers and readers ask for.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::error::{StreamError, StreamResult};
use crate::clock::Millis;

/// Every hub has this consumer group, and it cannot be deleted.
pub const DEFAULT_CONSUMER_GROUP: &str = "$Default";
/// Largest event, or batch of events, a producer may send (Azure: 1 MB).
pub const MAX_EVENT_BYTES: usize = 1 << 20;
/// Readers without an owner level per partition and consumer group (Azure: 5).
pub const MAX_READERS_PER_PARTITION: usize = 5;
/// Partitions a hub may have unless the server is configured otherwise (Azure's
/// standard tier: 32).
pub const DEFAULT_MAX_PARTITIONS: u32 = 32;
/// The most any configuration allows (Azure's dedicated tier: 1024).
pub const PARTITION_CEILING: u32 = 1024;
pub const DEFAULT_PARTITIONS: u32 = 4;
/// Retention: default one day, at most 90 days.
pub const DEFAULT_RETENTION_MS: Millis = 24 * 3_600_000;
pub const MAX_RETENTION_MS: Millis = 90 * 24 * 3_600_000;
/// Default cap on the bytes one partition retains (oldest segments go first).
pub const DEFAULT_PARTITION_BYTES: u64 = 10 << 30;
/// Consumer groups per hub (Azure standard tier: 20).
pub const MAX_CONSUMER_GROUPS: usize = 100;

/// A hub's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubConfig {
    pub partitions: u32,
    pub retention_ms: Millis,
    pub max_partition_bytes: u64,
    /// Besides `$Default`.
    pub consumer_groups: BTreeSet<String>,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig { partitions: DEFAULT_PARTITIONS, retention_ms: DEFAULT_RETENTION_MS, max_partition_bytes: DEFAULT_PARTITION_BYTES, consumer_groups: BTreeSet::new() }
    }
}

fn valid_name(name: &str) -> bool {
    (1..=256).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

pub fn check_hub_name(name: &str) -> StreamResult<()> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(StreamError::Invalid(format!("The event hub name '{name}' is not valid: 1-256 letters, digits, '.', '-' or '_'.")))
    }
}

pub fn check_group_name(name: &str) -> StreamResult<()> {
    if valid_name(name) || name == DEFAULT_CONSUMER_GROUP {
        Ok(())
    } else {
        Err(StreamError::Invalid(format!("The consumer group name '{name}' is not valid: 1-256 letters, digits, '.', '-' or '_'.")))
    }
}

impl HubConfig {
    /// Checks the settings against Azure's bounds, with at most `max_partitions`.
    pub fn check(&self, max_partitions: u32) -> StreamResult<()> {
        if self.partitions == 0 || self.partitions > max_partitions {
            let more = if max_partitions < PARTITION_CEILING { " (the server's --max-partitions raises the limit)" } else { "" };
            return Err(StreamError::Invalid(format!("PartitionCount must be between 1 and {max_partitions}{more}.")));
        }
        if self.retention_ms < 60_000 || self.retention_ms > MAX_RETENTION_MS {
            return Err(StreamError::Invalid("The retention must be between one minute and 90 days.".into()));
        }
        if self.max_partition_bytes < 1 << 20 {
            return Err(StreamError::Invalid("The size cap of a partition must be at least 1 MiB.".into()));
        }
        if self.consumer_groups.len() > MAX_CONSUMER_GROUPS {
            return Err(StreamError::Invalid(format!("A hub has at most {MAX_CONSUMER_GROUPS} consumer groups.")));
        }
        self.consumer_groups.iter().try_for_each(|g| check_group_name(g))
    }

    /// Whether the hub has consumer group `name` (case-insensitively, as Azure).
    pub fn has_group(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case(DEFAULT_CONSUMER_GROUP) || self.consumer_groups.iter().any(|g| g.eq_ignore_ascii_case(name))
    }
}

/// A hub as it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubRecord {
    pub id: u64,
    pub name: String,
    pub created_at: Millis,
    pub config: HubConfig,
}

/// Where a producer's events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendTarget {
    /// Wherever the hub chooses (round robin).
    Any,
    /// This partition.
    Partition(String),
    /// The partition this key hashes to.
    Key(String),
}
