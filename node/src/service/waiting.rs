//! A waiting submission: its one wait (for its acceptance, then its reply or its final row,
//! or the end of the wait) and its registration with the reply router.

use super::accept::Acceptance;
use super::{Answer, ServiceError, Services};
use crate::actors::replies::{Register, ReplyRouter, Unregister};
use crate::actors::watcher::Watch;
use actix::prelude::*;
use bytes::Bytes;
use std::time::Duration;
use tokio::sync::oneshot;
use uuid::Uuid;

impl Services {
    /// The one wait of a submission: for task `id` to be accepted (`accepting`), then for its
    /// reply or its final row (read by the node's [`crate::actors::watcher::Watcher`], which
    /// covers a lost reply), up to `wait`; `timeout` if it goes on. A reply can come before
    /// the broker's confirm: it carries a result already written, so it is answered at once.
    pub(super) async fn wait(
        &self,
        id: Uuid,
        kind: &str,
        accepting: impl std::future::Future<Output = Result<Acceptance, ServiceError>>,
        (mut waiting, mut reply): (Waiting<'_>, oneshot::Receiver<Bytes>),
        wait: Duration,
    ) -> Result<Answer, ServiceError> {
        let mut id = id;
        let (row_tx, mut row) = oneshot::channel();
        self.handles.watcher.do_send(Watch(id, row_tx));
        let deadline = tokio::time::sleep(wait);
        tokio::pin!(deadline, accepting);
        let mut accepted: Option<Acceptance> = None;
        let (mut reply_open, mut row_open) = (true, true);
        loop {
            tokio::select! {
                answer = &mut reply, if reply_open => match answer {
                    Ok(json) => {
                        waiting.armed = false;
                        if accepted.is_none() {
                            self.handles.metrics.accepted(kind);
                        }
                        return Ok(Answer::Json(json));
                    }
                    Err(_) => reply_open = false,
                },
                answer = &mut row, if row_open => match answer {
                    Ok(row) => {
                        if accepted.is_none() {
                            self.handles.metrics.accepted(kind);
                        }
                        return Ok(Answer::View(Box::new(self.view(&row))));
                    }
                    Err(_) => row_open = false,
                },
                done = &mut accepting, if accepted.is_none() => {
                    let done = done?;
                    self.counted(kind, &done);
                    if done.id != id {
                        // A key named an earlier task: the answer is that task's.
                        id = done.id;
                        reply_open = false;
                        let (row_tx, row_rx) = oneshot::channel();
                        self.handles.watcher.do_send(Watch(id, row_tx));
                        (row, row_open) = (row_rx, true);
                    }
                    accepted = Some(done);
                }
                _ = &mut deadline, if accepted.is_some() => {
                    // The client now hears the id: make sure the row exists to ask about.
                    if let Some(task) = accepted.and_then(|a| a.unwritten) {
                        self.handles.store.insert(task).await?;
                    }
                    return Err(ServiceError::Timeout { id, secs: wait.as_secs() });
                }
            }
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
