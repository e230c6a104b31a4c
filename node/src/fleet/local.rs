//! This node's own state, as its heartbeat writes it and `GET /v1/overview` shows it.

use crate::health::Health;
use crate::metrics::Metrics;
use chrono::{DateTime, Utc};
use protocol::fleet::{LaneLoad, NodeState};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Where this node's state is read from. Cheap to clone.
#[derive(Clone)]
pub struct LocalNode {
    pub name: String,
    pub started_at: DateTime<Utc>,
    /// Each lane's name and its worker threads on this node.
    pub lanes: Vec<(String, u32)>,
    pub health: Health,
    pub metrics: Arc<Metrics>,
    /// Set once the node is shutting down.
    pub draining: Arc<AtomicBool>,
    /// The workers connected here.
    pub work: actix::Addr<crate::work::WorkHub>,
}

impl LocalNode {
    /// This node now.
    pub async fn state(&self) -> NodeState {
        let (deps, workers) = tokio::join!(
            self.health.check(),
            self.work.send(crate::work::hub::ListWorkers)
        );
        let metrics = &self.metrics;
        NodeState {
            name: self.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: self.started_at,
            seen_at: Utc::now(),
            up: true,
            broker: deps.amqp,
            database: deps.postgres,
            store: deps.s3,
            draining: self.draining.load(Ordering::Relaxed),
            in_flight: metrics.in_flight_now(),
            restarts: metrics.restarts_total(),
            connections: metrics.connections_now(),
            lanes: self
                .lanes
                .iter()
                .map(|(lane, workers)| LaneLoad {
                    lane: lane.clone(),
                    workers: *workers,
                    busy: metrics.busy(lane).get().max(0) as u32,
                })
                .collect(),
            workers: workers.unwrap_or_default(),
        }
    }
}
