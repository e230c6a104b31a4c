//! A waiting submission: publish the task with confirm and wait for its reply (or its final
//! row, or the end of the wait); an unconfirmed publish goes to the outbox instead of a false
//! `not_accepted`.

use super::{Answer, ServiceError, Services};
use crate::actors::publisher::{PublishError, PublishTask};
use crate::actors::replies::{Register, ReplyRouter, Unregister};
use crate::actors::watcher::Watch;
use crate::actors::Settle;
use crate::db::store::Accept;
use crate::messages::TaskMessage;
use crate::publishing::{lease_end, UNSURE_WAIT};
use actix::prelude::*;
use bytes::Bytes;
use std::time::Duration;
use uuid::Uuid;

impl Services {
    async fn publish(&self, task: TaskMessage) -> Result<(), PublishError> {
        self.handles
            .publisher
            .send(PublishTask { task })
            .await
            .settle()
    }

    /// Publish `task` and wait for its reply, or for its final row (read by the node's
    /// [`crate::actors::watcher::Watcher`], which covers a lost reply), up to the wait timeout. A reply can come before
    /// the broker's confirm: it carries a result already written, so it is answered at once.
    pub(super) async fn wait_for(
        &self,
        task: TaskMessage,
        wait: Duration,
    ) -> Result<Answer, ServiceError> {
        let id = task.id;
        let (mut waiting, mut rx) = Waiting::register(&self.handles.replies, id);
        let (row_tx, mut row_rx) = tokio::sync::oneshot::channel();
        self.handles.watcher.do_send(Watch(id, row_tx));
        let deadline = tokio::time::sleep(wait);
        tokio::pin!(deadline);
        let publish = self.publish(task.clone());
        tokio::pin!(publish);
        let mut confirmed = false;
        let mut reply_open = true;
        loop {
            tokio::select! {
                reply = &mut rx, if reply_open => match reply {
                    Ok(json) => {
                        waiting.armed = false;
                        return Ok(Answer::Json(json));
                    }
                    Err(_) => reply_open = false,
                },
                Ok(row) = &mut row_rx => return Ok(Answer::View(Box::new(self.view(&row)))),
                published = &mut publish, if !confirmed => match published {
                    Ok(()) => confirmed = true,
                    Err(e) if e.is_definite() => {
                        tracing::warn!(task = %id, error = %e, "task not accepted");
                        return Err(ServiceError::NotAccepted(e));
                    }
                    // The broker may have it: the client cannot be told it will not run. The
                    // task goes in the outbox (published again later unless it ran by then)
                    // and the wait goes on.
                    Err(publish) => {
                        tracing::warn!(task = %id, error = %publish, "publish unconfirmed; the task goes to the outbox");
                        let accept = Accept {
                            task: task.clone(),
                            owner: self.handles.node.clone(),
                            due: lease_end(UNSURE_WAIT),
                        };
                        if let Err(db) = self.handles.store.accept(accept).await {
                            return Err(ServiceError::Unsure { id, publish, db });
                        }
                        confirmed = true;
                    }
                },
                _ = &mut deadline, if confirmed => {
                    // The client now hears the id: make sure the row exists to ask about.
                    self.handles.store.insert(task).await?;
                    return Err(ServiceError::Timeout { id, secs: wait.as_secs() });
                }
            }
        }
    }
}

impl Services {
    /// Wait up to `wait` for task `id` (accepted already) to end: its reply, if this wait was
    /// registered for it, or its final row (the watcher). `timeout` if it goes on.
    pub(super) async fn wait_final(
        &self,
        id: Uuid,
        wait: Duration,
        registered: Option<(Waiting<'_>, tokio::sync::oneshot::Receiver<Bytes>)>,
    ) -> Result<Answer, ServiceError> {
        let (row_tx, row_rx) = tokio::sync::oneshot::channel();
        self.handles.watcher.do_send(Watch(id, row_tx));
        let (mut waiting, reply) = match registered {
            Some((waiting, rx)) => (Some(waiting), Some(rx)),
            None => (None, None),
        };
        let reply = async {
            match reply {
                Some(rx) => rx.await.ok(),
                None => None,
            }
        };
        let reply = async {
            match reply.await {
                Some(json) => json,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            json = reply => {
                if let Some(w) = waiting.as_mut() {
                    w.armed = false;
                }
                Ok(Answer::Json(json))
            }
            Ok(row) = row_rx => Ok(Answer::View(Box::new(self.view(&row)))),
            _ = tokio::time::sleep(wait) => Err(ServiceError::Timeout { id, secs: wait.as_secs() }),
        }
    }
}

/// A waiting submission's registration with the reply router, withdrawn when dropped
/// (also when the client goes away and the waiting future is dropped), unless its reply
/// came.
pub(super) struct Waiting<'a> {
    replies: &'a Addr<ReplyRouter>,
    pub(super) id: Uuid,
    armed: bool,
}

impl<'a> Waiting<'a> {
    /// Register before publishing: sent with `do_send`, so the router has it before any reply.
    pub(super) fn register(
        replies: &'a Addr<ReplyRouter>,
        id: Uuid,
    ) -> (Self, tokio::sync::oneshot::Receiver<Bytes>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        replies.do_send(Register(id, tx));
        let waiting = Waiting {
            replies,
            id,
            armed: true,
        };
        (waiting, rx)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.replies.do_send(Unregister(self.id));
        }
    }
}
