//! WorkHub: the workers connected to this node and the tasks leased to them.
//!
//! A delivery of an external kind is started (counted) as any task is, then handed here as a
//! [`Run`]: it waits for a free slot of a worker of its kind on this node, is leased to that
//! worker (pushed as one line) and ends when the worker says `DONE` or `FAIL`, when the lease's
//! deadline passes (a timeout), when the task is cancelled, or when the worker's connection
//! closes (the worker is lost: the attempt counts and the task goes back to its queue at once).
//! The lease is the fence: a report naming a lease not held here any more is `lease_lost`.
//!
//! The node takes deliveries of a kind only for its workers' slots: each kind's [`Taps`]
//! consumer has a prefetch of the slots of the workers connected here for it, so the tasks
//! of a kind no worker here can take wait in RabbitMQ, where another node's workers find them.

use super::taps::Taps;
use super::ExternalKinds;
use crate::actors::worker_pool::{RunError, TaskOutput};
use crate::control::Running;
use crate::messages::{PayloadRef, TaskMessage};
use crate::storage::Storage;
use actix::prelude::*;
use base64::Engine;
use chrono::Utc;
use protocol::codec::Outbound;
use protocol::work::{CancelLease, Leased, WorkTask};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

mod messages;
pub use messages::*;

/// How often leases' deadlines and cancellations are looked at.
const TICK: Duration = Duration::from_millis(200);

/// What is pushed to a worker's connection.
pub enum Push {
    Line(Outbound),
    /// A task line whose payload follows as raw bytes (`WORK … stream=1`): the object `key`
    /// of `size` bytes.
    Body {
        header: Outbound,
        key: String,
        size: u64,
    },
}

/// A connected worker (or an HTTP poll, see [`Detach`]).
struct Conn {
    kinds: Vec<String>,
    slots: u16,
    /// Large payloads as raw bytes after the task line.
    stream: bool,
    leases: HashSet<String>,
    push: mpsc::Sender<Push>,
    since: chrono::DateTime<Utc>,
    /// The token's name (or `-` on an open node).
    who: String,
    /// Said `QUIET`: takes no new tasks.
    quiet: bool,
    /// An HTTP poll that has answered: nothing is pushed to it any more, and it is gone
    /// once its leases end.
    detached: bool,
}

impl Conn {
    fn takes(&self, kind: &str) -> bool {
        !self.quiet && self.kinds.iter().any(|k| k == kind)
    }
}

/// A task leased to a worker.
struct Held {
    task: Uuid,
    kind: String,
    worker: u64,
    deadline: Instant,
    /// The latest `EXTEND` may move the deadline to.
    longest: Instant,
    done: oneshot::Sender<Result<TaskOutput, RunError>>,
    cancel: Arc<AtomicBool>,
}

/// A task waiting here for a worker's free slot.
struct Waiter {
    job: Job,
    done: oneshot::Sender<Result<TaskOutput, RunError>>,
}

/// A task of an external kind to run, from its delivery.
pub struct Job {
    pub task: TaskMessage,
    pub attempt: u32,
    /// When its run times out unless extended (its time counts from its delivery).
    pub deadline: Instant,
    /// The latest `EXTEND` may move the deadline to.
    pub longest: Instant,
}

/// What the hub is made of.
pub struct HubParts {
    pub node: String,
    pub external: ExternalKinds,
    pub store: crate::db::Store,
    pub publisher: Addr<crate::actors::publisher::Publisher>,
    pub storage: Storage,
    pub running: Arc<Running>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

pub struct WorkHub {
    /// This node's name (in its leases).
    node: String,
    external: ExternalKinds,
    /// Progress written for reports forwarded from other nodes.
    store: crate::db::Store,
    /// Answers to forwarded reports.
    publisher: Addr<crate::actors::publisher::Publisher>,
    metrics: Arc<crate::metrics::Metrics>,
    storage: Storage,
    running: Arc<Running>,
    taps: Taps,
    workers: HashMap<u64, Conn>,
    next_worker: u64,
    leases: HashMap<String, Held>,
    waiting: HashMap<String, Vec<Waiter>>,
    ticks: u32,
}

impl WorkHub {
    pub fn new(parts: HubParts) -> Self {
        let HubParts {
            node,
            external,
            store,
            publisher,
            storage,
            running,
            metrics,
        } = parts;
        WorkHub {
            node,
            external,
            store,
            publisher,
            metrics,
            storage,
            running,
            taps: Taps::default(),
            workers: HashMap::new(),
            next_worker: 1,
            leases: HashMap::new(),
            waiting: HashMap::new(),
            ticks: 0,
        }
    }

    /// Slots of the workers here that take `kind`.
    fn slots_for(&self, kind: &str) -> u32 {
        self.workers
            .values()
            .filter(|w| w.takes(kind))
            .map(|w| u32::from(w.slots))
            .sum()
    }

    /// Lease waiting tasks of `kind` to free slots, most urgent first.
    fn dispatch(&mut self, kind: &str) {
        loop {
            let Some(queue) = self.waiting.get_mut(kind).filter(|q| !q.is_empty()) else {
                return;
            };
            // The least busy worker with a free slot for this kind.
            let Some(worker) = self
                .workers
                .iter()
                .filter(|(_, w)| w.takes(kind))
                .filter(|(_, w)| w.leases.len() < usize::from(w.slots))
                .min_by_key(|(_, w)| w.leases.len() * 1000 / usize::from(w.slots))
                .map(|(id, _)| *id)
            else {
                return;
            };
            let best = (0..queue.len())
                .max_by_key(|i| (queue[*i].job.task.priority, std::cmp::Reverse(*i)))
                .unwrap_or(0);
            let waiter = queue.remove(best);
            self.lease(worker, waiter);
        }
    }

    fn lease(&mut self, worker: u64, waiter: Waiter) {
        let Waiter { job, done } = waiter;
        let lease = super::lease::new(&self.node);
        let Some(conn) = self.workers.get(&worker) else {
            return;
        };
        let mut task = self.work_task(&job, &lease);
        let line = match (&job.task.payload, conn.stream) {
            (PayloadRef::Object { key, size }, true) => {
                task.payload_url = None;
                task.bytes = Some(*size);
                Push::Body {
                    header: Outbound::line(&Leased { task }),
                    key: key.clone(),
                    size: *size,
                }
            }
            _ => Push::Line(Outbound::line(&Leased { task })),
        };
        let Some(conn) = self.workers.get_mut(&worker) else {
            return;
        };
        if conn.push.try_send(line).is_err() {
            // Its connection is going: the task waits for another worker.
            self.waiting
                .entry(job.task.kind.clone())
                .or_default()
                .push(Waiter { job, done });
            self.forget(worker, "its connection is not taking tasks");
            return;
        }
        conn.leases.insert(lease.clone());
        tracing::debug!(task = %job.task.id, kind = %job.task.kind, worker, "task leased");
        let cancel = self.running.hold(job.task.id);
        let kind = job.task.kind.clone();
        self.leases.insert(
            lease,
            Held {
                task: job.task.id,
                kind: job.task.kind,
                worker,
                deadline: job.deadline,
                longest: job.longest,
                done,
                cancel,
            },
        );
        self.gauge(&kind);
    }

    /// The line a worker gets for `job` under `lease`.
    fn work_task(&self, job: &Job, lease: &str) -> WorkTask {
        let t = &job.task;
        let (mut payload, mut payload_base64, mut payload_url) = (None, None, None);
        match &t.payload {
            PayloadRef::Inline { data } => match std::str::from_utf8(data) {
                Ok(text) => payload = Some(text.to_string()),
                Err(_) => {
                    payload_base64 = Some(base64::engine::general_purpose::STANDARD.encode(data))
                }
            },
            PayloadRef::Object { key, .. } => payload_url = Some(self.storage.presign_get(key)),
        }
        WorkTask {
            id: t.id,
            kind: t.kind.clone(),
            payload,
            payload_base64,
            payload_url,
            bytes: None,
            payload_bytes: t.payload.size(),
            attempt: job.attempt,
            lease: lease.to_string(),
            deadline: utc(job.deadline),
            priority: t.priority,
            key: t.key.clone(),
        }
    }

    /// End lease `lease` with `outcome`; tell its worker to stop when `tell`.
    fn end(&mut self, lease: &str, outcome: Result<TaskOutput, RunError>, tell: bool) {
        let Some(held) = self.leases.remove(lease) else {
            return;
        };
        self.running.release(held.task);
        let mut gone = false;
        if let Some(conn) = self.workers.get_mut(&held.worker) {
            conn.leases.remove(lease);
            if conn.detached {
                // An HTTP poll's lease: nobody to tell; the poll is gone with its last lease.
                gone = conn.leases.is_empty();
            } else if tell {
                let cancel = CancelLease {
                    cancel: lease.to_string(),
                };
                let _ = conn.push.try_send(Push::Line(Outbound::line(&cancel)));
            }
        }
        if gone {
            self.workers.remove(&held.worker);
        }
        let _ = held.done.send(outcome);
        self.gauge(&held.kind);
        self.dispatch(&held.kind);
    }

    /// A worker is gone: each task it held goes back (its attempt counted), and its kinds'
    /// consumers take fewer deliveries.
    fn forget(&mut self, worker: u64, why: &str) {
        let Some(conn) = self.workers.remove(&worker) else {
            return;
        };
        tracing::info!(worker, who = %conn.who, kinds = ?conn.kinds, leases = conn.leases.len(), why, "worker gone");
        for lease in conn.leases {
            let lost = RunError::retryable(format!("worker lost ({why})"));
            self.end(&lease, Err(lost), false);
        }
        for kind in &conn.kinds {
            self.retap(kind);
        }
    }

    /// Show `kind`'s workers and leases in the metrics.
    fn gauge(&self, kind: &str) {
        let label = crate::metrics::KindLabel {
            kind: kind.to_string(),
        };
        let workers = self.workers.values();
        let connected = workers
            .filter(|w| w.kinds.iter().any(|k| k == kind))
            .count();
        let leased = self.leases.values().filter(|h| h.kind == kind).count();
        self.metrics
            .workers_connected
            .get_or_create(&label)
            .set(connected as i64);
        self.metrics
            .tasks_leased
            .get_or_create(&label)
            .set(leased as i64);
    }

    /// Take as many deliveries of `kind` as the workers here have slots for it; with none,
    /// the tasks waiting here go back to their queue.
    fn retap(&mut self, kind: &str) {
        self.gauge(kind);
        let slots = self.slots_for(kind);
        self.taps.set(kind, slots);
        if slots == 0 {
            for waiter in self.waiting.remove(kind).unwrap_or_default() {
                let none = RunError::NotTaken(format!("no worker for `{kind}` here any more"));
                let _ = waiter.done.send(Err(none));
            }
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        self.ticks = self.ticks.wrapping_add(1);
        let now = Instant::now();
        let ended: Vec<(String, RunError)> = self
            .leases
            .iter()
            .filter_map(|(lease, h)| {
                if h.cancel.load(Ordering::Relaxed) {
                    Some((lease.clone(), RunError::Cancelled))
                } else if h.deadline <= now {
                    let e = RunError::retryable("timeout (the lease's deadline passed)");
                    Some((lease.clone(), e))
                } else {
                    None
                }
            })
            .collect();
        for (lease, e) in ended {
            self.end(&lease, Err(e), true);
        }
        for queue in self.waiting.values_mut() {
            let (late, on_time): (Vec<_>, Vec<_>) =
                queue.drain(..).partition(|w| w.job.deadline <= now);
            *queue = on_time;
            for w in late {
                let e = RunError::retryable("timeout (no worker took it before its deadline)");
                let _ = w.done.send(Err(e));
            }
        }
        let ticks_per_refresh = (super::kinds::REFRESH.as_millis() / TICK.as_millis()) as u32;
        if self.ticks % ticks_per_refresh == 0 {
            let external = self.external.clone();
            ctx.spawn(
                async move {
                    if let Err(e) = external.refresh().await {
                        tracing::debug!(error = %e, "cannot read the registered external kinds");
                    }
                }
                .into_actor(self),
            );
        }
        // Kinds of connected workers stay registered while they are connected.
        if self.ticks % 3000 == 0 && !self.workers.is_empty() {
            let kinds: HashSet<String> = self
                .workers
                .values()
                .flat_map(|w| w.kinds.clone())
                .collect();
            let kinds: Vec<String> = kinds.into_iter().collect();
            let external = self.external.clone();
            ctx.spawn(
                async move {
                    let _ = external.register(&kinds).await;
                }
                .into_actor(self),
            );
        }
    }
}

/// `at` as a time of day (for the worker's line).
fn utc(at: Instant) -> chrono::DateTime<Utc> {
    let left = at.saturating_duration_since(Instant::now());
    Utc::now() + chrono::Duration::from_std(left).unwrap_or_default()
}

impl Actor for WorkHub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(4096);
        ctx.run_interval(TICK, |act, ctx| act.tick(ctx));
    }
}
