//! TaskConsumer: consumes one lane's queues, one per priority band ([`crate::lanes`]), on one
//! channel (manual ack, the lane's `prefetch` deliveries at a time from each band; a node runs
//! one per lane) and hands each delivery to [`crate::delivery::process`], which runs it and
//! acks it. This actor is the AMQP side only: connecting, consuming, reconnecting, and
//! stopping on shutdown.

use crate::amqp;
use crate::amqp::link::{self, Connected, Link, Opening};
use crate::delivery::{self, DeliveryCtx};
use crate::supervision::RestartBudget;
use actix::prelude::*;
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use std::sync::Arc;

pub struct TaskConsumer {
    broker: amqp::Broker,
    /// The lane's queue (its lowest band).
    queue: String,
    topology: amqp::Topology,
    prefetch: u16,
    ctx: DeliveryCtx,
    link: Link,
    /// Set by [`StopConsuming`]: no new deliveries, no reconnecting.
    stopping: bool,
    /// The tags of the band consumers now.
    active: Vec<String>,
    /// Consumers made so far (a new prefetch makes new ones, with new tags).
    generation: u32,
    /// Delivery streams of cancelled consumers still to end (their end is expected).
    ending: usize,
}

impl TaskConsumer {
    pub fn new(
        broker: amqp::Broker,
        queue: String,
        topology: amqp::Topology,
        prefetch: u16,
        ctx: DeliveryCtx,
        budget: Arc<RestartBudget>,
    ) -> Self {
        TaskConsumer {
            broker,
            queue,
            topology,
            prefetch,
            ctx,
            link: Link::new(budget),
            stopping: false,
            active: Vec::new(),
            generation: 0,
            ending: 0,
        }
    }

    fn tag(&self) -> String {
        format!("{}-consumer-{}", self.ctx.handles.node, self.queue)
    }

    /// The consumer tag of band queue `queue`.
    fn tag_of(node_tag: &str, queue: &str, generation: u32) -> String {
        format!("{node_tag}-{queue}-{generation}")
    }
}

/// Consume every band of `queue` on `channel`, `prefetch` deliveries at a time each.
async fn consume(
    channel: &lapin::Channel,
    queue: &str,
    prefetch: u16,
    tag: &str,
    generation: u32,
) -> Result<Vec<(String, String, lapin::Consumer)>, lapin::Error> {
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let mut consumers = Vec::new();
    for band in crate::lanes::band_queues(queue) {
        let tag = TaskConsumer::tag_of(tag, &band, generation);
        let consumer = channel
            .basic_consume(
                band.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        consumers.push((band, tag, consumer));
    }
    Ok(consumers)
}

/// A delivery and the band queue it came from.
type Tagged = (String, Result<Delivery, lapin::Error>);

type Opened = (
    lapin::Connection,
    lapin::Channel,
    Vec<(String, String, lapin::Consumer)>,
);

impl Connected for TaskConsumer {
    type Opened = Opened;

    fn link(&mut self) -> &mut Link {
        &mut self.link
    }

    fn connect(&mut self) -> (&'static str, Opening<Opened>) {
        self.generation += 1;
        let (broker, queue, prefetch, name, topology, generation) = (
            self.broker.clone(),
            self.queue.clone(),
            self.prefetch,
            self.tag(),
            self.topology,
            self.generation,
        );
        let opening = async move {
            let conn = broker.connect(&name).await?;
            let channel = conn.create_channel().await?;
            for band in crate::lanes::band_queues(&queue) {
                topology.declare_lane(&channel, &band).await?;
            }
            // A prefetch of 0: nothing to take yet (an external kind with no worker here).
            let consumers = match prefetch {
                0 => Vec::new(),
                _ => consume(&channel, &queue, prefetch, &name, generation).await?,
            };
            Ok((conn, channel, consumers))
        };
        ("cannot consume tasks", Box::pin(opening))
    }

    fn up(&mut self, (conn, channel, consumers): Opened, ctx: &mut Context<Self>) {
        self.link.up(conn, channel);
        self.ending = 0;
        self.take(consumers, ctx);
    }

    fn watching(&self) -> bool {
        !self.stopping
    }
}

impl TaskConsumer {
    fn take(&mut self, consumers: Vec<(String, String, lapin::Consumer)>, ctx: &mut Context<Self>) {
        use futures_util::StreamExt;
        self.active.clear();
        for (band, tag, consumer) in consumers {
            self.active.push(tag);
            ctx.add_stream(consumer.map(move |d| (band.clone(), d)));
        }
    }
}

impl Actor for TaskConsumer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if !self.stopping {
            link::start(ctx, self);
        }
    }
}

impl actix::Supervised for TaskConsumer {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.link.restarting();
    }
}

impl StreamHandler<Tagged> for TaskConsumer {
    fn handle(&mut self, (band, item): Tagged, ctx: &mut Context<Self>) {
        match item {
            Ok(d) => {
                let ctx = DeliveryCtx {
                    received: std::time::Instant::now(),
                    queue: band,
                    ..self.ctx.clone()
                };
                actix::spawn(delivery::process(d, ctx));
            }
            Err(e) if !self.stopping => {
                self.link.failed(format!("task consumer failed: {e}"));
                ctx.stop();
            }
            Err(_) => {}
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        // A consumer cancelled for a new prefetch ends as expected.
        if self.ending > 0 {
            self.ending -= 1;
            return;
        }
        // The stream ends after StopConsuming, or with its connection: then consume again on
        // a new one (without waiting for the channel check, which lapin may not trip).
        if !self.stopping {
            self.link
                .failed("the task consumer's delivery stream ended");
            ctx.stop();
        }
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
        let tags = std::mem::take(&mut self.active);
        Box::pin(cancel(channel, tags).into_actor(self))
    }
}

async fn cancel(channel: Option<lapin::Channel>, tags: Vec<String>) {
    let Some(channel) = channel else { return };
    for tag in tags {
        let cancel = channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default());
        if let Err(e) = cancel.await {
            tracing::warn!(error = %e, "could not cancel the task consumer");
        }
    }
}

/// Take up to this many deliveries at once from now on (an external kind's consumer, as
/// workers come and go; 0: none). The consumers are made again with the new prefetch;
/// deliveries in hand stay.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetPrefetch(pub u16);

impl Handler<SetPrefetch> for TaskConsumer {
    type Result = ();

    fn handle(&mut self, SetPrefetch(prefetch): SetPrefetch, ctx: &mut Context<Self>) {
        self.prefetch = prefetch;
        if self.stopping {
            return;
        }
        // Not connected: the next connection uses the new prefetch.
        let Some(channel) = self.link.channel.clone() else {
            return;
        };
        let tags = std::mem::take(&mut self.active);
        self.ending += tags.len();
        self.generation += 1;
        let (queue, name, generation) = (self.queue.clone(), self.tag(), self.generation);
        let again = async move {
            cancel(Some(channel.clone()), tags).await;
            match prefetch {
                0 => Ok(Vec::new()),
                _ => consume(&channel, &queue, prefetch, &name, generation).await,
            }
        };
        ctx.wait(again.into_actor(self).map(|res, act, ctx| match res {
            Ok(consumers) => act.take(consumers, ctx),
            Err(e) => {
                act.link.failed(format!("cannot consume again: {e}"));
                ctx.stop();
            }
        }));
    }
}
