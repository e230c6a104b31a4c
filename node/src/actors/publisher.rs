//! Publisher: puts tasks on the task queue and replies on reply queues, over one AMQP channel
//! in confirm mode. A publish succeeds only once the broker confirmed it; an unroutable
//! (`mandatory`) or nacked message, a lost connection or a confirm that does not come in time
//! is an error, never a false "accepted".
//!
//! The actor owns its connection: it connects in `started()`, checks the channel every second,
//! and on loss reconnects with backoff. Publishes while disconnected fail at once with
//! [`PublishError::NotConnected`].

use crate::amqp::{self, TaskMessage};
use actix::prelude::*;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use std::time::Duration;
use uuid::Uuid;

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
    Amqp(String),
}

pub struct Publisher {
    url: String,
    name: String,
    task_queue: String,
    connection: Option<Connection>,
    channel: Option<Channel>,
    attempt: u32,
    connecting: bool,
}

impl Publisher {
    pub fn new(url: String, node: &str, task_queue: String) -> Self {
        Publisher {
            url,
            name: format!("{node}-publisher"),
            task_queue,
            connection: None,
            channel: None,
            attempt: 0,
            connecting: false,
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        if self.connecting {
            return;
        }
        self.connecting = true;
        let (url, name, queue) = (self.url.clone(), self.name.clone(), self.task_queue.clone());
        async move {
            let conn = amqp::connect(&url, &name).await?;
            let channel = conn.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            amqp::declare_task_queue(&channel, &queue).await?;
            Ok::<_, lapin::Error>((conn, channel))
        }
        .into_actor(self)
        .map(|res, act, ctx| {
            act.connecting = false;
            match res {
                Ok((conn, channel)) => {
                    if act.attempt > 0 {
                        tracing::info!(actor = "publisher", "reconnected to RabbitMQ");
                    }
                    act.attempt = 0;
                    act.connection = Some(conn);
                    act.channel = Some(channel);
                }
                Err(e) => {
                    let delay = amqp::backoff(act.attempt);
                    act.attempt += 1;
                    tracing::warn!(actor = "publisher", error = %e, ?delay, "cannot reach RabbitMQ; retrying");
                    ctx.run_later(delay, |act, ctx| act.connect(ctx));
                }
            }
        })
        .spawn(ctx);
    }

    /// Drop a dead channel and start reconnecting.
    fn lost(&mut self, ctx: &mut Context<Self>) {
        if self.channel.take().is_some() {
            tracing::warn!(actor = "publisher", "lost RabbitMQ channel; reconnecting");
        }
        self.connection = None;
        self.connect(ctx);
    }

    fn publish(
        &self,
        queue: String,
        body: Vec<u8>,
        properties: BasicProperties,
    ) -> impl std::future::Future<Output = Result<(), PublishError>> + 'static {
        let channel = self.channel.clone();
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
                .map_err(|e| PublishError::Amqp(e.to_string()))?;
            match tokio::time::timeout(CONFIRM_TIMEOUT, confirm).await {
                Err(_) => Err(PublishError::Timeout(CONFIRM_TIMEOUT)),
                Ok(Err(e)) => Err(PublishError::Amqp(e.to_string())),
                Ok(Ok(Confirmation::Ack(None))) => Ok(()),
                Ok(Ok(Confirmation::Ack(Some(_)))) => Err(PublishError::Unroutable(queue)),
                Ok(Ok(Confirmation::Nack(_))) => Err(PublishError::Nacked),
                Ok(Ok(Confirmation::NotRequested)) => {
                    Err(PublishError::Amqp("channel is not in confirm mode".into()))
                }
            }
        }
    }

    /// Run `fut`; a connection-level failure triggers a reconnect.
    fn track(
        &mut self,
        fut: impl std::future::Future<Output = Result<(), PublishError>> + 'static,
    ) -> ResponseActFuture<Self, Result<(), PublishError>> {
        Box::pin(fut.into_actor(self).map(|res, act, ctx| {
            if let Err(PublishError::Amqp(_) | PublishError::Timeout(_)) = &res {
                let healthy = act
                    .channel
                    .as_ref()
                    .map(|c| c.status().connected())
                    .unwrap_or(false);
                if !healthy {
                    act.lost(ctx);
                }
            }
            res
        }))
    }
}

impl Actor for Publisher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        self.connect(ctx);
        ctx.run_interval(Duration::from_secs(1), |act, ctx| {
            let healthy = act
                .channel
                .as_ref()
                .map(|c| c.status().connected())
                .unwrap_or(false);
            if !healthy && !act.connecting {
                act.lost(ctx);
            }
        });
    }
}

/// Put a task on the task queue (persistent, mandatory). `reply_to`: the queue to answer on.
#[derive(Message)]
#[rtype(result = "Result<(), PublishError>")]
pub struct PublishTask {
    pub task: TaskMessage,
    pub reply_to: Option<String>,
}

/// Send a finished task's view to the node that accepted it.
#[derive(Message)]
#[rtype(result = "Result<(), PublishError>")]
pub struct PublishReply {
    pub queue: String,
    pub id: Uuid,
    pub body: Vec<u8>,
}

/// Whether the publisher has a live channel (for health reporting).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct IsConnected;

impl Handler<PublishTask> for Publisher {
    type Result = ResponseActFuture<Self, Result<(), PublishError>>;

    fn handle(&mut self, msg: PublishTask, _: &mut Context<Self>) -> Self::Result {
        let body = match serde_json::to_vec(&msg.task) {
            Ok(b) => b,
            Err(e) => return Box::pin(actix::fut::ready(Err(PublishError::Amqp(e.to_string())))),
        };
        let mut props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_correlation_id(msg.task.id.to_string().into());
        if let Some(reply_to) = msg.reply_to {
            props = props.with_reply_to(reply_to.into());
        }
        let fut = self.publish(self.task_queue.clone(), body, props);
        self.track(fut)
    }
}

impl Handler<PublishReply> for Publisher {
    type Result = ResponseActFuture<Self, Result<(), PublishError>>;

    fn handle(&mut self, msg: PublishReply, _: &mut Context<Self>) -> Self::Result {
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_correlation_id(msg.id.to_string().into());
        let fut = self.publish(msg.queue, msg.body, props);
        self.track(fut)
    }
}

impl Handler<IsConnected> for Publisher {
    type Result = bool;

    fn handle(&mut self, _: IsConnected, _: &mut Context<Self>) -> bool {
        self.channel
            .as_ref()
            .map(|c| c.status().connected())
            .unwrap_or(false)
    }
}
