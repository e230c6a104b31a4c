//! What the hub is asked: by worker connections (join, leave, quiet, report), by deliveries
//! (run), by the fleet's views (list), and once at startup (how to make consumers).

use super::{utc, Conn, Job, Push, Waiter, WorkHub};
use crate::actors::publisher::PublishReplies;
use crate::actors::worker_pool::{RunError, TaskOutput};
use crate::messages::{PayloadRef, Reply};
use crate::work::lease::{LeaseReport, Said};
use actix::prelude::*;
use chrono::Utc;
use protocol::fleet::ConnectedWorker;
use protocol::work::WorkOk;
use protocol::{ErrorCode, ErrorLine};
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
                detached: false,
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
            let none = RunError::NotTaken(format!("no worker for `{kind}` here"));
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

/// A worker's report on lease `lease`, answered once done (a progress once written, so a
/// `STATUS` after it shows it).
#[derive(Message)]
#[rtype(result = "Result<WorkOk, ReportError>")]
pub struct Report {
    pub lease: String,
    pub said: Said,
}

/// What a report did: the answer line, and the task it was about.
struct Reported {
    ok: WorkOk,
    task: Uuid,
}

/// Why a report changed nothing, or its progress was not written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The lease is not held here any more.
    #[error("lease_lost")]
    LeaseLost,
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
}

impl Handler<Report> for WorkHub {
    type Result = ResponseFuture<Result<WorkOk, ReportError>>;

    fn handle(&mut self, msg: Report, _: &mut Context<Self>) -> Self::Result {
        Box::pin(self.act(msg.lease, msg.said))
    }
}

impl WorkHub {
    /// Act on a report here and now; write its progress in the returned future.
    fn act(
        &mut self,
        lease: String,
        said: Said,
    ) -> impl std::future::Future<Output = Result<WorkOk, ReportError>> + 'static {
        let progress = match &said {
            Said::Progress { percent, note } => Some((*percent, note.clone())),
            _ => None,
        };
        let reported = self.report(lease, said);
        let store = self.store.clone();
        async move {
            let reported = reported?;
            if let Some((percent, note)) = progress {
                store
                    .set_progress(reported.task, percent, note.as_deref())
                    .await?;
            }
            Ok(reported.ok)
        }
    }

    fn report(&mut self, lease: String, said: Said) -> Result<Reported, ReportError> {
        let held = self.leases.get_mut(&lease).ok_or(ReportError::LeaseLost)?;
        let task = held.task;
        let ok = |word: &str, deadline| WorkOk {
            ok: word.to_string(),
            lease: lease.clone(),
            deadline,
        };
        let ok = match said {
            Said::Progress { .. } => ok("progress", None),
            Said::Extend { secs } => {
                let by = Duration::from_secs(secs);
                held.deadline = Instant::now()
                    .checked_add(by)
                    .unwrap_or(held.longest)
                    .min(held.longest);
                ok("extended", Some(utc(held.deadline)))
            }
            Said::Done { result } => {
                let output = match result {
                    PayloadRef::Inline { data } => TaskOutput::Inline(data),
                    PayloadRef::Object { key, size } => TaskOutput::Stored { key, size },
                };
                self.end(&lease, Ok(output), false);
                ok("done", None)
            }
            Said::Fail { last, message } => {
                let e = match last {
                    true => RunError::BadInput(message),
                    false => RunError::Transient(message),
                };
                self.end(&lease, Err(e), false);
                ok("failed", None)
            }
        };
        Ok(Reported { ok, task })
    }
}

/// A report that came from another node for a lease held here: done as if said here, its
/// progress written, and answered on the asking node's reply queue.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Forwarded(pub LeaseReport);

impl Handler<Forwarded> for WorkHub {
    type Result = ();

    fn handle(&mut self, Forwarded(report): Forwarded, ctx: &mut Context<Self>) {
        let LeaseReport {
            id,
            lease,
            said,
            reply_to,
        } = report;
        let acting = self.act(lease.clone(), said);
        let publisher = self.publisher.clone();
        let answer = async move {
            let answer = match acting.await {
                Ok(ok) => Reply::new(id, &ok),
                Err(ReportError::LeaseLost) => {
                    let why = format!("lease {lease} is not current");
                    Reply::new(id, &ErrorLine::new(ErrorCode::LeaseLost, why))
                }
                Err(ReportError::Db(e)) => {
                    Reply::new(id, &ErrorLine::new(ErrorCode::Unavailable, e))
                }
            };
            match answer {
                Ok(reply) => publisher.do_send(PublishReplies(vec![(reply_to, reply)])),
                Err(e) => tracing::warn!(error = %e, "cannot answer a forwarded report"),
            }
        };
        ctx.spawn(answer.into_actor(self));
    }
}

/// An HTTP poll has answered: its worker takes no new tasks and is gone once the tasks it
/// was given end (they stay leased to it until then).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Detach(pub u64);

impl Handler<Detach> for WorkHub {
    type Result = ();

    fn handle(&mut self, Detach(worker): Detach, _: &mut Context<Self>) {
        let Some(conn) = self.workers.get_mut(&worker) else {
            return;
        };
        conn.quiet = true;
        conn.detached = true;
        let kinds = conn.kinds.clone();
        if conn.leases.is_empty() {
            self.workers.remove(&worker);
        }
        for kind in kinds {
            self.retap(&kind);
        }
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
