//! A `PUT` in progress on a session: its body arrives in chunks between the header line and
//! the next request, and goes into the service's [`Intake`]. A body that stops coming for
//! `idle_timeout_secs` is aborted by the session's idle check.

use super::Session;
use crate::service::{Intake, Services};
use actix::prelude::*;
use bytes::Bytes;
use tokio::sync::OwnedSemaphorePermit;
use uuid::Uuid;

pub(super) struct Upload {
    pub permit: OwnedSemaphorePermit,
    pub who: Option<std::rc::Rc<crate::auth::Identity>>,
    pub id: Uuid,
    pub kind: String,
    pub wait: bool,
    pub intake: Intake,
    /// A worker's result (`DONE <lease> PUT`), not a submission.
    pub result_for: Option<String>,
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
        // A client that may not submit: its body is read and dropped, then refused.
        let who = self
            .identity_now()
            .and_then(|who| self.svc.admit(&who, size).map(|()| who));
        let (who, intake) = match who {
            Ok(who) => (Some(who), self.svc.intake(id, &kind, size)),
            Err(e) => (None, Intake::Refused(e)),
        };
        self.upload = Some(Upload {
            permit,
            who,
            id,
            kind,
            wait,
            intake,
            result_for: None,
        });
    }

    /// `DONE <lease> PUT <size>`: the body is the task's result.
    pub(super) fn start_result_upload(
        &mut self,
        lease: String,
        size: u64,
        permit: OwnedSemaphorePermit,
    ) {
        let who = self
            .identity_now()
            .and_then(|who| Services::may_work(&who).map(|()| who));
        let (who, intake) = match who {
            Ok(who) => (Some(who), self.svc.result_intake(&lease, Some(size))),
            Err(e) => (None, Intake::Refused(e)),
        };
        self.upload = Some(Upload {
            permit,
            who,
            id: Uuid::nil(),
            kind: String::new(),
            wait: false,
            intake,
            result_for: Some(lease),
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
        if let Some(lease) = upload.result_for {
            let fut = super::work::finish_result(svc, lease, upload.intake, upload.who);
            return self.serve_one(ctx, upload.permit, false, fut);
        }
        self.serve_one(ctx, upload.permit, false, async move {
            let submitted = match (upload.intake.finish().await, &upload.who) {
                (Ok(payload), Some(who)) => {
                    svc.submit(
                        upload.id,
                        upload.kind,
                        payload,
                        upload.wait.then_some(svc.wait_timeout),
                        &Default::default(),
                        who,
                    )
                    .await
                }
                (Err(e), _) => Err(e),
                // (No identity means the intake refused already.)
                (Ok(_), None) => Err(crate::service::ServiceError::Unauthenticated(
                    "say AUTH <token> first".into(),
                )),
            };
            super::requests::answer_line(submitted)
        });
    }
}
