//! Building a node, in named steps: check every dependency ([`checks`]), start the shared
//! actors and the background ones, then each lane ([`actors`]), then the front ends
//! ([`fronts`]). [`running`] serves until told to stop and drains.

use crate::actors::consumer::TaskConsumer;
use crate::actors::heartbeat::Heartbeat;
use crate::actors::worker_pool::PoolStats;
use crate::config::Settings;
use crate::db;
use crate::front::line::listener::SocketListener;
use crate::retry::RetryPolicy;
use crate::service::Services;
use crate::storage::Storage;
use actix::prelude::*;
use actix_web::dev::ServerHandle;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

mod actors;
mod checks;
mod errors;
pub mod files;
mod fronts;
mod running;
use errors::db_err;
pub use errors::{Fatal, StartupError};

/// A running node. Dropping it does not stop it; stop the actix system.
pub struct Node {
    local_addr: SocketAddr,
    /// Where the HTTP API listens, if it does.
    http_addr: Option<SocketAddr>,
    http: Option<ServerHandle>,
    services: Services,
    /// Worker pool counters (executor threads started, panics, timeouts).
    pub pool_stats: Arc<PoolStats>,
    /// Deliveries being processed.
    pub inflight: Arc<AtomicUsize>,
    /// Open line-protocol connections (until their last answer is written).
    connections: Arc<AtomicUsize>,
    listener: Addr<SocketListener>,
    /// One per lane this node runs.
    consumers: Vec<Addr<TaskConsumer>>,
    /// Kept so they live as long as the node.
    _background: actors::Background,
    _heartbeat: Addr<Heartbeat>,
    /// A supervised actor that spent its restart budget reports here.
    fatal: tokio::sync::mpsc::UnboundedReceiver<String>,
    grace: Duration,
}

/// Apply pending migrations and create the bucket (what `tasknode --prepare` does, for deploy
/// scripts; every node also does it at startup). Returns the bucket.
pub async fn prepare(settings: &Settings) -> Result<Storage, StartupError> {
    let database = settings.database.target().map_err(db_err(settings))?;
    let applied = db::run_migrations(&database)
        .await
        .map_err(db_err(settings))?;
    if !applied.is_empty() {
        tracing::info!(?applied, "applied database migrations");
    }
    let storage_err = |source| StartupError::Storage {
        endpoint: settings.storage.endpoint.clone(),
        bucket: settings.storage.bucket.clone(),
        source,
    };
    let storage = Storage::new(&settings.storage).map_err(storage_err)?;
    storage.ensure_bucket().await.map_err(storage_err)?;
    Ok(storage)
}

impl Node {
    /// Check the database (and migrate it), the bucket and the broker, then start the actors
    /// and serve `listener`. Must run inside an actix system.
    pub async fn build(settings: Settings, listener: TcpListener) -> Result<Node, StartupError> {
        let local_addr = listener.local_addr().map_err(StartupError::Listener)?;
        let mut checked = checks::dependencies(&settings, local_addr).await?;
        let (counters, fatal) = actors::Counters::new(&settings, &checked);
        let handles = actors::shared(&settings, &mut checked, &counters).await?;
        let policy = Arc::new(RetryPolicy::new(settings.tasks.clone()));
        let background = actors::background(&settings, &checked, &handles, &policy);
        let (consumers, pool_stats) =
            actors::lanes(&settings, &checked, &handles, &counters, &policy);
        let (services, heartbeat) = fronts::services(&settings, &checked, handles).await;
        let connections = counters.connections.clone();
        let fronts = fronts::start(&settings, &checked, listener, &services, connections)?;
        let threads: usize = checked.lanes.all().iter().map(|l| l.workers).sum();
        tracing::info!(node = %checked.node, addr = %local_addr, http = ?fronts.http_addr, tls = checked.tls.is_some(), workers = threads, broker = %checked.broker.current(), "node ready");
        Ok(Node {
            local_addr,
            http_addr: fronts.http_addr,
            http: fronts.http,
            services,
            pool_stats,
            inflight: counters.inflight,
            connections: counters.connections.clone(),
            listener: fronts.listener,
            consumers,
            _background: background,
            _heartbeat: heartbeat,
            fatal,
            grace: Duration::from_secs(settings.supervision.shutdown_grace_secs),
        })
    }

    /// The address clients connect to (useful when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where the HTTP API listens (`None` when `http.address` is empty).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    pub fn services(&self) -> &Services {
        &self.services
    }
}
