//! What the hub is asked: by worker connections (join, leave, quiet, report), by deliveries
//! (run), by the fleet's views (list), and once at startup (how to make consumers).

use super::{utc, Conn, Job, Push, Waiter, WorkHub};
use crate::actors::worker_pool::{RunError, TaskOutput};
use actix::prelude::*;
use chrono::Utc;
use protocol::fleet::ConnectedWorker;
use protocol::work::WorkOk;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// A connection becomes a worker for `kinds` with `slots` slots; tasks and cancels are
/// pushed to `push`. Answers the worker's number (for [`Leave`] and [`Report`]).
#[derive(Message)]
#[rtype(result = "u64")]
pub struct Join {
    pub kinds: Vec<String>,
    pub slots: u16,
    pub stream: bool,
    pub push: mpsc::Sender<Push>,
    pub who: String,
}

impl Handler<Join> for WorkHub {
    type Result = u64;

    fn handle(&mut self, msg: Join, _: &mut Context<Self>) -> u64 {
        let id = self.next_worker;
        self.next_worker += 1;
        tracing::info!(worker = id, who = %msg.who, kinds = ?msg.kinds, slots = msg.slots, "worker joined");
        self.workers.insert(
            id,
            Conn {
                kinds: msg.kinds.clone(),
                slots: msg.slots,
                stream: msg.stream,
                leases: HashSet::new(),
                push: msg.push,
                since: Utc::now(),
                who: msg.who,
                quiet: false,
            },
        );
        for kind in &msg.kinds {
            self.retap(kind);
            self.dispatch(kind);
        }
        id
    }
}

/// A worker's connection closed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave(pub u64);

impl Handler<Leave> for WorkHub {
    type Result = ();

    fn handle(&mut self, msg: Leave, _: &mut Context<Self>) {
        self.forget(msg.0, "its connection closed");
    }
}

/// A worker takes no new tasks (`QUIET`); those it holds go on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Quiet(pub u64);

impl Handler<Quiet> for WorkHub {
    type Result = ();

    fn handle(&mut self, msg: Quiet, _: &mut Context<Self>) {
        let Some(conn) = self.workers.get_mut(&msg.0) else {
            return;
        };
        conn.quiet = true;
        for kind in conn.kinds.clone() {
            self.retap(&kind);
        }
    }
}

/// Run a task of an external kind: wait for a worker, lease it, wait for its outcome.
#[derive(Message)]
#[rtype(result = "Result<TaskOutput, RunError>")]
pub struct Run(pub Job);

impl Handler<Run> for WorkHub {
    type Result = ResponseFuture<Result<TaskOutput, RunError>>;

    fn handle(&mut self, Run(job): Run, _: &mut Context<Self>) -> Self::Result {
        let (done, rx) = oneshot::channel();
        let kind = job.task.kind.clone();
        if self.slots_for(&kind) == 0 {
            let none = RunError::retryable(format!("no worker for `{kind}` on this node"));
            return Box::pin(async move { Err(none) });
        }
        self.waiting
            .entry(kind.clone())
            .or_default()
            .push(Waiter { job, done });
        self.dispatch(&kind);
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(RunError::retryable("the node's work hub stopped")))
        })
    }
}

/// What a worker says of a task it holds.
#[derive(Debug)]
pub enum Said {
    Done(TaskOutput),
    Fail { last: bool, message: String },
    Progress,
    Extend(Duration),
}

/// A worker's report on lease `lease`: `Err(LeaseLost)` when the lease is not current here.
#[derive(Message)]
#[rtype(result = "Result<Reported, LeaseLost>")]
pub struct Report {
    pub lease: String,
    pub said: Said,
}

/// What a report did: the answer line, and the task it was about.
#[derive(Debug)]
pub struct Reported {
    pub ok: WorkOk,
    pub task: Uuid,
}

/// The lease is not held here any more.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("lease_lost")]
pub struct LeaseLost;

impl Handler<Report> for WorkHub {
    type Result = Result<Reported, LeaseLost>;

    fn handle(&mut self, msg: Report, _: &mut Context<Self>) -> Self::Result {
        let held = self.leases.get_mut(&msg.lease).ok_or(LeaseLost)?;
        let task = held.task;
        let ok = |word: &str, deadline| WorkOk {
            ok: word.to_string(),
            lease: msg.lease.clone(),
            deadline,
        };
        let ok = match msg.said {
            Said::Progress => ok("progress", None),
            Said::Extend(by) => {
                held.deadline = (Instant::now() + by).min(held.longest);
                ok("extended", Some(utc(held.deadline)))
            }
            Said::Done(output) => {
                self.end(&msg.lease, Ok(output), false);
                ok("done", None)
            }
            Said::Fail { last, message } => {
                let e = match last {
                    true => RunError::BadInput(message),
                    false => RunError::Transient(message),
                };
                self.end(&msg.lease, Err(e), false);
                ok("failed", None)
            }
        };
        Ok(Reported { ok, task })
    }
}

/// The workers connected here (for the fleet's views and `KINDS`).
#[derive(Message)]
#[rtype(result = "Vec<ConnectedWorker>")]
pub struct ListWorkers;

impl Handler<ListWorkers> for WorkHub {
    type Result = Vec<ConnectedWorker>;

    fn handle(&mut self, _: ListWorkers, _: &mut Context<Self>) -> Vec<ConnectedWorker> {
        self.workers
            .values()
            .map(|w| ConnectedWorker {
                who: w.who.clone(),
                kinds: w.kinds.clone(),
                slots: w.slots,
                busy: w.leases.len() as u32,
                since: w.since,
            })
            .collect()
    }
}

/// How this node makes a consumer for an external kind (given once the node's delivery
/// context exists).
#[derive(Message)]
#[rtype(result = "()")]
pub struct MakeTaps(pub crate::work::taps::MakeTap);

impl Handler<MakeTaps> for WorkHub {
    type Result = ();

    fn handle(&mut self, msg: MakeTaps, _: &mut Context<Self>) {
        self.taps.make = Some(msg.0);
        let kinds: HashSet<String> = self
            .workers
            .values()
            .flat_map(|w| w.kinds.clone())
            .collect();
        for kind in kinds {
            self.retap(&kind);
        }
    }
}
