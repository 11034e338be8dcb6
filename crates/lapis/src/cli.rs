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
    /// Manage Service Bus entities of a running server (through its admin API).
    Sb(SbArgs),
    /// Manage event hubs of a running server (through its admin API).
    Eh(EhArgs),
    /// Manage Event Grid topics of a running server (through its admin API).
    Eg(EgArgs),
    /// Which service fits a communication task, and why (flags, --ask for questions,
    /// or --scenario for the music-share app's tasks).
    Choose(ChooseArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ProtocolArg {
    Any,
    Http,
    Amqp,
    Kafka,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScenarioArg {
    /// A track upload: a job with a large audio file.
    Upload,
    /// A comment: stored once, in order per track.
    Comment,
    /// "A track was published": independent handlers react.
    TrackPublished,
    /// Plays: listening telemetry, aggregated and replayable.
    Plays,
}

#[derive(Debug, Clone, Args)]
pub struct ChooseArgs {
    /// It is an event: something happened, and the sender expects nothing of who hears it.
    #[arg(long, conflicts_with = "message")]
    pub event: bool,
    /// It is a message: the sender hands over work and expects it done (the default).
    #[arg(long)]
    pub message: bool,
    /// Items must be handled in the order sent.
    #[arg(long)]
    pub ordered: bool,
    /// A retried send must be stored once.
    #[arg(long)]
    pub dedup: bool,
    /// Several operations must commit together.
    #[arg(long)]
    pub transactions: bool,
    /// Related items go to one consumer at a time.
    #[arg(long)]
    pub sessions: bool,
    /// Typical item size in KB.
    #[arg(long, default_value_t = 1)]
    pub size_kb: u64,
    /// The most that may wait unprocessed, in GB.
    #[arg(long, default_value_t = 1.0)]
    pub backlog_gb: f64,
    /// Items per second at peak.
    #[arg(long, default_value_t = 10)]
    pub rate: u64,
    /// A continuous stream (telemetry, clicks, logs).
    #[arg(long)]
    pub streaming: bool,
    /// Independent handlers that each get every item.
    #[arg(long, default_value_t = 1)]
    pub handlers: u32,
    /// The service should call the handlers.
    #[arg(long, conflicts_with = "pull")]
    pub push: bool,
    /// Handlers ask for work when ready.
    #[arg(long)]
    pub pull: bool,
    /// Consumers must be able to read again what they read.
    #[arg(long)]
    pub replay: bool,
    #[arg(long, value_enum, default_value = "any")]
    pub protocol: ProtocolArg,
    /// Answer for one of the music-share app's tasks.
    #[arg(long, value_enum)]
    pub scenario: Option<ScenarioArg>,
    /// Ask the questions in the terminal.
    #[arg(long)]
    pub ask: bool,
    /// Print the advice as JSON.
    #[arg(long)]
    pub json: bool,
    /// The server's config file, so connection strings match its ports.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Where the admin API is and the key that signs requests to it.
#[derive(Debug, Clone, Args)]
pub struct AdminConnection {
    /// The server's HTTP port (admin API).
    #[arg(long, global = true, env = "LAPIS_ADMIN_ENDPOINT", default_value = "http://127.0.0.1:5300")]
    pub endpoint: String,
    /// Name of the shared access key that signs requests.
    #[arg(long, global = true, env = "LAPIS_SAS_KEY_NAME", default_value = lapis_core::auth::sas_token::DEV_KEY_NAME)]
    pub key_name: String,
    /// The shared access key itself.
    #[arg(long, global = true, env = "LAPIS_SAS_KEY", default_value = lapis_core::auth::sas_token::DEV_KEY)]
    pub key: String,
}

#[derive(Debug, Clone, Args)]
pub struct SbArgs {
    #[command(subcommand)]
    pub command: SbCommand,
    #[command(flatten)]
    pub connection: AdminConnection,
}

#[derive(Debug, Clone, Args)]
pub struct EhArgs {
    #[command(subcommand)]
    pub command: EhCommand,
    #[command(flatten)]
    pub connection: AdminConnection,
}

#[derive(Debug, Clone, Args)]
pub struct EgArgs {
    #[command(subcommand)]
    pub command: EgCommand,
    #[command(flatten)]
    pub connection: AdminConnection,
}

#[derive(Debug, Clone, Subcommand)]
pub enum EgCommand {
    /// Custom and namespace topics: create, show (with endpoint and keys), list, delete (with their events).
    Topic {
        #[command(subcommand)]
        action: TopicAction,
    },
    /// Event subscriptions of a topic: create, show, list, delete.
    Subscription {
        topic: String,
        #[command(subcommand)]
        action: SubscriptionAction,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum SubscriptionAction {
    /// Create (fails if it exists). Give exactly one destination.
    Create(Box<SubscriptionFlags>),
    Show { name: String },
    List,
    Delete { name: String },
}

#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("destination").required(true).args(["webhook", "storage_queue", "servicebus_queue", "servicebus_topic", "event_hub", "pull"])))]
pub struct SubscriptionFlags {
    pub name: String,
    /// Push to this webhook (http or https URL).
    #[arg(long)]
    pub webhook: Option<String>,
    /// Deliver into this server's Storage Queue.
    #[arg(long)]
    pub storage_queue: Option<String>,
    /// Deliver into this server's Service Bus queue.
    #[arg(long)]
    pub servicebus_queue: Option<String>,
    /// Deliver into this server's Service Bus topic.
    #[arg(long)]
    pub servicebus_topic: Option<String>,
    /// Deliver into this server's event hub.
    #[arg(long)]
    pub event_hub: Option<String>,
    /// A queue subscription of a namespace topic: clients receive and acknowledge.
    #[arg(long)]
    pub pull: bool,
    /// Storage Queue destination: message time to live in seconds (-1: never).
    #[arg(long, allow_hyphen_values = true)]
    pub queue_message_ttl: Option<i64>,
    /// Queue subscription: seconds a received event stays locked (60-300, default 60).
    #[arg(long)]
    pub lock_seconds: Option<u32>,
    /// Queue subscription: receives before an event is dead-lettered (1-10, default 10).
    #[arg(long)]
    pub max_delivery_count: Option<u32>,
    /// Queue subscription: how long events stay receivable, ISO 8601 (default P7D).
    #[arg(long)]
    pub queue_event_ttl: Option<String>,
    /// Webhook batching: most events per delivery (1-5000, default 1).
    #[arg(long)]
    pub max_events_per_batch: Option<u32>,
    /// Webhook batching: preferred batch size in KB (1-1024, default 64).
    #[arg(long)]
    pub preferred_batch_kb: Option<u32>,
    #[arg(long)]
    pub subject_begins_with: Option<String>,
    #[arg(long)]
    pub subject_ends_with: Option<String>,
    #[arg(long)]
    pub subject_case_sensitive: bool,
    /// An event type to deliver (repeatable; none: all).
    #[arg(long = "included-event-type")]
    pub included_event_types: Vec<String>,
    /// An advanced filter as JSON, e.g. '{"operatorType":"NumberGreaterThan","key":"data.plays","value":10}' (repeatable).
    #[arg(long = "advanced-filter")]
    pub advanced_filters: Vec<String>,
    /// Look into array values with the advanced filters.
    #[arg(long)]
    pub filter_arrays: bool,
    /// The schema events are delivered in (default: the topic's).
    #[arg(long, value_enum)]
    pub delivery_schema: Option<TopicSchema>,
    /// 1-30 (default 30).
    #[arg(long)]
    pub max_delivery_attempts: Option<u32>,
    /// 1-1440 (default 1440).
    #[arg(long)]
    pub event_ttl_minutes: Option<u32>,
    /// A container of this server's Blob service for undeliverable events.
    #[arg(long)]
    pub dead_letter_container: Option<String>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum TopicAction {
    /// Create (fails if it exists); prints its endpoint and keys.
    Create {
        name: String,
        /// The schema publishers send.
        #[arg(long, value_enum, default_value = "eventgrid")]
        schema: TopicSchema,
        /// A namespace topic (CloudEvents, published with :publish, queue subscriptions).
        #[arg(long, conflicts_with = "schema")]
        namespace: bool,
    },
    Show { name: String },
    List,
    Delete { name: String },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TopicSchema {
    /// The Event Grid event schema.
    Eventgrid,
    /// CloudEvents 1.0.
    Cloudevents,
}

#[derive(Debug, Clone, Subcommand)]
pub enum EhCommand {
    /// Event hubs: create, update, show, list, delete (with their events).
    Hub {
        #[command(subcommand)]
        action: HubAction,
    },
    /// Consumer groups of a hub: add, list, delete.
    Group {
        hub: String,
        #[command(subcommand)]
        action: GroupAction,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum HubAction {
    /// Create (fails if it exists).
    Create(HubFlags),
    /// Change properties (only those given; partitions can only be added).
    Update(HubFlags),
    Show { name: String },
    List,
    Delete { name: String },
}

#[derive(Debug, Clone, Args)]
pub struct HubFlags {
    pub name: String,
    /// 1 to 32, or as many as the server's --max-partitions allows (default 4).
    #[arg(long)]
    pub partitions: Option<u64>,
    /// How long events are kept, in hours (default 24, at most 2160).
    #[arg(long)]
    pub retention_hours: Option<u64>,
    /// The most one partition keeps before its oldest events go.
    #[arg(long)]
    pub max_partition_mb: Option<u64>,
    /// A consumer group besides $Default (repeatable).
    #[arg(long = "consumer-group")]
    pub consumer_groups: Vec<String>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum GroupAction {
    Add { name: String },
    List,
    Delete { name: String },
}

#[derive(Debug, Clone, Subcommand)]
pub enum SbCommand {
    /// Queues: create, update, show, list, delete.
    Queue {
        #[command(subcommand)]
        action: EntityAction,
    },
    /// Topics: create, update, show, list, delete (with their subscriptions).
    Topic {
        #[command(subcommand)]
        action: EntityAction,
    },
    /// Subscriptions of a topic: create, update, show, list, delete.
    Subscription {
        /// The topic.
        topic: String,
        #[command(subcommand)]
        action: EntityAction,
    },
    /// Rules of a subscription: add, remove, list.
    Rule {
        topic: String,
        subscription: String,
        #[command(subcommand)]
        action: RuleAction,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum EntityAction {
    /// Create (fails if it exists). Unset properties take Azure's defaults.
    Create(EntityFlags),
    /// Change properties (only those given).
    Update(EntityFlags),
    /// Show properties and message counts.
    Show { name: String },
    /// List them all.
    List,
    /// Delete, with its messages.
    Delete { name: String },
}

#[derive(Debug, Clone, Subcommand)]
pub enum RuleAction {
    /// Add a rule: a SQL filter (--sql) or a correlation filter (--correlation, repeatable
    /// KEY=VALUE; keys CorrelationId, MessageId, To, ReplyTo, Label, SessionId,
    /// ReplyToSessionId, ContentType, anything else is an application property),
    /// optionally with a SQL action.
    Add {
        name: String,
        #[arg(long, conflicts_with = "correlation")]
        sql: Option<String>,
        #[arg(long)]
        correlation: Vec<String>,
        #[arg(long)]
        action: Option<String>,
    },
    /// Remove a rule by name.
    Remove { name: String },
    /// List the rules.
    List,
}

/// Properties of a queue, topic or subscription (each uses the ones Azure defines for it).
#[derive(Debug, Clone, Args)]
pub struct EntityFlags {
    pub name: String,
    /// ISO 8601 duration, e.g. PT30S (5 s to 5 min).
    #[arg(long)]
    pub lock_duration: Option<String>,
    #[arg(long)]
    pub max_delivery_count: Option<u32>,
    /// ISO 8601 duration, e.g. PT1H.
    #[arg(long = "default-ttl")]
    pub default_message_ttl: Option<String>,
    #[arg(long)]
    pub dead_letter_on_expiration: Option<bool>,
    #[arg(long)]
    pub requires_session: Option<bool>,
    /// Turns duplicate detection on with this window (ISO 8601 duration).
    #[arg(long)]
    pub duplicate_detection_window: Option<String>,
    #[arg(long)]
    pub max_size_mb: Option<u64>,
    #[arg(long)]
    pub max_message_kb: Option<u64>,
    /// Auto-forward every message to this queue or topic ("" turns it off).
    #[arg(long)]
    pub forward_to: Option<String>,
    /// Move dead-lettered messages to this queue or topic ("" turns it off).
    #[arg(long)]
    pub forward_dead_lettered_to: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityArg {
    /// Acknowledge a write only after fdatasync (group-committed).
    Strict,
    /// Acknowledge after the write reaches the OS; sync every few milliseconds.
    Relaxed,
}

impl ServeArgs {
    /// `serve`'s settings as the environment gives them, with `config` as its
    /// `--config`: for commands that print what a server would use.
    pub fn for_config(config: Option<PathBuf>) -> ServeArgs {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            args: ServeArgs,
        }
        let mut argv = vec![std::ffi::OsString::from("lapis")];
        if let Some(c) = config {
            argv.push("--config".into());
            argv.push(c.into());
        }
        Only::parse_from(argv).args
    }
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
    /// Blob endpoint port: the subset Event Hubs checkpoint stores use (0 disables it).
    #[arg(long, env = "LAPIS_BLOB_PORT")]
    pub blob_port: Option<u16>,
    /// Storage Queue endpoint port (0 disables it).
    #[arg(long, env = "LAPIS_QUEUE_PORT")]
    pub queue_port: Option<u16>,
    /// AMQP 1.0 port for Service Bus (and later Event Hubs); 0 disables it.
    #[arg(long, env = "LAPIS_AMQP_PORT")]
    pub amqp_port: Option<u16>,
    /// AMQP over TLS (`amqps`) port, served when --tls-cert and --tls-key are given
    /// (0 disables it).
    #[arg(long, env = "LAPIS_AMQPS_PORT")]
    pub amqps_port: Option<u16>,
    /// PEM certificate chain for the TLS endpoints.
    #[arg(long, env = "LAPIS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for the TLS endpoints.
    #[arg(long, env = "LAPIS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// A PEM file of certificates (a local CA, or an endpoint's self-signed
    /// certificate) that Event Grid trusts for https webhooks, beside Mozilla's roots
    /// (repeatable).
    #[arg(long = "webhook-ca", env = "LAPIS_WEBHOOK_CA", value_delimiter = ',')]
    pub webhook_ca: Vec<PathBuf>,
    /// Kafka port for Event Hubs (0 disables it). Reserved.
    #[arg(long, env = "LAPIS_KAFKA_PORT")]
    pub kafka_port: Option<u16>,
    /// Port of /health, the admin API and Event Grid (0 disables it).
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
    /// Service Bus shared access key as NAME:KEY (repeatable). On loopback the
    /// emulator's RootManageSharedAccessKey / SAS_KEY_VALUE is accepted too.
    #[arg(long = "sas-key", env = "LAPIS_SAS_KEYS", value_delimiter = ',')]
    pub sas_keys: Vec<String>,
    /// Most partitions an event hub may have (default 32, as Azure's standard tier;
    /// up to 1024).
    #[arg(long, env = "LAPIS_MAX_PARTITIONS")]
    pub max_partitions: Option<u32>,
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
