//! Typed, layered settings.
//!
//! Layers, later ones winning: `config/default.toml` (compiled into the binary), the node's own
//! file (`--config`), then environment variables `TASKNODE__SECTION__KEY`. Unknown keys and bad
//! values stop the node at startup with a message naming the key.

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The defaults every node starts from (the same text as `config/default.toml`).
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key `{key}`: {problem}")]
    Invalid { key: &'static str, problem: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub node: NodeSettings,
    pub listener: ListenerSettings,
    pub amqp: AmqpSettings,
    pub database: DatabaseSettings,
    pub storage: StorageSettings,
    pub tasks: TaskSettings,
    pub supervision: SupervisionSettings,
    pub keys: KeySettings,
    pub retention: RetentionSettings,
    pub janitor: JanitorSettings,
    pub workers: WorkerSettings,
    pub auth: crate::auth::AuthSettings,
    pub http: HttpSettings,
    /// `[lanes.<name>]`: see [`crate::lanes`].
    pub lanes: std::collections::BTreeMap<String, LaneSettings>,
    /// `[external]`: kinds that workers of any language run (see [`crate::work`]).
    pub external: ExternalSettings,
}

/// Kinds no node builds in, run by workers that connect (`WORK`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalSettings {
    /// Accepted even while no worker has registered them. Their timeouts and attempts are
    /// `[tasks.kinds.<kind>]` like any kind's.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// How long a kind a worker registered (by saying `WORK` for it) stays accepted after
    /// the last worker for it left.
    pub registration_ttl_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSettings {
    /// Shown to clients as the node that ran a task; names this node's reply queue.
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerSettings {
    pub address: String,
    pub max_line_bytes: usize,
    pub max_payload_bytes: u64,
    pub max_connections: usize,
    pub wait_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    pub write_timeout_secs: u64,
    /// A connection that has not authenticated within this long is closed (token mode).
    pub auth_timeout_secs: u64,
    /// PEM certificate chain and private key: with both, the port speaks TLS only (both are
    /// read again on `SIGHUP`).
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSettings {
    /// One broker. Ignored when `urls` lists any.
    pub url: String,
    /// The brokers of one RabbitMQ cluster: a node connects to one of them and moves to
    /// another when it goes away (see [`crate::amqp::Broker`]).
    #[serde(default)]
    pub urls: Vec<String>,
    pub task_queue: String,
    pub reply_queue_prefix: String,
    pub publish_wait_ms: u64,
    /// RabbitMQ's `consumer_timeout` (ms in rabbitmq.conf), in seconds: each lane's longest
    /// task timeout must fit below it.
    pub consumer_timeout_secs: u64,
    /// `quorum` (the default) or `classic` durable queues (see [`crate::amqp::topology`]).
    pub queue_type: crate::amqp::QueueType,
    /// Deliveries of one task message before the broker dead-letters it (quorum queues).
    pub delivery_limit: u32,
    /// CA certificate(s) (PEM) an `amqps://` broker's certificate is checked against, beside
    /// the system's roots.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub pool_size: u32,
    /// CA certificate(s) (PEM): TLS to PostgreSQL, the server's certificate checked against
    /// them (without it, `sslmode=require` in the URL encrypts without checking, as libpq).
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
}

impl DatabaseSettings {
    /// Where the database is and how to reach it.
    pub fn target(&self) -> Result<crate::db::Database, crate::db::DbError> {
        crate::db::Database::with_ca(&self.url, self.tls_ca.as_deref())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    pub key_prefix: String,
    pub inline_limit: usize,
    pub part_size: usize,
    pub presign_secs: u64,
    /// The longest one request to the store may take.
    pub timeout_secs: u64,
    /// Payload uploads in progress at once on a node (each holds up to `part_size` + 1 MiB);
    /// past that a large submission is answered `busy`.
    pub max_uploads: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSettings {
    pub max_attempts: u32,
    pub retry_base_ms: u64,
    pub timeout_secs: u64,
    #[serde(default)]
    pub kinds: std::collections::BTreeMap<String, KindSettings>,
    pub enable_panic_kind: bool,
    /// Test deployments: the `tally` kind appends each run's payload to this file.
    #[serde(default)]
    pub tally_file: Option<String>,
}

/// Per-kind overrides of [`TaskSettings`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindSettings {
    pub max_attempts: Option<u32>,
    pub timeout_secs: Option<u64>,
    /// The longest a run may last with `EXTEND` (external kinds); by default the longest a
    /// node may hold a delivery (`amqp.consumer_timeout_secs` less a minute).
    #[serde(default)]
    pub max_secs: Option<u64>,
}

impl TaskSettings {
    pub fn max_attempts(&self, kind: &str) -> u32 {
        self.kinds
            .get(kind)
            .and_then(|k| k.max_attempts)
            .unwrap_or(self.max_attempts)
    }

    pub fn timeout(&self, kind: &str) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.kinds
                .get(kind)
                .and_then(|k| k.timeout_secs)
                .unwrap_or(self.timeout_secs),
        )
    }

    /// The largest attempt count of any kind.
    pub fn most_attempts(&self) -> u32 {
        self.kinds
            .values()
            .filter_map(|k| k.max_attempts)
            .chain([self.max_attempts])
            .max()
            .unwrap_or(1)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Days of finished tasks kept (0: all).
    pub days: u64,
    /// Payloads and results in the bucket that no task names are deleted once this old.
    pub orphans_after_secs: u64,
}

/// `[janitor]`: see [`crate::actors::janitor`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JanitorSettings {
    /// How often a node empties the dead-letter queues and looks for stuck rows.
    pub every_secs: u64,
    /// How long past its kind's timeout a row may stay `running` (or `queued`) with no
    /// message before it is put back.
    pub grace_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySettings {
    /// How long an idempotency key names its first task.
    pub retention_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisionSettings {
    pub max_restarts: u32,
    pub window_secs: u64,
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// Worker threads; `None` means one per CPU, `Some(0)` an accept-only node.
    pub count: Option<usize>,
}

impl WorkerSettings {
    pub fn threads(&self) -> usize {
        self.count.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
    }
}

impl AmqpSettings {
    /// How the durable queues are declared.
    pub fn topology(&self) -> crate::amqp::Topology {
        crate::amqp::Topology {
            queue_type: self.queue_type,
            delivery_limit: self.delivery_limit,
        }
    }

    /// The brokers to use: `urls`, or `url` alone when `urls` is empty.
    pub fn urls(&self) -> Vec<String> {
        if self.urls.is_empty() {
            vec![self.url.clone()]
        } else {
            self.urls.clone()
        }
    }

    /// The queue results for tasks accepted by `node` are sent to.
    pub fn reply_queue(&self, node: &str) -> String {
        format!("{}.{}", self.reply_queue_prefix, node)
    }
}

impl Settings {
    /// Load the layers: defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(file, std::env::vars())
    }

    /// As [`Settings::load`], with the environment given explicitly (for tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut builder =
            Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        if let Some(path) = file {
            builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
        }
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("TASKNODE__"))
            .collect();
        builder = builder.add_source(
            Environment::with_prefix("TASKNODE")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("amqp.urls")
                .source(Some(env)),
        );
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Parse settings from TOML text layered over the defaults (no environment).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let settings: Settings = Config::builder()
            .add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml))
            .add_source(File::from_str(text, FileFormat::Toml))
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }
}

mod validate;

#[cfg(test)]
mod tests;

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Where the API listens; empty: no HTTP API.
    pub address: String,
    /// Threads serving HTTP (each with its own event loop).
    pub workers: usize,
    /// Browser origins allowed to call the API (CORS), e.g. `https://app.example.com`;
    /// `*` allows any.
    pub cors_origins: Vec<String>,
    /// Largest JSON body (a raw body may be as large as `listener.max_payload_bytes`).
    pub max_json_bytes: usize,
    /// A client must send its request head within this many seconds, and may not pause a
    /// body for longer.
    pub request_timeout_secs: u64,
    /// An idle keep-alive connection is closed after this many seconds.
    pub keep_alive_secs: u64,
    /// Connections open at once; past that, a new connection is answered 503 `busy` and
    /// closed.
    pub max_connections: usize,
    /// Event streams and long polls open at once; past that, 503 `busy`.
    pub max_streams: usize,
    /// The longest an event stream stays open (a client reconnects for more).
    pub max_stream_secs: u64,
    /// The longest a worker's `POST /v1/work` waits for a task (a longer `wait` is cut to
    /// it); at most 30.
    pub work_wait_secs: u64,
    /// `/metrics` without a token (else an admin token is needed).
    pub public_metrics: bool,
}

/// One `[lanes.<name>]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaneSettings {
    /// Kinds of this lane (besides those that fall to it by default).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Worker threads on each node; unset: `workers.count` (one per CPU by default).
    pub workers: Option<usize>,
    /// Deliveries each node holds at once from this lane's queue.
    pub prefetch: u16,
}
