//! Nacked task messages: the broker refused them (a quorum queue without a leader for a
//! moment, while its broker died and the others elect a new one), so they surely reached no
//! queue and their tasks can be sent again at once, on a new channel.

use super::{Pending, PublishError, Publisher, CONFIRM_TIMEOUT};
use actix::prelude::*;
use lapin::options::ConfirmSelectOptions;
use std::time::{Duration, Instant};

/// How long the tasks of a nacked message wait before they are sent again.
const NACK_PAUSE: Duration = Duration::from_millis(200);

impl Publisher {
    /// A message the broker refused (a quorum queue without a leader for a moment, while its
    /// broker died and the others elect a new one): it surely reached no queue, so its tasks
    /// are sent again after [`NACK_PAUSE`], each until its `publish_wait` deadline; past it
    /// a task is refused (`not_accepted`: it will not run).
    pub(super) fn nacked(&mut self, taken: Vec<Pending>, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let (again, refused): (Vec<Pending>, Vec<Pending>) =
            taken.into_iter().partition(|p| p.until > now);
        for p in refused {
            let _ = p.waiter.send(Err(PublishError::Nacked));
        }
        self.renew_channel(ctx);
        if again.is_empty() {
            return;
        }
        tracing::debug!(
            tasks = again.len(),
            "message nacked; sending its tasks again"
        );
        ctx.run_later(NACK_PAUSE, move |act, ctx| {
            // Ahead of the tasks that came after them.
            act.pending_tasks.splice(0..0, again);
            act.flush_tasks(ctx);
        });
    }

    /// Publish on a new channel from now on (at most once per [`NACK_PAUSE`]). RabbitMQ 3.10
    /// keeps nacking every publish of a channel whose first publish to a quorum queue came
    /// while the queue's leader was dead, even after a new leader is elected; a new channel
    /// finds the new leader. The old channel is closed once its confirms had time to come.
    fn renew_channel(&mut self, ctx: &mut Context<Self>) {
        let Some(connection) = self.link.connection.clone() else {
            return;
        };
        if self.renewed.is_some_and(|at| at.elapsed() < NACK_PAUSE) {
            return;
        }
        self.renewed = Some(Instant::now());
        async move {
            let channel = connection.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            Ok::<_, lapin::Error>(channel)
        }
        .into_actor(self)
        .map(|res, act, _| match res {
            Ok(channel) => {
                act.retry_queues.clear();
                if let Some(old) = act.link.channel.replace(channel) {
                    actix::spawn(async move {
                        tokio::time::sleep(CONFIRM_TIMEOUT).await;
                        let _ = old.close(200, "replaced after a nack".into()).await;
                    });
                }
                tracing::info!("publishing on a new channel after a nack");
            }
            // The connection is going: the actor is restarted with a new one anyway.
            Err(e) => tracing::debug!(error = %e, "cannot open a new channel"),
        })
        .spawn(ctx);
    }
}
