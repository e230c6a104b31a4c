//! Quick tasks: a first delivery's quick kinds on inline payloads run together, right here
//! when their inputs are small ([`QuickRunner::in_place`]) or else on one worker, and their
//! outcomes are written in one statement. A run takes microseconds, so their
//! outcome is their first (often only) row write. A run that needs more (a result for the
//! bucket, a retry) is counted as an attempt and completed like any other.

use super::complete::{complete, Handled};
use super::{start, DeliveryCtx};
use crate::actors::worker_pool::{QuickRunner, RunBatch, RunError, TaskOutput};
use crate::db::models::Finish;
use crate::db::store::RecordOutcome;
use crate::kinds::Kind;
use crate::messages::{PayloadRef, TaskMessage};
use bytes::Bytes;
use protocol::TaskStatus;
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

/// Run quick tasks as one batch (here, or on a worker), write their outcomes in one go,
/// answer them.
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
    // Outcomes to write now; runs that need more go on one by one.
    let mut records = Vec::with_capacity(tasks.len());
    let mut record_of = Vec::with_capacity(tasks.len());
    let mut rest = Vec::new();
    for (i, (task, run)) in tasks.iter().zip(runs).enumerate() {
        let finish = match run {
            Ok(TaskOutput::Inline(data)) => Finish::succeeded(data),
            Err(e) if !e.is_retryable() => Finish::failed(TaskStatus::Failed, e.to_string()),
            other => {
                rest.push((i, other));
                continue;
            }
        };
        record_of.push(i);
        records.push(RecordOutcome {
            task: (*task).clone(),
            node: ctx.handles.node.clone(),
            finish,
            started_at: Some(started_at),
        });
    }
    let mut handled = vec![Handled::Done; tasks.len()];
    let written = ctx.handles.store.record_all(records).await;
    let mut replies = Vec::new();
    for (i, row) in record_of.into_iter().zip(written) {
        match row {
            Ok(Some(row)) => {
                ctx.handles.metrics.finished(&row);
                replies.extend(ctx.reply_for(tasks[i], &row))
            }
            Ok(None) => tracing::error!(task = %tasks[i].id, "task row vanished while running"),
            Err(e) => {
                tracing::warn!(task = %tasks[i].id, error = %e, "cannot write task outcome; requeued");
                handled[i] = Handled::Requeue;
            }
        }
    }
    ctx.send_replies(replies);
    let more = futures_util::future::join_all(rest.into_iter().map(|(i, run)| {
        let task = tasks[i];
        async move {
            // Counted as an attempt now (it ran), then completed as any run.
            match start::start(ctx, task).await {
                Ok(attempt) => (i, complete(ctx, task, attempt, run).await),
                Err(done) => (i, done),
            }
        }
    }))
    .await;
    for (i, h) in more {
        handled[i] = h;
    }
    handled
}
