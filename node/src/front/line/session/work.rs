//! A worker's requests on a session (see [`crate::work`]): `WORK` makes the connection a
//! worker (tasks and cancels are then pushed to it as lines of their own, between answers),
//! and `DONE`, `FAIL`, `PROGRESS`, `EXTEND` report on a lease.

use super::requests::line_or_error;
use super::writer::{Item, Pending, Slot};
use super::Session;
use crate::actors::worker_pool::TaskOutput;
use crate::messages::PayloadRef;
use crate::service::{Intake, ServiceError, Services};
use crate::work::hub::Said;
use actix::prelude::*;
use protocol::codec::Outbound;
use protocol::work::{WorkCommand, MAX_SLOTS};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

/// Lines pushed to a worker (tasks, cancels) not written yet, at most: two per slot (a task
/// and its cancel) and a little room. Past it the hub counts the worker as gone.
pub const PUSH_ROOM: usize = 2 * MAX_SLOTS as usize + 2;

/// The connection is a worker now (its number at the hub).
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Enlisted(pub u64);

impl Handler<Enlisted> for Session {
    type Result = ();

    fn handle(&mut self, Enlisted(worker): Enlisted, _: &mut Context<Self>) {
        self.worker = Some(worker);
    }
}

impl Session {
    pub(super) fn handle_work(
        &mut self,
        cmd: WorkCommand,
        permit: OwnedSemaphorePermit,
        ctx: &mut Context<Self>,
    ) {
        let svc = self.svc.clone();
        match cmd {
            WorkCommand::Work { kinds, slots } => self.enlist(ctx, permit, kinds, slots),
            WorkCommand::Quiet => {
                // A task pushed while this is read may still come just after the answer.
                if let Some(worker) = self.worker {
                    svc.quiet(worker);
                }
                let line = protocol::work::Quieted {
                    quiet: self.worker.is_some(),
                };
                self.answer(ctx, permit, &line, false)
            }
            WorkCommand::DonePut { lease, size } => self.start_result_upload(lease, size, permit),
            WorkCommand::Done { lease, result } => self.as_who(ctx, permit, |who| async move {
                let done = match svc.result_of(result) {
                    Ok(output) => svc.report(lease, Said::Done(output), None, &who).await,
                    Err(e) => Err(e),
                };
                line_or_error(done)
            }),
            WorkCommand::Fail {
                lease,
                last,
                message,
            } => self.as_who(ctx, permit, |who| async move {
                let said = Said::Fail { last, message };
                line_or_error(svc.report(lease, said, None, &who).await)
            }),
            WorkCommand::Progress {
                lease,
                percent,
                note,
            } => self.as_who(ctx, permit, |who| async move {
                let progress = Some((percent, note));
                line_or_error(svc.report(lease, Said::Progress, progress, &who).await)
            }),
            WorkCommand::Extend { lease, secs } => self.as_who(ctx, permit, |who| async move {
                let said = Said::Extend(Duration::from_secs(secs));
                line_or_error(svc.report(lease, said, None, &who).await)
            }),
        }
    }

    /// `WORK`: enlist at the hub; from then on the hub's pushes go out between answers.
    fn enlist(
        &mut self,
        ctx: &mut Context<Self>,
        permit: OwnedSemaphorePermit,
        kinds: Vec<String>,
        slots: u16,
    ) {
        if self.worker.is_some() {
            let e = ServiceError::Invalid(
                "this connection is a worker already; open another for other kinds".into(),
            );
            return self.answer(ctx, permit, &e.to_line(), false);
        }
        let (push, mut pushed) = mpsc::channel::<Outbound>(PUSH_ROOM);
        let (slots_tx, room) = (self.slots.clone(), Arc::new(Semaphore::new(PUSH_ROOM)));
        actix::spawn(async move {
            while let Some(line) = pushed.recv().await {
                let Ok(permit) = room.clone().acquire_owned().await else {
                    break;
                };
                let (tx, rx) = oneshot::channel();
                let _ = tx.send(Item::Out(line));
                let slot = Slot {
                    answer: Pending::One(rx),
                    permit: Some(permit),
                };
                if slots_tx.send(slot).await.is_err() {
                    break;
                }
            }
        });
        let (svc, session) = (self.svc.clone(), ctx.address());
        self.as_who(ctx, permit, |who| async move {
            match svc.enlist(kinds, slots, &who, push).await {
                Ok(enlisted) => {
                    if session.try_send(Enlisted(enlisted.worker)).is_err() {
                        // The connection closed meanwhile.
                        svc.leave(enlisted.worker);
                    }
                    Outbound::line(&enlisted.working)
                }
                Err(e) => Outbound::error(&e.to_line()),
            }
        });
    }
}

/// The end of a `DONE <lease> PUT` body: report the result; a lost lease's bytes are
/// removed from the bucket.
pub(super) async fn finish_result(
    svc: Rc<Services>,
    lease: String,
    intake: Intake,
    who: Option<Rc<crate::auth::Identity>>,
) -> Outbound {
    let reported = async {
        let payload = intake.finish().await?;
        let who =
            who.ok_or_else(|| ServiceError::Unauthenticated("say AUTH <token> first".into()))?;
        let (output, stored) = match payload {
            PayloadRef::Inline { data } => (TaskOutput::Inline(data), None),
            PayloadRef::Object { key, size } => (
                TaskOutput::Stored {
                    key: key.clone(),
                    size,
                },
                Some(key),
            ),
        };
        let done = svc.report(lease, Said::Done(output), None, &who).await;
        if let (Err(ServiceError::LeaseLost(_)), Some(key)) = (&done, stored) {
            svc.forget_object(key);
        }
        done
    };
    line_or_error(reported.await)
}
