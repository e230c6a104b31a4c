//! Starting a task: mark its row `running` on this node (counting the attempt before it
//! runs), then run it on a worker under its kind's timeout, then complete it. A task whose
//! row has already ended (a redelivery after its outcome was written) is answered from the
//! row and not run again.

use super::effects::{Completer, Handled};
use super::DeliveryCtx;
use crate::actors::worker_pool::{RunError, RunTask, TaskInput, TaskOutput};
use crate::db::models::{Finish, TaskRow};
use crate::db::store::StartTask;
use crate::db::tasks::Start;
use crate::db::DbError;
use crate::messages::{PayloadRef, TaskMessage};
use protocol::TaskStatus;

/// How often a delivery of a task running on another live node looks again.
const BUSY_LOOK: std::time::Duration = std::time::Duration::from_secs(1);

/// What starting and running a task needs from the rest of the node.
pub(crate) trait Starter {
    /// Mark `task` running here (see [`crate::db::tasks::start_many`]).
    async fn mark_running(&self, task: &TaskMessage) -> Result<Start, DbError>;
    /// Answer the waiting client from a row already written.
    fn answer(&self, task: &TaskMessage, row: &TaskRow);
    /// Run attempt `attempt` of `task` on a worker, under its kind's timeout.
    async fn run(&self, task: &TaskMessage, attempt: u32) -> Result<TaskOutput, RunError>;
    /// Attempt `attempt` of `task` was given to no worker: uncount it, hand the task back.
    async fn not_taken(&self, task: &TaskMessage, attempt: u32) -> Handled;
}

/// Mark `task` running here: `Ok(attempt)` to go on, `Err(how it was handled)` otherwise.
/// A task that has used its attempts already (its outcome could never be written, or nodes
/// kept dying running it) is not run again: it is buried and made `dead`.
pub(crate) async fn start<S: Starter + Completer>(
    s: &S,
    task: &TaskMessage,
) -> Result<u32, Handled> {
    let id = task.id;
    match s.mark_running(task).await {
        Ok(Start::Run(row)) => {
            let attempt = row.attempts.max(1) as u32;
            let max = s.policy().max_attempts(&task.kind);
            if attempt <= max {
                return Ok(attempt);
            }
            let last = row.error.as_deref().unwrap_or("none recorded");
            tracing::warn!(task = %id, attempt, max, "task out of attempts without an outcome; dead-lettered");
            if !s.bury(task).await {
                return Err(Handled::Requeue);
            }
            let why = format!("no outcome after {max} attempts (last error: {last})");
            Err(s
                .record(task, Finish::failed(TaskStatus::Dead, why), None)
                .await)
        }
        Ok(Start::AlreadyFinal(row)) => {
            tracing::info!(task = %id, status = %row.status, "redelivered task already finished; not run again");
            s.answer(task, &row);
            Err(Handled::Done)
        }
        Ok(Start::Busy(row)) => {
            // Another delivery of it runs on a node that is alive (this one is a copy: a
            // message sent twice, or handed back while its run went on). That run writes the
            // outcome; should it be lost, the janitor puts the task back.
            let node = row.node.as_deref().unwrap_or("?");
            tracing::warn!(task = %id, node, "task still running on a live node; this delivery is not run");
            Err(Handled::Done)
        }
        Ok(Start::Missing) => {
            tracing::error!(task = %id, "task row missing after it was written; requeued");
            Err(Handled::Requeue)
        }
        Err(e) => {
            tracing::warn!(task = %id, error = %e, "cannot mark task running; requeued");
            Err(Handled::Requeue)
        }
    }
}

impl Starter for DeliveryCtx {
    /// While the task runs on another node that is alive, this waits (a second at a time,
    /// until the task's time from this delivery is spent): that run may end (its outcome
    /// answers this delivery), or its node fall silent (a node killed: this delivery runs it).
    async fn mark_running(&self, task: &TaskMessage) -> Result<Start, DbError> {
        let until = self.received + self.policy.timeout(&task.kind);
        loop {
            // Running here already (a copy of its message came to the node that runs it).
            if self.handles.control.running.contains(task.id) && std::time::Instant::now() < until {
                tokio::time::sleep(BUSY_LOOK).await;
                continue;
            }
            let start = StartTask {
                task: task.clone(),
                node: self.handles.node.clone(),
            };
            match self.handles.store.start(start).await? {
                Start::Busy(_) if std::time::Instant::now() < until => {
                    tokio::time::sleep(BUSY_LOOK).await;
                }
                start => return Ok(start),
            }
        }
    }

    fn answer(&self, task: &TaskMessage, row: &TaskRow) {
        DeliveryCtx::answer(self, task, row)
    }

    async fn run(&self, task: &TaskMessage, attempt: u32) -> Result<TaskOutput, RunError> {
        let input = match &task.payload {
            PayloadRef::Inline { data } => TaskInput::Inline(data.clone().into()),
            PayloadRef::Object { key, .. } => TaskInput::Object { key: key.clone() },
        };
        // The timeout counts from when the node took the delivery, time waiting for a worker
        // included (the worker checks what is left when it takes the task).
        let deadline = self.received + self.policy.timeout(&task.kind);
        if deadline <= std::time::Instant::now() {
            return Err(RunError::Transient(
                "timeout (waited for a worker past the task's timeout)".into(),
            ));
        }
        if self.handles.kinds.get(&task.kind).is_none() {
            // An external kind: a worker connected to this node runs it.
            return self.run_external(task, attempt, deadline).await;
        }
        let run = RunTask {
            id: task.id,
            kind: task.kind.clone(),
            input,
            deadline,
        };
        self.workers
            .send(run)
            .await
            .unwrap_or_else(|e| Err(RunError::Transient(format!("worker pool unavailable: {e}"))))
    }

    async fn not_taken(&self, task: &TaskMessage, attempt: u32) -> Handled {
        let node = &self.handles.node;
        if let Err(e) = self.handles.store.untake(task.id, node, attempt).await {
            // Handed back all the same (made `queued`), the attempt counted.
            tracing::warn!(task = %task.id, error = %e, "cannot uncount an attempt no worker took");
        }
        Handled::Requeue
    }
}

impl DeliveryCtx {
    /// Run `task` of an external kind: leased to a worker connected here (see
    /// [`crate::work::hub`]), until `deadline` unless the worker extends it.
    async fn run_external(
        &self,
        task: &TaskMessage,
        attempt: u32,
        deadline: std::time::Instant,
    ) -> Result<TaskOutput, RunError> {
        let longest = self.received
            + self
                .policy
                .longest(&task.kind)
                .unwrap_or(self.hold)
                .min(self.hold);
        let job = crate::work::hub::Job {
            task: task.clone(),
            attempt,
            deadline,
            longest: longest.max(deadline),
        };
        self.handles
            .work
            .send(crate::work::hub::Run(job))
            .await
            .unwrap_or_else(|e| Err(RunError::Transient(format!("work hub unavailable: {e}"))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::fake::{task, Fake};

    fn process_with(fake: &Fake) -> (Handled, Vec<String>) {
        let handled = futures_executor::block_on(crate::delivery::timed(fake, &task()));
        (handled, fake.log.take())
    }

    #[test]
    fn a_task_is_counted_then_run_then_completed_at_its_attempt() {
        let mut fake = Fake::new(&[]);
        fake.ran = || Err(RunError::Transient("timeout".into()));
        let (h, log) = process_with(&fake);
        assert_eq!(h, Handled::Done);
        // The row says attempt 2 of 2: the failure buries it.
        assert_eq!(
            log,
            [
                "mark running",
                "run",
                "bury",
                "record dead Some(\"timeout (after 2 attempts)\")"
            ]
        );
    }

    #[test]
    fn a_task_that_already_ended_is_answered_from_its_row_not_run() {
        let mut fake = Fake::new(&[]);
        fake.found = Some(|mut row| {
            row.status = protocol::TaskStatus::Succeeded;
            Start::AlreadyFinal(row)
        });
        let (h, log) = process_with(&fake);
        assert_eq!(h, Handled::Done);
        assert_eq!(log, ["mark running", "answer from the succeeded row"]);
    }

    /// Marked running a third time; the kind allows two runs.
    fn third_start(mut row: TaskRow) -> Start {
        row.attempts = 3;
        row.error = Some("cannot write".into());
        Start::Run(row)
    }

    #[test]
    fn a_task_out_of_attempts_is_buried_dead_not_run() {
        let mut fake = Fake::new(&[]);
        fake.found = Some(third_start);
        let (h, log) = process_with(&fake);
        assert_eq!(h, Handled::Done);
        assert_eq!(
            log,
            [
                "mark running",
                "bury",
                "record dead Some(\"no outcome after 2 attempts (last error: cannot write)\")"
            ]
        );
        let mut fake = Fake::new(&["bury"]);
        fake.found = Some(third_start);
        let (h, log) = process_with(&fake);
        assert_eq!(
            (h, log),
            (Handled::Requeue, vec!["mark running".into(), "bury".into()])
        );
    }

    #[test]
    fn a_task_that_cannot_be_marked_running_goes_back_unrun() {
        let mut fake = Fake::new(&[]);
        fake.found = None;
        assert_eq!(
            process_with(&fake),
            (Handled::Requeue, vec!["mark running".into()])
        );
        fake.found = Some(|_| Start::Missing);
        assert_eq!(
            process_with(&fake),
            (Handled::Requeue, vec!["mark running".into()])
        );
    }

    #[test]
    fn a_task_no_worker_took_goes_back_with_its_attempt_uncounted() {
        let mut fake = Fake::new(&[]);
        fake.ran = || Err(RunError::NotTaken("no worker for `x` here".into()));
        let (h, log) = process_with(&fake);
        assert_eq!(h, Handled::Requeue);
        // Not retried later, buried or recorded: handed back as it was.
        assert_eq!(
            log,
            ["mark running", "run", "not taken, attempt 2 uncounted"]
        );
    }
}
