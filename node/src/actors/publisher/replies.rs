//! Replies on the publisher's second channel (not in confirm mode: a lost reply costs only
//! the wait until the node's watcher reads the task row): the replies bound for one node share a
//! message, of at most [`MAX_REPLY_MESSAGE`] bytes.

use super::{PublishError, Publisher};
use crate::messages::{Reply, ReplyBatch, MAX_REPLY_MESSAGE, REPLIES_V1};
use actix::prelude::*;
use lapin::options::BasicPublishOptions;
use lapin::BasicProperties;

impl Publisher {
    /// Send queued replies, one message per reply queue.
    pub(super) fn flush_replies(&mut self, ctx: &mut Context<Self>) {
        if self.replying || self.pending_replies.is_empty() {
            return;
        }
        self.replying = true;
        let mut by_queue: std::collections::BTreeMap<String, Vec<Reply>> = Default::default();
        for (queue, reply) in self.pending_replies.drain(..) {
            by_queue.entry(queue).or_default().push(reply);
        }
        let channel = self.reply_channel.clone();
        async move {
            let messages = by_queue.into_iter().flat_map(|(queue, replies)| {
                let (batches, left_out) = ReplyBatch::split(replies, MAX_REPLY_MESSAGE);
                if left_out > 0 {
                    // Their waiting sessions find the results in the rows.
                    tracing::debug!(%queue, left_out, "replies too large for a message");
                }
                batches.into_iter().map(move |b| (queue.clone(), b))
            });
            for (queue, batch) in messages {
                let Ok(body) = serde_json::to_vec(&batch) else {
                    continue;
                };
                let sent = match &channel {
                    None => Err(PublishError::NotConnected),
                    Some(ch) => ch
                        .basic_publish(
                            "".into(),
                            queue.as_str().into(),
                            BasicPublishOptions::default(),
                            &body,
                            BasicProperties::default()
                                .with_content_type("application/json".into())
                                .with_type(REPLIES_V1.into()),
                        )
                        .await
                        .map(|_| ())
                        .map_err(PublishError::Amqp),
                };
                if let Err(e) = sent {
                    // The watcher reads the rows of the tasks waited on, so they still get answers.
                    tracing::warn!(%queue, error = %e, "could not send replies");
                }
            }
        }
        .into_actor(self)
        .map(|_, act, ctx| {
            act.replying = false;
            act.flush_replies(ctx);
        })
        .spawn(ctx);
    }
}

/// Finished tasks' replies (with the reply queue of the node that accepted each); those for
/// one node share a message. Unanswered: a reply that is lost costs its waiting session one
/// poll of the task row.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PublishReplies(pub Vec<(String, Reply)>);

impl Handler<PublishReplies> for Publisher {
    type Result = ();

    fn handle(&mut self, msg: PublishReplies, ctx: &mut Context<Self>) {
        self.pending_replies.extend(msg.0);
        self.flush_replies(ctx);
    }
}

/// A worker's report on a lease another node holds, sent to that node's reply queue `queue`
/// (see [`crate::work::lease`]). Unconfirmed: a report that is lost is answered by nobody,
/// and the asking node tells its worker to try again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ForwardReport {
    pub queue: String,
    pub report: crate::work::lease::LeaseReport,
}

impl Handler<ForwardReport> for Publisher {
    type Result = ();

    fn handle(&mut self, msg: ForwardReport, ctx: &mut Context<Self>) {
        let Some(channel) = self.reply_channel.clone() else {
            tracing::debug!(queue = %msg.queue, "not connected; a forwarded report is lost");
            return;
        };
        let body = match serde_json::to_vec(&msg.report) {
            Ok(body) => body,
            Err(e) => return tracing::warn!(error = %e, "cannot encode a forwarded report"),
        };
        let queue = msg.queue;
        ctx.spawn(
            async move {
                let props = BasicProperties::default()
                    .with_content_type("application/json".into())
                    .with_type(crate::work::lease::REPORTS_V1.into());
                let options = BasicPublishOptions::default();
                if let Err(e) = channel
                    .basic_publish("".into(), queue.as_str().into(), options, &body, props)
                    .await
                {
                    tracing::warn!(%queue, error = %e, "could not forward a report");
                }
            }
            .into_actor(self),
        );
    }
}
