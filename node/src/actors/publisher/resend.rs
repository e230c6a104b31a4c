//! Messages the publisher sends again: a task to a delay queue (a retry) or to the queue of
//! buried messages (a burial), and an unreadable message parked there as it came.

use super::{task_properties, PublishError, Publisher};
use crate::messages::TaskMessage;
use crate::retry;
use actix::prelude::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;

/// Where [`Republish`] sends a task message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Back on the task queue after `delay_ms`, through a delay queue.
    Retry { delay_ms: u64 },
    /// The lane's queue of buried messages, kept for an operator.
    Dead,
}

/// Publish one task's message again (persistent, confirmed); it keeps its reply routing.
#[derive(Message)]
#[rtype(result = "Result<(), PublishError>")]
pub struct Republish {
    pub target: Target,
    pub task: TaskMessage,
}

/// Keep a task message no node can read (unreadable, or of an unknown version) in the
/// queue of buried messages of the lane `queue` it came from, as it came, with why in the
/// `x-tasknode-unreadable` header (persistent, confirmed).
#[derive(Message)]
#[rtype(result = "Result<(), PublishError>")]
pub struct Park {
    pub queue: String,
    pub body: Vec<u8>,
    pub reason: String,
}

impl Handler<Park> for Publisher {
    type Result = ResponseActFuture<Self, Result<(), PublishError>>;

    fn handle(&mut self, msg: Park, _: &mut Context<Self>) -> Self::Result {
        let mut headers = FieldTable::default();
        let reason = AMQPValue::LongString(msg.reason.as_str().into());
        headers.insert("x-tasknode-unreadable".into(), reason);
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_headers(headers);
        let queue = retry::buried_queue(&msg.queue);
        let fut = self.publish(queue, msg.body, props);
        self.track(fut)
    }
}

impl Handler<Republish> for Publisher {
    type Result = ResponseActFuture<Self, Result<(), PublishError>>;

    fn handle(&mut self, msg: Republish, _: &mut Context<Self>) -> Self::Result {
        let props = task_properties().with_correlation_id(msg.task.id.to_string().into());
        let body = match serde_json::to_vec(&[&msg.task]) {
            Ok(body) => body,
            Err(e) => {
                let e = PublishError::Encode(std::sync::Arc::new(e));
                return Box::pin(fut::ready(Err(e)));
            }
        };
        let task_queue = self.lanes.queue_for(&msg.task.kind, msg.task.priority);
        let channel = self.link.channel.clone();
        let topology = self.lanes.topology();
        let (queue, declare) = match msg.target {
            Target::Dead => (retry::buried_queue(&task_queue), None),
            Target::Retry { delay_ms } => {
                let queue = retry::retry_queue(&task_queue, delay_ms);
                let declare = (!self.retry_queues.contains(&queue)).then_some(delay_ms);
                (queue, declare)
            }
        };
        let declared = declare.map(|_| queue.clone());
        let publish = self.publish(queue, body, props);
        let fut = async move {
            if let Some(delay_ms) = declare {
                let channel = channel.ok_or(PublishError::NotConnected)?;
                topology
                    .declare_retry(&channel, &task_queue, delay_ms)
                    .await
                    .map_err(PublishError::Amqp)?;
            }
            publish.await
        };
        Box::pin(self.track(fut).map(move |res, act, _| {
            if let (Ok(()), Some(queue)) = (&res, declared) {
                act.retry_queues.insert(queue);
            }
            res
        }))
    }
}
