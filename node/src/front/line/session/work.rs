//! A worker's requests on a session (see [`crate::work`]): `WORK` makes the connection a
//! worker (tasks and cancels are then pushed to it as lines of their own, between answers),
//! and `DONE`, `FAIL`, `PROGRESS`, `EXTEND` report on a lease.

use super::requests::line_or_error;
use super::writer::{Item, Outbox, Pending, Slot};
use super::Session;
use crate::service::{Intake, ServiceError, Services};
use crate::work::hub::Push;
use crate::work::lease::Said;
use actix::prelude::*;
use protocol::codec::Outbound;
use protocol::work::{WorkCommand, MAX_SLOTS};
use std::rc::Rc;
use std::sync::Arc;
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
            WorkCommand::Work {
                kinds,
                slots,
                stream,
            } => self.enlist(ctx, permit, kinds, slots, stream),
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
                let done = match svc.result_of(&lease, result).await {
                    Ok(result) => svc.report_done(lease, result, &who).await,
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
                line_or_error(svc.report(lease, said, &who).await)
            }),
            WorkCommand::Progress {
                lease,
                percent,
                note,
            } => self.as_who(ctx, permit, |who| async move {
                let said = Said::Progress { percent, note };
                line_or_error(svc.report(lease, said, &who).await)
            }),
            WorkCommand::Extend { lease, secs } => self.as_who(ctx, permit, |who| async move {
                let said = Said::Extend { secs };
                line_or_error(svc.report(lease, said, &who).await)
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
        stream: bool,
    ) {
        if self.worker.is_some() {
            let e = ServiceError::Invalid(
                "this connection is a worker already; open another for other kinds".into(),
            );
            return self.answer(ctx, permit, &e.to_line(), false);
        }
        let (push, pushed) = mpsc::channel::<Push>(PUSH_ROOM);
        let out = Forward {
            slots: self.slots.clone(),
            room: Arc::new(Semaphore::new(PUSH_ROOM)),
            svc: self.svc.clone(),
            write_timeout: self.limits.write_timeout,
        };
        actix::spawn(out.run(pushed));
        let (svc, session) = (self.svc.clone(), ctx.address());
        self.as_who(ctx, permit, |who| async move {
            match svc.enlist(kinds, slots, stream, &who, push).await {
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

/// Writes what the hub pushes to a worker into the connection's answer queue, each in its
/// turn: a line, or a task line and its payload's bytes from the bucket.
struct Forward {
    slots: mpsc::Sender<Slot>,
    room: Arc<Semaphore>,
    svc: Rc<Services>,
    write_timeout: std::time::Duration,
}

impl Forward {
    async fn run(self, mut pushed: mpsc::Receiver<Push>) {
        while let Some(push) = pushed.recv().await {
            let Ok(permit) = self.room.clone().acquire_owned().await else {
                return;
            };
            let answer = match push {
                Push::Line(line) => {
                    let (tx, rx) = oneshot::channel();
                    let _ = tx.send(Item::Out(line));
                    Pending::One(rx)
                }
                Push::Body { header, key, size } => {
                    let (tx, rx) = mpsc::channel(8);
                    let (svc, timeout) = (self.svc.clone(), self.write_timeout);
                    actix::spawn(async move {
                        let out = Outbox { tx, timeout };
                        let close = match svc.open_object(key).await {
                            Ok((_, chunks)) => out.stream(header, size, chunks).await,
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot read a payload for a worker; closing its connection");
                                true
                            }
                        };
                        // A body cut short leaves the connection out of step: it closes, and
                        // the worker's tasks go back.
                        if close {
                            let _ = out.tx.send(Item::Close).await;
                        }
                    });
                    Pending::Stream(rx)
                }
            };
            let slot = Slot {
                answer,
                permit: Some(permit),
            };
            if self.slots.send(slot).await.is_err() {
                return;
            }
        }
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
        let result = intake.finish().await?;
        let who =
            who.ok_or_else(|| ServiceError::Unauthenticated("say AUTH <token> first".into()))?;
        svc.report_done(lease, result, &who).await
    };
    line_or_error(reported.await)
}
