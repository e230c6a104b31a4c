//! Building a node: check every dependency, then start the actors in dependency order.

use crate::actors::consumer::{ConsumerDeps, TaskConsumer};
use crate::actors::listener::SocketListener;
use crate::actors::persister::Persister;
use crate::actors::publisher::{IsConnected, Publisher};
use crate::actors::replies::ReplyRouter;
use crate::actors::uploader::Uploader;
use crate::actors::worker_pool::Worker;
use crate::config::Settings;
use crate::kinds::Registry;
use crate::service::Services;
use crate::storage::Storage;
use crate::{amqp, db};
use actix::prelude::*;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;

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
        source: lapin::Error,
    },
    #[error("RabbitMQ publisher did not connect within {0:?}")]
    PublisherNotReady(Duration),
    #[error("listener: {0}")]
    Listener(std::io::Error),
}

/// A running node. Dropping it does not stop it; stop the actix system.
pub struct Node {
    local_addr: SocketAddr,
    services: Services,
    _listener: Addr<SocketListener>,
    _consumer: Option<Addr<TaskConsumer>>,
}

/// Hide the password in a URL for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Apply pending migrations and create the bucket, then return: what `tasknode --prepare`
/// does, for deploy scripts that prepare before starting a fleet.
pub async fn prepare(settings: &Settings) -> Result<(), StartupError> {
    let db_err = |source| StartupError::Database {
        url: redact(&settings.database.url),
        source,
    };
    let applied = db::run_migrations(&settings.database.url)
        .await
        .map_err(db_err)?;
    tracing::info!(?applied, "database ready");
    let storage_err = |source| StartupError::Storage {
        endpoint: settings.storage.endpoint.clone(),
        bucket: settings.storage.bucket.clone(),
        source,
    };
    let storage = Storage::new(&settings.storage).map_err(storage_err)?;
    storage.ensure_bucket().await.map_err(storage_err)?;
    tracing::info!(bucket = %settings.storage.bucket, "bucket ready");
    Ok(())
}

impl Node {
    /// Check the database (and migrate it), the bucket and the broker, then start the actors
    /// and serve `listener`. Must run inside an actix system.
    pub async fn build(settings: Settings, listener: TcpListener) -> Result<Node, StartupError> {
        let node = settings.node.name.clone();
        let db_err = |source| StartupError::Database {
            url: redact(&settings.database.url),
            source,
        };
        let applied = db::run_migrations(&settings.database.url)
            .await
            .map_err(db_err)?;
        if !applied.is_empty() {
            tracing::info!(?applied, "applied database migrations");
        }
        let pool = db::connect_pool(&settings.database.url, settings.database.pool_size)
            .await
            .map_err(db_err)?;
        pool.get().await.map_err(|e| db_err(db::DbError::Pool(e)))?;

        let storage_err = |source| StartupError::Storage {
            endpoint: settings.storage.endpoint.clone(),
            bucket: settings.storage.bucket.clone(),
            source,
        };
        let storage = Storage::new(&settings.storage).map_err(storage_err)?;
        storage.ensure_bucket().await.map_err(storage_err)?;

        let amqp_url = redact(&settings.amqp.url);
        let amqp_err = |source| StartupError::Amqp {
            url: amqp_url.clone(),
            source,
        };
        {
            let probe = amqp::connect(&settings.amqp.url, &format!("{node}-probe"))
                .await
                .map_err(amqp_err)?;
            let channel = probe.create_channel().await.map_err(amqp_err)?;
            amqp::declare_task_queue(&channel, &settings.amqp.task_queue)
                .await
                .map_err(amqp_err)?;
            let _ = probe.close(200, "probe done".into()).await;
        }
        let reply_queue = settings.amqp.reply_queue(&node);
        let replies_open = ReplyRouter::open(&settings.amqp.url, &node, &reply_queue)
            .await
            .map_err(|source| StartupError::ReplyQueue {
                url: amqp_url.clone(),
                queue: reply_queue.clone(),
                node: node.clone(),
                source,
            })?;

        let persister = Persister::new(pool).start();
        let uploader = Uploader::new(storage.clone()).start();
        let publisher = Publisher::new(
            settings.amqp.url.clone(),
            &node,
            settings.amqp.task_queue.clone(),
        )
        .start();
        let replies = ReplyRouter::new(settings.amqp.url.clone(), &node, reply_queue.clone())
            .with_open(replies_open)
            .start();

        let ready_within = Duration::from_secs(15);
        let deadline = tokio::time::Instant::now() + ready_within;
        while !publisher.send(IsConnected).await.unwrap_or(false) {
            if tokio::time::Instant::now() > deadline {
                return Err(StartupError::PublisherNotReady(ready_within));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let kinds = Registry::builtin();
        let threads = settings.workers.threads();
        let consumer = (threads > 0).then(|| {
            let workers = Worker::start_pool(
                threads,
                kinds.clone(),
                uploader.clone(),
                settings.storage.inline_limit,
            );
            TaskConsumer::new(
                settings.amqp.url.clone(),
                settings.amqp.task_queue.clone(),
                settings.amqp.prefetch,
                ConsumerDeps {
                    node: node.clone(),
                    persister: persister.clone(),
                    workers,
                    uploader: uploader.clone(),
                    publisher: publisher.clone(),
                    storage: storage.clone(),
                },
            )
            .start()
        });

        let services = Services {
            node: node.clone(),
            kinds,
            persister,
            uploader,
            publisher,
            replies,
            storage,
            reply_queue,
            inline_limit: settings.storage.inline_limit,
            wait_timeout: Duration::from_secs(settings.listener.wait_timeout_secs),
        };
        let local_addr = listener.local_addr().map_err(StartupError::Listener)?;
        let listener = SocketListener::start(
            listener,
            services.clone(),
            settings.listener.max_connections,
            settings.listener.max_line_bytes,
            settings.listener.max_payload_bytes,
        );
        tracing::info!(node = %node, addr = %local_addr, workers = threads, "node ready");
        Ok(Node {
            local_addr,
            services,
            _listener: listener,
            _consumer: consumer,
        })
    }

    /// The address clients connect to (useful when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Serve until `shutdown` resolves.
    pub async fn run_until_stopped(self, shutdown: impl std::future::Future<Output = ()>) {
        shutdown.await;
        tracing::info!(node = %self.services.node, "shutting down");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            super::redact("postgres://postgres@127.0.0.1/db"),
            "postgres://postgres@127.0.0.1/db"
        );
    }
}
