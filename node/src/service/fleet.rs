//! The fleet as one node sees it: its own state (what the heartbeat writes), everyone's
//! (`GET /v1/overview`, for admins), and who a token is (`GET /v1/me`).

use super::{ServiceError, Services};
use crate::actors::depths::GetDepths;
use crate::auth::Identity;
use crate::db::fleet::FleetTables;
use crate::fleet::local::LocalNode;
use chrono::Utc;
use protocol::fleet::{Me, NodeState, Overview, QueueDepth};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An overview is read from the database at most this often per node, however many
/// consoles ask.
const FRESH: Duration = Duration::from_millis(900);

/// What a node keeps for the fleet's views. Cheap to clone.
#[derive(Clone)]
pub struct Fleet {
    pub tables: FleetTables,
    /// This node.
    pub local: LocalNode,
    last: Arc<Mutex<Option<(Instant, Overview)>>>,
}

impl Fleet {
    pub fn new(tables: FleetTables, local: LocalNode) -> Fleet {
        Fleet {
            tables,
            local,
            last: Default::default(),
        }
    }
}

impl Services {
    /// This node now, as the heartbeat writes it.
    pub async fn node_state(&self) -> NodeState {
        self.fleet.local.state().await
    }

    /// Every node, the last minutes and the queues (admins only: it is the whole fleet's).
    pub async fn overview(&self, who: &Identity) -> Result<Overview, ServiceError> {
        if !who.is_admin() {
            return Err(ServiceError::Forbidden(format!(
                "a {} token may not see the fleet's overview; an admin token may",
                who.role.as_str()
            )));
        }
        if let Some((at, overview)) = &*self.fleet.last.lock().unwrap_or_else(|e| e.into_inner()) {
            if at.elapsed() < FRESH {
                return Ok(overview.clone());
            }
        }
        let now = Utc::now();
        let (read, depths) = tokio::join!(
            self.fleet.tables.read(now),
            self.handles.depths.send(GetDepths)
        );
        let (nodes, seconds) = read?;
        let overview = Overview {
            at: now,
            node: self.node().to_string(),
            nodes,
            seconds,
            queues: depths
                .unwrap_or_default()
                .into_iter()
                .map(|(lane, ready)| QueueDepth { lane, ready })
                .collect(),
        };
        *self.fleet.last.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), overview.clone()));
        Ok(overview)
    }

    /// The workers connected to every node that is up (from the fleet's tables, read at
    /// most every [`FRESH`]); this node's own when the database does not answer.
    pub async fn fleet_workers(&self) -> Vec<protocol::fleet::ConnectedWorker> {
        let cached = self
            .fleet
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let nodes = match cached {
            Some((at, overview)) if at.elapsed() < FRESH => Ok(overview.nodes),
            _ => self
                .fleet
                .tables
                .read(Utc::now())
                .await
                .map(|(nodes, _)| nodes),
        };
        match nodes {
            Ok(nodes) => nodes
                .into_iter()
                .filter(|n| n.up && n.name != self.node())
                .flat_map(|n| n.workers)
                .chain(self.node_state().await.workers)
                .collect(),
            Err(_) => self.node_state().await.workers,
        }
    }

    /// Who `who` is, for a client deciding what to show.
    pub fn me(&self, who: &Identity) -> Me {
        Me {
            name: who.name.clone(),
            role: who.role.as_str().to_string(),
            node: self.node().to_string(),
        }
    }
}
