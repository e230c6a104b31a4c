//! Building a node: check every dependency, then start the actors in dependency order.

use crate::actors::consumer::TaskConsumer;
use crate::actors::controller::Controller;
use crate::actors::depths::QueueDepths;
use crate::actors::heartbeat::Heartbeat;
use crate::actors::janitor::{self, Janitor};
use crate::actors::listener::SocketListener;
use crate::actors::persister::Persister;
use crate::actors::publisher::{IsConnected, Publisher};
use crate::actors::relay::{self, Relay};
use crate::actors::replies::ReplyRouter;
use crate::actors::retention::Retention;
use crate::actors::scheduler::Scheduler;
use crate::actors::session::SessionLimits;
use crate::actors::uploader::Uploader;
use crate::actors::watcher::Watcher;
use crate::actors::worker_pool::{PoolStats, QuickRunner, Worker};
use crate::actors::Handles;
use crate::auth::tokens::TokenStore;
use crate::config::Settings;
use crate::control::Control;
use crate::db::fleet::FleetTables;
use crate::delivery::DeliveryCtx;
use crate::kinds::Registry;
use crate::lanes::Lanes;
use crate::metrics::Metrics;
use crate::retry::RetryPolicy;
use crate::service::access::Access;
use crate::service::fleet::Fleet;
use crate::service::Services;
use crate::storage::Storage;
use crate::supervision::RestartBudget;
use crate::tls::ServerTls;
use crate::{amqp, db};
use actix::prelude::*;
use actix_web::dev::ServerHandle;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

mod errors;
pub mod files;
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
    listener: Addr<SocketListener>,
    /// One per lane this node runs.
    consumers: Vec<Addr<TaskConsumer>>,
    /// Publishes what is left in the outbox (kept here so it lives as long as the node).
    _relay: Addr<Relay>,
    _controller: Addr<Controller>,
    _scheduler: Addr<Scheduler>,
    _retention: Addr<Retention>,
    _janitor: Addr<Janitor>,
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
        let node = settings.node.name.clone();
        let local_addr = listener.local_addr().map_err(StartupError::Listener)?;
        settings
            .auth
            .check(&local_addr)
            .map_err(StartupError::OpenNetwork)?;
        // The HTTP API serves the same requests: an open node is refused there alike (every
        // address a host name stands for is checked).
        if !settings.http.address.is_empty() {
            use std::net::ToSocketAddrs;
            let address = &settings.http.address;
            let addrs = address
                .to_socket_addrs()
                .map_err(|e| StartupError::Http(address.clone(), e))?;
            for http in addrs {
                settings
                    .auth
                    .check(&http)
                    .map_err(StartupError::OpenNetwork)?;
            }
        }
        files::fit(&settings).map_err(StartupError::OpenFiles)?;
        let kinds = Registry::for_settings(&settings.tasks);
        if let Some(unknown) = settings.tasks.kinds.keys().find(|k| kinds.get(k).is_none()) {
            return Err(StartupError::UnknownKindOverride(unknown.clone()));
        }
        let lanes = Lanes::resolve(&settings, &kinds)?;
        let storage = prepare(&settings).await?;
        let database = settings.database.target().map_err(db_err(&settings))?;
        let broker = amqp::Broker::with_ca(
            &settings.amqp.urls(),
            &node,
            settings.amqp.tls_ca.as_deref(),
        )?;
        let tls = match (&settings.listener.tls_cert, &settings.listener.tls_key) {
            (Some(cert), Some(key)) => Some(ServerTls::load(cert, key)?),
            _ => None,
        };
        let pool = db::connect_pool(&database, settings.database.pool_size)
            .await
            .map_err(db_err(&settings))?;
        pool.get()
            .await
            .map_err(|e| db_err(&settings)(db::DbError::Pool(e)))?;

        let amqp_url = broker.describe();
        let amqp_err = |source| StartupError::Amqp {
            url: amqp_url.clone(),
            source,
        };
        {
            let probe = broker
                .connect(&format!("{node}-probe"))
                .await
                .map_err(amqp_err)?;
            let channel = probe.create_channel().await.map_err(amqp_err)?;
            for lane in lanes.all() {
                lanes
                    .topology()
                    .declare_lane(&channel, &lane.queue)
                    .await
                    .map_err(|source| StartupError::Queue {
                        queue: lane.queue.clone(),
                        queue_type: settings.amqp.queue_type,
                        source,
                    })?;
            }
            let _ = probe.close(200, "probe done".into()).await;
        }
        let reply_queue = settings.amqp.reply_queue(&node);
        let replies_open = ReplyRouter::open(&broker, &node, &reply_queue)
            .await
            .map_err(|source| StartupError::ReplyQueue {
                url: amqp_url.clone(),
                queue: reply_queue.clone(),
                node: node.clone(),
                source,
            })?;

        let inflight = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let lane_of = lanes
            .all()
            .iter()
            .flat_map(|l| l.kinds.iter().map(|k| (k.to_string(), l.name.clone())))
            .collect();
        let metrics = Arc::new(Metrics::new(lane_of, inflight.clone(), connections.clone()));
        let (fatal_tx, fatal) = tokio::sync::mpsc::unbounded_channel();
        let budget = |actor: &'static str| {
            Arc::new(
                RestartBudget::new(
                    actor,
                    settings.supervision.max_restarts,
                    Duration::from_secs(settings.supervision.window_secs),
                    fatal_tx.clone(),
                )
                .counting(metrics.restarts_of(actor)),
            )
        };
        // Persister and Uploader hold no connection of their own (the pool and the HTTP
        // client heal themselves), so they never stop; the connection actors are supervised.
        let persister = Persister::new(pool.clone())
            .observing(metrics.write_batch.clone())
            .start();
        // Multipart uploads are noted while open; those a dead node left are aborted.
        let storage = storage.with_journal(db::uploads::Journal::new(pool.clone(), &node));
        let booted = chrono::Utc::now();
        let sweeping = storage.clone();
        actix::spawn(async move {
            let n = sweeping.abort_stale_uploads(booted).await;
            if n > 0 {
                tracing::info!(uploads = n, "aborted multipart uploads left open");
            }
        });
        let uploader = Uploader::new(storage.clone()).start();
        let publisher = {
            let (broker, lanes, budget) = (broker.clone(), lanes.clone(), budget("publisher"));
            let node = node.clone();
            let wait = Duration::from_millis(settings.amqp.publish_wait_ms);
            let sizes = metrics.publish_batch.clone();
            Supervisor::start(move |_| {
                Publisher::new(broker, &node, lanes, wait, budget).observing(sizes)
            })
        };
        let replies = {
            let router = ReplyRouter::new(
                broker.clone(),
                &node,
                reply_queue.clone(),
                budget("replies"),
            )
            .with_open(replies_open);
            Supervisor::start(move |_| router)
        };

        let ready_within = Duration::from_secs(15);
        let deadline = tokio::time::Instant::now() + ready_within;
        while !publisher.send(IsConnected).await.unwrap_or(false) {
            if tokio::time::Instant::now() > deadline {
                return Err(StartupError::PublisherNotReady(ready_within));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let pool_stats = Arc::new(PoolStats::default());
        let policy = Arc::new(RetryPolicy::new(settings.tasks.clone()));
        let watcher = Watcher::new(persister.clone()).start();
        let control = Control::new(lanes.clone());
        let controller = Controller::new(
            persister.clone(),
            control.clone(),
            Duration::from_secs(settings.keys.retention_secs),
        )
        .start();
        let scheduler = Scheduler::new(node.clone(), persister.clone()).start();
        let retention = Retention::new(
            pool.clone(),
            storage.clone(),
            settings.retention.days,
            Duration::from_secs(settings.retention.orphans_after_secs),
        )
        .start();
        let handles = Handles {
            control,
            node: node.clone(),
            kinds: kinds.clone(),
            watcher,
            health: crate::health::Health::new(
                publisher.clone(),
                persister.clone(),
                uploader.clone(),
            ),
            persister,
            uploader: uploader.clone(),
            publisher,
            replies,
            storage,
            reply_queue,
            publishing: Arc::new(tokio::sync::Semaphore::new(relay::MAX_PUBLISHING)),
            metrics: metrics.clone(),
            depths: QueueDepths::new(
                broker.clone(),
                &node,
                lanes
                    .all()
                    .iter()
                    .map(|l| (l.name.clone(), l.queue.clone()))
                    .collect(),
            )
            .start(),
        };
        let relay = Relay::new(handles.relay()).start();
        let janitor = Janitor::new(janitor::Parts {
            pool: pool.clone(),
            broker: broker.clone(),
            node: node.clone(),
            lanes: lanes.clone(),
            policy: policy.clone(),
            metrics: metrics.clone(),
            grace: Duration::from_secs(settings.janitor.grace_secs),
            every: Duration::from_secs(settings.janitor.every_secs),
        })
        .start();
        // Each lane: its own workers and its own consumer.
        let quick = QuickRunner::new(settings.storage.inline_limit, pool_stats.clone());
        let mut consumers = Vec::new();
        for lane in lanes.all().iter().filter(|l| l.workers > 0) {
            let workers = Worker::start_pool(
                lane.workers,
                kinds.clone(),
                uploader.clone(),
                quick.clone(),
                handles.control.running.clone(),
                metrics.busy(&lane.name),
            );
            let consumer = TaskConsumer::new(
                broker.clone(),
                lane.queue.clone(),
                lanes.topology(),
                lane.prefetch,
                DeliveryCtx {
                    handles: handles.clone(),
                    workers,
                    quick: quick.clone(),
                    policy: policy.clone(),
                    inflight: inflight.clone(),
                    queue: lane.queue.clone(),
                    received: std::time::Instant::now(),
                    hold: Duration::from_secs(settings.amqp.consumer_timeout_secs)
                        .saturating_sub(crate::lanes::ACK_MARGIN),
                },
                budget("consumer"),
            );
            consumers.push(Supervisor::start(move |_| consumer));
        }
        let threads: usize = lanes.all().iter().map(|l| l.workers).sum();

        let services = Services {
            access: Access {
                mode: settings.auth.mode,
                tokens: TokenStore::start(pool.clone()).await,
                rates: Default::default(),
                waiting: Default::default(),
                failures: Default::default(),
            },
            handles,
            inline_limit: settings.storage.inline_limit,
            wait_timeout: Duration::from_secs(settings.listener.wait_timeout_secs),
            max_payload: settings.listener.max_payload_bytes,
            draining: Default::default(),
            keys_retention: Duration::from_secs(settings.keys.retention_secs),
            uploads: Arc::new(tokio::sync::Semaphore::new(settings.storage.max_uploads)),
            fleet: Fleet::new(
                FleetTables::new(pool.clone()),
                lanes
                    .all()
                    .iter()
                    .map(|l| (l.name.clone(), l.workers as u32))
                    .collect(),
            ),
        };
        let heartbeat = Heartbeat::new(services.clone()).start();
        let listener = SocketListener::start(
            listener,
            services.clone(),
            settings.listener.max_connections,
            SessionLimits {
                max_line: settings.listener.max_line_bytes,
                max_payload: settings.listener.max_payload_bytes,
                idle_timeout: Duration::from_secs(settings.listener.idle_timeout_secs),
                write_timeout: Duration::from_secs(settings.listener.write_timeout_secs),
                auth_timeout: Duration::from_secs(settings.listener.auth_timeout_secs),
            },
            tls.clone(),
            connections,
        );
        if let Some(tls) = &tls {
            tls.reload_on_hangup().map_err(StartupError::Listener)?;
        }
        let (http, http_addr) = match settings.http.address.as_str() {
            "" => (None, None),
            address => {
                let listener = std::net::TcpListener::bind(address)
                    .map_err(|e| StartupError::Http(address.to_string(), e))?;
                let addr = listener.local_addr().map_err(StartupError::Listener)?;
                let handle = crate::http::start(listener, services.clone(), &settings.http)
                    .map_err(|e| StartupError::Http(address.to_string(), e))?;
                (Some(handle), Some(addr))
            }
        };
        tracing::info!(node = %node, addr = %local_addr, http = ?http_addr, tls = tls.is_some(), workers = threads, broker = %broker.current(), "node ready");
        Ok(Node {
            local_addr,
            http_addr,
            http,
            services,
            pool_stats,
            inflight,
            listener,
            consumers,
            _relay: relay,
            _controller: controller,
            _scheduler: scheduler,
            _retention: retention,
            _janitor: janitor,
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
