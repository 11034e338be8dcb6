//! The command line. Every `serve` flag can also come from a `LAPIS_…` environment
//! variable or the `Lapis` section of the `--config` file (flags win).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "lapis", version, about = "Azure's messaging services, in one local binary")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: every service that exists, on its port.
    Serve(ServeArgs),
    /// Print the endpoints and connection strings `serve` would use, then exit.
    ConnectionStrings(ServeArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityArg {
    /// Acknowledge a write only after fdatasync (group-committed).
    Strict,
    /// Acknowledge after the write reaches the OS; sync every few milliseconds.
    Relaxed,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Directory for all durable state.
    #[arg(long, env = "LAPIS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep everything in memory; nothing survives a restart.
    #[arg(long, env = "LAPIS_IN_MEMORY", conflicts_with = "data_dir")]
    pub in_memory: bool,
    /// Address to listen on. Anything but loopback requires --account.
    #[arg(long, env = "LAPIS_HOST")]
    pub host: Option<String>,
    /// Blob endpoint port (0 disables it). Reserved: the Blob subset is not built yet.
    #[arg(long, env = "LAPIS_BLOB_PORT")]
    pub blob_port: Option<u16>,
    /// Storage Queue endpoint port (0 disables it).
    #[arg(long, env = "LAPIS_QUEUE_PORT")]
    pub queue_port: Option<u16>,
    /// AMQP port for Service Bus and Event Hubs (0 disables it). Reserved.
    #[arg(long, env = "LAPIS_AMQP_PORT")]
    pub amqp_port: Option<u16>,
    /// Kafka port for Event Hubs (0 disables it). Reserved.
    #[arg(long, env = "LAPIS_KAFKA_PORT")]
    pub kafka_port: Option<u16>,
    /// Port of /health, the admin API and (later) Event Grid (0 disables it).
    #[arg(long, env = "LAPIS_HTTP_PORT")]
    pub http_port: Option<u16>,
    #[arg(long, value_enum, env = "LAPIS_DURABILITY")]
    pub durability: Option<DurabilityArg>,
    /// JSON configuration file.
    #[arg(long, env = "LAPIS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Extra storage account as NAME:BASE64KEY (repeatable; a second spec for the same
    /// name adds a second key).
    #[arg(long = "account", env = "LAPIS_ACCOUNTS", value_delimiter = ',')]
    pub accounts: Vec<String>,
    /// Log filter, e.g. `info` or `lapis_store=debug`.
    #[arg(long, env = "LAPIS_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Expose POST /_lapis/clock/advance on the HTTP port, for tests.
    #[arg(long, env = "LAPIS_ENABLE_TEST_CLOCK")]
    pub enable_test_clock: bool,
    /// Start even if recovery finds damaged records mid-file: skip them and log each.
    #[arg(long, env = "LAPIS_SALVAGE")]
    pub salvage: bool,
}
