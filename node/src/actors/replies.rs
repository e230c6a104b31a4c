//! ReplyRouter: consumes this node's reply queue (`<reply_queue_prefix>.<node name>`) and hands
//! each finished task to the session waiting for it, whichever node ran the task.
//!
//! Runs under a `Supervisor` (see [`crate::supervision`]); waiters survive its restarts.
//! The queue is exclusive to this node's connection, so two nodes configured with the same
//! name cannot steal each other's replies: the second one fails at startup. A reply that is
//! lost (the connection dropped while it was in flight) is covered by the node's
//! [`super::watcher::Watcher`], which reads the rows of the tasks waited on.

use crate::amqp;
use crate::amqp::link::{self, Connected, Link, Opening};
use crate::messages::{Reply, ReplyBatch};
use crate::supervision::RestartBudget;
use crate::work::hub::Forwarded;
use crate::work::lease::{self, LeaseReport};
use actix::prelude::*;
use bytes::Bytes;
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::oneshot;
use uuid::Uuid;

pub struct ReplyRouter {
    broker: amqp::Broker,
    node: String,
    queue: String,
    /// Survive restarts: a waiting session keeps waiting across a reconnect.
    waiters: HashMap<Uuid, oneshot::Sender<Bytes>>,
    /// Where reports on leases held here, from other nodes, go (the work hub).
    reports: Option<Recipient<Forwarded>>,
    link: Link,
    /// Opened at startup (to fail fast on a name clash), taken over in `started()`.
    initial: Option<(Connection, Channel, lapin::Consumer)>,
}

impl ReplyRouter {
    pub fn new(
        broker: amqp::Broker,
        node: &str,
        queue: String,
        budget: Arc<RestartBudget>,
    ) -> Self {
        ReplyRouter {
            broker,
            node: node.to_string(),
            queue,
            waiters: HashMap::new(),
            reports: None,
            link: Link::new(budget),
            initial: None,
        }
    }

    /// Start from a reply queue already opened with [`ReplyRouter::open`].
    pub fn with_open(mut self, opened: (Connection, Channel, lapin::Consumer)) -> Self {
        self.initial = Some(opened);
        self
    }

    /// Declare and consume the reply queue. Used by [`crate::startup`] to fail fast, too.
    pub async fn open(
        broker: &amqp::Broker,
        node: &str,
        queue: &str,
    ) -> Result<(Connection, Channel, lapin::Consumer), lapin::Error> {
        let conn = broker.connect(&format!("{node}-replies")).await?;
        let channel = conn.create_channel().await?;
        channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let consumer = channel
            .basic_consume(
                queue.into(),
                format!("{node}-replies").into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok((conn, channel, consumer))
    }

    /// Hand task `id`'s view to the session waiting for it, if one still waits.
    fn wake(&mut self, id: Uuid, json: Bytes) {
        if let Some(tx) = self.waiters.remove(&id) {
            let _ = tx.send(json);
        }
    }

    /// A reply message: a batch of task views, each for the session waiting for it, as the
    /// JSON the running node wrote (which is what the client gets).
    fn deliver(&mut self, delivery: Delivery) {
        let kind = delivery.properties.kind().as_ref().map(|k| k.as_str());
        if kind == Some(lease::REPORTS_V1) {
            return match (LeaseReport::decode(&delivery.data), &self.reports) {
                (Ok(report), Some(hub)) => hub.do_send(Forwarded(report)),
                (Ok(_), None) => tracing::debug!("a report on a lease came before the work hub"),
                (Err(e), _) => tracing::warn!(error = %e, "unreadable report on a lease dropped"),
            };
        }
        match ReplyBatch::decode(kind, &delivery.data) {
            Ok(batch) => {
                for reply in batch.0 {
                    self.wake(reply.id, reply.into_json());
                }
            }
            Err(e) => tracing::warn!(error = %e, "unreadable reply dropped"),
        }
    }
}

type Opened = (Connection, Channel, lapin::Consumer);

impl Connected for ReplyRouter {
    type Opened = Opened;

    fn link(&mut self) -> &mut Link {
        &mut self.link
    }

    fn connect(&mut self) -> (&'static str, Opening<Opened>) {
        let (broker, node, queue) = (self.broker.clone(), self.node.clone(), self.queue.clone());
        let opening = async move { Self::open(&broker, &node, &queue).await };
        ("cannot consume the reply queue", Box::pin(opening))
    }

    fn up(&mut self, (conn, channel, consumer): Opened, ctx: &mut Context<Self>) {
        self.link.up(conn, channel);
        ctx.add_stream(consumer);
    }
}

impl Actor for ReplyRouter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        match self.initial.take() {
            Some(opened) => {
                self.up(opened, ctx);
                link::watch(ctx);
            }
            None => link::start(ctx, self),
        }
    }
}

impl actix::Supervised for ReplyRouter {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.link.restarting();
    }
}

impl StreamHandler<Result<Delivery, lapin::Error>> for ReplyRouter {
    fn handle(&mut self, item: Result<Delivery, lapin::Error>, ctx: &mut Context<Self>) {
        match item {
            Ok(delivery) => self.deliver(delivery),
            Err(e) => {
                self.link.failed(format!("reply consumer failed: {e}"));
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        // The consumer stream ends with its connection: consume again on a new one (without
        // waiting for the channel check, which lapin may not trip).
        self.link.failed("the reply consumer's stream ended");
        ctx.stop();
    }
}

/// Wait for the reply to task `id`: its task view, as JSON, goes to the sender. Sent with
/// `do_send` before the task is published, so it is always handled before the reply.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Register(pub Uuid, pub oneshot::Sender<Bytes>);

/// Replies for tasks this node accepted and ran itself.
#[derive(Message)]
#[rtype(result = "()")]
pub struct LocalReplies(pub Vec<Reply>);

impl Handler<LocalReplies> for ReplyRouter {
    type Result = ();

    fn handle(&mut self, msg: LocalReplies, _: &mut Context<Self>) {
        for reply in msg.0 {
            self.wake(reply.id, reply.into_json());
        }
    }
}

/// Stop waiting for `id` (the session gave up or the publish failed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unregister(pub Uuid);

impl Handler<Register> for ReplyRouter {
    type Result = ();

    fn handle(&mut self, msg: Register, _: &mut Context<Self>) {
        self.waiters.insert(msg.0, msg.1);
    }
}

impl Handler<Unregister> for ReplyRouter {
    type Result = ();

    fn handle(&mut self, msg: Unregister, _: &mut Context<Self>) {
        self.waiters.remove(&msg.0);
    }
}

/// Reports on leases held here, forwarded by other nodes, go to `0` (the work hub).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReportsTo(pub Recipient<Forwarded>);

impl Handler<ReportsTo> for ReplyRouter {
    type Result = ();

    fn handle(&mut self, msg: ReportsTo, _: &mut Context<Self>) {
        self.reports = Some(msg.0);
    }
}
