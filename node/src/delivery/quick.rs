//! Quick tasks: a first delivery's quick kinds on inline payloads (decided here, once) run
//! together, right here when their inputs are small ([`QuickRunner::in_place`]) or else on
//! one worker. A run takes microseconds, so its outcome is its first (often only) row write;
//! each goes through the one completer ([`super::complete`]), whose writes the store batches.
//! A run that needs more (a result for the bucket, a retry) is counted as an attempt there.

use super::complete::{complete, Attempt, Handled};
use super::DeliveryCtx;
use crate::actors::worker_pool::{QuickRunner, RunBatch, RunError};
use crate::kinds::Kind;
use crate::messages::{PayloadRef, TaskMessage};
use bytes::Bytes;
use std::sync::Arc;

/// A quick task, with its kind and input.
pub(super) type Quick<'a> = (&'a TaskMessage, Arc<Kind>, Bytes);

/// The kind and input of `task` if it is a quick task: a quick kind on an inline payload.
pub(super) fn input(ctx: &DeliveryCtx, task: &TaskMessage) -> Option<(Arc<Kind>, Bytes)> {
    match &task.payload {
        PayloadRef::Inline { data } => ctx
            .handles
            .kinds
            .get(&task.kind)
            .filter(|k| k.quick)
            .map(|k| (k, Bytes::copy_from_slice(data))),
        PayloadRef::Object { .. } => None,
    }
}

/// Run quick tasks as one batch (here, or on a worker), then complete each like any run
/// (their outcome writes share a batch in the store).
#[tracing::instrument(level = "debug", skip_all, fields(tasks = quick.len()))]
pub(super) async fn process(ctx: &DeliveryCtx, quick: Vec<Quick<'_>>) -> Vec<Handled> {
    if quick.is_empty() {
        return Vec::new();
    }
    let started_at = chrono::Utc::now();
    let (tasks, batch): (Vec<&TaskMessage>, Vec<_>) = quick
        .into_iter()
        .map(|(task, kind, input)| (task, (kind, input)))
        .unzip();
    let bytes = batch.iter().map(|(_, input)| input.len()).sum();
    let runs = if QuickRunner::in_place(bytes) {
        batch
            .into_iter()
            .map(|(kind, input)| ctx.quick.run(&kind, input))
            .collect()
    } else {
        ctx.workers.send(RunBatch(batch)).await.unwrap_or_else(|e| {
            let lost = RunError::Transient(format!("worker pool unavailable: {e}"));
            tasks.iter().map(|_| Err(lost.clone())).collect()
        })
    };
    let first = Attempt::Uncounted { started_at };
    // Several tasks' answers go together: one message to the reply router, not one per task.
    let gathering = (tasks.len() > 1).then(|| ctx.gathering());
    let c = gathering.as_ref().unwrap_or(ctx);
    let completed = tasks
        .iter()
        .zip(runs)
        .map(|(task, run)| complete(c, task, first, run));
    let handled = futures_util::future::join_all(completed).await;
    c.send_gathered();
    handled
}
