//! TaskConsumer: takes deliveries from the task queue (manual ack, `amqp.prefetch` at a time)
//! and drives each through the worker pool.
//!
//! Per delivery: mark the row running → run on a worker → upload a large result → write the
//! outcome → reply to the submitting node → ack. The ack comes only after the row is written,
//! so a crash anywhere before it gets the task redelivered (at-least-once); a redelivery of a
//! task whose row is already final is not run again, only answered and acked.

use super::persister::{Persister, RecordOutcome, RecordOutcomes, RetryLater, StartTask};
use super::publisher::{PublishReplies, Publisher, Republish, Target};
use super::replies::{LocalReplies, ReplyRouter};
use super::uploader::{UploadFile, Uploader};
use super::worker_pool::{RunBatch, RunError, RunTask, TaskInput, TaskOutput, Worker};
use crate::amqp::{self, PayloadRef, TaskMessage};
use crate::config::TaskSettings;
use crate::db::models::{Finish, TaskRow};
use crate::db::tasks::Start;
use crate::kinds::TaskKind;
use crate::protocol::TaskStatus;
use crate::service::view_of;
use crate::storage::Storage;
use crate::supervision::{Link, RestartBudget};
use actix::prelude::*;
use bytes::Bytes;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    BasicRejectOptions,
};
use lapin::types::FieldTable;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Pause before handing a delivery back after a database failure, so an outage does not
/// become a hot redelivery loop.
const REQUEUE_PAUSE: Duration = Duration::from_secs(1);

/// What processing a delivery needs; cloned into each delivery's future.
#[derive(Clone)]
pub struct ConsumerDeps {
    pub node: String,
    pub persister: Addr<Persister>,
    pub workers: Addr<Worker>,
    pub uploader: Addr<Uploader>,
    pub publisher: Addr<Publisher>,
    /// This node's reply router and reply queue: replies for tasks accepted here skip the
    /// broker.
    pub replies: Addr<ReplyRouter>,
    pub reply_queue: String,
    pub storage: Storage,
    pub kinds: crate::kinds::Registry,
    pub tasks: Arc<TaskSettings>,
    /// Deliveries being processed now (graceful shutdown waits for them).
    pub inflight: Arc<AtomicUsize>,
}

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

pub struct TaskConsumer {
    url: String,
    queue: String,
    prefetch: u16,
    deps: ConsumerDeps,
    link: Link,
    /// Set by [`StopConsuming`]: no new deliveries, no reconnecting.
    stopping: bool,
}

impl TaskConsumer {
    pub fn new(
        url: String,
        queue: String,
        prefetch: u16,
        deps: ConsumerDeps,
        budget: Arc<RestartBudget>,
    ) -> Self {
        TaskConsumer {
            url,
            queue,
            prefetch,
            deps,
            link: Link::new(budget),
            stopping: false,
        }
    }

    fn tag(&self) -> String {
        format!("{}-consumer", self.deps.node)
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        let (url, queue, prefetch, name) = (
            self.url.clone(),
            self.queue.clone(),
            self.prefetch,
            self.tag(),
        );
        async move {
            let conn = amqp::connect(&url, &name).await?;
            let channel = conn.create_channel().await?;
            channel
                .basic_qos(prefetch, BasicQosOptions::default())
                .await?;
            amqp::declare_task_queue(&channel, &queue).await?;
            let consumer = channel
                .basic_consume(
                    queue.as_str().into(),
                    name.as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            Ok::<_, lapin::Error>((conn, channel, consumer))
        }
        .into_actor(self)
        .map(|res, act, ctx| match res {
            Ok((conn, channel, consumer)) => {
                act.link.up(conn, channel);
                ctx.add_stream(consumer);
            }
            Err(e) => {
                act.link.failed(format!("cannot consume tasks: {e}"));
                ctx.stop();
            }
        })
        .spawn(ctx);
    }
}

impl Actor for TaskConsumer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.stopping {
            return;
        }
        let Some(delay) = self.link.start_delay() else {
            return;
        };
        ctx.run_later(delay, |act, ctx| act.connect(ctx));
        ctx.run_interval(Duration::from_secs(1), |act, ctx| {
            if act.link.lost() && !act.stopping {
                act.link.failed("RabbitMQ channel closed");
                ctx.stop();
            }
        });
    }
}

impl actix::Supervised for TaskConsumer {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.link.restarting();
    }
}

impl StreamHandler<Result<Delivery, lapin::Error>> for TaskConsumer {
    fn handle(&mut self, item: Result<Delivery, lapin::Error>, ctx: &mut Context<Self>) {
        match item {
            Ok(delivery) => {
                actix::spawn(process(delivery, self.deps.clone()));
            }
            Err(e) if !self.stopping => {
                self.link.failed(format!("task consumer failed: {e}"));
                ctx.stop();
            }
            Err(_) => {}
        }
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {
        // The stream ends with its connection (the health check restarts the actor) or after
        // StopConsuming.
    }
}

/// Graceful shutdown: cancel the consumer so no new task arrives; deliveries already taken
/// are finished (and acked) as usual.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopConsuming;

impl Handler<StopConsuming> for TaskConsumer {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: StopConsuming, _: &mut Context<Self>) -> Self::Result {
        self.stopping = true;
        let channel = self.link.channel.clone();
        let tag = self.tag();
        Box::pin(
            async move {
                if let Some(channel) = channel {
                    if let Err(e) = channel
                        .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                        .await
                    {
                        tracing::warn!(error = %e, "could not cancel the task consumer");
                    }
                }
            }
            .into_actor(self),
        )
    }
}

async fn requeue(delivery: &Delivery) {
    tokio::time::sleep(REQUEUE_PAUSE).await;
    let _ = delivery
        .acker
        .nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await;
}

/// How one task of a delivery ended, as far as the delivery is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handled {
    /// Its outcome (final, or a scheduled retry) is written: the delivery may be acked.
    Done,
    /// Something could not be written: the whole delivery goes back to the queue (its other
    /// tasks, already final, are then answered from their rows, not run again).
    Requeue,
}

/// The reply for `task` (its reply queue, id and task view as JSON), if anyone waits.
fn reply_for(
    deps: &ConsumerDeps,
    task: &TaskMessage,
    row: &TaskRow,
) -> Option<(String, Uuid, Vec<u8>)> {
    let reply_to = task.reply_to.as_ref()?;
    let body = serde_json::to_vec(&view_of(row, &deps.storage)).ok()?;
    Some((reply_to.clone(), row.id, body))
}

/// Send replies to the nodes waiting for them: through the broker, or straight to this
/// node's reply router for tasks it accepted itself. Unanswered: a lost reply costs its
/// waiting session one poll of the task row.
fn send_replies(deps: &ConsumerDeps, replies: Vec<(String, Uuid, Vec<u8>)>) {
    let (local, remote): (Vec<_>, Vec<_>) = replies
        .into_iter()
        .partition(|(queue, _, _)| *queue == deps.reply_queue);
    if !local.is_empty() {
        let local = local
            .into_iter()
            .map(|(_, id, body)| (id, body.into()))
            .collect();
        deps.replies.do_send(LocalReplies(local));
    }
    if !remote.is_empty() {
        let remote = remote
            .into_iter()
            .map(|(queue, _, body)| (queue, body))
            .collect();
        deps.publisher.do_send(PublishReplies(remote));
    }
}

/// Answer the submitting node, if it waits for this task.
fn answer(deps: &ConsumerDeps, task: &TaskMessage, row: &TaskRow) {
    send_replies(deps, reply_for(deps, task, row).into_iter().collect());
}

/// One delivery: a message of one or more tasks; acked once every task's outcome is
/// written, handed back to the queue otherwise.
///
/// On a first delivery, tasks of bounded kinds with inline payloads (most small tasks) run
/// together on one worker without being marked `running` first: a run takes microseconds, so
/// their outcome is their first (often only) row write. Other tasks, and every task of a
/// redelivered message (its node may have died running it), are marked running first, so
/// each attempt is counted before it runs.
async fn process(delivery: Delivery, deps: ConsumerDeps) {
    let _inflight = InFlight::new(&deps.inflight);
    let tasks = match crate::amqp::decode_tasks(&delivery.data) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "unreadable task message rejected");
            let _ = delivery
                .acker
                .reject(BasicRejectOptions { requeue: false })
                .await;
            return;
        }
    };
    let mut quick = Vec::new();
    let mut slow = Vec::new();
    for task in &tasks {
        match deps.quick_kind(task).filter(|_| !delivery.redelivered) {
            Some((kind, input)) => quick.push((task, kind, input)),
            None => slow.push(task),
        }
    }
    let (quick, slow) = futures_util::future::join(
        process_quick(&deps, quick),
        futures_util::future::join_all(slow.iter().map(|task| process_task(&deps, task))),
    )
    .await;
    if quick.contains(&Handled::Requeue) || slow.contains(&Handled::Requeue) {
        requeue(&delivery).await;
    } else if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
        tracing::warn!(error = %e, "ack failed; the tasks will be redelivered and answered from their rows");
    }
}

/// A task that can run in a batch, with its kind and input.
type Quick<'a> = (&'a TaskMessage, Arc<dyn TaskKind>, Bytes);

impl ConsumerDeps {
    /// The kind and input of `task` if it can run in a batch: a bounded kind with an inline
    /// payload.
    fn quick_kind(&self, task: &TaskMessage) -> Option<(Arc<dyn TaskKind>, Bytes)> {
        match &task.payload {
            PayloadRef::Inline { data } => self
                .kinds
                .get(&task.kind)
                .filter(|k| k.bounded())
                .map(|k| (k, Bytes::copy_from_slice(data))),
            PayloadRef::Object { .. } => None,
        }
    }
}

/// Run quick tasks as one batch on a worker, write their outcomes in one go, answer them.
async fn process_quick(deps: &ConsumerDeps, quick: Vec<Quick<'_>>) -> Vec<Handled> {
    if quick.is_empty() {
        return Vec::new();
    }
    let started_at = chrono::Utc::now();
    let (tasks, batch): (Vec<&TaskMessage>, Vec<_>) = quick
        .into_iter()
        .map(|(task, kind, input)| (task, (kind, input)))
        .unzip();
    let runs = deps
        .workers
        .send(RunBatch(batch))
        .await
        .unwrap_or_else(|e| {
            let lost = RunError {
                message: format!("worker pool unavailable: {e}"),
                retryable: true,
            };
            tasks.iter().map(|_| Err(lost.clone())).collect()
        });
    // Outcomes to write now; runs that need more (a result for the bucket, a retry) go on
    // one by one.
    let mut records = Vec::with_capacity(tasks.len());
    let mut record_of = Vec::with_capacity(tasks.len());
    let mut rest = Vec::new();
    for (i, (task, run)) in tasks.iter().zip(runs).enumerate() {
        let outcome = match run {
            Ok(TaskOutput::Inline(data)) => succeeded(data),
            Err(e) if !e.retryable => failed(TaskStatus::Failed, e.message),
            other => {
                rest.push((i, other));
                continue;
            }
        };
        record_of.push(i);
        records.push(RecordOutcome {
            task: (*task).clone(),
            node: deps.node.clone(),
            outcome,
            started_at: Some(started_at),
        });
    }
    let mut handled = vec![Handled::Done; tasks.len()];
    let written = match deps.persister.send(RecordOutcomes(records)).await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "persister unavailable; requeued");
            return vec![Handled::Requeue; tasks.len()];
        }
    };
    let mut replies = Vec::new();
    for (i, row) in record_of.into_iter().zip(written) {
        match row {
            Ok(Some(row)) => replies.extend(reply_for(deps, tasks[i], &row)),
            Ok(None) => tracing::error!(task = %tasks[i].id, "task row vanished while running"),
            Err(e) => {
                tracing::warn!(task = %tasks[i].id, error = %e, "cannot write task outcome; requeued");
                handled[i] = Handled::Requeue;
            }
        }
    }
    send_replies(deps, replies);
    let more = futures_util::future::join_all(rest.into_iter().map(|(i, run)| {
        let task = tasks[i];
        async move {
            // Counted as an attempt now (it ran), then handled as any run.
            match start(deps, task).await {
                Ok(attempt) => (i, conclude(deps, task, attempt, run).await),
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

/// Mark `msg` running here: `Ok(attempt)` to go on, `Err(how it was handled)` otherwise.
async fn start(deps: &ConsumerDeps, msg: &TaskMessage) -> Result<u32, Handled> {
    let id = msg.id;
    let start = deps
        .persister
        .send(StartTask {
            task: msg.clone(),
            node: deps.node.clone(),
        })
        .await;
    match start {
        Ok(Ok(Start::Run(row))) => Ok(row.attempts.max(1) as u32),
        Ok(Ok(Start::AlreadyFinal(row))) => {
            tracing::info!(task = %id, status = %row.status, "redelivered task already finished; not run again");
            answer(deps, msg, &row);
            Err(Handled::Done)
        }
        Ok(Ok(Start::Missing)) => {
            tracing::error!(task = %id, "task row missing after it was written; requeued");
            Err(Handled::Requeue)
        }
        Ok(Err(e)) => {
            tracing::warn!(task = %id, error = %e, "cannot mark task running; requeued");
            Err(Handled::Requeue)
        }
        Err(e) => {
            tracing::warn!(task = %id, error = %e, "persister unavailable; requeued");
            Err(Handled::Requeue)
        }
    }
}

async fn process_task(deps: &ConsumerDeps, msg: &TaskMessage) -> Handled {
    let attempt = match start(deps, msg).await {
        Ok(attempt) => attempt,
        Err(done) => return done,
    };
    let input = match &msg.payload {
        PayloadRef::Inline { data } => TaskInput::Inline(data.clone().into()),
        PayloadRef::Object { key, .. } => TaskInput::Object { key: key.clone() },
    };
    let run = deps
        .workers
        .send(RunTask {
            kind: msg.kind.clone(),
            input,
            timeout: deps.tasks.timeout(&msg.kind),
        })
        .await
        .unwrap_or_else(|e| {
            Err(RunError {
                message: format!("worker pool unavailable: {e}"),
                retryable: true,
            })
        });
    conclude(deps, msg, attempt, run).await
}

/// After attempt `attempt` of `msg` ran (and was marked running): store a large result,
/// write the outcome or schedule a retry, answer.
async fn conclude(
    deps: &ConsumerDeps,
    msg: &TaskMessage,
    attempt: u32,
    run: Result<TaskOutput, RunError>,
) -> Handled {
    let id = msg.id;
    let outcome = match run {
        Ok(TaskOutput::Inline(data)) => succeeded(data),
        Ok(TaskOutput::Spilled { file, size }) => {
            let key = deps.storage.key(&format!("results/{id}"));
            let stored = match deps
                .uploader
                .send(UploadFile {
                    key: key.clone(),
                    file,
                })
                .await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = stored {
                let error = format!("could not store the result: {e}");
                return retry_or_bury(deps, msg, attempt, error).await;
            }
            Finish {
                status: TaskStatus::Succeeded.as_str().into(),
                result: None,
                result_key: Some(key),
                result_size: Some(size as i64),
                error: None,
            }
        }
        Err(e) if e.retryable => return retry_or_bury(deps, msg, attempt, e.message).await,
        Err(e) => failed(TaskStatus::Failed, e.message),
    };
    write_outcome(deps, msg, outcome).await
}

fn succeeded(data: Vec<u8>) -> Finish {
    Finish {
        status: TaskStatus::Succeeded.as_str().into(),
        result_size: Some(data.len() as i64),
        result: Some(data),
        result_key: None,
        error: None,
    }
}

/// A retryable failure: run again after a broker-side delay, or, past the kind's attempts,
/// mark the task `dead` and park it in the dead-letter queue.
async fn retry_or_bury(
    deps: &ConsumerDeps,
    msg: &TaskMessage,
    attempt: u32,
    error: String,
) -> Handled {
    let id = msg.id;
    let body = match serde_json::to_vec(msg) {
        Ok(b) => b,
        Err(_) => return Handled::Requeue,
    };
    let max = deps.tasks.max_attempts(&msg.kind);
    if attempt >= max {
        tracing::warn!(task = %id, attempt, error = %error, "task failed its last attempt; dead-lettered");
        let parked = deps
            .publisher
            .send(Republish {
                target: Target::Dead,
                id,
                body,
            })
            .await;
        if !matches!(parked, Ok(Ok(()))) {
            tracing::warn!(task = %id, "could not dead-letter the task; requeued");
            return Handled::Requeue;
        }
        let outcome = failed(
            TaskStatus::Dead,
            format!("{error} (after {attempt} attempts)"),
        );
        return write_outcome(deps, msg, outcome).await;
    }
    let delay_ms = deps.tasks.retry_delay_ms(attempt + 1);
    tracing::info!(task = %id, attempt, delay_ms, error = %error, "task failed; will retry");
    let next = chrono::Utc::now() + chrono::Duration::milliseconds(delay_ms as i64);
    let noted = deps
        .persister
        .send(RetryLater {
            id,
            node: deps.node.clone(),
            error: error.clone(),
            next_attempt_at: next,
        })
        .await;
    if !matches!(noted, Ok(Ok(_))) {
        return Handled::Requeue;
    }
    let sent = deps
        .publisher
        .send(Republish {
            target: Target::Retry { delay_ms },
            id,
            body,
        })
        .await;
    if matches!(sent, Ok(Ok(()))) {
        Handled::Done
    } else {
        tracing::warn!(task = %id, "could not schedule the retry; requeued");
        Handled::Requeue
    }
}

/// Write a final outcome; once written, answer.
async fn write_outcome(deps: &ConsumerDeps, msg: &TaskMessage, outcome: Finish) -> Handled {
    let id = msg.id;
    let finished = deps
        .persister
        .send(RecordOutcome {
            task: msg.clone(),
            node: deps.node.clone(),
            outcome,
            started_at: None,
        })
        .await;
    match finished {
        Ok(Ok(Some(row))) => {
            answer(deps, msg, &row);
            Handled::Done
        }
        Ok(Ok(None)) => {
            tracing::error!(task = %id, "task row vanished while running");
            Handled::Done
        }
        Ok(Err(e)) => {
            tracing::warn!(task = %id, error = %e, "cannot write task outcome; requeued");
            Handled::Requeue
        }
        Err(e) => {
            tracing::warn!(task = %id, error = %e, "persister unavailable; requeued");
            Handled::Requeue
        }
    }
}

fn failed(status: TaskStatus, message: String) -> Finish {
    Finish {
        status: status.as_str().into(),
        result: None,
        result_key: None,
        result_size: None,
        error: Some(message),
    }
}
