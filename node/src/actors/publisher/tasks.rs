//! Publishing a task: queued for the next message of its queue (many per message on a lane of
//! quick kinds), its waiter told once the broker confirms it. An external kind's queues are
//! declared before its first task goes out.

use super::{Pending, PublishError, Publisher};
use crate::messages::TaskMessage;
use actix::prelude::*;
use std::time::Instant;

/// Put a task on the task queue (persistent, mandatory, confirmed); its `reply_to` says
/// where its result goes.
#[derive(Message)]
#[rtype(result = "Result<(), PublishError>")]
pub struct PublishTask {
    pub task: TaskMessage,
}

impl Handler<PublishTask> for Publisher {
    type Result = ResponseFuture<Result<(), PublishError>>;

    fn handle(&mut self, msg: PublishTask, ctx: &mut Context<Self>) -> Self::Result {
        if !self.link.healthy() && self.publish_wait.is_zero() {
            return Box::pin(async { Err(PublishError::NotConnected) });
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let until = Instant::now() + self.publish_wait;
        let lane = self.lanes.of_kind(&msg.task.kind);
        let queue = lane.band(msg.task.priority).to_string();
        let pending = Pending {
            task: msg.task,
            waiter: tx,
            until,
            queue: queue.clone(),
            per_message: lane.per_message,
        };
        match (&lane.external, self.link.channel.clone()) {
            // An external kind's queues are made the first time one of its tasks goes out;
            // nothing else is published meanwhile (once per kind and connection).
            (Some(_), Some(channel)) if !self.external_queues.contains(&queue) => {
                let topology = self.lanes.topology();
                let declare = async move { topology.declare_lane(&channel, &queue).await };
                ctx.wait(declare.into_actor(self).map(move |res, act, ctx| {
                    match res {
                        Ok(()) => {
                            act.external_queues.insert(pending.queue.clone());
                        }
                        Err(e) => tracing::warn!(queue = %pending.queue, error = %e, "cannot declare an external kind's queue"),
                    }
                    act.pending_tasks.push(pending);
                    act.flush_tasks(ctx);
                }));
            }
            _ => {
                self.pending_tasks.push(pending);
                self.flush_tasks(ctx);
            }
        }
        Box::pin(async move { rx.await.unwrap_or_else(|_| Err(PublishError::Restarted)) })
    }
}
