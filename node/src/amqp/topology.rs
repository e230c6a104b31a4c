//! The durable queues and how they are declared: each lane's task queue, its dead-letter
//! queue (emptied by the nodes' janitors), its queue of buried messages (kept for an
//! operator), and its delay queues (a retry waits in one, then flows back to the lane's queue).
//!
//! Quorum queues by default (`amqp.queue_type`): replicated when RabbitMQ runs as a cluster,
//! and each task queue has a delivery limit (`amqp.delivery_limit`), a second guard against a
//! message that loops (the first is the attempt count in its task's row): past it the broker
//! moves the message to the lane's dead-letter queue. Dead-lettering from a quorum queue is
//! `at-least-once`, so a message is never lost on its way from a delay queue back to its lane.
//! Every declaration of a queue must carry the same arguments, so all of them are made here.

use crate::retry;
use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::Channel;
use serde::Deserialize;

/// The kind of the durable queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    Quorum,
    Classic,
}

/// How the durable queues are declared.
#[derive(Debug, Clone, Copy)]
pub struct Topology {
    pub queue_type: QueueType,
    /// Deliveries of one message (a quorum task queue's `x-delivery-limit`).
    pub delivery_limit: u32,
}

impl Topology {
    /// Declare lane queue `queue`, its dead-letter queue and where its buried messages go.
    pub async fn declare_lane(&self, channel: &Channel, queue: &str) -> Result<(), lapin::Error> {
        let dead = retry::dead_queue(queue);
        declare(channel, &dead, self.base()).await?;
        declare(channel, &retry::buried_queue(queue), self.base()).await?;
        let mut args = self.base();
        if self.queue_type == QueueType::Quorum {
            args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongLongInt(self.delivery_limit.into()),
            );
            dead_letter_to(&mut args, &dead);
        }
        declare(channel, queue, args).await
    }

    /// Declare the delay queue of `queue` for `delay_ms`: messages expire after the delay and
    /// flow back to `queue`. One queue per delay, so no message waits behind a longer one; the
    /// delay is in the name, so changing `tasks.retry_base_ms` makes new queues.
    pub async fn declare_retry(
        &self,
        channel: &Channel,
        queue: &str,
        delay_ms: u64,
    ) -> Result<String, lapin::Error> {
        let name = retry::retry_queue(queue, delay_ms);
        let mut args = self.base();
        args.insert(
            "x-message-ttl".into(),
            AMQPValue::LongLongInt(delay_ms as i64),
        );
        dead_letter_to(&mut args, queue);
        declare(channel, &name, args).await?;
        Ok(name)
    }

    fn base(&self) -> FieldTable {
        let mut args = FieldTable::default();
        if self.queue_type == QueueType::Quorum {
            args.insert(
                "x-queue-type".into(),
                AMQPValue::LongString("quorum".into()),
            );
        }
        args
    }
}

/// Dead-letter expired or over-delivered messages to `queue` (at least once on quorum queues).
fn dead_letter_to(args: &mut FieldTable, queue: &str) {
    let quorum = args.inner().contains_key("x-queue-type");
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("".into()),
    );
    args.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(queue.into()),
    );
    if quorum {
        args.insert(
            "x-dead-letter-strategy".into(),
            AMQPValue::LongString("at-least-once".into()),
        );
        args.insert(
            "x-overflow".into(),
            AMQPValue::LongString("reject-publish".into()),
        );
    }
}

async fn declare(channel: &Channel, name: &str, args: FieldTable) -> Result<(), lapin::Error> {
    channel
        .queue_declare(
            name.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await
        .map(|_| ())
}
