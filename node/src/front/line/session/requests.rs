//! Dispatching a session's requests to the [`Services`], and `RESULT`'s streamed answer.

use super::writer::{Item, Outbox, Pending};
use super::{Session, MAX_PIPELINED, SLOT_BYTES};
use crate::service::results::ResultBody;
use crate::service::{Answer, ServiceError};
use actix::prelude::*;
use protocol::codec::Outbound;
use protocol::{Bye, ErrorCode, ErrorLine, HelpText, Request, ScheduleCommand, TokenCommand, HELP};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tracing::Instrument;

/// The pipelining slots `req` takes.
pub(super) fn weight(req: &Request) -> u32 {
    let bytes = match req {
        Request::Submit { payload, .. } => payload.len(),
        _ => 0,
    };
    (1 + bytes / SLOT_BYTES).min(MAX_PIPELINED) as u32
}

impl Session {
    /// `RESULT`: inline, or a header and the object's bytes streamed after it.
    fn serve_result(
        &mut self,
        ctx: &mut Context<Self>,
        permit: OwnedSemaphorePermit,
        id: uuid::Uuid,
    ) {
        let who = match self.identity_now() {
            Ok(who) => who,
            Err(e) => return self.answer(ctx, permit, &e.to_line(), false),
        };
        let (tx, rx) = mpsc::channel(8);
        self.queue(ctx, Pending::Stream(rx), permit);
        let out = Outbox {
            tx,
            timeout: self.limits.write_timeout,
        };
        let svc = self.svc.clone();
        let span = self.span.clone();
        let work = async move {
            let close = match svc.result(id, &who, None).await {
                Ok(ResultBody::Inline(view)) => !out.send(Outbound::line(&view)).await,
                Ok(ResultBody::Stream {
                    header,
                    size,
                    chunks,
                }) => out.stream(Outbound::line(&header), size, chunks).await,
                Err(e) => !out.send(Outbound::error(&e.to_line())).await,
            };
            if close {
                let _ = out.tx.send(Item::Close).await;
            }
        };
        actix::spawn(work.instrument(span));
    }

    pub(super) fn handle_request(
        &mut self,
        req: Request,
        permit: OwnedSemaphorePermit,
        ctx: &mut Context<Self>,
    ) {
        let svc = self.svc.clone();
        match req {
            Request::Ping => {
                // Before AUTH: whether the node is healthy, nothing more.
                let brief = self.who.identity.is_none();
                self.serve_one(ctx, permit, false, async move {
                    let pong = svc.health().await;
                    Outbound::line(&if brief { pong.brief() } else { pong })
                })
            }
            Request::Auth(token) => self.authenticate(ctx, permit, token),
            Request::Help => {
                let help = HelpText {
                    help: HELP.iter().map(|s| s.to_string()).collect(),
                };
                self.answer(ctx, permit, &help, false)
            }
            Request::Kinds => self.as_who(ctx, permit, |_| async move {
                Outbound::line(&svc.kinds().await)
            }),
            Request::Quit => self.answer(ctx, permit, &Bye { bye: true }, true),
            Request::Submit {
                kind,
                payload,
                wait,
                options,
            } => self.as_who(ctx, permit, |who| async move {
                let wait = wait.then_some(svc.wait_timeout);
                answer_line(svc.submit_bytes(kind, payload, wait, &options, &who).await)
            }),
            Request::Cancel(id) => self.as_who(ctx, permit, |who| async move {
                line_or_error(svc.cancel(id, &who).await)
            }),
            Request::Pause(target) => self.as_who(ctx, permit, |who| async move {
                line_or_error(svc.pause(target, &who).await)
            }),
            Request::Resume(target) => self.as_who(ctx, permit, |who| async move {
                line_or_error(svc.resume(target, &who).await)
            }),
            Request::Schedule(cmd) => self.as_who(ctx, permit, |who| async move {
                match cmd {
                    ScheduleCommand::Add(new) => line_or_error(svc.add_schedule(new, &who).await),
                    ScheduleCommand::List => line_or_error(svc.list_schedules(&who).await),
                    ScheduleCommand::Remove(name) => {
                        line_or_error(svc.remove_schedule(name, &who).await)
                    }
                }
            }),
            Request::Status(id) => self.as_who(ctx, permit, |who| async move {
                line_or_error(svc.status(id, &who).await)
            }),
            Request::Dead(limit) => self.as_who(ctx, permit, |who| async move {
                line_or_error(svc.dead(limit, &who).await)
            }),
            Request::Retry(id) => self.as_who(ctx, permit, |who| async move {
                line_or_error(svc.retry(id, &who).await)
            }),
            Request::Token(cmd) => self.as_who(ctx, permit, |who| async move {
                match cmd {
                    TokenCommand::Create(new) => line_or_error(svc.create_token(new, &who).await),
                    TokenCommand::List => line_or_error(svc.list_tokens(&who).await),
                    TokenCommand::Revoke(name) => line_or_error(svc.revoke_token(name, &who).await),
                }
            }),
            Request::Result(id) => self.serve_result(ctx, permit, id),
            Request::Put { .. } if self.who.identity.is_none() => {
                // Its body is not read: whoever has not said who they are sends no bytes.
                let line = ErrorLine::new(
                    ErrorCode::Unauthenticated,
                    "say AUTH <token> before PUT; closing the connection (the body is not read)",
                );
                self.answer(ctx, permit, &line, true)
            }
            Request::Put { kind, size, wait } => self.start_upload(kind, size, wait, permit),
            Request::Work(protocol::WorkCommand::DonePut { .. }) if self.who.identity.is_none() => {
                let line = ErrorLine::new(
                    ErrorCode::Unauthenticated,
                    "say AUTH <token> before DONE … PUT; closing the connection (the body is not read)",
                );
                self.answer(ctx, permit, &line, true)
            }
            Request::Work(cmd) => self.handle_work(cmd, permit, ctx),
        }
    }
}

/// A submission's answer line.
pub(super) fn answer_line(res: Result<Answer, ServiceError>) -> Outbound {
    match res {
        Ok(Answer::Json(json)) => Outbound::Line(json),
        Ok(Answer::View(view)) => Outbound::line(&view),
        Err(e) => Outbound::error(&e.to_line()),
    }
}

/// `value` as an answer line, or the error.
pub(super) fn line_or_error<T: serde::Serialize>(res: Result<T, ServiceError>) -> Outbound {
    match res {
        Ok(value) => Outbound::line(&value),
        Err(e) => Outbound::error(&e.to_line()),
    }
}
