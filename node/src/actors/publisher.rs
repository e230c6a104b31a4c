//! Publisher: puts tasks on the task queue and replies on reply queues, over one AMQP channel
//! in confirm mode. Tasks accepted while a publish is in flight travel together in the next
//! message (a JSON array, up to [`MAX_TASKS_PER_MESSAGE`]), and replies bound for one node
//! share a message the same way: under load one broker round trip serves many tasks, under
//! light load a task goes out at once (no timer). Messages name their version
//! ([`crate::messages`]). A publish succeeds only once the broker confirmed it; an unroutable
//! (`mandatory`) or nacked message, a lost connection or a confirm that does not come in time
//! is an error, never a false "accepted".
//!
//! The actor owns its connection and runs under a `Supervisor` ([`crate::amqp::link`]):
//! when the connection is lost (or cannot be made) it stops itself and is restarted after
//! the backoff its [`RestartBudget`] allows. Publishes in flight at that moment fail; a task
//! published while disconnected waits for the new connection up to `amqp.publish_wait_ms`,
//! then fails with [`PublishError::NotConnected`]; a task whose message was nacked is sent
//! again within the same bound.

mod nacks;
mod replies;
mod resend;
mod tasks;

use crate::amqp;
use crate::amqp::link::{self, Connected, Link, Opening};
use crate::lanes::Lanes;
use crate::messages::{Reply, TaskMessage, TASKS_V1};
use crate::supervision::RestartBudget;
use actix::prelude::*;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Confirmation};
pub use replies::{ForwardReport, PublishReplies};
pub use resend::{Park, Republish, Target};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
pub use tasks::PublishTask;

pub use crate::messages::MAX_TASKS_PER_MESSAGE;
/// The most bytes of tasks one message carries (one task larger than this still goes, alone):
/// well under RabbitMQ 4's default `max_message_size` of 16 MiB.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Task messages awaiting their confirm at once: one, so that tasks accepted meanwhile share
/// the next message.
const MAX_TASK_PUBLISHES: usize = 1;
/// Messages of one task each (lanes that may run long) awaiting their confirm at once.
const MAX_SINGLE_PUBLISHES: usize = 64;

type Waiter = tokio::sync::oneshot::Sender<Result<(), PublishError>>;

/// A task waiting for its message: where it goes (worked out once) and until when it may
/// wait for a connection.
struct Pending {
    task: TaskMessage,
    waiter: Waiter,
    until: Instant,
    queue: String,
    /// The most tasks its lane carries in one message (1: one task per message).
    per_message: usize,
}

/// How long a publish may wait for the broker's confirm.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    #[error("not connected to RabbitMQ")]
    NotConnected,
    #[error("RabbitMQ refused the message (nack)")]
    Nacked,
    #[error("no queue `{0}` to route the message to")]
    Unroutable(String),
    #[error("RabbitMQ did not confirm the message within {0:?}")]
    Timeout(Duration),
    #[error("RabbitMQ: {0}")]
    Amqp(#[source] lapin::Error),
    #[error("RabbitMQ: the channel is not in confirm mode")]
    NotConfirmMode,
    #[error("the publisher restarted before the message was confirmed")]
    Restarted,
    /// The message could not be encoded (never sent).
    #[error("cannot encode the message: {0}")]
    Encode(#[source] std::sync::Arc<serde_json::Error>),
    #[error("the publisher has stopped: {0}")]
    Stopped(#[from] actix::MailboxError),
}

impl PublishError {
    /// Whether the message surely did not reach a queue (never sent, nacked or returned):
    /// then it can be sent again at once, and a client told so will not see it run.
    pub fn is_definite(&self) -> bool {
        matches!(
            self,
            PublishError::NotConnected
                | PublishError::Nacked
                | PublishError::Unroutable(_)
                | PublishError::Encode(_)
        )
    }
}

pub struct Publisher {
    broker: amqp::Broker,
    name: String,
    /// Where each kind's tasks go, and how many share a message.
    lanes: Lanes,
    link: Link,
    /// A second channel, not in confirm mode, for replies: a lost reply costs only the
    /// waiting session's next poll of the task row, so replies do not wait for the broker.
    reply_channel: Option<lapin::Channel>,
    /// Delay queues declared on the current channel.
    retry_queues: HashSet<String>,
    /// External kinds' queues declared on the current channel (each the first time a task
    /// goes to it: an external kind's queues are made when it is first met).
    external_queues: HashSet<String>,
    /// Tasks waiting for the next task message (each until its deadline while there is no
    /// connection), and messages in flight.
    pending_tasks: Vec<Pending>,
    /// How long a task may wait for a connection being made again.
    publish_wait: Duration,
    /// Task messages awaiting their confirm: of batching lanes, and of one-task lanes.
    task_publishes: [usize; 2],
    /// Replies waiting for the next reply message (their queue, the reply), and whether one
    /// is out.
    pending_replies: Vec<(String, Reply)>,
    replying: bool,
    /// When the confirm channel was last replaced after a nack.
    renewed: Option<Instant>,
    /// Tasks per published message, observed.
    batch_sizes: Option<prometheus_client::metrics::histogram::Histogram>,
}

impl Publisher {
    pub fn new(
        broker: amqp::Broker,
        node: &str,
        lanes: Lanes,
        publish_wait: Duration,
        budget: Arc<RestartBudget>,
    ) -> Self {
        Publisher {
            publish_wait,
            broker,
            name: format!("{node}-publisher"),
            lanes,
            link: Link::new(budget),
            reply_channel: None,
            retry_queues: HashSet::new(),
            external_queues: HashSet::new(),
            pending_tasks: Vec::new(),
            task_publishes: [0; 2],
            pending_replies: Vec::new(),
            replying: false,
            renewed: None,
            batch_sizes: None,
        }
    }

    /// Observe the tasks of each published message in `sizes`.
    pub fn observing(mut self, sizes: prometheus_client::metrics::histogram::Histogram) -> Self {
        self.batch_sizes = Some(sizes);
        self
    }

    /// Send queued tasks, many per message (as many as their lane allows), while connected.
    fn flush_tasks(&mut self, ctx: &mut Context<Self>) {
        while !self.pending_tasks.is_empty() && self.link.healthy() {
            // The most urgent waiting task goes first (the first of its priority), of the
            // lanes with room for another message: a lane of one task per message gains
            // nothing from waiting to batch, so it has more messages in flight.
            let room = |single: bool| match single {
                true => self.task_publishes[1] < MAX_SINGLE_PUBLISHES,
                false => self.task_publishes[0] < MAX_TASK_PUBLISHES,
            };
            let Some(first) = self
                .pending_tasks
                .iter()
                .filter(|p| room(p.per_message == 1))
                .rev()
                .max_by_key(|p| p.task.priority)
            else {
                break;
            };
            let (queue, most) = (first.queue.clone(), first.per_message);
            let taken = self.take_pending(&queue, most);
            let single = usize::from(most == 1);
            if let Some(sizes) = &self.batch_sizes {
                sizes.observe(taken.len() as f64);
            }
            let tasks: Vec<&TaskMessage> = taken.iter().map(|p| &p.task).collect();
            let body = match serde_json::to_vec(&tasks) {
                Ok(b) => b,
                Err(e) => {
                    let e = std::sync::Arc::new(e);
                    for p in taken {
                        let _ = p.waiter.send(Err(PublishError::Encode(e.clone())));
                    }
                    continue;
                }
            };
            let fut = self.publish(queue, body, task_properties());
            self.task_publishes[single] += 1;
            self.track(fut)
                .map(move |res, act, ctx| {
                    act.task_publishes[single] -= 1;
                    match res {
                        Err(PublishError::Nacked) => act.nacked(taken, ctx),
                        res => {
                            for p in taken {
                                let _ = p.waiter.send(res.clone());
                            }
                        }
                    }
                    act.flush_tasks(ctx);
                })
                .spawn(ctx);
        }
    }

    /// Up to `most` pending tasks bound for `queue` and [`MAX_MESSAGE_BYTES`] of them (at
    /// least one), in the order they came; the others stay.
    fn take_pending(&mut self, queue: &str, most: usize) -> Vec<Pending> {
        let mut taken = Vec::new();
        let (mut bytes, mut full) = (0, false);
        let mut rest = Vec::with_capacity(self.pending_tasks.len());
        for pending in self.pending_tasks.drain(..) {
            if !full && pending.queue == queue {
                let size = crate::messages::encoded_size(&pending.task);
                // Tasks of one queue keep their order: past the first that does not fit,
                // the rest wait for the next message.
                full =
                    taken.len() == most || (!taken.is_empty() && bytes + size > MAX_MESSAGE_BYTES);
                if !full {
                    bytes += size;
                    taken.push(pending);
                    continue;
                }
            }
            rest.push(pending);
        }
        self.pending_tasks = rest;
        taken
    }

    fn publish(
        &self,
        queue: String,
        body: Vec<u8>,
        properties: BasicProperties,
    ) -> impl std::future::Future<Output = Result<(), PublishError>> + 'static {
        let channel = self.link.channel.clone();
        async move {
            let channel = channel.ok_or(PublishError::NotConnected)?;
            let confirm = channel
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    &body,
                    properties,
                )
                .await
                .map_err(PublishError::Amqp)?;
            match tokio::time::timeout(CONFIRM_TIMEOUT, confirm).await {
                Err(_) => Err(PublishError::Timeout(CONFIRM_TIMEOUT)),
                Ok(Err(e)) => Err(PublishError::Amqp(e)),
                Ok(Ok(Confirmation::Ack(None))) => Ok(()),
                Ok(Ok(Confirmation::Ack(Some(_)))) => Err(PublishError::Unroutable(queue)),
                Ok(Ok(Confirmation::Nack(_))) => Err(PublishError::Nacked),
                Ok(Ok(Confirmation::NotRequested)) => Err(PublishError::NotConfirmMode),
            }
        }
    }

    /// Run `fut`; a connection-level failure triggers a reconnect.
    fn track(
        &mut self,
        fut: impl std::future::Future<Output = Result<(), PublishError>> + 'static,
    ) -> ResponseActFuture<Self, Result<(), PublishError>> {
        Box::pin(fut.into_actor(self).map(|res, act, ctx| {
            if let Err(
                e @ (PublishError::Amqp(_)
                | PublishError::NotConfirmMode
                | PublishError::Timeout(_)),
            ) = &res
            {
                if act.link.lost() {
                    act.link.failed(e);
                    ctx.stop();
                }
            }
            res
        }))
    }
}

/// The properties of a task message: persistent, version 1.
fn task_properties() -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_type(TASKS_V1.into())
}

type Opened = (lapin::Connection, lapin::Channel, lapin::Channel);

impl Connected for Publisher {
    type Opened = Opened;

    fn link(&mut self) -> &mut Link {
        &mut self.link
    }

    fn connect(&mut self) -> (&'static str, Opening<Opened>) {
        let (broker, name) = (self.broker.clone(), self.name.clone());
        let queues: Vec<String> = self
            .lanes
            .all()
            .iter()
            .flat_map(|l| l.bands.iter().cloned())
            .collect();
        let topology = self.lanes.topology();
        let opening = async move {
            let conn = broker.connect(&name).await?;
            let channel = conn.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            for queue in &queues {
                topology.declare_lane(&channel, queue).await?;
            }
            let replies = conn.create_channel().await?;
            Ok((conn, channel, replies))
        };
        ("cannot reach RabbitMQ", Box::pin(opening))
    }

    fn up(&mut self, (conn, channel, replies): Opened, ctx: &mut Context<Self>) {
        self.retry_queues.clear();
        self.external_queues.clear();
        self.reply_channel = Some(replies);
        self.link.up(conn, channel);
        // Tasks that waited for the connection go now.
        self.flush_tasks(ctx);
    }
}

impl Actor for Publisher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        link::start(ctx, self);
        // Tasks that waited for a connection past their deadline are refused. (While
        // connected, queued tasks only wait for the message before them: no deadline.)
        ctx.run_interval(Duration::from_millis(50), |act, _| {
            if act.pending_tasks.is_empty() || act.link.healthy() {
                return;
            }
            let now = Instant::now();
            let (expired, waiting) = std::mem::take(&mut act.pending_tasks)
                .into_iter()
                .partition(|p: &Pending| p.until <= now);
            act.pending_tasks = waiting;
            for p in expired {
                let _ = p.waiter.send(Err(PublishError::NotConnected));
            }
        });
    }
}

impl actix::Supervised for Publisher {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.retry_queues.clear();
        self.external_queues.clear();
        self.reply_channel = None;
        // Messages in flight fail now (their waiters see the channel drop): nothing is
        // reported as published that was not confirmed. Tasks not sent yet wait for the new
        // connection, each up to its deadline.
        self.pending_replies.clear();
        self.task_publishes = [0; 2];
        self.replying = false;
        self.link.restarting();
    }
}

/// Whether the publisher has a live channel (for health reporting).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct IsConnected;

impl Handler<IsConnected> for Publisher {
    type Result = bool;

    fn handle(&mut self, _: IsConnected, _: &mut Context<Self>) -> bool {
        self.link.healthy()
    }
}
