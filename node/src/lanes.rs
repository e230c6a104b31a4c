//! Lanes: the kinds of a fleet in groups, each with its own queue and its own workers on
//! every node, so that tasks that may run long never hold up short ones.
//!
//! `[lanes.<name>] kinds, workers, prefetch` in the config. Two lanes always exist: `quick`
//! (queue `amqp.task_queue`) and `slow` (queue `<task_queue>.slow`); a kind no lane names goes
//! to `quick` if it is a quick kind (bounded, see [`crate::kinds::Kind::quick`]), else to
//! `slow`. A lane of quick kinds only carries many tasks per message; any other lane carries
//! one task per message, so a delivery is never held by a task waiting behind another. A task
//! arriving on another lane's queue (a message from before a lane change) is still run.
//!
//! Priorities 0–9 (higher first) travel in bands, a queue each, because RabbitMQ's quorum
//! queues have no message priorities: 0–3 in the lane's queue, 4–6 in `<queue>.prio4`, 7–9 in
//! `<queue>.prio7`. A node consumes every band of a lane, each with the lane's prefetch, so a
//! high band is never behind a backlog of a lower one in the broker; on the node it waits
//! behind at most what is prefetched. Within a band, tasks keep their order.
//!
//! RabbitMQ closes a channel whose delivery stays unacked past its `consumer_timeout`. A task's
//! timeout counts from when its node took the delivery (time waiting for a worker included),
//! so no delivery outlives its lane's longest timeout plus the time to write the outcome:
//! [`Lanes::resolve`] refuses a lane whose longest timeout does not fit well below
//! `amqp.consumer_timeout_secs`.

use crate::config::Settings;
use crate::kinds::Registry;
use crate::messages::MAX_TASKS_PER_MESSAGE;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The lane of bounded kinds (its queue is `amqp.task_queue`).
pub const QUICK: &str = "quick";
/// The lane of kinds that may run long.
pub const SLOW: &str = "slow";
/// Time kept free between a lane's longest timeout and the broker's `consumer_timeout`, for
/// writing outcomes and acking.
pub const ACK_MARGIN: Duration = Duration::from_secs(60);

/// The lowest priority of each band above the first (see the module's text).
pub const BANDS: [u8; 2] = [4, 7];

/// The queue of priority `priority` in the lane whose queue is `queue`.
fn band_queue(queue: &str, priority: u8) -> String {
    match BANDS.iter().rev().find(|low| priority >= **low) {
        Some(low) => format!("{queue}.prio{low}"),
        None => queue.to_string(),
    }
}

/// The queue of lane `name`.
pub fn lane_queue(task_queue: &str, name: &str) -> String {
    match name {
        QUICK => task_queue.to_string(),
        _ => format!("{task_queue}.{name}"),
    }
}

/// Every lane queue a node with `settings` uses (before the kinds are known), every band.
pub fn queues(settings: &Settings) -> Vec<String> {
    settings
        .lanes
        .keys()
        .map(|name| lane_queue(&settings.amqp.task_queue, name))
        .flat_map(|queue| band_queues(&queue))
        .collect()
}

/// The queues of a lane's bands, lowest first.
pub fn band_queues(queue: &str) -> Vec<String> {
    std::iter::once(0)
        .chain(BANDS)
        .map(|low| band_queue(queue, low))
        .collect()
}

/// The lane name of external kind `kind` (see [`Lanes::of_kind`]).
pub fn external_lane(kind: &str) -> String {
    format!("{EXTERNAL}{kind}")
}

/// What an external kind's lane name starts with.
pub const EXTERNAL: &str = "ext.";

/// A lane as a node runs it.
#[derive(Debug, Clone)]
pub struct Lane {
    pub name: String,
    /// The kind of an external kind's lane (its own: a node takes its tasks only for the
    /// free slots of the workers connected to it, see [`crate::work`]).
    pub external: Option<String>,
    pub queue: String,
    pub kinds: Vec<&'static str>,
    /// Worker threads on this node (0: this node does not consume the lane).
    pub workers: usize,
    pub prefetch: u16,
    /// Most tasks in one message: many for a lane of quick kinds, else one.
    pub per_message: usize,
    /// The queues of its priority bands, lowest first (`bands[0]` is `queue`).
    pub bands: Vec<String>,
}

impl Lane {
    /// The queue of this lane's tasks at `priority`.
    pub fn band(&self, priority: u8) -> &str {
        let i = BANDS.iter().filter(|low| priority >= **low).count();
        &self.bands[i]
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LaneError {
    #[error("lanes.{0} is missing (the `quick` and `slow` lanes always exist)")]
    Missing(&'static str),
    #[error("lanes.{lane}.kinds names `{kind}`, which is not a kind of this node")]
    UnknownKind { lane: String, kind: String },
    #[error("kind `{kind}` is in two lanes: {a} and {b}")]
    TwoLanes { kind: String, a: String, b: String },
    #[error("lanes.{0}.prefetch must be at least 1")]
    NoPrefetch(String),
    #[error("lane `{lane}` has a timeout of {timeout}s; with {margin}s to write outcomes it must stay below amqp.consumer_timeout_secs ({consumer}s), or RabbitMQ closes the channel of a long task")]
    PastConsumerTimeout {
        lane: String,
        timeout: u64,
        margin: u64,
        consumer: u64,
    },
}

/// The lanes of a node, and which lane each kind belongs to. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Lanes {
    topology: crate::amqp::Topology,
    lanes: Arc<Vec<Arc<Lane>>>,
    /// Where the quick lane is in `lanes`.
    quick: usize,
    by_kind: Arc<HashMap<&'static str, usize>>,
    task_queue: Arc<str>,
    /// The lanes of external kinds met so far (one per kind, made when first asked for).
    external: Arc<Mutex<HashMap<String, Arc<Lane>>>>,
}

impl Lanes {
    /// The lanes of `settings` for the kinds in `kinds`, checked.
    pub fn resolve(settings: &Settings, kinds: &Registry) -> Result<Lanes, LaneError> {
        for required in [QUICK, SLOW] {
            if !settings.lanes.contains_key(required) {
                return Err(LaneError::Missing(required));
            }
        }
        let names: Vec<&String> = settings.lanes.keys().collect();
        let mut lane_of: BTreeMap<&'static str, usize> = BTreeMap::new();
        for (i, (name, lane)) in settings.lanes.iter().enumerate() {
            if lane.prefetch == 0 {
                return Err(LaneError::NoPrefetch(name.clone()));
            }
            for kind in &lane.kinds {
                let known = kinds.get(kind).ok_or_else(|| LaneError::UnknownKind {
                    lane: name.clone(),
                    kind: kind.clone(),
                })?;
                if let Some(other) = lane_of.insert(known.name, i) {
                    return Err(LaneError::TwoLanes {
                        kind: kind.clone(),
                        a: names[other].clone(),
                        b: name.clone(),
                    });
                }
            }
        }
        let index = |name: &str| names.iter().position(|n| *n == name).unwrap_or(0);
        for name in kinds.names() {
            if !lane_of.contains_key(name) {
                let quick = kinds.get(name).is_some_and(|k| k.quick);
                lane_of.insert(name, index(if quick { QUICK } else { SLOW }));
            }
        }
        let consumer = Duration::from_secs(settings.amqp.consumer_timeout_secs);
        let mut lanes = Vec::with_capacity(names.len());
        for (i, (name, lane)) in settings.lanes.iter().enumerate() {
            let members: Vec<&'static str> = lane_of
                .iter()
                .filter(|(_, l)| **l == i)
                .map(|(k, _)| *k)
                .collect();
            let timeout = members
                .iter()
                .map(|k| settings.tasks.timeout(k))
                .max()
                .unwrap_or_default();
            if timeout + ACK_MARGIN >= consumer {
                return Err(LaneError::PastConsumerTimeout {
                    lane: name.clone(),
                    timeout: timeout.as_secs(),
                    margin: ACK_MARGIN.as_secs(),
                    consumer: consumer.as_secs(),
                });
            }
            let all_quick = members
                .iter()
                .all(|k| kinds.get(k).is_some_and(|k| k.quick));
            let workers = match settings.workers.count {
                Some(0) => 0,
                _ => lane.workers.unwrap_or_else(|| settings.workers.threads()),
            };
            lanes.push(Arc::new(Lane {
                name: name.clone(),
                external: None,
                queue: lane_queue(&settings.amqp.task_queue, name),
                kinds: members,
                workers,
                prefetch: lane.prefetch,
                per_message: if all_quick { MAX_TASKS_PER_MESSAGE } else { 1 },
                bands: band_queues(&lane_queue(&settings.amqp.task_queue, name)),
            }));
        }
        Ok(Lanes {
            quick: index(QUICK),
            topology: settings.amqp.topology(),
            lanes: Arc::new(lanes),
            by_kind: Arc::new(lane_of.into_iter().collect()),
            task_queue: settings.amqp.task_queue.as_str().into(),
            external: Arc::default(),
        })
    }

    /// How the lanes' queues are declared.
    pub fn topology(&self) -> crate::amqp::Topology {
        self.topology
    }

    /// The lanes of the built-in kinds.
    pub fn all(&self) -> &[Arc<Lane>] {
        &self.lanes
    }

    /// The lanes of the external kinds met so far.
    pub fn external(&self) -> Vec<Arc<Lane>> {
        let lanes = self.external.lock().unwrap_or_else(|e| e.into_inner());
        lanes.values().cloned().collect()
    }

    /// Whether `kind` is built into this node.
    pub fn builtin(&self, kind: &str) -> bool {
        self.by_kind.contains_key(kind)
    }

    /// The lane of `kind`: its configured lane for a built-in kind, else (a kind only
    /// accepted once known as external, see [`crate::work::ExternalKinds`]) a lane of its
    /// own, `ext.<kind>`, carrying one task per message.
    pub fn of_kind(&self, kind: &str) -> Arc<Lane> {
        if let Some(i) = self.by_kind.get(kind) {
            return self.lanes[*i].clone();
        }
        if !protocol::work::valid_kind_name(kind) {
            // Not a name any node accepts (a message from elsewhere): it fails at once there.
            return self.lanes[self.quick].clone();
        }
        let mut lanes = self.external.lock().unwrap_or_else(|e| e.into_inner());
        lanes
            .entry(kind.to_string())
            .or_insert_with(|| {
                let name = external_lane(kind);
                let queue = lane_queue(&self.task_queue, &name);
                Arc::new(Lane {
                    external: Some(kind.to_string()),
                    kinds: Vec::new(),
                    workers: 0,
                    prefetch: 0,
                    per_message: 1,
                    bands: band_queues(&queue),
                    queue,
                    name,
                })
            })
            .clone()
    }

    /// The queue a task of `kind` at `priority` is published to.
    pub fn queue_for(&self, kind: &str, priority: u8) -> String {
        self.of_kind(kind).band(priority).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lanes(toml: &str) -> Result<Lanes, LaneError> {
        let settings = Settings::from_toml(toml).unwrap();
        Lanes::resolve(&settings, &Registry::builtin())
    }

    #[test]
    fn bounded_kinds_are_quick_and_the_rest_slow_by_default() {
        let l = lanes("").unwrap();
        assert_eq!(l.of_kind("upper").name, QUICK);
        assert_eq!(l.of_kind("upper").queue, "tasknode.tasks");
        assert_eq!(l.of_kind("sleep").name, SLOW);
        assert_eq!(l.of_kind("sleep").queue, "tasknode.tasks.slow");
        assert_eq!(l.of_kind("sleep").per_message, 1);
        assert!(l.of_kind("upper").per_message > 1);
    }

    #[test]
    fn priorities_travel_in_three_bands() {
        let l = lanes("").unwrap();
        assert_eq!(l.queue_for("upper", 0), "tasknode.tasks");
        assert_eq!(l.queue_for("upper", 3), "tasknode.tasks");
        assert_eq!(l.queue_for("upper", 4), "tasknode.tasks.prio4");
        assert_eq!(l.queue_for("sleep", 9), "tasknode.tasks.slow.prio7");
        assert_eq!(
            band_queues("q"),
            ["q", "q.prio4", "q.prio7"].map(String::from)
        );
    }

    #[test]
    fn a_lane_can_take_kinds_and_carries_them_one_per_message_if_any_may_run_long() {
        let l = lanes("[lanes.images]\nkinds = [\"gzip\", \"primes\"]\nprefetch = 2\n").unwrap();
        assert_eq!(l.of_kind("gzip").name, "images");
        assert_eq!(l.of_kind("gzip").queue, "tasknode.tasks.images");
        assert_eq!(l.of_kind("gzip").per_message, 1);
        assert_eq!(l.of_kind("upper").name, QUICK);
    }

    #[test]
    fn misconfigured_lanes_are_refused_with_the_reason() {
        let two = lanes("[lanes.a]\nkinds = [\"upper\"]\nprefetch = 1\n[lanes.b]\nkinds = [\"upper\"]\nprefetch = 1\n");
        assert!(matches!(two, Err(LaneError::TwoLanes { .. })), "{two:?}");
        let unknown = lanes("[lanes.a]\nkinds = [\"upperr\"]\nprefetch = 1\n");
        assert!(
            matches!(unknown, Err(LaneError::UnknownKind { .. })),
            "{unknown:?}"
        );
        let long =
            lanes("[amqp]\nconsumer_timeout_secs = 600\n[tasks.kinds.sleep]\ntimeout_secs = 900\n")
                .unwrap_err();
        assert!(long.to_string().contains("consumer_timeout"), "{long}");
    }
}
