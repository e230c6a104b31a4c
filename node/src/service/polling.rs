//! `POST /v1/work`: a worker that speaks HTTP asks for up to `max` tasks of some kinds and
//! waits up to `wait` for the first (a long poll).
//!
//! The poll is a worker at the hub while it waits (so the node takes deliveries of its kinds
//! for it, as for a connection that said `WORK`); once it answers, it takes no new tasks and
//! keeps the tasks it was given, leased, until each is reported on (from any node: the lease
//! names this one) or its deadline passes. A task pushed to it and cancelled before the
//! answer is left out of the answer.

use super::{ServiceError, Services};
use crate::auth::Identity;
use crate::work::hub::{Detach, Push};
use actix::Addr;
use protocol::codec::Outbound;
use protocol::work::{WorkTask, WorkerLine};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The longest a poll waits for its first task.
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// A poll waits at least this long, so a task its kinds' queue hands the node only now
/// (the node consumes a kind's queue while a worker for it is here) still reaches it.
const LEAST_WAIT: Duration = Duration::from_millis(100);
/// After the first task, how long a poll waits for more (up to its `max`).
const MORE_WAIT: Duration = Duration::from_millis(20);

/// Detaches the poll from the hub when its request ends: answered ([`Attached::detach`]),
/// or dropped (its client went away).
struct Attached {
    hub: Addr<crate::work::WorkHub>,
    worker: Option<u64>,
}

impl Attached {
    /// Detach now and wait for it: nothing is pushed to the poll after this.
    async fn detach(mut self) {
        if let Some(worker) = self.worker.take() {
            let _ = self.hub.send(Detach(worker)).await;
        }
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            self.hub.do_send(Detach(worker));
        }
    }
}

impl Services {
    /// Up to `max` tasks of `kinds`, leased to the caller, waiting up to `wait` for the first.
    pub async fn poll(
        &self,
        kinds: Vec<String>,
        max: u16,
        wait: Duration,
        who: &Identity,
    ) -> Result<Vec<WorkTask>, ServiceError> {
        let (push, mut pushed) = mpsc::channel::<Push>(2 * usize::from(max) + 2);
        let enlisted = self.enlist(kinds, max, false, who, push).await?;
        let attached = Attached {
            hub: self.handles.work.clone(),
            worker: Some(enlisted.worker),
        };
        let until = Instant::now() + wait.clamp(LEAST_WAIT, MAX_WAIT);
        let mut taken = Taken::default();
        while taken.tasks.len() < usize::from(max) {
            let until = match taken.tasks.is_empty() {
                true => until,
                false => Instant::now() + MORE_WAIT,
            };
            match tokio::time::timeout_at(until, pushed.recv()).await {
                Ok(Some(push)) => taken.add(push),
                _ => break,
            }
        }
        // Detached (nothing more is pushed), then what was pushed meanwhile is taken too.
        attached.detach().await;
        while let Ok(push) = pushed.try_recv() {
            taken.add(push);
        }
        Ok(taken.answer())
    }
}

/// What a poll was pushed.
#[derive(Default)]
struct Taken {
    tasks: Vec<WorkTask>,
    cancelled: HashSet<String>,
}

impl Taken {
    fn add(&mut self, push: Push) {
        let Push::Line(Outbound::Line(json)) = push else {
            return; // a poll is never pushed a payload's bytes (it did not ask for stream=1)
        };
        match serde_json::from_slice::<WorkerLine>(&json) {
            Ok(WorkerLine::Task(leased)) => self.tasks.push(leased.task),
            Ok(WorkerLine::Cancel(cancel)) => {
                self.cancelled.insert(cancel.cancel);
            }
            _ => tracing::warn!("a line pushed to an HTTP poll was not a task or a cancel"),
        }
    }

    fn answer(mut self) -> Vec<WorkTask> {
        self.tasks.retain(|t| !self.cancelled.contains(&t.lease));
        self.tasks
    }
}
