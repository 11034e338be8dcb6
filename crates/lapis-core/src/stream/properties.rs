//! Hub properties in Azure's naming, as the Event Hubs emulator's `Config.json` and
//! Lapis's admin API write them (`PartitionCount`, `RetentionTimeInHours`,
//! `ConsumerGroups`), and their translation to [`HubConfig`]. The emulator writes
//! numbers as strings (`"PartitionCount": "2"`); both forms are read.

use serde::{Deserialize, Deserializer, Serialize};

use super::model::{HubConfig, DEFAULT_CONSUMER_GROUP};

/// A number, or a string holding one.
fn number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Number(u64),
        Text(String),
    }
    match Option::<N>::deserialize(d)? {
        None => Ok(None),
        Some(N::Number(n)) => Ok(Some(n)),
        Some(N::Text(t)) => t.trim().parse().map(Some).map_err(|_| serde::de::Error::custom(format!("{t:?} is not a number"))),
    }
}

/// A consumer group as the emulator's config names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GroupDecl {
    pub name: String,
}

/// The properties of one hub. Absent fields take the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HubProperties {
    #[serde(default, deserialize_with = "number", skip_serializing_if = "Option::is_none")]
    pub partition_count: Option<u64>,
    #[serde(default, deserialize_with = "number", skip_serializing_if = "Option::is_none", alias = "MessageRetentionInHours")]
    pub retention_time_in_hours: Option<u64>,
    #[serde(default, deserialize_with = "number", skip_serializing_if = "Option::is_none")]
    pub max_partition_size_in_megabytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_groups: Option<Vec<GroupDecl>>,
}

impl HubProperties {
    /// These properties over `base` (an update names only what changes).
    pub fn to_config(&self, base: &HubConfig) -> HubConfig {
        let mut c = base.clone();
        if let Some(p) = self.partition_count {
            c.partitions = p.min(u32::MAX as u64) as u32;
        }
        if let Some(h) = self.retention_time_in_hours {
            c.retention_ms = (h.min(i64::MAX as u64 / 3_600_000) as i64) * 3_600_000;
        }
        if let Some(mb) = self.max_partition_size_in_megabytes {
            c.max_partition_bytes = mb.saturating_mul(1 << 20);
        }
        if let Some(groups) = &self.consumer_groups {
            c.consumer_groups = groups.iter().map(|g| g.name.clone()).filter(|g| !g.eq_ignore_ascii_case(DEFAULT_CONSUMER_GROUP)).collect();
        }
        c
    }

    /// The properties that describe `config` in full (`$Default` listed first).
    pub fn from_config(config: &HubConfig) -> HubProperties {
        let mut groups = vec![GroupDecl { name: DEFAULT_CONSUMER_GROUP.into() }];
        groups.extend(config.consumer_groups.iter().map(|g| GroupDecl { name: g.clone() }));
        HubProperties {
            partition_count: Some(config.partitions as u64),
            retention_time_in_hours: Some((config.retention_ms / 3_600_000) as u64),
            max_partition_size_in_megabytes: Some(config.max_partition_bytes >> 20),
            consumer_groups: Some(groups),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_emulators_strings_and_plain_numbers_are_read() {
        let p: HubProperties = serde_json::from_str(r#"{"PartitionCount": "2", "ConsumerGroups": [{"Name": "cg1"}, {"Name": "$Default"}]}"#).unwrap();
        let c = p.to_config(&HubConfig::default());
        assert_eq!(c.partitions, 2);
        assert_eq!(c.consumer_groups.iter().collect::<Vec<_>>(), ["cg1"]);
        let q: HubProperties = serde_json::from_str(r#"{"PartitionCount": 8, "RetentionTimeInHours": 48}"#).unwrap();
        let c = q.to_config(&c);
        assert_eq!((c.partitions, c.retention_ms), (8, 48 * 3_600_000));
        assert!(c.has_group("CG1"), "an update keeps what it does not name");
        assert!(serde_json::from_str::<HubProperties>(r#"{"PartitionCount": "two"}"#).is_err());
        assert_eq!(HubProperties::from_config(&c).to_config(&HubConfig::default()), c);
    }
}
