//! The Event Hubs service: hubs with their partitions' logs and consumer groups,
//! created, changed and deleted at runtime and kept in the store; producers'
//! appends (by partition, by key or round robin); readers from any position; hub and
//! partition information; retention.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use lapis_store::partition::{Appended, EventLog, LogFactory, PartitionInfo, Seek};
use lapis_store::{Op, ReplayEvent, Store, StoreResult};
use parking_lot::RwLock;

use super::error::{StreamError, StreamResult};
use super::hash::partition_for_key;
use super::model::*;
use super::readers::{Reader, Readers};
use crate::clock::{Clock, Millis};

const HUB_PREFIX: u8 = b'V';

fn hub_key(name: &str) -> Vec<u8> {
    let mut k = vec![HUB_PREFIX];
    k.extend_from_slice(name.to_ascii_lowercase().as_bytes());
    k
}

/// One hub: its record, its partitions' logs and its readers.
pub struct Hub {
    pub record: RwLock<HubRecord>,
    partitions: RwLock<Vec<Arc<dyn EventLog>>>,
    readers: Arc<Readers>,
    round_robin: AtomicU64,
}

impl Hub {
    fn partition(&self, name: &str, id: &str) -> StreamResult<(u32, Arc<dyn EventLog>)> {
        let partitions = self.partitions.read();
        let not_found = || StreamError::PartitionNotFound { hub: name.to_string(), partition: id.to_string(), last: partitions.len().saturating_sub(1) as u32 };
        let index: u32 = id.parse().map_err(|_| not_found())?;
        let log = partitions.get(index as usize).cloned().ok_or_else(not_found)?;
        Ok((index, log))
    }
}

/// What a hub looks like from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubView {
    pub name: String,
    pub created_at: Millis,
    pub config: HubConfig,
}

/// Events a producer handed over: their partition, where they landed, and the wait
/// for their durability.
pub struct Sent {
    pub partition: u32,
    pub appended: Appended,
}

/// Hub records found while the store replays.
#[derive(Default)]
pub struct StreamRecovery {
    records: BTreeMap<Vec<u8>, HubRecord>,
}

impl StreamRecovery {
    pub fn visitor(&mut self) -> impl FnMut(ReplayEvent<'_>) -> StoreResult<()> + '_ {
        move |event| {
            match event {
                ReplayEvent::Put { key, value } if key.first() == Some(&HUB_PREFIX) => match serde_json::from_slice::<HubRecord>(value) {
                    Ok(r) => {
                        self.records.insert(key.to_vec(), r);
                    }
                    Err(e) => tracing::warn!(error = %e, "event hubs recovery: an unreadable hub record; skipped"),
                },
                ReplayEvent::Delete { key } => {
                    self.records.remove(key);
                }
                _ => {}
            }
            Ok(())
        }
    }
}

pub struct StreamService {
    store: Arc<dyn Store>,
    logs: Arc<dyn LogFactory>,
    clock: Arc<dyn Clock>,
    hubs: RwLock<BTreeMap<String, Arc<Hub>>>,
    next_id: AtomicU64,
    max_partitions: u32,
}

impl StreamService {
    /// The service over `store` (hub records, already replayed into `recovery`) and
    /// `logs` (the partitions), with every recovered hub's logs open.
    pub fn open(store: Arc<dyn Store>, logs: Arc<dyn LogFactory>, clock: Arc<dyn Clock>, recovery: StreamRecovery) -> StreamResult<StreamService> {
        let mut hubs = BTreeMap::new();
        let mut next_id = 1;
        for record in recovery.records.into_values() {
            next_id = next_id.max(record.id + 1);
            let partitions = (0..record.config.partitions).map(|p| logs.open(record.id, p)).collect::<StoreResult<Vec<_>>>()?;
            let hub = Hub { partitions: RwLock::new(partitions), readers: Arc::default(), round_robin: AtomicU64::new(0), record: RwLock::new(record) };
            let key = hub.record.read().name.to_ascii_lowercase();
            hubs.insert(key, Arc::new(hub));
        }
        Ok(StreamService { store, logs, clock, hubs: RwLock::new(hubs), next_id: AtomicU64::new(next_id), max_partitions: DEFAULT_MAX_PARTITIONS })
    }

    /// Allows hubs of up to `max` partitions (at most [`PARTITION_CEILING`]). Hubs
    /// recovered with more keep theirs.
    pub fn with_max_partitions(mut self, max: u32) -> StreamResult<StreamService> {
        if max == 0 || max > PARTITION_CEILING {
            return Err(StreamError::Invalid(format!("The partition limit must be between 1 and {PARTITION_CEILING}.")));
        }
        self.max_partitions = max;
        Ok(self)
    }

    pub fn hub(&self, name: &str) -> StreamResult<Arc<Hub>> {
        self.hubs.read().get(&name.to_ascii_lowercase()).cloned().ok_or_else(|| StreamError::HubNotFound(name.to_string()))
    }

    // ---- hubs -------------------------------------------------------------------

    pub async fn create_hub(&self, name: &str, config: HubConfig) -> StreamResult<()> {
        check_hub_name(name)?;
        config.check(self.max_partitions)?;
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        // Logs first: a hub is never visible without its partitions.
        let partitions = (0..config.partitions).map(|p| self.logs.open(id, p)).collect::<StoreResult<Vec<_>>>()?;
        let record = HubRecord { id, name: name.to_string(), created_at: self.clock.now_ms(), config };
        let commit = {
            let mut hubs = self.hubs.write();
            let key = name.to_ascii_lowercase();
            if hubs.contains_key(&key) {
                drop(hubs);
                partitions.iter().for_each(|p| p.close());
                self.logs.remove_hub(id)?;
                return Err(StreamError::HubAlreadyExists(name.to_string()));
            }
            let commit = self.store.commit(&[Op::Put { key: hub_key(name), value: serde_json::to_vec(&record).expect("a hub record serializes") }])?;
            let hub = Hub { partitions: RwLock::new(partitions), readers: Arc::default(), round_robin: AtomicU64::new(0), record: RwLock::new(record) };
            hubs.insert(key, Arc::new(hub));
            commit
        };
        Ok(commit.durable().await?)
    }

    /// Changes a hub's settings. Partitions can be added, never removed (as in Azure).
    pub async fn update_hub(&self, name: &str, config: HubConfig) -> StreamResult<()> {
        let hub = self.hub(name)?;
        config.check(self.max_partitions.max(hub.record.read().config.partitions))?;
        let commit = {
            let mut record = hub.record.write();
            if config.partitions < record.config.partitions {
                return Err(StreamError::Invalid("The partition count of an event hub can only grow.".into()));
            }
            let added = (record.config.partitions..config.partitions).map(|p| self.logs.open(record.id, p)).collect::<StoreResult<Vec<_>>>()?;
            let mut updated = record.clone();
            updated.config = config;
            let commit = self.store.commit(&[Op::Put { key: hub_key(name), value: serde_json::to_vec(&updated).expect("a hub record serializes") }])?;
            hub.partitions.write().extend(added);
            *record = updated;
            commit
        };
        Ok(commit.durable().await?)
    }

    /// Deletes a hub with all its events.
    pub async fn delete_hub(&self, name: &str) -> StreamResult<()> {
        let (hub, commit) = {
            let mut hubs = self.hubs.write();
            let hub = hubs.remove(&name.to_ascii_lowercase()).ok_or_else(|| StreamError::HubNotFound(name.to_string()))?;
            let commit = self.store.commit(&[Op::Delete { key: hub_key(name) }])?;
            (hub, commit)
        };
        commit.durable().await?;
        let logs: Vec<_> = hub.partitions.read().clone();
        let id = hub.record.read().id;
        let factory = self.logs.clone();
        tokio::task::spawn_blocking(move || {
            logs.iter().for_each(|l| l.close());
            factory.remove_hub(id)
        })
        .await
        .map_err(|e| StreamError::Invalid(format!("deleting the hub's logs: {e}")))??;
        Ok(())
    }

    pub async fn add_consumer_group(&self, hub: &str, group: &str) -> StreamResult<()> {
        check_group_name(group)?;
        let mut config = self.hub(hub)?.record.read().config.clone();
        if config.has_group(group) {
            return Err(StreamError::ConsumerGroupAlreadyExists(group.to_string()));
        }
        config.consumer_groups.insert(group.to_string());
        self.update_hub(hub, config).await
    }

    pub async fn delete_consumer_group(&self, hub: &str, group: &str) -> StreamResult<()> {
        let mut config = self.hub(hub)?.record.read().config.clone();
        if group.eq_ignore_ascii_case(DEFAULT_CONSUMER_GROUP) {
            return Err(StreamError::Invalid("The $Default consumer group cannot be deleted.".into()));
        }
        let before = config.consumer_groups.len();
        config.consumer_groups.retain(|g| !g.eq_ignore_ascii_case(group));
        if config.consumer_groups.len() == before {
            return Err(StreamError::ConsumerGroupNotFound { hub: hub.to_string(), group: group.to_string() });
        }
        self.update_hub(hub, config).await
    }

    pub fn list_hubs(&self) -> Vec<HubView> {
        self.hubs.read().values().map(|h| view(&h.record.read())).collect()
    }

    pub fn hub_view(&self, name: &str) -> StreamResult<HubView> {
        Ok(view(&self.hub(name)?.record.read()))
    }

    pub fn partition_info(&self, hub: &str, partition: &str) -> StreamResult<PartitionInfo> {
        let (_, log) = self.hub(hub)?.partition(hub, partition)?;
        Ok(log.info())
    }

    // ---- events -----------------------------------------------------------------

    /// Appends `bodies` (one producer's send: an event or a batch) to one partition.
    pub fn send(&self, hub: &str, target: &SendTarget, bodies: &[&[u8]]) -> StreamResult<Sent> {
        let total: usize = bodies.iter().map(|b| b.len()).sum();
        if total > MAX_EVENT_BYTES {
            return Err(StreamError::EventTooLarge { size: total, limit: MAX_EVENT_BYTES });
        }
        let h = self.hub(hub)?;
        let (partition, log) = match target {
            SendTarget::Partition(id) => h.partition(hub, id)?,
            SendTarget::Key(key) => {
                let count = h.partitions.read().len() as u32;
                h.partition(hub, &partition_for_key(key, count).to_string())?
            }
            SendTarget::Any => {
                let count = h.partitions.read().len() as u64;
                let next = h.round_robin.fetch_add(1, Ordering::Relaxed) % count;
                h.partition(hub, &next.to_string())?
            }
        };
        let appended = log.append(self.clock.now_ms(), bodies)?;
        Ok(Sent { partition, appended })
    }

    /// A reader of `partition` for `group`, from `from`, with an owner level when
    /// `epoch` is given.
    pub fn open_reader(&self, hub: &str, group: &str, partition: &str, epoch: Option<i64>, from: Seek) -> StreamResult<(u32, Reader)> {
        let h = self.hub(hub)?;
        if !h.record.read().config.has_group(group) {
            return Err(StreamError::ConsumerGroupNotFound { hub: hub.to_string(), group: group.to_string() });
        }
        let (index, log) = h.partition(hub, partition)?;
        let cursor = log.seek(from);
        Ok((index, Reader::join(&h.readers, group, index, epoch, log, cursor)?))
    }

    /// Drops events past each hub's retention (time and size). Runs the file work off
    /// the runtime.
    pub async fn maintain(&self) -> StreamResult<u64> {
        let now = self.clock.now_ms();
        let work: Vec<(Arc<dyn EventLog>, Millis, u64)> = self
            .hubs
            .read()
            .values()
            .flat_map(|h| {
                let config = h.record.read().config.clone();
                h.partitions.read().iter().map(|l| (l.clone(), now - config.retention_ms, config.max_partition_bytes)).collect::<Vec<_>>()
            })
            .collect();
        let removed = tokio::task::spawn_blocking(move || work.iter().map(|(log, keep_from, cap)| log.retain(*keep_from, *cap)).sum::<StoreResult<u64>>())
            .await
            .map_err(|e| StreamError::Invalid(format!("retention task: {e}")))??;
        Ok(removed)
    }

    /// Flushes and stops every partition log.
    pub fn close(&self) {
        for hub in self.hubs.read().values() {
            hub.partitions.read().iter().for_each(|l| l.close());
        }
    }
}

fn view(r: &HubRecord) -> HubView {
    HubView { name: r.name.clone(), created_at: r.created_at, config: r.config.clone() }
}
