//! A delivery's way through the node, one stage per file (the consumer actor only owns the
//! AMQP side and hands each delivery here):
//!
//! - `quick`: a first delivery's quick tasks (quick kinds on inline payloads) run as one
//!   batch (where the delivery was taken when small, else on one worker) and are recorded
//!   in one write, with no `running` write first;
//! - [`start`]: every other task is marked `running` here first (so each attempt is counted
//!   before it runs), then runs on a worker, behind the `Starter` trait;
//! - [`complete`]: a run's result becomes a final row, a retry or a burial
//!   ([`crate::retry`]), behind the `Completer` trait;
//! - replies go to the waiting node once the row is written, and the delivery is acked once
//!   every task in it is written, or handed back to the queue otherwise (at-least-once).

pub mod complete;
mod effects;
#[cfg(test)]
mod fake;
mod quick;
pub mod start;

use crate::actors::publisher::{Park, PublishReplies};
use crate::actors::replies::LocalReplies;
use crate::actors::worker_pool::{QuickRunner, RunError, Worker};
use crate::actors::Handles;
use crate::actors::Settle;
use crate::db::models::TaskRow;
use crate::messages::{self, Reply, TaskMessage};
use crate::retry::RetryPolicy;
use crate::view::FromRow;
use actix::prelude::*;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use protocol::TaskView;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use complete::complete;
pub use complete::Handled;
use effects::{Attempt, Completer};
use start::{start, Starter};

/// Pause before handing a delivery back after a failure to write, so an outage does not
/// become a hot redelivery loop.
const REQUEUE_PAUSE: Duration = Duration::from_secs(1);

/// What processing a delivery needs; cloned into each delivery's future.
#[derive(Clone)]
pub struct DeliveryCtx {
    pub handles: Handles,
    pub workers: Addr<Worker>,
    /// Runs a small delivery's quick tasks on the consumer's thread.
    pub quick: QuickRunner,
    pub policy: Arc<RetryPolicy>,
    /// Deliveries being processed now (graceful shutdown waits for them).
    pub inflight: Arc<AtomicUsize>,
    /// The queue of the lane this consumer takes deliveries from.
    pub queue: String,
    /// When the node took this delivery: every task's timeout counts from here, so no
    /// delivery stays unacked past its lane's longest timeout (see [`crate::lanes`]).
    pub received: Instant,
    /// The longest a delivery may stay unacked (below RabbitMQ's `consumer_timeout`): how
    /// long one that could not be written is held while PostgreSQL is away.
    pub hold: Duration,
    /// Where answers go while a batch of tasks completes together (sent in one message once
    /// all are written); `None`: each is sent as soon as its row is written.
    pub gathered: Option<Gathered>,
}

/// Answers gathered for one message to the reply router or the publisher.
pub type Gathered = Arc<std::sync::Mutex<Vec<(String, Reply)>>>;

/// Counts a delivery in `inflight` while it lives.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        InFlight(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One delivery: a message of one or more tasks; acked once every task's outcome is
/// written, handed back to the queue otherwise.
#[tracing::instrument(name = "delivery", level = "debug", skip_all, fields(queue = %ctx.queue, tag = delivery.delivery_tag, redelivered = delivery.redelivered))]
pub async fn process(delivery: Delivery, ctx: DeliveryCtx) {
    let _inflight = InFlight::new(&ctx.inflight);
    let kind = delivery.properties.kind().as_ref().map(|k| k.as_str());
    let mut tasks = match messages::decode_tasks(kind, &delivery.data) {
        Ok(t) => t,
        Err(e) => return park(&ctx, &delivery, e.to_string()).await,
    };
    // A task twice in one message (a publisher that sent it again) runs once.
    let mut seen = HashSet::with_capacity(tasks.len());
    tasks.retain(|t| seen.insert(t.id));
    // Tasks of a paused lane or kind wait in the outbox until resumed.
    let paused = &ctx.handles.control.paused;
    let (held, tasks): (Vec<_>, Vec<_>) = tasks.into_iter().partition(|t| paused.holds(&t.kind));
    if !held.is_empty() {
        let n = held.len();
        match ctx.handles.store.park(&held).await {
            Ok(_) => tracing::info!(tasks = n, "tasks of a paused lane or kind parked"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot park the tasks of a paused lane or kind; requeued");
                return requeue(&ctx, &delivery, &[]).await;
            }
        }
    }
    // A redelivered message's node may have died running it: every task in it is started
    // (counted) before it runs.
    let mut quick = Vec::new();
    let mut slow = Vec::new();
    for task in &tasks {
        match quick::input(&ctx, task).filter(|_| !delivery.redelivered) {
            Some((kind, input)) => quick.push((task, kind, input)),
            None => slow.push(task),
        }
    }
    let (quick, slow) = futures_util::future::join(
        quick::process(&ctx, quick),
        futures_util::future::join_all(slow.iter().map(|task| timed(&ctx, task))),
    )
    .await;
    if quick.contains(&Handled::Requeue) || slow.contains(&Handled::Requeue) {
        requeue(&ctx, &delivery, &tasks).await;
    } else if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
        tracing::warn!(error = %e, "ack failed; the tasks will be redelivered and answered from their rows");
    }
}

/// Start, run and complete one task.
#[tracing::instrument(level = "debug", skip_all, fields(task = %task.id, kind = %task.kind))]
pub(crate) async fn timed<S: Starter + Completer>(s: &S, task: &TaskMessage) -> Handled {
    let attempt = match start(s, task).await {
        Ok(attempt) => attempt,
        Err(done) => return done,
    };
    let run = s.run(task, attempt).await;
    if let Err(RunError::NotTaken(why)) = &run {
        tracing::debug!(task = %task.id, %why, "task given to no worker; handed back uncounted");
        return s.not_taken(task, attempt).await;
    }
    complete(s, task, Attempt::Counted(attempt), run).await
}

/// A message this node cannot read is kept in the buried queue for an operator, never
/// dropped and never run: parked, then acked (handed back if it could not be parked).
async fn park(ctx: &DeliveryCtx, delivery: &Delivery, reason: String) {
    tracing::error!(error = %reason, "unreadable task message parked in the buried queue");
    let park = Park {
        queue: ctx.queue.clone(),
        body: delivery.data.clone(),
        reason,
    };
    match ctx.handles.publisher.send(park).await.settle() {
        Ok(()) => {
            let _ = delivery.acker.ack(BasicAckOptions::default()).await;
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not park the unreadable message; requeued");
            requeue(ctx, delivery, &[]).await;
        }
    }
}

/// Hand `delivery` back to the queue after a pause. While PostgreSQL is away it is held
/// instead (up to `ctx.hold` from its arrival): RabbitMQ counts every hand-back towards the
/// queue's delivery limit, so an outage costs a delivery one count, not one a second. A held
/// delivery also keeps its prefetch slot, so the node takes no new work it could not record.
/// Rows of its `tasks` left `running` here are made `queued` first, so the node that takes the
/// redelivery runs them instead of waiting for a run here that is over.
async fn requeue(ctx: &DeliveryCtx, delivery: &Delivery, tasks: &[TaskMessage]) {
    tokio::time::sleep(REQUEUE_PAUSE).await;
    let longest = ctx.hold.saturating_sub(ctx.received.elapsed());
    if !ctx.handles.health.database_back(longest).await {
        tracing::warn!(held = ?ctx.received.elapsed(), "PostgreSQL still away; delivery handed back to the queue");
    }
    // A copy of a task may be running here from another delivery: that row stays running.
    let running = &ctx.handles.control.running;
    let ids: Vec<uuid::Uuid> = tasks
        .iter()
        .map(|t| t.id)
        .filter(|id| !running.contains(*id))
        .collect();
    if let Err(e) = ctx.handles.store.hand_back(&ids, &ctx.handles.node).await {
        // Another node taking it waits for this node's run until the task's timeout.
        tracing::warn!(error = %e, "cannot mark handed-back tasks queued");
    }
    let requeue = BasicNackOptions {
        requeue: true,
        ..Default::default()
    };
    let _ = delivery.acker.nack(requeue).await;
}

impl DeliveryCtx {
    /// The reply for `task` (its reply queue and the reply), if a client waits for it.
    fn reply_for(&self, task: &TaskMessage, row: &TaskRow) -> Option<(String, Reply)> {
        let reply_to = task.reply_to.as_ref()?;
        let view = TaskView::from_row(row, &self.handles.storage);
        match Reply::new(row.id, &view) {
            Ok(reply) => Some((reply_to.clone(), reply)),
            Err(e) => {
                tracing::error!(task = %row.id, error = %e, "cannot encode a reply");
                None
            }
        }
    }

    /// Send replies to the nodes waiting for them: through the broker, or straight to this
    /// node's reply router for tasks it accepted itself. Unanswered: a lost reply costs its
    /// waiting session one poll of the task row.
    fn send_replies(&self, replies: Vec<(String, Reply)>) {
        let (local, remote): (Vec<_>, Vec<_>) = replies
            .into_iter()
            .partition(|(queue, _)| *queue == self.handles.reply_queue);
        if !local.is_empty() {
            let local = local.into_iter().map(|(_, reply)| reply).collect();
            self.handles.replies.do_send(LocalReplies(local));
        }
        if !remote.is_empty() {
            self.handles.publisher.do_send(PublishReplies(remote));
        }
    }

    /// Answer the submitting node, if it waits for this task (or gather the answer).
    fn answer(&self, task: &TaskMessage, row: &TaskRow) {
        let Some(reply) = self.reply_for(task, row) else {
            return;
        };
        match &self.gathered {
            Some(gathered) => lock(gathered).push(reply),
            None => self.send_replies(vec![reply]),
        }
    }

    /// This context, gathering answers until [`DeliveryCtx::send_gathered`].
    fn gathering(&self) -> DeliveryCtx {
        DeliveryCtx {
            gathered: Some(Gathered::default()),
            ..self.clone()
        }
    }

    /// Send the answers gathered so far, in one message per destination.
    fn send_gathered(&self) {
        let Some(gathered) = &self.gathered else {
            return;
        };
        let replies = std::mem::take(&mut *lock(gathered));
        if !replies.is_empty() {
            self.send_replies(replies);
        }
    }
}

/// The gathered answers (a panic while they were held left nothing half-done in them).
fn lock(gathered: &Gathered) -> std::sync::MutexGuard<'_, Vec<(String, Reply)>> {
    gathered
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
