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
        }
    }

    fn tag(&self) -> String {
        format!("{}-consumer-{}", self.ctx.handles.node, self.queue)
    }

    /// The consumer tag of band queue `queue`.
    fn tag_of(node_tag: &str, queue: &str) -> String {
        format!("{node_tag}-{queue}")
    }
}

/// A delivery and the band queue it came from.
type Tagged = (String, Result<Delivery, lapin::Error>);

type Opened = (
    lapin::Connection,
    lapin::Channel,
    Vec<(String, lapin::Consumer)>,
);

impl Connected for TaskConsumer {
    type Opened = Opened;

    fn link(&mut self) -> &mut Link {
        &mut self.link
    }

    fn connect(&mut self) -> (&'static str, Opening<Opened>) {
        let (broker, queue, prefetch, name, topology) = (
            self.broker.clone(),
            self.queue.clone(),
            self.prefetch,
            self.tag(),
            self.topology,
        );
        let opening = async move {
            let conn = broker.connect(&name).await?;
            let channel = conn.create_channel().await?;
            channel
                .basic_qos(prefetch, BasicQosOptions::default())
                .await?;
            let mut consumers = Vec::new();
            for band in crate::lanes::band_queues(&queue) {
                topology.declare_lane(&channel, &band).await?;
                let tag = TaskConsumer::tag_of(&name, &band);
                let consumer = channel
                    .basic_consume(
                        band.as_str().into(),
                        tag.as_str().into(),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
                consumers.push((band, consumer));
            }
            Ok((conn, channel, consumers))
        };
        ("cannot consume tasks", Box::pin(opening))
    }

    fn up(&mut self, (conn, channel, consumers): Opened, ctx: &mut Context<Self>) {
        use futures_util::StreamExt;
        self.link.up(conn, channel);
        for (band, consumer) in consumers {
            ctx.add_stream(consumer.map(move |d| (band.clone(), d)));
        }
    }

    fn watching(&self) -> bool {
        !self.stopping
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
        let tags: Vec<String> = crate::lanes::band_queues(&self.queue)
            .iter()
            .map(|band| TaskConsumer::tag_of(&self.tag(), band))
            .collect();
        Box::pin(
            async move {
                let Some(channel) = channel else { return };
                for tag in tags {
                    let cancel =
                        channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default());
                    if let Err(e) = cancel.await {
                        tracing::warn!(error = %e, "could not cancel the task consumer");
                    }
                }
            }
            .into_actor(self),
        )
    }
}
