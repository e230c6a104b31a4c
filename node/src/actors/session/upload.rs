//! A `PUT` in progress on a session: its body arrives in chunks between the header line and
//! the next request, and goes into the service's [`Intake`]. A body that stops coming for
//! `idle_timeout_secs` is aborted by the session's idle check.

use super::Session;
use crate::service::Intake;
use actix::prelude::*;
use bytes::Bytes;
use tokio::sync::OwnedSemaphorePermit;
use uuid::Uuid;

pub(super) struct Upload {
    pub permit: OwnedSemaphorePermit,
    pub id: Uuid,
    pub kind: String,
    pub wait: bool,
    pub intake: Intake,
}

impl Session {
    pub(super) fn start_upload(
        &mut self,
        kind: String,
        size: u64,
        wait: bool,
        permit: OwnedSemaphorePermit,
    ) {
        let id = Uuid::now_v7();
        let intake = self.svc.intake(id, &kind, size);
        self.upload = Some(Upload {
            permit,
            id,
            kind,
            wait,
            intake,
        });
    }

    pub(super) fn upload_chunk(&mut self, chunk: Bytes, ctx: &mut Context<Self>) {
        let Some(upload) = self.upload.as_mut() else {
            return;
        };
        if let Some(sending) = upload.intake.push(chunk) {
            // Waiting here holds back reading the socket: the client goes at the store's pace.
            sending.into_actor(self).wait(ctx);
        }
    }

    pub(super) fn finish_upload(&mut self, ctx: &mut Context<Self>) {
        let Some(upload) = self.upload.take() else {
            return;
        };
        let svc = self.svc.clone();
        self.serve_one(ctx, upload.permit, false, async move {
            let submitted = match upload.intake.finish().await {
                Ok(payload) => {
                    svc.submit(upload.id, upload.kind, payload, upload.wait)
                        .await
                }
                Err(e) => Err(e),
            };
            super::answer_line(submitted)
        });
    }
}
