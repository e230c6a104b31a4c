//! Starting a task: mark its row `running` on this node (counting the attempt before it
//! runs), then run it on a worker under its kind's timeout.

use super::complete::{complete, Handled};
use super::DeliveryCtx;
use crate::actors::persister::StartTask;
use crate::actors::worker_pool::{RunError, RunTask, TaskInput};
use crate::actors::Settle;
use crate::db::tasks::Start;
use crate::messages::{PayloadRef, TaskMessage};

/// Mark `task` running here: `Ok(attempt)` to go on, `Err(how it was handled)` otherwise.
pub(super) async fn start(ctx: &DeliveryCtx, task: &TaskMessage) -> Result<u32, Handled> {
    let id = task.id;
    let started = ctx
        .handles
        .persister
        .send(StartTask {
            task: task.clone(),
            node: ctx.handles.node.clone(),
        })
        .await
        .settle();
    match started {
        Ok(Start::Run(row)) => Ok(row.attempts.max(1) as u32),
        Ok(Start::AlreadyFinal(row)) => {
            tracing::info!(task = %id, status = %row.status, "redelivered task already finished; not run again");
            ctx.answer(task, &row);
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

/// Start, run and complete one task.
pub(super) async fn process(ctx: &DeliveryCtx, task: &TaskMessage) -> Handled {
    let attempt = match start(ctx, task).await {
        Ok(attempt) => attempt,
        Err(done) => return done,
    };
    let input = match &task.payload {
        PayloadRef::Inline { data } => TaskInput::Inline(data.clone().into()),
        PayloadRef::Object { key, .. } => TaskInput::Object { key: key.clone() },
    };
    let run = ctx
        .workers
        .send(RunTask {
            kind: task.kind.clone(),
            input,
            timeout: ctx.policy.timeout(&task.kind),
        })
        .await
        .unwrap_or_else(|e| Err(RunError::Transient(format!("worker pool unavailable: {e}"))));
    complete(ctx, task, attempt, run).await
}
