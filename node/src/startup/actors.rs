//! Startup, steps 2 and 3: the node's actors, in dependency order: the store and the bucket,
//! the broker actors (publisher, reply router), the background actors (relay, watcher,
//! controller, scheduler, retention, janitor), then each lane's workers and consumer.

use super::checks::Checked;
use super::StartupError;
use crate::actors::consumer::TaskConsumer;
use crate::actors::controller::Controller;
use crate::actors::depths::QueueDepths;
use crate::actors::janitor::{self, Janitor};
use crate::actors::publisher::{IsConnected, Publisher};
use crate::actors::relay::Relay;
use crate::actors::replies::{ReplyRouter, ReportsTo};
use crate::actors::retention::Retention;
use crate::actors::scheduler::Scheduler;
use crate::actors::uploader::Uploader;
use crate::actors::watcher::Watcher;
use crate::actors::worker_pool::{PoolStats, QuickRunner, Worker};
use crate::actors::Handles;
use crate::config::Settings;
use crate::control::Control;
use crate::db::{self, Store};
use crate::delivery::DeliveryCtx;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::publishing::Outbox;
use crate::retry::RetryPolicy;
use crate::supervision::RestartBudget;
use crate::work::hub::{HubParts, MakeTaps};
use crate::work::taps::MakeTap;
use crate::work::{ExternalKinds, WorkHub};
use actix::prelude::*;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

/// What the node counts, and where a supervised actor past its restart budget reports.
pub(super) struct Counters {
    pub metrics: Arc<Metrics>,
    /// Deliveries being processed.
    pub inflight: Arc<AtomicUsize>,
    /// Open line-protocol connections.
    pub connections: Arc<AtomicUsize>,
    fatal_tx: tokio::sync::mpsc::UnboundedSender<String>,
    max_restarts: u32,
    window: Duration,
}

impl Counters {
    pub fn new(
        settings: &Settings,
        checked: &Checked,
    ) -> (Counters, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let inflight = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let lane_of = checked
            .lanes
            .all()
            .iter()
            .flat_map(|l| l.kinds.iter().map(|k| (k.to_string(), l.name.clone())))
            .collect();
        let metrics = Arc::new(Metrics::new(lane_of, inflight.clone(), connections.clone()));
        let (fatal_tx, fatal) = tokio::sync::mpsc::unbounded_channel();
        let counters = Counters {
            metrics,
            inflight,
            connections,
            fatal_tx,
            max_restarts: settings.supervision.max_restarts,
            window: Duration::from_secs(settings.supervision.window_secs),
        };
        (counters, fatal)
    }

    /// The restart budget of a supervised actor.
    fn budget(&self, actor: &'static str) -> Arc<RestartBudget> {
        let budget =
            RestartBudget::new(actor, self.max_restarts, self.window, self.fatal_tx.clone());
        Arc::new(budget.counting(self.metrics.restarts_of(actor)))
    }
}

/// The store, the bucket's uploader, the broker actors and what both sides of the node share.
/// The store and the uploader hold no connection of their own (the pool and the HTTP client
/// heal themselves), so they never stop; the connection actors are supervised.
pub(super) async fn shared(
    settings: &Settings,
    checked: &mut Checked,
    counters: &Counters,
) -> Result<Handles, StartupError> {
    let node = checked.node.clone();
    let store = Store::new(
        checked.pool.clone(),
        Some(counters.metrics.write_batch.clone()),
    );
    // Multipart uploads are noted while open; those a dead node left are aborted.
    let storage = checked
        .storage
        .clone()
        .with_journal(db::uploads::Journal::new(checked.pool.clone(), &node));
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
        let (broker, lanes) = (checked.broker.clone(), checked.lanes.clone());
        let budget = counters.budget("publisher");
        let (node, sizes) = (node.clone(), counters.metrics.publish_batch.clone());
        let wait = Duration::from_millis(settings.amqp.publish_wait_ms);
        Supervisor::start(move |_| {
            Publisher::new(broker, &node, lanes, wait, budget).observing(sizes)
        })
    };
    let replies = {
        let budget = counters.budget("replies");
        let open = checked.replies_open.take();
        let router = ReplyRouter::new(
            checked.broker.clone(),
            &node,
            checked.reply_queue.clone(),
            budget,
        );
        let router = match open {
            Some(open) => router.with_open(open),
            None => router,
        };
        Supervisor::start(move |_| router)
    };
    publisher_ready(&publisher).await?;
    let queues = checked.lanes.all().iter();
    let queues = queues.map(|l| (l.name.clone(), l.queue.clone())).collect();
    let control = Control::new(checked.lanes.clone());
    let external = ExternalKinds::new(
        &settings.external.kinds,
        Duration::from_secs(settings.external.registration_ttl_secs),
        store.clone(),
    );
    if let Err(e) = external.refresh().await {
        tracing::warn!(error = %e, "cannot read the registered external kinds yet");
    }
    let work = WorkHub::new(HubParts {
        node: node.clone(),
        external: external.clone(),
        store: store.clone(),
        publisher: publisher.clone(),
        storage: storage.clone(),
        running: control.running.clone(),
        metrics: counters.metrics.clone(),
    })
    .start();
    replies.do_send(ReportsTo(work.clone().recipient()));
    Ok(Handles {
        control,
        work,
        external,
        node: node.clone(),
        kinds: checked.kinds.clone(),
        watcher: Watcher::new(store.clone()).start(),
        health: Health::new(publisher.clone(), store.clone(), uploader.clone()),
        outbox: Outbox::new(node.clone(), store.clone(), publisher.clone()),
        store,
        uploader,
        publisher,
        replies,
        storage,
        reply_queue: checked.reply_queue.clone(),
        metrics: counters.metrics.clone(),
        depths: QueueDepths::new(checked.broker.clone(), &node, queues).start(),
    })
}

/// Wait (a while) for the publisher's first connection.
async fn publisher_ready(publisher: &Addr<Publisher>) -> Result<(), StartupError> {
    let ready_within = Duration::from_secs(15);
    let deadline = tokio::time::Instant::now() + ready_within;
    while !publisher.send(IsConnected).await.unwrap_or(false) {
        if tokio::time::Instant::now() > deadline {
            return Err(StartupError::PublisherNotReady(ready_within));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The actors that work in the background, each in rounds ([`crate::actors::every`]); kept
/// so they live as long as the node.
pub(super) struct Background {
    _relay: Addr<Relay>,
    _controller: Addr<Controller>,
    _scheduler: Addr<Scheduler>,
    _retention: Addr<Retention>,
    _janitor: Addr<Janitor>,
}

pub(super) fn background(
    settings: &Settings,
    checked: &Checked,
    handles: &Handles,
    policy: &Arc<RetryPolicy>,
) -> Background {
    let store = handles.store.clone();
    let keys_retention = Duration::from_secs(settings.keys.retention_secs);
    Background {
        _relay: Relay::new(handles.outbox.clone()).start(),
        _controller: Controller::new(store.clone(), handles.control.clone(), keys_retention)
            .start(),
        _scheduler: Scheduler::new(checked.node.clone(), store).start(),
        _retention: Retention::new(
            checked.pool.clone(),
            handles.storage.clone(),
            settings.retention.days,
            Duration::from_secs(settings.retention.orphans_after_secs),
        )
        .start(),
        _janitor: Janitor::new(janitor::Parts {
            pool: checked.pool.clone(),
            broker: checked.broker.clone(),
            node: checked.node.clone(),
            lanes: checked.lanes.clone(),
            policy: policy.clone(),
            metrics: handles.metrics.clone(),
            grace: Duration::from_secs(settings.janitor.grace_secs),
            every: Duration::from_secs(settings.janitor.every_secs),
        })
        .start(),
    }
}

/// Each lane with workers here: its own worker threads and its own consumer.
pub(super) fn lanes(
    settings: &Settings,
    checked: &Checked,
    handles: &Handles,
    counters: &Counters,
    policy: &Arc<RetryPolicy>,
) -> (Vec<Addr<TaskConsumer>>, Arc<PoolStats>) {
    let pool_stats = Arc::new(PoolStats::default());
    let quick = QuickRunner::new(settings.storage.inline_limit, pool_stats.clone());
    let hold = Duration::from_secs(settings.amqp.consumer_timeout_secs)
        .saturating_sub(crate::lanes::ACK_MARGIN);
    let mut consumers = Vec::new();
    let mut external_ctx = None;
    for lane in checked.lanes.all().iter().filter(|l| l.workers > 0) {
        let workers = Worker::start_pool(
            lane.workers,
            checked.kinds.clone(),
            handles.uploader.clone(),
            quick.clone(),
            handles.control.running.clone(),
            handles.metrics.busy(&lane.name),
        );
        let ctx = DeliveryCtx {
            handles: handles.clone(),
            workers,
            quick: quick.clone(),
            policy: policy.clone(),
            inflight: counters.inflight.clone(),
            queue: lane.queue.clone(),
            received: std::time::Instant::now(),
            hold,
            gathered: None,
        };
        external_ctx.get_or_insert_with(|| ctx.clone());
        let consumer = TaskConsumer::new(
            checked.broker.clone(),
            lane.queue.clone(),
            checked.lanes.topology(),
            lane.prefetch,
            ctx,
            counters.budget("consumer"),
        );
        consumers.push(Supervisor::start(move |_| consumer));
    }
    // External kinds are run by connected workers, on any node that runs tasks.
    if let Some(ctx) = external_ctx {
        let (broker, topology) = (checked.broker.clone(), checked.lanes.topology());
        let lanes = checked.lanes.clone();
        let budget = counters.budget("consumer");
        let make: MakeTap = Box::new(move |kind, prefetch| {
            let queue = lanes.of_kind(kind).queue.clone();
            let ctx = DeliveryCtx {
                queue: queue.clone(),
                ..ctx.clone()
            };
            let (broker, budget) = (broker.clone(), budget.clone());
            Supervisor::start(move |_| {
                TaskConsumer::new(broker, queue, topology, prefetch, ctx, budget)
            })
        });
        handles.work.do_send(MakeTaps(make));
    }
    (consumers, pool_stats)
}
