//! A waiting submission's registration with the reply router (withdrawn when dropped).

use crate::actors::replies::{Register, ReplyRouter, Unregister};
use actix::prelude::*;
use bytes::Bytes;
use uuid::Uuid;

/// A waiting submission's registration with the reply router, withdrawn when dropped
/// (also when the client goes away and the waiting future is dropped), unless its reply
/// came.
pub(super) struct Waiting<'a> {
    replies: &'a Addr<ReplyRouter>,
    pub(super) id: Uuid,
    pub(super) armed: bool,
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
