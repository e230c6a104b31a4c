//! Why a node could not start (each names the dependency and what to check), and why a
//! running one stopped.

use crate::config::Settings;
use crate::db;
use crate::lanes::LaneError;
use std::time::Duration;

/// Why a node could not start. Each names the dependency and what to check.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("PostgreSQL at {url}: {source}")]
    Database { url: String, source: db::DbError },
    #[error("object store at {endpoint} (bucket `{bucket}`): {source}")]
    Storage {
        endpoint: String,
        bucket: String,
        source: crate::storage::StorageError,
    },
    #[error("RabbitMQ at {url}: {source}")]
    Amqp { url: String, source: lapin::Error },
    #[error("RabbitMQ at {url}: reply queue `{queue}` is held by another node named `{node}` ({source})")]
    ReplyQueue {
        url: String,
        queue: String,
        node: String,
        source: Box<lapin::Error>,
    },
    #[error("RabbitMQ publisher did not connect within {0:?}")]
    PublisherNotReady(Duration),
    #[error("listener: {0}")]
    Listener(std::io::Error),
    #[error("configuration key `tasks.kinds.{0}`: there is no kind `{0}`")]
    UnknownKindOverride(String),
    #[error("cannot declare queue `{queue}` as a {queue_type:?} queue ({source}); a queue keeps the type it was made with: see docs/scaling.md, \"Moving to quorum queues\", or set amqp.queue_type")]
    Queue {
        queue: String,
        queue_type: crate::amqp::QueueType,
        source: Box<lapin::Error>,
    },
    #[error("{0}")]
    OpenNetwork(String),
    #[error("open files: {0}")]
    OpenFiles(String),
    #[error("configuration of lanes: {0}")]
    Lanes(#[from] LaneError),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("HTTP API on {0}: {1}")]
    Http(String, std::io::Error),
}

/// The node stopped because an actor could not recover.
#[derive(Debug, thiserror::Error)]
#[error("node stopped: {0}")]
pub struct Fatal(pub String);

pub(super) fn db_err(settings: &Settings) -> impl Fn(db::DbError) -> StartupError + '_ {
    move |source| StartupError::Database {
        url: crate::telemetry::redact(&settings.database.url),
        source,
    }
}
