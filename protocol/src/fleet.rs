//! What the fleet says of itself (`GET /v1/overview`, for the web console and operators):
//! every node's health and load, the last minutes second by second, and the queues.
//!
//! Each node writes its own state and its finished tasks of each second to PostgreSQL, so
//! any node can answer for all of them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `GET /v1/overview`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    /// When the answering node read it.
    pub at: DateTime<Utc>,
    /// The node that answered.
    pub node: String,
    /// Every node seen in the last hour, by name.
    pub nodes: Vec<NodeState>,
    /// The fleet's finished tasks of each second, oldest first, up to now.
    pub seconds: Vec<Second>,
    /// Messages waiting in each lane's queue (from the broker).
    pub queues: Vec<QueueDepth>,
}

/// A node, as it last said.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    pub name: String,
    pub version: String,
    pub started_at: DateTime<Utc>,
    /// Its last word; a node silent for 5 s is not `up`.
    pub seen_at: DateTime<Utc>,
    pub up: bool,
    /// Its dependencies, as it saw them.
    pub broker: bool,
    pub database: bool,
    pub store: bool,
    pub draining: bool,
    /// Deliveries being processed.
    pub in_flight: u64,
    /// Restarts of its supervised actors since it started.
    pub restarts: u64,
    /// Open client connections (line protocol and HTTP).
    pub connections: u64,
    pub lanes: Vec<LaneLoad>,
    /// Workers of external kinds connected to it.
    #[serde(default)]
    pub workers: Vec<ConnectedWorker>,
}

/// A worker connected to a node (`WORK`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectedWorker {
    /// Its token's name (`-` on an open node).
    pub who: String,
    pub kinds: Vec<String>,
    pub slots: u16,
    /// Tasks it holds now.
    pub busy: u32,
    pub since: DateTime<Utc>,
}

/// A lane's workers on one node.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaneLoad {
    pub lane: String,
    pub workers: u32,
    pub busy: u32,
}

/// The tasks the fleet finished in one second.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Second {
    pub at: DateTime<Utc>,
    /// Final outcomes written (succeeded, failed, dead).
    pub finished: u64,
    /// Of those, failed or dead.
    pub failed: u64,
    /// From acceptance to outcome, in milliseconds (estimated from a histogram); absent
    /// when nothing finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
}

/// A lane's queue.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueDepth {
    pub lane: String,
    pub ready: u32,
}

/// `GET /v1/me`: who the token is.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Me {
    /// The token's name; absent on an open node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `submit`, `read` or `admin`.
    pub role: String,
    /// The node that answered.
    pub node: String,
}
