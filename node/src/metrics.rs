//! What a node counts, for Prometheus (`GET /metrics`, the text format, `prometheus-client`).
//!
//! Counters and histograms are updated where things happen (accepting a task, writing its
//! outcome, a batch, a restart, a refused token); gauges that are states (tasks in flight,
//! open connections, dependencies up, queue depths) are read when scraped. Each node has its
//! own [`Metrics`] (several nodes in one test process do not mix).

use crate::db::models::TaskRow;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Seconds: 1 ms to 10 min.
const TIME_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 600.0,
];
/// Items in one batch.
const SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

fn time_histogram() -> Histogram {
    Histogram::new(TIME_BUCKETS.iter().copied())
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLane {
    pub kind: String,
    pub lane: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Finished {
    pub kind: String,
    pub lane: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LaneLabel {
    pub lane: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActorLabel {
    pub actor: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtocolLabel {
    pub protocol: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DependencyLabel {
    pub dependency: String,
}

/// A node's metrics. Cheap to share (`Arc`); each metric is cheap to clone.
pub struct Metrics {
    registry: Registry,
    lane_of: HashMap<String, String>,
    pub accepted: Family<KindLane, Counter>,
    pub finished: Family<Finished, Counter>,
    pub queue_wait: Family<KindLabel, Histogram, fn() -> Histogram>,
    pub run_time: Family<KindLabel, Histogram, fn() -> Histogram>,
    pub end_to_end: Family<KindLabel, Histogram, fn() -> Histogram>,
    pub busy_workers: Family<LaneLabel, Gauge>,
    pub publish_batch: Histogram,
    pub write_batch: Histogram,
    pub restarts: Family<ActorLabel, Counter>,
    pub auth_failures: Family<ProtocolLabel, Counter>,
    pub rate_limited: Counter,
    /// Tasks the janitor put back (or ended) that nothing else would have moved again.
    pub rescued: Counter,
    pub http_requests_open: Gauge,
    in_flight: Gauge,
    open_connections: Family<ProtocolLabel, Gauge>,
    pub dependency_up: Family<DependencyLabel, Gauge>,
    /// This second's outcomes, for the fleet overview.
    pub recent: crate::fleet::recent::Recent,
    /// Every actor restart counter (their sum is the node's restarts).
    restart_counters: std::sync::Mutex<HashMap<String, Counter>>,
    pub queue_depth: Family<LaneLabel, Gauge>,
    /// Workers connected to this node, by external kind.
    pub workers_connected: Family<KindLabel, Gauge>,
    /// Tasks leased to this node's workers now, by external kind.
    pub tasks_leased: Family<KindLabel, Gauge>,
    /// Read when scraped.
    inflight_now: Arc<AtomicUsize>,
    connections_now: Arc<AtomicUsize>,
}

impl Metrics {
    /// `lane_of` names each kind's lane; `inflight` and `connections` are the node's own
    /// counts of deliveries being processed and line protocol connections.
    pub fn new(
        lane_of: HashMap<String, String>,
        inflight: Arc<AtomicUsize>,
        connections: Arc<AtomicUsize>,
    ) -> Metrics {
        let mut registry = Registry::with_prefix("tasknode");
        let m = Metrics {
            lane_of,
            accepted: Family::default(),
            finished: Family::default(),
            queue_wait: Family::new_with_constructor(time_histogram as fn() -> Histogram),
            run_time: Family::new_with_constructor(time_histogram as fn() -> Histogram),
            end_to_end: Family::new_with_constructor(time_histogram as fn() -> Histogram),
            busy_workers: Family::default(),
            publish_batch: Histogram::new(SIZE_BUCKETS.iter().copied()),
            write_batch: Histogram::new(SIZE_BUCKETS.iter().copied()),
            restarts: Family::default(),
            auth_failures: Family::default(),
            rate_limited: Counter::default(),
            rescued: Counter::default(),
            http_requests_open: Gauge::default(),
            in_flight: Gauge::default(),
            open_connections: Family::default(),
            dependency_up: Family::default(),
            recent: Default::default(),
            restart_counters: Default::default(),
            queue_depth: Family::default(),
            workers_connected: Family::default(),
            tasks_leased: Family::default(),
            inflight_now: inflight,
            connections_now: connections,
            registry: Registry::default(),
        };
        m.register_all(&mut registry);
        Metrics { registry, ..m }
    }

    /// Register every metric under its name and help text.
    fn register_all(&self, r: &mut Registry) {
        r.register(
            "tasks_accepted",
            "Tasks accepted by this node",
            self.accepted.clone(),
        );
        r.register(
            "tasks_finished",
            "Task outcomes written by this node",
            self.finished.clone(),
        );
        r.register(
            "task_queue_wait_seconds",
            "From acceptance to the (last) start",
            self.queue_wait.clone(),
        );
        r.register(
            "task_run_seconds",
            "From start to outcome",
            self.run_time.clone(),
        );
        r.register(
            "task_end_to_end_seconds",
            "From acceptance to outcome",
            self.end_to_end.clone(),
        );
        r.register(
            "tasks_in_flight",
            "Deliveries being processed",
            self.in_flight.clone(),
        );
        r.register(
            "workers_busy",
            "Worker threads running a task",
            self.busy_workers.clone(),
        );
        r.register(
            "publish_batch_size",
            "Tasks per broker publish batch",
            self.publish_batch.clone(),
        );
        r.register(
            "write_batch_size",
            "Rows per database write batch",
            self.write_batch.clone(),
        );
        r.register(
            "actor_restarts",
            "Restarts of supervised actors",
            self.restarts.clone(),
        );
        r.register(
            "auth_failures",
            "Refused tokens",
            self.auth_failures.clone(),
        );
        r.register(
            "rate_limited",
            "Submissions refused over a token's rate",
            self.rate_limited.clone(),
        );
        r.register("tasks_rescued", "Tasks put back through the outbox (or made dead) by the janitor: over the broker's delivery limit, or stuck with no message", self.rescued.clone());
        r.register(
            "open_connections",
            "Open client connections by protocol (line, http)",
            self.open_connections.clone(),
        );
        r.register(
            "http_requests_open",
            "HTTP requests being served",
            self.http_requests_open.clone(),
        );
        r.register(
            "dependency_up",
            "1 when the dependency answers",
            self.dependency_up.clone(),
        );
        r.register(
            "queue_depth",
            "Messages ready in each lane's queue (from the broker)",
            self.queue_depth.clone(),
        );
        r.register(
            "workers_connected",
            "Workers connected to this node, by external kind",
            self.workers_connected.clone(),
        );
        r.register(
            "tasks_leased",
            "Tasks leased to this node's workers now, by external kind",
            self.tasks_leased.clone(),
        );
    }

    fn lane(&self, kind: &str) -> String {
        // A kind no lane names is external (only those are accepted): its lane is its own.
        self.lane_of
            .get(kind)
            .cloned()
            .unwrap_or_else(|| crate::lanes::external_lane(kind))
    }

    /// A task was accepted.
    pub fn accepted(&self, kind: &str) {
        let labels = KindLane {
            kind: kind.to_string(),
            lane: self.lane(kind),
        };
        self.accepted.get_or_create(&labels).inc();
    }

    /// A task's outcome was written as `row`.
    pub fn finished(&self, row: &TaskRow) {
        let kind = &row.kind;
        let labels = Finished {
            kind: kind.clone(),
            lane: self.lane(kind),
            outcome: row.status.as_str().to_string(),
        };
        self.finished.get_or_create(&labels).inc();
        let secs = |d: chrono::TimeDelta| d.num_microseconds().unwrap_or(0).max(0) as f64 / 1e6;
        let by_kind = KindLabel { kind: kind.clone() };
        if let Some(started) = row.started_at {
            self.queue_wait
                .get_or_create(&by_kind)
                .observe(secs(started - row.created_at));
            if let Some(finished) = row.finished_at {
                self.run_time
                    .get_or_create(&by_kind)
                    .observe(secs(finished - started));
            }
        }
        let end_to_end = row
            .finished_at
            .map(|finished| secs(finished - row.created_at));
        if let Some(secs) = end_to_end {
            self.end_to_end.get_or_create(&by_kind).observe(secs);
        }
        let failed = !matches!(row.status, protocol::TaskStatus::Succeeded);
        self.recent.record(failed, end_to_end.map(|s| s * 1000.0));
    }

    /// The busy-workers gauge of `lane`.
    pub fn busy(&self, lane: &str) -> Gauge {
        self.busy_workers
            .get_or_create(&LaneLabel {
                lane: lane.to_string(),
            })
            .clone()
    }

    /// The restart counter of `actor`.
    pub fn restarts_of(&self, actor: &str) -> Counter {
        let counter = self
            .restarts
            .get_or_create(&ActorLabel {
                actor: actor.to_string(),
            })
            .clone();
        let mut all = self
            .restart_counters
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        all.insert(actor.to_string(), counter.clone());
        counter
    }

    /// Restarts of every supervised actor since the node started.
    pub fn restarts_total(&self) -> u64 {
        let all = self
            .restart_counters
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        all.values().map(|c| c.get()).sum()
    }

    /// Deliveries being processed now.
    pub fn in_flight_now(&self) -> u64 {
        self.inflight_now.load(Ordering::Relaxed) as u64
    }

    /// Open client connections of both protocols now.
    pub fn connections_now(&self) -> u64 {
        self.connections_now.load(Ordering::Relaxed) as u64
            + self.connections("http").get().max(0) as u64
    }

    /// The gauge of open connections speaking `protocol`.
    pub fn connections(&self, protocol: &str) -> Gauge {
        let labels = ProtocolLabel {
            protocol: protocol.to_string(),
        };
        self.open_connections.get_or_create(&labels).clone()
    }

    pub fn auth_failed(&self, protocol: &str) {
        let labels = ProtocolLabel {
            protocol: protocol.to_string(),
        };
        self.auth_failures.get_or_create(&labels).inc();
    }

    /// Everything, in the Prometheus text format (states read now).
    pub fn encode(&self) -> String {
        self.in_flight
            .set(self.inflight_now.load(Ordering::Relaxed) as i64);
        self.connections("line")
            .set(self.connections_now.load(Ordering::Relaxed) as i64);
        let mut text = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
