//! TaskConsumer: takes deliveries from the task queue (manual ack, `amqp.prefetch` at a time)
//! and drives each through the worker pool.
//!
//! Per delivery: mark the row running → run on a worker → upload a large result → write the
//! outcome → reply to the submitting node → ack. The ack comes only after the row is written,
//! so a crash anywhere before it gets the task redelivered (at-least-once); a redelivery of a
//! task whose row is already final is not run again, only answered and acked.

use super::persister::{FinishTask, Persister, StartTask};
use super::publisher::{PublishReply, Publisher};
use super::uploader::{UploadFile, Uploader};
use super::worker_pool::{RunTask, TaskInput, TaskOutput, Worker};
use crate::amqp::{self, PayloadRef, TaskMessage};
use crate::db::models::{Finish, TaskRow};
use crate::db::tasks::Start;
use crate::protocol::TaskStatus;
use crate::service::view_of;
use crate::storage::Storage;
use actix::prelude::*;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use std::time::Duration;

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
    pub storage: Storage,
}

pub struct TaskConsumer {
    url: String,
    queue: String,
    prefetch: u16,
    deps: ConsumerDeps,
    connection: Option<Connection>,
    channel: Option<Channel>,
    attempt: u32,
    connecting: bool,
    generation: u64,
}

impl TaskConsumer {
    pub fn new(url: String, queue: String, prefetch: u16, deps: ConsumerDeps) -> Self {
        TaskConsumer {
            url,
            queue,
            prefetch,
            deps,
            connection: None,
            channel: None,
            attempt: 0,
            connecting: false,
            generation: 0,
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        if self.connecting {
            return;
        }
        self.connecting = true;
        let (url, queue, prefetch) = (self.url.clone(), self.queue.clone(), self.prefetch);
        let name = format!("{}-consumer", self.deps.node);
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
        .map(|res, act, ctx| {
            act.connecting = false;
            match res {
                Ok((conn, channel, consumer)) => {
                    if act.attempt > 0 {
                        tracing::info!(actor = "consumer", "consuming tasks again");
                    }
                    act.attempt = 0;
                    act.generation += 1;
                    act.connection = Some(conn);
                    act.channel = Some(channel);
                    let generation = act.generation;
                    ctx.add_stream(futures_util::StreamExt::map(consumer, move |d| {
                        (generation, d)
                    }));
                }
                Err(e) => {
                    let delay = amqp::backoff(act.attempt);
                    act.attempt += 1;
                    tracing::warn!(actor = "consumer", error = %e, ?delay, "cannot consume tasks; retrying");
                    ctx.run_later(delay, |act, ctx| act.connect(ctx));
                }
            }
        })
        .spawn(ctx);
    }
}

impl Actor for TaskConsumer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.connect(ctx);
        ctx.run_interval(Duration::from_secs(1), |act, ctx| {
            let healthy = act.channel.as_ref().is_some_and(|c| c.status().connected());
            if !healthy && !act.connecting {
                if act.channel.take().is_some() {
                    tracing::warn!(actor = "consumer", "lost RabbitMQ channel; reconnecting");
                }
                act.connection = None;
                act.connect(ctx);
            }
        });
    }
}

impl StreamHandler<(u64, Result<Delivery, lapin::Error>)> for TaskConsumer {
    fn handle(
        &mut self,
        (generation, item): (u64, Result<Delivery, lapin::Error>),
        ctx: &mut Context<Self>,
    ) {
        match item {
            Ok(delivery) => {
                let deps = self.deps.clone();
                actix::spawn(process(delivery, deps));
            }
            Err(e) if generation == self.generation => {
                tracing::warn!(actor = "consumer", error = %e, "task consumer failed; reconnecting");
                self.channel = None;
                self.connection = None;
                self.connect(ctx);
            }
            Err(_) => {}
        }
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {
        // A consumer stream ends with its connection; the health check reconnects.
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

/// Answer the submitting node (if it waits) and ack the delivery.
async fn answer_and_ack(deps: &ConsumerDeps, delivery: &Delivery, row: &TaskRow) {
    if let Some(reply_to) = delivery.properties.reply_to() {
        let view = view_of(row, &deps.storage);
        if let Ok(body) = serde_json::to_vec(&view) {
            let sent = deps
                .publisher
                .send(PublishReply {
                    queue: reply_to.to_string(),
                    id: row.id,
                    body,
                })
                .await;
            if !matches!(sent, Ok(Ok(()))) {
                // The waiting session also polls the row, so it still gets its answer.
                tracing::warn!(task = %row.id, "could not send reply");
            }
        }
    }
    if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
        tracing::warn!(task = %row.id, error = %e, "ack failed; the task will be redelivered and answered from its row");
    }
}

async fn process(delivery: Delivery, deps: ConsumerDeps) {
    let msg: TaskMessage = match serde_json::from_slice(&delivery.data) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "unreadable task message rejected");
            let _ = delivery
                .acker
                .reject(BasicRejectOptions { requeue: false })
                .await;
            return;
        }
    };
    let id = msg.id;
    let start = deps
        .persister
        .send(StartTask {
            id,
            node: deps.node.clone(),
        })
        .await;
    match start {
        Ok(Ok(Start::Run(_))) => {}
        Ok(Ok(Start::AlreadyFinal(row))) => {
            tracing::info!(task = %id, status = %row.status, "redelivered task already finished; not run again");
            answer_and_ack(&deps, &delivery, &row).await;
            return;
        }
        Ok(Ok(Start::Missing)) => {
            tracing::error!(task = %id, "task message without a task row rejected");
            let _ = delivery
                .acker
                .reject(BasicRejectOptions { requeue: false })
                .await;
            return;
        }
        Ok(Err(e)) => {
            tracing::warn!(task = %id, error = %e, "cannot mark task running; requeued");
            requeue(&delivery).await;
            return;
        }
        Err(e) => {
            tracing::warn!(task = %id, error = %e, "persister unavailable; requeued");
            requeue(&delivery).await;
            return;
        }
    }

    let input = match msg.payload {
        PayloadRef::Inline { data } => TaskInput::Inline(data.into()),
        PayloadRef::Object { key, .. } => TaskInput::Object { key },
    };
    let run = deps
        .workers
        .send(RunTask {
            kind: msg.kind.clone(),
            input,
        })
        .await
        .unwrap_or_else(|e| Err(format!("worker pool unavailable: {e}")));

    let outcome = match run {
        Ok(TaskOutput::Inline(data)) => Finish {
            status: TaskStatus::Succeeded.as_str().into(),
            result_size: Some(data.len() as i64),
            result: Some(data),
            result_key: None,
            error: None,
        },
        Ok(TaskOutput::Spilled { file, size }) => {
            let key = deps.storage.key(&format!("results/{id}"));
            match deps
                .uploader
                .send(UploadFile {
                    key: key.clone(),
                    file,
                })
                .await
            {
                Ok(Ok(_)) => Finish {
                    status: TaskStatus::Succeeded.as_str().into(),
                    result: None,
                    result_key: Some(key),
                    result_size: Some(size as i64),
                    error: None,
                },
                Ok(Err(e)) => failed(format!("could not store the result: {e}")),
                Err(e) => failed(format!("could not store the result: {e}")),
            }
        }
        Err(message) => failed(message),
    };

    let finished = deps
        .persister
        .send(FinishTask {
            id,
            node: deps.node.clone(),
            outcome,
        })
        .await;
    match finished {
        Ok(Ok(Some(row))) => answer_and_ack(&deps, &delivery, &row).await,
        Ok(Ok(None)) => {
            tracing::error!(task = %id, "task row vanished while running");
            let _ = delivery.acker.ack(BasicAckOptions::default()).await;
        }
        Ok(Err(e)) => {
            tracing::warn!(task = %id, error = %e, "cannot write task outcome; requeued");
            requeue(&delivery).await;
        }
        Err(e) => {
            tracing::warn!(task = %id, error = %e, "persister unavailable; requeued");
            requeue(&delivery).await;
        }
    }
}

fn failed(message: String) -> Finish {
    Finish {
        status: TaskStatus::Failed.as_str().into(),
        result: None,
        result_key: None,
        result_size: None,
        error: Some(message),
    }
}
