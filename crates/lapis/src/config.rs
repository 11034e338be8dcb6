//! Resolving settings from flags, environment and the config file into one value.
//!
//! The config file is JSON. Its optional `Lapis` object holds server settings with the
//! flags' names (`data_dir`, `host`, `queue_port`, `durability`, `accounts`, …). Other
//! top-level keys (such as the Service Bus emulator's `UserConfig`) are left for the
//! services that read them.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use lapis_core::auth::sas_token::SasKeys;
use lapis_core::auth::Accounts;

use crate::cli::{DurabilityArg, ServeArgs};

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    data_dir: Option<PathBuf>,
    in_memory: Option<bool>,
    host: Option<String>,
    blob_port: Option<u16>,
    queue_port: Option<u16>,
    amqp_port: Option<u16>,
    amqps_port: Option<u16>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default)]
    webhook_ca: Vec<PathBuf>,
    kafka_port: Option<u16>,
    http_port: Option<u16>,
    durability: Option<DurabilityArg>,
    #[serde(default)]
    accounts: Vec<String>,
    #[serde(default)]
    sas_keys: Vec<String>,
    max_partitions: Option<u32>,
    log_level: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
struct ConfigFile {
    #[serde(rename = "Lapis", default)]
    lapis: FileSettings,
    /// The emulators' section, accepted as it is: the Service Bus emulator's
    /// `Namespaces` and the Event Hubs emulator's `NamespaceConfig` may both be in it.
    #[serde(rename = "UserConfig", default)]
    user_config: Option<serde_json::Value>,
    /// Event Grid topics (Lapis's own section: Event Grid has no emulator).
    #[serde(rename = "EventGrid", default)]
    event_grid: Option<crate::eventgrid::EventGridConfig>,
}

/// Where durable state lives.
#[derive(Debug, Clone)]
pub enum Storage {
    Disk(PathBuf),
    Memory,
}

/// A TLS endpoint: its port and PEM files.
#[derive(Debug, Clone)]
pub struct Tls {
    pub port: u16,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub storage: Storage,
    pub host: IpAddr,
    /// The Blob subset (Event Hubs checkpoint stores).
    pub blob_port: u16,
    pub queue_port: u16,
    pub http_port: u16,
    /// AMQP 1.0 (Service Bus).
    pub amqp_port: u16,
    /// AMQP over TLS, with its certificate chain and key; `None` when no certificate
    /// is configured or the port is 0.
    pub amqps: Option<Tls>,
    /// Ports reserved for services still to come: Kafka. Not bound yet.
    #[allow(dead_code)]
    pub reserved_ports: [u16; 1],
    pub durability: DurabilityArg,
    pub accounts: Accounts,
    pub log_level: String,
    pub enable_test_clock: bool,
    pub salvage: bool,
    /// Service Bus entities declared in the config file.
    pub servicebus: Option<crate::servicebus::UserConfig>,
    /// Event hubs declared in the config file.
    pub eventhubs: Option<crate::eventhubs::UserConfig>,
    /// Event Grid topics declared in the config file.
    pub eventgrid: Option<crate::eventgrid::EventGridConfig>,
    /// Keys that sign Service Bus tokens (admin API, and later CBS).
    pub sas_keys: lapis_core::auth::sas_token::SasKeys,
    /// Most partitions an event hub may have.
    pub max_partitions: u32,
    /// Certificates Event Grid trusts for https webhooks, beside Mozilla's roots.
    pub webhook_ca: Vec<PathBuf>,
}

impl Settings {
    pub fn resolve(args: ServeArgs) -> anyhow::Result<Settings> {
        let (file, servicebus, eventhubs, eventgrid) = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
                let parsed: ConfigFile = serde_json::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))?;
                let section = |what: &str| format!("the {what} part of UserConfig in {}", path.display());
                let servicebus = parsed.user_config.clone().map(serde_json::from_value).transpose().with_context(|| section("Service Bus"))?;
                let eventhubs = parsed.user_config.map(serde_json::from_value).transpose().with_context(|| section("Event Hubs"))?;
                (parsed.lapis, servicebus, eventhubs, parsed.event_grid)
            }
            None => (FileSettings::default(), None, None, None),
        };
        let host_text = args.host.or(file.host).unwrap_or_else(|| "127.0.0.1".into());
        let host: IpAddr = host_text.parse().with_context(|| format!("--host {host_text:?} is not an IP address"))?;
        let in_memory = args.in_memory || (args.data_dir.is_none() && file.in_memory.unwrap_or(false));
        let storage = if in_memory {
            Storage::Memory
        } else {
            Storage::Disk(args.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("./lapis-data")))
        };
        let mut accounts = Accounts::with_dev_account();
        for spec in file.accounts.iter().chain(args.accounts.iter()) {
            accounts.add_spec(spec).context("--account")?;
        }
        let mut sas_keys = SasKeys::with_dev_key();
        for spec in file.sas_keys.iter().chain(args.sas_keys.iter()) {
            let (name, key) = spec.split_once(':').filter(|(n, k)| !n.is_empty() && !k.is_empty()).with_context(|| {
                format!("--sas-key {spec:?} is not NAME:KEY")
            })?;
            sas_keys.insert(name, key);
        }
        if !host.is_loopback() {
            if !accounts.has_custom() || !sas_keys.has_custom() {
                bail!(
                    "refusing to listen on {host}: off loopback every request must be authenticated with a real key, \
                     and the development keys are public. Give at least one --account NAME:BASE64KEY (storage) \
                     and one --sas-key NAME:KEY (Service Bus and the admin API), or listen on 127.0.0.1."
                );
            }
            accounts = accounts.without_dev_account();
            sas_keys = sas_keys.without_dev_key();
        }
        let amqps_port = args.amqps_port.or(file.amqps_port).unwrap_or(5671);
        let amqps = match (args.tls_cert.or(file.tls_cert), args.tls_key.or(file.tls_key)) {
            (Some(cert), Some(key)) => (amqps_port != 0).then_some(Tls { port: amqps_port, cert, key }),
            (None, None) => None,
            _ => bail!("TLS needs both a certificate (tls_cert) and a key (tls_key)"),
        };
        Ok(Settings {
            storage,
            amqps,
            host,
            blob_port: args.blob_port.or(file.blob_port).unwrap_or(10000),
            queue_port: args.queue_port.or(file.queue_port).unwrap_or(10001),
            http_port: args.http_port.or(file.http_port).unwrap_or(5300),
            amqp_port: args.amqp_port.or(file.amqp_port).unwrap_or(5672),
            reserved_ports: [args.kafka_port.or(file.kafka_port).unwrap_or(9092)],
            durability: args.durability.or(file.durability).unwrap_or(DurabilityArg::Strict),
            accounts,
            log_level: args.log_level.or(file.log_level).unwrap_or_else(|| "info".into()),
            enable_test_clock: args.enable_test_clock,
            salvage: args.salvage,
            servicebus,
            eventhubs,
            eventgrid,
            sas_keys,
            max_partitions: args.max_partitions.or(file.max_partitions).unwrap_or(lapis_core::stream::DEFAULT_MAX_PARTITIONS),
            webhook_ca: if args.webhook_ca.is_empty() { file.webhook_ca } else { args.webhook_ca },
        })
    }
}
